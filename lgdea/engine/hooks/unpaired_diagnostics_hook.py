"""What a limited-pairing run learns about its unpaired images (measurement only).

Two measurements (docs/benchmark.md, "Unpaired data"), written to
``<work_dir>/unpaired_diagnostics.json`` at the end of training and merged into the benchmark's
per-run metrics under ``train/...``:

* **Dataset-scale partner rank**: for a fixed sample of unpaired images, the rank of the
  withheld partner report among *all* pretraining reports under the current model
  (``model.similarity`` of ``extract_image`` / ``extract_text``), every ``interval``
  iterations and after the last one. The links were withheld, not lost, so they are known;
  they are read here and nowhere in training. Reports with the same score as the partner
  (identical evidence sets give identical embeddings) share the mid rank, and recall@K is the
  probability of the partner being in the top K under random tie-breaking. Next to it the
  class-level hit rate: the share of the top-K reports whose finding set equals the image's.
* **Run summary of the in-batch diagnostics** that the model logs (``target_class_precision``
  and its chance; ``report_target_class_precision``, the same for the unpaired reports'
  targets over images; ``same_image_nn_frac``, ...): their mean over the iterations in which
  propagation ran (``propagated == 1``) or over all iterations.
"""
import copy
import json
import os.path as osp
from typing import Dict, List, Optional, Sequence

import numpy as np
import torch
from mmengine.dataset import Compose
from mmengine.hooks import Hook
from mmengine.model import is_model_wrapper

from lgdea.engine.runner.strategies import gathered_params
from lgdea.registry import HOOKS

#: In-batch diagnostics summarised over the propagated iterations.
PROPAGATED_KEYS = ('target_class_precision', 'target_class_chance',
                   'report_target_class_precision', 'report_target_class_chance',
                   'hidden_pair_acc',
                   'prop_kept_unpaired_i', 'loss_align', 'pseudo_kept_frac',
                   'pseudo_confidence', 'report_linked_frac')
#: In-batch diagnostics summarised over every iteration that logs them.
ALL_KEYS = ('same_image_nn_frac', 'loss_u', 'lesion_cos_within')


def partner_rank_stats(scores: torch.Tensor, partner: torch.Tensor,
                       image_labels: Optional[Sequence[int]] = None,
                       report_labels: Optional[Sequence[int]] = None,
                       topk: int = 10) -> Dict[str, float]:
    """Tie-aware rank of each image's partner among all reports.

    Args:
        scores: [N_img, N_rep] similarities; partner: [N_img] column of each partner.
        image_labels, report_labels: finding-set keys (-1 unknown) for the class-level hit
            rate, or None.
        topk: K of recall@K and of the class hit rate.

    Returns:
        ``partner_rank_median`` (1-based mid rank), ``partner_rank_mean``,
        ``partner_recall@K``, chance values (``partner_rank_chance`` = (N_rep + 1) / 2,
        ``partner_recall@K_chance`` = K / N_rep), ``partner_images``, and with labels
        ``partner_class_hit@K`` / ``partner_class_hit@K_chance`` (label frequency).
    """
    scores = scores.double()
    n_img, n_rep = scores.shape
    s_p = scores.gather(1, partner[:, None].long())
    greater = (scores > s_p).sum(1).double()
    equal = (scores == s_p).sum(1).double() - 1            # other reports tied with the partner
    rank = 1 + greater + equal / 2
    recall = ((topk - greater) / (equal + 1)).clamp(0, 1)
    out = {'partner_rank_median': float(rank.median()), 'partner_rank_mean': float(rank.mean()),
           f'partner_recall@{topk}': float(recall.mean()),
           'partner_rank_chance': (n_rep + 1) / 2, f'partner_recall@{topk}_chance': topk / n_rep,
           'partner_images': float(n_img)}
    if image_labels is not None and report_labels is not None:
        img = torch.as_tensor(list(image_labels), dtype=torch.long)
        rep = torch.as_tensor(list(report_labels), dtype=torch.long)
        rows = img >= 0
        if bool(rows.any()):
            top = scores[rows].topk(min(topk, n_rep), dim=1).indices
            hit = (rep[top] == img[rows][:, None]).double().mean(1)
            freq = (rep[None, :] == img[rows][:, None]).double().sum(1) / float((rep >= 0).sum())
            out[f'partner_class_hit@{topk}'] = float(hit.mean())
            out[f'partner_class_hit@{topk}_chance'] = float(freq.mean())
    return out


def _finding_key(rec: dict) -> int:
    score = rec.get('gt_score')
    if score is None:
        return -1
    bits = np.asarray(score).reshape(-1) > 0.5
    return int(sum(1 << k for k, b in enumerate(bits.tolist()) if b))


