"""Training loops of the probe heads (mmengine ``BaseModel.train_step`` + ``OptimWrapper``).

- :func:`train_linear_probe`: :class:`~lgdea.models.heads.LinearProbeClassifier` on cached
  features, mini-batch AdamW for ``epochs`` epochs per weight decay of the grid; the epoch and
  the weight decay with the best validation score (accuracy / macro AUROC) are selected
  (ties: the lower validation loss, then the earliest). Without a validation subset: the last
  epoch of the first weight decay.
- :func:`finetune_classifier`: :class:`~lgdea.models.heads.FinetuneClassifier` (a copy of the
  VLP model's image side + a linear layer) trained end to end on images; the head gets ``lr``,
  the encoder ``lr * encoder_lr_mult`` (BenchX: 0.1); the epoch is selected on validation.

Both are seeded: initialisation, shuffling and dropout use ``seed`` inside a forked RNG, so
the caller's global random state is left alone.
"""
import copy
import math
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Dict, Optional, Sequence, Tuple

import numpy as np
import torch
from mmengine.logging import print_log
from mmengine.optim import OptimWrapper
from torch.utils.data import DataLoader

from lgdea.registry import OPTIMIZERS
from ..metrics.base import model_device

from lgdea.models.heads.linear_probe_head import FinetuneClassifier, LinearProbeClassifier
from .features import PipelineItems, preprocess_images, probe_collate
from .metrics import classification_metrics, primary_metric

__all__ = ['ProbeSelection', 'train_linear_probe', 'predict_scores', 'finetune_classifier',
           'finetune_scores']


@dataclass
class ProbeSelection:
    """What model selection chose.

    Attributes:
        epoch: selected epoch (1-based).
        weight_decay: selected weight decay.
        val_score: validation value of the primary metric at that point (NaN without val).
    """
    epoch: int
    weight_decay: float
    val_score: float = float('nan')


def _val_key(score: float, loss: float) -> Tuple[float, float]:
    """Selection key: the primary metric, ties broken by the lower validation loss (NaN
    counts as the worst)."""
    s = -math.inf if score is None or math.isnan(score) else float(score)
    lo = math.inf if loss is None or math.isnan(loss) else float(loss)
    return s, -lo


def _better(key: Tuple[float, float], best: Optional[Tuple[float, float]]) -> bool:
    return best is None or key > best


def _val_loss(scores: np.ndarray, targets: np.ndarray, multilabel: bool) -> float:
    """Mean validation loss from the scores (cross-entropy / NaN-masked BCE)."""
    p = np.clip(np.asarray(scores, dtype=np.float64), 1e-12, 1 - 1e-12)
    if multilabel:
        t = np.asarray(targets, dtype=np.float64)
        known = ~np.isnan(t)
        ll = np.where(t > 0.5, np.log(p), np.log1p(-p))
        return float(-ll[known].mean()) if known.any() else float('nan')
    labels = np.asarray(targets).astype(np.int64)
    return float(-np.log(p[np.arange(len(labels)), labels]).mean())


def _optim_wrapper(param_groups: list, optimizer: dict) -> OptimWrapper:
    """mmengine ``OptimWrapper`` around an OPTIMIZERS-built optimizer over ``param_groups``
    (built directly: the default constructor logs every parameter of a fine-tuned ViT)."""
    cfg = copy.deepcopy(optimizer)
    cfg['params'] = param_groups
    return OptimWrapper(OPTIMIZERS.build(cfg))


@contextmanager
def _cpu_threads(device, threads: Optional[int]):
    """Run tiny CPU ops (a linear layer on features) with ``threads`` intra-op threads: on a
    shared machine 2+ threads make each step an order of magnitude slower."""
    if threads is None or torch.device(device).type != 'cpu':
        yield
        return
    old = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        yield
    finally:
        torch.set_num_threads(old)


@torch.no_grad()
def predict_scores(head: LinearProbeClassifier, feats, batch_size: int = 8192) -> np.ndarray:
    """Softmax / sigmoid scores [N, K] of features [N, C] (eval mode, restored after)."""
    was_training = head.training
    head.eval()
    device = head.fc.weight.device
    x = torch.as_tensor(np.asarray(feats, dtype=np.float32))
    out = [head(x[i:i + batch_size].to(device), mode='predict').float().cpu()
           for i in range(0, len(x), batch_size)]
    head.train(was_training)
    return torch.cat(out).numpy()


