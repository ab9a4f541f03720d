"""Pretraining loss on a held-out paired split, for every method (pretraining validation;
also the monitor of MGCA's official early stop)."""
from typing import Dict, List, Optional, Sequence

import torch
from mmengine.evaluator import BaseMetric
from mmengine.model import is_model_wrapper

from lgdea.registry import METRICS

__all__ = ['PairedValLoss']


@METRICS.register_module()
class PairedValLoss(BaseMetric):
    """Mean training objective of the bound model over a validation split of pairs.

    The official MGCA run keeps 50 epochs at most, stops when the validation loss has not
    improved for 5 epochs and uses the checkpoint with the smallest validation loss
    (docs/baselines.md 2.7). This metric computes that loss: for every validation batch (pairs
    from ``LimitedPairingDataset(pair_ratio=1.0, include_unpaired=False)``) it runs the
    model's ``loss`` under ``no_grad`` in eval mode (BatchNorm uses running statistics, as
    Lightning's validation does) and averages over batches, weighted by batch size.

    Output keys: ``loss`` (the sum of the terms whose name contains ``'loss'``, the value
    mmengine would optimise) and every term (``loss_ita``, ...). With
    ``prefix='pretrain_val'`` the early-stopping monitor is ``'pretrain_val/loss'``.

    Args:
        collect_device: as :class:`mmengine.evaluator.BaseMetric`.
        prefix: key prefix (default ``'pretrain_val'``).
    """

    default_prefix = 'pretrain_val'

    def __init__(self, collect_device: str = 'cpu', prefix: Optional[str] = None):
        super().__init__(collect_device=collect_device, prefix=prefix)
        self.model = None

    def bind_model(self, model) -> None:
        self.model = model.module if is_model_wrapper(model) else model

    def process(self, data_batch: dict, data_samples: Sequence) -> None:
        if self.model is None:
            raise RuntimeError('PairedValLoss needs the model: run it in VLValLoop / '
                               'VLTestLoop (they call metric.bind_model).')
        if not isinstance(data_batch, dict) or 'reports' not in data_batch:
            raise ValueError('PairedValLoss expects vl_collate batches of image-report pairs '
                             '(LimitedPairingDataset(include_unpaired=False) + vl_collate).')
        with torch.no_grad():
            data = self.model.data_preprocessor(data_batch, False)
            losses = self.model.loss(data['images'], data['data_samples'], data['reports'])
        terms = {k: float(v.detach().float().mean()) for k, v in losses.items()
                 if 'loss' in k and torch.is_tensor(v)}
        terms['loss'] = sum(terms.values())
        self.results.append(dict(size=len(data['data_samples']), **terms))

    def compute_metrics(self, results: List[dict]) -> Dict[str, float]:
        if not results:
            raise ValueError('PairedValLoss: the validation split gave no batch')
        total = float(sum(r['size'] for r in results))
        keys = [k for k in results[0] if k != 'size']
        return {k: sum(r[k] * r['size'] for r in results) / total for k in keys}