@HOOKS.register_module()
class UnpairedDiagnosticsHook(Hook):
    """Partner rank of withheld links and the run summary of the propagation diagnostics.

    Args:
        image_pipeline: deterministic pipeline of the sampled images (load, resize, pack);
            the train pipeline's random crops would make the measurement noisy.
        num_images: unpaired images sampled once (fixed ``seed``; 256).
        interval: also measure every ``interval`` iterations (None: only after the last).
        topk: K of recall@K and the class hit rate (10).
        batch_size: images / reports per forward pass (256).
        seed: of the image sample.
        filename: output under the work dir.
    """

    priority = 'LOW'

    def __init__(self, image_pipeline: Sequence[dict], num_images: int = 256,
                 interval: Optional[int] = None, topk: int = 10, batch_size: int = 256,
                 seed: int = 0, filename: str = 'unpaired_diagnostics.json'):
        if num_images < 1 or topk < 1 or batch_size < 1:
            raise ValueError('UnpairedDiagnosticsHook: num_images, topk and batch_size must '
                             'be >= 1.')
        if interval is not None and interval < 1:
            raise ValueError(f'UnpairedDiagnosticsHook: interval must be None or >= 1, got '
                             f'{interval}.')
        self.image_pipeline = Compose(list(image_pipeline))
        self.num_images, self.interval, self.topk = num_images, interval, topk
        self.batch_size, self.seed, self.filename = batch_size, seed, filename
        self.history: List[dict] = []
        self.sums: Dict[str, List[float]] = {}
        self._sample = None

    # ------------------------------------------------------------------ sample
    def _draw(self, dataset) -> Optional[dict]:
        if not all(hasattr(dataset, a) for a in ('images', 'reports', 'report_index')):
            return None
        unpaired = [i for i, it in enumerate(dataset.images)
                    if not it['paired'] and it['study_id'] in dataset.report_index]
        skipped = sum(1 for it in dataset.images if not it['paired']) - len(unpaired)
        if not unpaired:
            return dict(images=[], partner=[], skipped=skipped)
        rng = np.random.default_rng(self.seed)
        take = sorted(rng.choice(len(unpaired), min(self.num_images, len(unpaired)),
                                 replace=False).tolist())
        images = [unpaired[k] for k in take]
        partner = [dataset.report_index[dataset.images[i]['study_id']] for i in images]
        return dict(images=images, partner=partner, skipped=skipped)

    # ----------------------------------------------------------------- measure
    @torch.no_grad()
    def measure(self, model, dataset) -> Dict[str, float]:
        """Partner-rank statistics of the fixed sample under ``model`` (unwrapped)."""
        from lgdea.evaluation.linear_probe.features import preprocess_images
        if self._sample is None:
            self._sample = self._draw(dataset)
        sample = self._sample
        if sample is None or not sample['images']:
            return {}
        was_training = model.training
        model.eval()
        try:
            img_chunks = []
            for start in range(0, len(sample['images']), self.batch_size):
                recs = [dataset.images[i] for i in sample['images'][start:start +
                                                                      self.batch_size]]
                inputs = torch.stack([self.image_pipeline(copy.deepcopy(r))['inputs']
                                      for r in recs])
                img_chunks.append(model.extract_image(preprocess_images(model, inputs)))
            texts = [r['report'] for r in dataset.reports]
            evidence = ([r['evidence'] for r in dataset.reports]
                        if all('evidence' in r for r in dataset.reports) else None)
            txt_chunks = []
            for start in range(0, len(texts), self.batch_size):
                part = texts[start:start + self.batch_size]
                if evidence is not None:
                    txt_chunks.append(model.extract_text(
                        part, kind='report', evidence=evidence[start:start + self.batch_size]))
                else:
                    txt_chunks.append(model.extract_text(part, kind='report'))
            scores = torch.cat([torch.cat([model.similarity(i, t).float().cpu()
                                           for t in txt_chunks], dim=1)
                                for i in img_chunks], dim=0)
        finally:
            model.train(was_training)
        stats = partner_rank_stats(
            scores, torch.as_tensor(sample['partner']),
            [_finding_key(dataset.images[i]) for i in sample['images']],
            [_finding_key(r) for r in dataset.reports], self.topk)
        stats['partner_images_skipped'] = float(sample['skipped'])
        return stats

    # ------------------------------------------------------------------- hooks
    def after_train_iter(self, runner, batch_idx: int, data_batch=None, outputs=None) -> None:
        if outputs:
            propagated = float(outputs.get('propagated', 0.0)) > 0.5
            for key in ALL_KEYS + PROPAGATED_KEYS:
                if key in outputs and (key in ALL_KEYS or propagated):
                    self.sums.setdefault(key, []).append(float(outputs[key]))
        if self.interval and (runner.iter + 1) % self.interval == 0 \
                and runner.iter + 1 < runner.max_iters:
            self._record(runner, runner.iter + 1)

    def after_train(self, runner) -> None:
        self._record(runner, runner.iter)
        summary = {f'train/{k}': float(np.mean(v)) for k, v in self.sums.items() if v}
        final = self.history[-1] if self.history else {}
        summary.update({f'train/{k}': v for k, v in final.items() if k != 'iter'})
        if runner.rank == 0:
            with open(osp.join(runner.work_dir, self.filename), 'w') as f:
                json.dump(dict(summary=summary, history=self.history,
                               summary_iterations={k: len(v) for k, v in self.sums.items()}),
                          f, indent=1)
        runner.logger.info('UnpairedDiagnosticsHook: ' + ', '.join(
            f'{k}={v:.4g}' for k, v in summary.items()))

    def _record(self, runner, step: int) -> None:
        model = runner.model.module if is_model_wrapper(runner.model) else runner.model
        with gathered_params(runner.model):  # full parameters under FSDP / ZeRO-3
            stats = self.measure(model, runner.train_dataloader.dataset)
        if not stats:
            return
        self.history.append(dict(iter=step, **stats))
        runner.visualizer.add_scalars({f'unpaired/{k}': v for k, v in stats.items()}, step=step)