def train_linear_probe(train_x: np.ndarray, train_y: np.ndarray,
                       val_x: Optional[np.ndarray] = None, val_y: Optional[np.ndarray] = None,
                       *, num_classes: int, multilabel: bool = False, epochs: int = 100,
                       lr: float = 1e-3, weight_decays: Sequence[float] = (0.0, ),
                       batch_size: int = 256, standardize: bool = True, val_interval: int = 1,
                       optimizer: Optional[dict] = None, seed: int = 0,
                       device='cpu', cpu_threads: Optional[int] = 1,
                       log_prefix: str = '') -> Tuple[LinearProbeClassifier, ProbeSelection]:
    """Train the linear head on cached features and select epoch / weight decay on val.

    Args:
        train_x: [N, C] float features; train_y: [N] class indices or [N, K] multi-hot.
        val_x, val_y: the validation subset (both None: no selection).
        num_classes: K.
        multilabel: BCE (True) or cross-entropy.
        epochs: passes over the training features per weight decay.
        lr: learning rate.
        weight_decays: grid of weight decays (selected on val).
        batch_size: mini-batch size (the last batch of an epoch may be smaller).
        standardize: fit the feature standardisation on ``train_x``.
        val_interval: evaluate on val every this many epochs (and at the last epoch).
        optimizer: optimizer config (OPTIMIZERS), default ``dict(type='AdamW')``; its ``lr``
            defaults to ``lr`` and its ``weight_decay`` is set from the grid (never on the
            bias).
        seed: seed of initialisation and shuffling.
        device: where to train.
        cpu_threads: torch intra-op threads while training on CPU (None: unchanged).
        log_prefix: prefix of the log line.

    Returns:
        ``(head with the selected weights, ProbeSelection)``.
    """
    n = len(train_x)
    if n == 0:
        raise ValueError(f'{log_prefix}train_linear_probe: no training features')
    if epochs < 1 or batch_size < 1 or val_interval < 1:
        raise ValueError(f'train_linear_probe: epochs ({epochs}), batch_size ({batch_size}) and '
                         f'val_interval ({val_interval}) must be >= 1')
    weight_decays = [float(w) for w in (weight_decays if isinstance(weight_decays, (list, tuple))
                                        else [weight_decays])]
    if not weight_decays:
        raise ValueError('train_linear_probe: empty weight_decays')
    has_val = val_x is not None and val_y is not None and len(val_x) > 0
    if not has_val and len(weight_decays) > 1:
        print_log(f'{log_prefix}no validation subset: using weight decay {weight_decays[0]} and '
                  f'the last epoch (grid {weight_decays} needs val)', logger='current')
        weight_decays = weight_decays[:1]
    with _cpu_threads(device, cpu_threads):
        return _train_linear(train_x, train_y, val_x, val_y, has_val, num_classes, multilabel,
                             epochs, lr, weight_decays, batch_size, standardize, val_interval,
                             optimizer, seed, device)


def _train_linear(train_x, train_y, val_x, val_y, has_val, num_classes, multilabel, epochs, lr,
                  weight_decays, batch_size, standardize, val_interval, optimizer, seed, device):
    n = len(train_x)
    x = torch.as_tensor(np.asarray(train_x, dtype=np.float32), device=device)
    y = torch.as_tensor(np.asarray(train_y), device=device)
    primary = primary_metric(multilabel)
    best_key: Optional[Tuple[float, float]] = None
    best: Optional[Tuple[ProbeSelection, dict]] = None
    for wd in weight_decays:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            head = LinearProbeClassifier(x.shape[1], num_classes, multilabel=multilabel,
                                         standardize=standardize).to(device)
        if standardize:
            head.fit_standardization(x)
        opt = dict(optimizer or dict(type='AdamW'))
        opt.setdefault('lr', lr)
        opt['weight_decay'] = wd
        optim_wrapper = _optim_wrapper(
            [dict(params=[head.fc.weight]), dict(params=[head.fc.bias], weight_decay=0.0)], opt)
        gen = torch.Generator().manual_seed(seed)
        for epoch in range(1, epochs + 1):
            head.train()
            perm = torch.randperm(n, generator=gen).to(device)
            for start in range(0, n, batch_size):
                idx = perm[start:start + batch_size]
                head.train_step(dict(inputs=x[idx], targets=y[idx]), optim_wrapper)
            if has_val and (epoch % val_interval == 0 or epoch == epochs):
                scores = predict_scores(head, val_x)
                score = classification_metrics(scores, val_y, multilabel,
                                               auroc_backend='rank')[primary]
                key = _val_key(score, _val_loss(scores, val_y, multilabel))
                if _better(key, best_key):
                    best_key = key
                    best = (ProbeSelection(epoch, wd, score), copy.deepcopy(head.state_dict()))
        if not has_val:
            best = (ProbeSelection(epochs, wd), copy.deepcopy(head.state_dict()))
    selection, state = best
    head.load_state_dict(state)
    head.eval()
    return head, selection


