"""Classification heads of the linear-probe evaluation (docs/linear_probe.md).

- :class:`LinearProbeClassifier`: one linear layer on cached, frozen image features
  (``extract_image(images)['probe']``), with an optional feature standardisation fitted on the
  training features.
- :class:`FinetuneClassifier`: the image side of a VLP model plus that linear layer, trained
  end to end on images (BenchX-style full fine-tuning, ``mode='finetune'``).

Both are mmengine ``BaseModel`` s with ``forward(inputs, targets=None, mode)``, so they train
through ``BaseModel.train_step(dict(inputs=..., targets=...), optim_wrapper)``.
"""
from typing import Optional, Union

import torch
import torch.nn as nn
import torch.nn.functional as F
from mmengine.model import BaseModel

from lgdea.registry import MODELS

__all__ = ['LinearProbeClassifier', 'FinetuneClassifier', 'probe_loss']


def probe_loss(logits: torch.Tensor, targets: torch.Tensor, multilabel: bool) -> torch.Tensor:
    """Classification loss of the probe.

    Args:
        logits: [B, K].
        targets: single-label: [B] class indices; multi-label: [B, K] float 1 / 0, NaN =
            unknown (masked out of the mean).
        multilabel: BCE-with-logits per label (mean over known entries) instead of
            cross-entropy.

    Returns:
        Scalar loss.
    """
    if not multilabel:
        return F.cross_entropy(logits, targets.long())
    targets = targets.to(logits.dtype)
    known = ~torch.isnan(targets)
    per_entry = F.binary_cross_entropy_with_logits(
        logits, torch.where(known, targets, torch.zeros_like(targets)), reduction='none')
    return (per_entry * known).sum() / known.sum().clamp(min=1)


@MODELS.register_module()
class LinearProbeClassifier(BaseModel):
    """Linear classifier on frozen image features: ``logits = fc((x - mean) / std)``.

    Args:
        in_channels: feature size C (of ``probe`` [B, C]).
        num_classes: K (classes, or labels when ``multilabel``).
        multilabel: BCE per label (targets [B, K], NaN = unknown) instead of cross-entropy
            (targets [B] class indices).
        standardize: apply the per-channel standardisation stored in ``feat_mean`` /
            ``feat_std`` (fit it with :meth:`fit_standardization` on the training features;
            until then it is the identity).
        data_preprocessor: defaults to mmengine's ``BaseDataPreprocessor`` (device cast).

    ``forward(inputs [B, C], targets=None, mode)``:

    - ``'tensor'`` -> logits [B, K];
    - ``'predict'`` -> scores [B, K]: softmax (single-label) or sigmoid (multi-label);
    - ``'loss'`` -> ``dict(loss=...)`` (needs ``targets``).
    """

    def __init__(self, in_channels: int, num_classes: int, multilabel: bool = False,
                 standardize: bool = True, data_preprocessor: Optional[dict] = None,
                 init_cfg: Optional[dict] = None):
        super().__init__(data_preprocessor=data_preprocessor, init_cfg=init_cfg)
        if in_channels < 1 or num_classes < 1:
            raise ValueError(f'LinearProbeClassifier: in_channels ({in_channels}) and '
                             f'num_classes ({num_classes}) must be positive.')
        if not multilabel and num_classes < 2:
            raise ValueError('LinearProbeClassifier: a single-label probe needs at least 2 '
                             f'classes, got {num_classes}.')
        self.in_channels = int(in_channels)
        self.num_classes = int(num_classes)
        self.multilabel = bool(multilabel)
        self.standardize = bool(standardize)
        self.fc = nn.Linear(self.in_channels, self.num_classes)
        self.register_buffer('feat_mean', torch.zeros(self.in_channels))
        self.register_buffer('feat_std', torch.ones(self.in_channels))

    @torch.no_grad()
    def fit_standardization(self, feats: torch.Tensor, eps: float = 1e-6) -> None:
        """Set ``feat_mean`` / ``feat_std`` from training features [N, C] (population std;
        a constant channel keeps std 1)."""
        if feats.dim() != 2 or feats.shape[1] != self.in_channels:
            raise ValueError(f'fit_standardization: expected features [N, {self.in_channels}], '
                             f'got {tuple(feats.shape)}')
        if feats.shape[0] == 0:
            raise ValueError('fit_standardization: no training features')
        feats = feats.to(self.feat_mean.device, torch.float64)
        mean = feats.mean(0)
        std = feats.std(0, unbiased=False)
        std = torch.where(std > eps, std, torch.ones_like(std))
        self.feat_mean.copy_(mean.float())
        self.feat_std.copy_(std.float())

    def logits(self, inputs: torch.Tensor) -> torch.Tensor:
        """features [B, C] -> logits [B, K]."""
        x = inputs.to(self.fc.weight.dtype)
        if self.standardize:
            x = (x - self.feat_mean) / self.feat_std
        return self.fc(x)

    def scores(self, logits: torch.Tensor) -> torch.Tensor:
        """logits [B, K] -> softmax (single-label) or sigmoid (multi-label) scores [B, K]."""
        return logits.sigmoid() if self.multilabel else logits.softmax(dim=-1)

    def forward(self, inputs: torch.Tensor, targets: Optional[torch.Tensor] = None,
                mode: str = 'tensor'):
        logits = self.logits(inputs)
        if mode == 'tensor':
            return logits
        if mode == 'predict':
            return self.scores(logits)
        if mode == 'loss':
            if targets is None:
                raise ValueError('LinearProbeClassifier: mode="loss" needs targets')
            return dict(loss=probe_loss(logits, targets, self.multilabel))
        raise RuntimeError(f'Invalid mode "{mode}"; choose loss, predict or tensor.')


