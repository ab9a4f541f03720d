"""The base class of every dual-encoder medical VLP model and the shared inference interface."""
from abc import abstractmethod
from typing import Dict, List, Optional, Sequence

import torch
import torch.nn.functional as F
from mmengine.model import BaseModel

from lgdea.registry import TOKENIZER
from .encoders.hf_text_encoder import tokenize


class BaseVLPModel(BaseModel):
    """Dual-encoder VLP model with ``loss`` / ``predict`` / ``tensor`` modes.

    Every method implements the inference interface used by every metric
    (docs/architecture.md, section 4):

    - :meth:`extract_image` -> dict(embed [B, D], patch_embed [B, P, D], grid, probe [B, C], ...)
    - :meth:`extract_text` -> dict(embed [N, D], ...)
    - :meth:`similarity` -> [N_img, N_txt]
    - :meth:`grounding_map` -> [B, h, w]

    Args:
        tokenizer: config of a TOKENIZER (``dict(type='HFTokenizer', name_or_path=...)``).
            When None, subclasses build it from their text encoder path, so pipeline and model
            cannot disagree.
        max_text_length: maximum tokens of a report / phrase.
        data_preprocessor: defaults to ``VLDataPreprocessor``.
    """

    def __init__(self, tokenizer: Optional[dict] = None, max_text_length: int = 112,
                 data_preprocessor: Optional[dict] = None, init_cfg=None):
        if data_preprocessor is None:
            data_preprocessor = dict(type='VLDataPreprocessor')
        super().__init__(data_preprocessor=data_preprocessor, init_cfg=init_cfg)
        self.tokenizer = TOKENIZER.build(tokenizer) if tokenizer is not None else None
        self.max_text_length = max_text_length

    # ------------------------------------------------------------------ modes
    def forward(self, images: Optional[torch.Tensor] = None, data_samples: Optional[list] = None,
                reports: Optional[list] = None, mode: str = 'tensor'):
        if mode == 'loss':
            return self.loss(images, data_samples, reports)
        if mode == 'predict':
            return self.predict(images, data_samples)
        if mode == 'tensor':
            return self.extract_image(images)
        raise RuntimeError(f'Invalid mode "{mode}"; choose loss, predict or tensor.')

    @abstractmethod
    def loss(self, images: torch.Tensor, data_samples: list,
             reports: list) -> Dict[str, torch.Tensor]:
        """Training losses of a batch (docs/architecture.md, section 3)."""

    def predict(self, images: torch.Tensor, data_samples: Optional[list] = None) -> list:
        """Attach each image's features (``image_feats``, CPU tensors) to its DataSample."""
        from mmpretrain.structures import DataSample
        feats = self.extract_image(images)
        if data_samples is None:
            data_samples = [DataSample() for _ in range(images.shape[0])]
        for i, ds in enumerate(data_samples):
            ds.image_feats = {
                k: (v[i].detach().float().cpu() if torch.is_tensor(v) else v)
                for k, v in feats.items()
            }
        return data_samples

    # ------------------------------------------------------- inference interface
    @abstractmethod
    def extract_image(self, images: torch.Tensor) -> Dict[str, torch.Tensor]:
        """images [B, C, H, W] -> dict(embed [B, D] L2-normalised, patch_embed [B, P, D],
        grid (h, w), probe [B, C], ...)."""

    @abstractmethod
    def extract_text(self, texts: Sequence[str], kind: str = 'report',
                     evidence: Optional[Sequence[Sequence[str]]] = None) -> Dict[str, torch.Tensor]:
        """texts (N) -> dict(embed [N, D] L2-normalised, ...). ``kind`` is ``'report'`` (a
        candidate report, optionally with its cached ``evidence``) or ``'phrase'`` (a prompt
        or a grounding phrase)."""

    def similarity(self, img_feats: Dict[str, torch.Tensor],
                   txt_feats: Dict[str, torch.Tensor]) -> torch.Tensor:
        """[N_img, N_txt] similarity; default cosine of the global embeddings."""
        return img_feats['embed'] @ txt_feats['embed'].t()

    def grounding_map(self, img_feats: Dict[str, torch.Tensor],
                      txt_feats: Dict[str, torch.Tensor]) -> torch.Tensor:
        """Phrase ``i`` against image ``i``: cosine(phrase embedding, projected patch
        embeddings) on the patch grid (BioViL style) -> [B, h, w]."""
        patches = F.normalize(img_feats['patch_embed'], dim=-1)
        phrase = F.normalize(txt_feats['embed'], dim=-1)
        sim = torch.einsum('bpd,bd->bp', patches, phrase.to(patches.dtype))
        h, w = _grid_of(img_feats)
        return sim.view(sim.shape[0], h, w)

    # ---------------------------------------------------------------- helpers
    def tokenize(self, texts: Sequence[str], max_length: Optional[int] = None):
        if self.tokenizer is None:
            raise RuntimeError(f'{type(self).__name__} has no tokenizer.')
        return tokenize(self.tokenizer, list(texts), max_length or self.max_text_length,
                        device=self.device)

    @property
    def device(self) -> torch.device:
        return next(self.parameters()).device

    @staticmethod
    def report_texts(reports: List) -> List[str]:
        """The report text of each report DataSample, with a clear error for empty ones."""
        texts = []
        for i, r in enumerate(reports):
            text = r.get('text', None)
            if text is None or not str(text).strip():
                raise ValueError(
                    f'report {i} of the batch (study {r.get("study_id", "?")}) has no text; '
                    'studies without usable report text must leave the report pool '
                    '(LimitedPairingDataset does this).')
            texts.append(str(text))
        return texts


def _grid_of(feats: Dict) -> tuple:
    grid = feats.get('grid')
    if grid is None:
        raise KeyError('image features carry no `grid`; the image encoder must report it.')
    if torch.is_tensor(grid):
        grid = grid.flatten()[:2].tolist() if grid.dim() <= 1 else grid[0].tolist()
    elif isinstance(grid, (list, tuple)) and len(grid) and isinstance(grid[0], (list, tuple)):
        grid = grid[0]
    return int(grid[0]), int(grid[1])