# ------------------------------------------------------------------------------ finetune
@torch.no_grad()
def finetune_scores(clf: FinetuneClassifier, items: Sequence[Tuple[object, int]],
                    batch_size: int = 64, num_workers: int = 0) -> np.ndarray:
    """Scores [N, K] of ``(dataset, index)`` items through the fine-tuned classifier."""
    was_training = clf.training
    clf.eval()
    loader = DataLoader(PipelineItems(items), batch_size=batch_size, shuffle=False,
                        num_workers=num_workers, collate_fn=probe_collate)
    out = None
    device = clf.head.fc.weight.device
    for batch in loader:
        scores = clf(batch['inputs'].to(device), mode='predict').float().cpu().numpy()
        if out is None:
            out = np.zeros((len(items), scores.shape[1]), dtype=np.float32)
        out[batch['index'].numpy()] = scores
    clf.train(was_training)
    return out


def finetune_classifier(model, train_items: Sequence[Tuple[object, int]], train_y: np.ndarray,
                        val_items: Optional[Sequence[Tuple[object, int]]] = None,
                        val_y: Optional[np.ndarray] = None, *, num_classes: int,
                        multilabel: bool = False, epochs: int = 10, lr: float = 1e-3,
                        weight_decay: float = 1e-4, encoder_lr_mult: float = 0.1,
                        batch_size: int = 32, max_iters: Optional[int] = None,
                        num_workers: int = 0, optimizer: Optional[dict] = None, seed: int = 0,
                        log_prefix: str = '') -> Tuple[FinetuneClassifier, ProbeSelection,
                                                       Dict[str, float]]:
    """Fine-tune a copy of ``model``'s image side with a linear head, end to end.

    Args:
        model: the (unwrapped) VLP model; it is deep-copied (every parameter of the copy
            trainable, frozen ones included), never changed.
        train_items: ``(dataset, index)`` pairs of the training images (their datasets'
            pipelines give the training images); train_y: their targets.
        val_items, val_y: validation images and targets (None: keep the last epoch).
        num_classes, multilabel: as :func:`train_linear_probe`.
        epochs: passes over the training images; ``max_iters`` stops earlier (steps).
        lr: head learning rate; the encoder gets ``lr * encoder_lr_mult``.
        weight_decay: AdamW weight decay.
        batch_size, num_workers: training DataLoader.
        optimizer: optimizer config (default ``dict(type='AdamW')``).
        seed: seed of the head initialisation, shuffling and dropout.

    Returns:
        ``(classifier with the selected weights, ProbeSelection, dict(steps=...))``.
    """
    if not train_items:
        raise ValueError(f'{log_prefix}finetune_classifier: no training images')
    device = model_device(model)
    encoder = copy.deepcopy(model)
    for p in encoder.parameters():  # unfrozen (parameters extract_image never uses get no grad)
        p.requires_grad_(True)
    # the probe size from one image
    with torch.no_grad():
        first = probe_collate([PipelineItems(train_items[:1])[0]])
        encoder.eval()
        images = preprocess_images(encoder, first['inputs'])
        dims = int(encoder.extract_image(images)['probe'].shape[1])
    has_val = val_items is not None and len(val_items) > 0
    primary = primary_metric(multilabel)
    steps = 0
    with torch.random.fork_rng(devices=[device] if device.type == 'cuda' else []):
        torch.manual_seed(seed)
        clf = FinetuneClassifier(encoder, dims, num_classes, multilabel=multilabel).to(device)
        opt = dict(optimizer or dict(type='AdamW'))
        opt.setdefault('lr', lr)
        opt.setdefault('weight_decay', weight_decay)
        encoder_params = list(clf.encoder.parameters())
        optim_wrapper = _optim_wrapper(
            [dict(params=encoder_params, lr=float(opt['lr']) * encoder_lr_mult),
             dict(params=list(clf.head.parameters()))], opt)
        gen = torch.Generator().manual_seed(seed)
        loader = DataLoader(PipelineItems(train_items, np.asarray(train_y)),
                            batch_size=batch_size, shuffle=True, generator=gen,
                            num_workers=num_workers, collate_fn=probe_collate)
        best_key, best = None, None
        for epoch in range(1, epochs + 1):
            clf.train()
            for batch in loader:
                clf.train_step(dict(inputs=batch['inputs'], targets=batch['targets']),
                               optim_wrapper)
                steps += 1
                if max_iters is not None and steps >= max_iters:
                    break
            last = epoch == epochs or (max_iters is not None and steps >= max_iters)
            if has_val:
                scores = finetune_scores(clf, val_items, batch_size, num_workers)
                score = classification_metrics(scores, val_y, multilabel,
                                               auroc_backend='rank')[primary]
                key = _val_key(score, _val_loss(scores, val_y, multilabel))
                if _better(key, best_key):
                    best_key = key
                    best = (ProbeSelection(epoch, float(opt['weight_decay']), score),
                            {k: v.detach().cpu().clone() for k, v in clf.state_dict().items()})
            elif last:
                best = (ProbeSelection(epoch, float(opt['weight_decay'])), None)
            if last:
                break
    selection, state = best
    if state is not None:
        clf.load_state_dict(state)
    clf.eval()
    return clf, selection, dict(steps=steps)
