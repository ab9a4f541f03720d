"""Test of the template plugin: the config's model is built from the registry by name, a loss
step runs, the extra term is logged and it changes the gradient."""
import math
import os.path as osp

import pytest
import torch
from mmengine.config import Config
from mmengine.utils import import_modules_from_strings
from mmpretrain.structures import DataSample

from lgdea.registry import MODELS
from lgdea.utils import register_all_modules

CONFIG = osp.join(osp.dirname(osp.dirname(osp.abspath(__file__))), 'configs',
                  'clip_uniformity_demo_p100.py')


@pytest.fixture(scope='module')
def cfg():
    register_all_modules()
    cfg = Config.fromfile(CONFIG)
    import_modules_from_strings(**cfg.custom_imports)  # what the runner does
    return cfg


def _batch(n=6, size=64):
    samples = []
    for i in range(n):
        ds = DataSample()
        ds.study_id, ds.paired = f's{i}', True
        ds.text = f'finding number {i}: {"left" if i % 2 else "right"} basal opacity'
        samples.append(ds)
    images = torch.zeros(n, 1, size, size, dtype=torch.uint8)
    for i in range(n):
        images[i, 0, :8 * (i + 1), :8 * (i + 1)] = 255
    return dict(inputs=images, data_samples=samples, reports=samples)


def _grad_of_image_proj(model, data, with_uniformity: bool):
    model.zero_grad()
    out = model(**data, mode='loss')
    total = sum(v for k, v in out.items() if 'loss' in k) if with_uniformity \
        else out['loss_contrastive']
    total.backward()
    return out, next(model.image_proj.parameters()).grad.clone()


def test_config_model_builds_by_name_and_logs_the_extra_term(cfg):
    assert cfg.model.type == 'CLIPWithUniformityLoss'
    assert 'projects.example_project.example_project' in cfg.custom_imports.imports
    torch.manual_seed(0)
    model = MODELS.build(cfg.model)
    assert type(model).__name__ == 'CLIPWithUniformityLoss'
    model.train()
    data = model.data_preprocessor(_batch(), True)

    out, grad_all = _grad_of_image_proj(model, data, with_uniformity=True)
    assert {'loss_contrastive', 'loss_uniformity'} <= set(out)
    # the logged term is the weighted uniformity of the image embeddings of this pass
    model.eval()
    with torch.no_grad():
        embed = model.extract_image(data['images'])['embed']
    model.train()
    d2 = torch.cdist(embed, embed).pow(2)
    off = ~torch.eye(len(embed), dtype=torch.bool)
    expected = 0.1 * torch.log(torch.exp(-2.0 * d2[off]).mean())
    assert math.isclose(out['loss_uniformity'].item(), expected.item(), rel_tol=1e-4,
                        abs_tol=1e-6)

    _, grad_clip_only = _grad_of_image_proj(model, data, with_uniformity=False)
    assert not torch.allclose(grad_all, grad_clip_only)  # the extra term reaches the gradient


def test_uniformity_loss_prefers_spread_embeddings():
    from projects.example_project.example_project.models import UniformityLoss
    loss = UniformityLoss(t=2.0)
    spread = torch.eye(4)
    clumped = torch.nn.functional.normalize(torch.ones(4, 4) + 0.01 * torch.eye(4), dim=1)
    assert loss(spread) < loss(clumped)
    with pytest.raises(ValueError, match='N >= 2'):
        loss(torch.ones(1, 4))