@MODELS.register_module()
class FinetuneClassifier(BaseModel):
    """A VLP model's image side plus a linear head, trained end to end (``mode='finetune'``).

    ``forward(inputs, targets=None, mode)`` takes the raw image batch ``inputs``
    [B, C, H, W] (as ``PackVLInputs`` / ``vl_collate`` give it), normalises it with the VLP
    model's own data preprocessor, takes ``encoder.extract_image(images)['probe']`` [B, C']
    and applies a :class:`LinearProbeClassifier` (without standardisation: the features move
    during training). Modes as :class:`LinearProbeClassifier`.

    Args:
        encoder: a built :class:`lgdea.models.BaseVLPModel` (its parameters are trained) or
            its config.
        in_channels: size of ``probe``.
        num_classes: K.
        multilabel: BCE per label instead of cross-entropy.
    """

    def __init__(self, encoder: Union[nn.Module, dict], in_channels: int, num_classes: int,
                 multilabel: bool = False, init_cfg: Optional[dict] = None):
        super().__init__(init_cfg=init_cfg)
        self.encoder = MODELS.build(encoder) if isinstance(encoder, dict) else encoder
        if not hasattr(self.encoder, 'extract_image'):
            raise TypeError(f'FinetuneClassifier: the encoder ({type(self.encoder).__name__}) '
                            'has no extract_image(); give a BaseVLPModel.')
        self.head = LinearProbeClassifier(in_channels, num_classes, multilabel=multilabel,
                                          standardize=False)
        self.multilabel = bool(multilabel)

    def features(self, inputs: torch.Tensor) -> torch.Tensor:
        """Raw images [B, C, H, W] -> probe features [B, C']."""
        pre = self.encoder.data_preprocessor
        images = pre(dict(inputs=inputs, data_samples=None, reports=None),
                     self.training)['images']
        return self.encoder.extract_image(images)['probe']

    def forward(self, inputs: torch.Tensor, targets: Optional[torch.Tensor] = None,
                mode: str = 'tensor'):
        return self.head(self.features(inputs), targets, mode)
