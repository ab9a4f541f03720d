"""A strong augmentation of a batch of normalised images, on the model's device.

The image-view term of LGDEA (``LGDEA(view_loss=...)``, term ``'v'``) contrasts an image as the
data pipeline loaded it with a view of it made here, so that images without a partner report
still train the image encoder. Applied to tensors after the data preprocessor, per sample,
with the global torch RNG (deterministic for a seed).

Shapes: images ``[B, C, H, W]`` in the preprocessor's normalised units (about [-1, 1]).
"""
import math
from typing import Sequence

import torch
import torch.nn.functional as F

from lgdea.registry import MODELS

__all__ = ['BatchStrongAugment']


def _range(name: str, value: Sequence[float], low: float, high: float) -> tuple:
    value = tuple(float(v) for v in value)
    if len(value) != 2 or not low <= value[0] <= value[1] <= high:
        raise ValueError(f'BatchStrongAugment.{name} must be (min, max) with {low} <= min <= '
                         f'max <= {high}, got {value}.')
    return value


@MODELS.register_module()
class BatchStrongAugment(torch.nn.Module):
    """``x' = cutout(c * affine(x) + b + sigma * eps)`` per sample.

    - ``affine``: zoom by ``s ~ U(scale)`` (``s > 1`` zooms in), rotation ``~ U(+-rotate)``
      degrees and a shift ``~ U(+-translate)`` of the half-width, bilinear, border padding;
      no flip (laterality is part of a finding);
    - intensity: contrast ``c ~ U(contrast)``, brightness ``b ~ U(+-brightness)``;
    - noise: ``eps ~ N(0, 1)``, ``sigma = noise``;
    - cutout: one square of side ``cutout * H`` set to 0 (the normalised mean), at a uniform
      position; ``cutout=0`` turns it off.

    Args:
        scale: zoom range (1.0, 1.4).
        rotate: maximum rotation in degrees (10).
        translate: maximum shift as a fraction of the half-width (0.1).
        contrast: contrast factor range (0.7, 1.3).
        brightness: maximum brightness offset in normalised units (0.2).
        noise: std of the additive Gaussian noise in normalised units (0.05).
        cutout: side of the cutout square as a fraction of the image side (0.25).
    """

    def __init__(self, scale=(1.0, 1.4), rotate: float = 10.0, translate: float = 0.1,
                 contrast=(0.7, 1.3), brightness: float = 0.2, noise: float = 0.05,
                 cutout: float = 0.25):
        super().__init__()
        self.scale = _range('scale', scale, 0.5, 3.0)
        self.contrast = _range('contrast', contrast, 0.0, 10.0)
        for name, v, high in (('rotate', rotate, 180.0), ('translate', translate, 1.0),
                              ('brightness', brightness, 10.0), ('noise', noise, 10.0),
                              ('cutout', cutout, 1.0)):
            if not 0.0 <= float(v) <= high:
                raise ValueError(f'BatchStrongAugment.{name} must be in [0, {high}], got {v}.')
        self.rotate, self.translate = float(rotate), float(translate)
        self.brightness, self.noise, self.cutout = float(brightness), float(noise), float(cutout)

    def _uniform(self, n: int, low: float, high: float, like: torch.Tensor) -> torch.Tensor:
        return torch.rand(n, device=like.device, dtype=like.dtype) * (high - low) + low

    @torch.no_grad()
    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """``[B, C, H, W]`` -> augmented ``[B, C, H, W]`` (a new tensor; the input is kept)."""
        if images.dim() != 4:
            raise ValueError(f'BatchStrongAugment expects [B, C, H, W], got {tuple(images.shape)}')
        b, _, h, w = images.shape
        x = images.float()
        zoom = self._uniform(b, *self.scale, x)
        angle = self._uniform(b, -self.rotate, self.rotate, x) * (math.pi / 180.0)
        shift = self._uniform(2 * b, -self.translate, self.translate, x).view(b, 2)
        cos, sin = torch.cos(angle) / zoom, torch.sin(angle) / zoom
        theta = torch.stack([torch.stack([cos, -sin, shift[:, 0]], 1),
                             torch.stack([sin, cos, shift[:, 1]], 1)], 1)   # [B, 2, 3]
        grid = F.affine_grid(theta, list(x.shape), align_corners=False)
        x = F.grid_sample(x, grid, mode='bilinear', padding_mode='border', align_corners=False)
        c = self._uniform(b, *self.contrast, x).view(b, 1, 1, 1)
        off = self._uniform(b, -self.brightness, self.brightness, x).view(b, 1, 1, 1)
        x = x * c + off
        if self.noise > 0:
            x = x + self.noise * torch.randn_like(x)
        side = int(round(self.cutout * h))
        if side > 0:
            top = torch.randint(0, h - side + 1, (b,), device=x.device)
            left = torch.randint(0, w - side + 1, (b,), device=x.device)
            rows = torch.arange(h, device=x.device)
            cols = torch.arange(w, device=x.device)
            in_rows = (rows[None] >= top[:, None]) & (rows[None] < top[:, None] + side)
            in_cols = (cols[None] >= left[:, None]) & (cols[None] < left[:, None] + side)
            hole = in_rows[:, :, None] & in_cols[:, None, :]                  # [B, H, W]
            x = x.masked_fill(hole[:, None], 0.0)
        return x.to(images.dtype)

    def extra_repr(self) -> str:
        return (f'scale={self.scale}, rotate={self.rotate}, translate={self.translate}, '
                f'contrast={self.contrast}, brightness={self.brightness}, noise={self.noise}, '
                f'cutout={self.cutout}')
