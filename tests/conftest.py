"""Shared fixtures: tiny encoders and an in-memory record dataset."""
import os

import numpy as np
import pytest
import torch
from mmengine.dataset import BaseDataset

from lgdea.registry import DATASETS

SHARED_DATA = os.environ.get(
    'LGDEA_SHARED_DATA',
    os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), '..', 'shared',
                 'data'))


def minilm_vocab() -> str:
    from lgdea.models.encoders import BUILTIN_MINILM
    from lgdea.models.encoders.hf_text_encoder import resolve_text_model_path
    return os.path.join(resolve_text_model_path(BUILTIN_MINILM), 'vocab.txt')


def tiny_vit(img_size: int = 32, patch_size: int = 8, dims: int = 32) -> dict:
    return dict(type='CXRImageEncoder',
                backbone=dict(type='mmpretrain.VisionTransformer',
                              arch=dict(embed_dims=dims, num_layers=2, num_heads=2,
                                        feedforward_channels=2 * dims),
                              img_size=img_size, patch_size=patch_size, in_channels=1,
                              out_type='raw'))


def tiny_bert(dims: int = 32) -> dict:
    return dict(type='HFTextEncoder', pooling='mean',
                config=dict(vocab_size=30522, hidden_size=dims, num_hidden_layers=2,
                            num_attention_heads=2, intermediate_size=2 * dims,
                            max_position_embeddings=128))


def tiny_tokenizer() -> dict:
    return dict(type='HFTokenizer', vocab_file=minilm_vocab())


@DATASETS.register_module(force=True)
class InMemoryRecords(BaseDataset):
    """Records given directly (tests only)."""

    def __init__(self, records, metainfo=None, pipeline=(), **kwargs):
        self._records = list(records)
        super().__init__(metainfo=metainfo, pipeline=list(pipeline), lazy_init=False,
                         serialize_data=False, **kwargs)

    def load_data_list(self):
        return [dict(r) for r in self._records]


def make_study_records(n_studies: int, images_per_study=(1, 2), seed: int = 0,
                       img_root: str = None, with_report=True):
    """Records of n studies (subject = study // 2) with 1-2 images each."""
    rng = np.random.default_rng(seed)
    recs = []
    for s in range(n_studies):
        n_img = int(rng.integers(images_per_study[0], images_per_study[1] + 1))
        for k in range(n_img):
            recs.append(dict(img_path=os.path.join(img_root or '/nonexistent', f's{s}_{k}.png'),
                             study_id=f's{s}', subject_id=f'p{s // 2}',
                             report=(f'report of study {s}' if with_report else None),
                             view='PA', gt_label=s % 3))
    return recs


@pytest.fixture(autouse=True)
def _seed_and_threads():
    torch.manual_seed(0)
    np.random.seed(0)
    yield


from lgdea.utils import register_all_modules  # noqa: E402

register_all_modules()
