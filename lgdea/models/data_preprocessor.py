"""Data preprocessor of the VL data flow: device cast, float, normalisation, channel repeat."""
from numbers import Number
from typing import Optional, Sequence, Union

import torch
from mmengine.model import BaseDataPreprocessor

from lgdea.registry import MODELS

__all__ = ['VLDataPreprocessor']


def _as_list(value: Union[Number, Sequence[Number]], name: str) -> list:
    if isinstance(value, Number):
        return [float(value)]
    value = [float(v) for v in value]
    if len(value) not in (1, 3):
        raise ValueError(f'{name} must be a scalar or have 1 or 3 values, got {value}')
    return value


@MODELS.register_module()
class VLDataPreprocessor(BaseDataPreprocessor):
    """Turn a ``vl_collate`` batch into the model's keyword arguments.

    ``images = (repeat_C(float(inputs)) - mean) / std`` (Eq. P1), with ``mean`` / ``std``
    [C, 1, 1] (a scalar is broadcast over channels).

    Input: ``dict(inputs=Tensor[B, C, H, W] | list[Tensor[C, H, W]] | None, data_samples=list,
    reports=list)``. Output: ``dict(images=Tensor[B, C', H, W] float | None,
    data_samples=list[DataSample], reports=list[DataSample])``, all on the model's device. A
    DataSample that appears in both lists (a ``'pair'`` item) stays one object.

    Args:
        mean: scalar or per-channel mean (pixel units, default 127.5: uint8 -> [-1, 1]).
        std: scalar or per-channel std.
        channels: None (keep), 1 or 3 (repeat a grayscale channel, as ImageNet backbones need).
        non_blocking: passed to ``Tensor.to``.
    """

    def __init__(self, mean: Union[Number, Sequence[Number]] = (127.5,),
                 std: Union[Number, Sequence[Number]] = (127.5,),
                 channels: Optional[int] = None, non_blocking: bool = False):
        super().__init__(non_blocking=non_blocking)
        mean, std = _as_list(mean, 'mean'), _as_list(std, 'std')
        if any(s <= 0 for s in std):
            raise ValueError(f'std must be positive, got {std}')
        if channels not in (None, 1, 3):
            raise ValueError(f'channels must be None, 1 or 3, got {channels}')
        if channels == 1 and (len(mean) == 3 or len(std) == 3):
            raise ValueError('channels=1 with a 3-channel mean/std')
        self.channels = channels
        self.register_buffer('mean', torch.tensor(mean).view(-1, 1, 1), persistent=False)
        self.register_buffer('std', torch.tensor(std).view(-1, 1, 1), persistent=False)

    def _cast_samples(self, samples, memo: dict):
        if samples is None:
            return None
        out = []
        for s in samples:
            key = id(s)
            if key not in memo:
                memo[key] = self.cast_data(s)
            out.append(memo[key])
        return out

    def normalize(self, inputs: torch.Tensor) -> torch.Tensor:
        """[B, C, H, W] -> float, channel-repeated, normalised (Eq. P1)."""
        if inputs.dim() != 4:
            raise ValueError(f'expected images [B, C, H, W], got shape {tuple(inputs.shape)}')
        images = inputs.float()
        c = images.shape[1]
        if self.channels == 3 and c == 1:
            images = images.expand(-1, 3, -1, -1)
        elif self.channels is not None and c != self.channels:
            raise ValueError(f'VLDataPreprocessor(channels={self.channels}) got {c}-channel '
                             'images')
        c = images.shape[1]
        if self.mean.shape[0] not in (1, c):
            raise ValueError(f'mean/std have {self.mean.shape[0]} values for {c}-channel images')
        return (images - self.mean) / self.std

    def forward(self, data: dict, training: bool = False) -> dict:
        inputs = data.get('inputs')
        if isinstance(inputs, (list, tuple)):
            inputs = torch.stack(list(inputs), dim=0) if len(inputs) else None
        memo: dict = {}
        images = None
        if inputs is not None:
            images = self.normalize(self.cast_data(inputs))
        return dict(images=images,
                    data_samples=self._cast_samples(data.get('data_samples'), memo),
                    reports=self._cast_samples(data.get('reports'), memo))
