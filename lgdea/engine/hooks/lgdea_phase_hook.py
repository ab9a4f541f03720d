"""The multi-phase schedule of LGDEA (paper Sec. IV-A d; docs/method.md phase table)."""
import copy
import math
from typing import List, Optional, Sequence

from mmengine.hooks import Hook
from mmengine.model import is_model_wrapper

from lgdea.registry import HOOKS
from lgdea.utils.dist import get_world_size


@HOOKS.register_module()
class LGDEAPhaseHook(Hook):
    """Runs the phase table in one training command.

    Each phase sets the active loss terms and whether ``P`` is propagated (Eq. 17) or
    ``P = Y`` (through ``LGDEA.set_phase``: the phase is the one place that switches terms;
    loss weights only scale), a constant learning rate (a phase's ``lr`` replaces
    ``optim_wrapper.optimizer.lr``; a warning says so when no phase uses the optimizer's) and,
    in epoch-based training, the **global** batch size (the train dataloader is rebuilt on the
    same dataset at the boundary; per-rank batch = global / world size, an error if not
    divisible). The phase is stored in checkpoints
    (``meta['lgdea_phase']``) and re-derived from the epoch / iteration on resume, so a
    resumed run continues in the right phase.

    Args:
        phases: list of dicts with ``epochs`` (or ``iters`` when ``by_epoch=False``),
            ``terms`` (subset of rec, p, u, align, g), ``propagation`` (bool), and optional
            ``lr`` and ``batch_size`` (global); or the name of a top-level config variable
            holding that list (e.g. ``'lgdea_phases'``), read from the runner's config, so
            that a child config (an ablation) can derive its table from its base's in one
            line.
        by_epoch: phases measured in epochs (paper) or iterations (demo).
    """

    priority = 'ABOVE_NORMAL'

    def __init__(self, phases: Sequence[dict], by_epoch: bool = True):
        self.by_epoch = by_epoch
        self.unit = 'epochs' if by_epoch else 'iters'
        self.phases_from: Optional[str] = None
        self.current: Optional[int] = None
        self._base_lrs: Optional[list] = None
        self._base_lr: Optional[float] = None
        if isinstance(phases, str):
            self.phases_from = phases  # resolved from runner.cfg in before_run
            self.phases, self.bounds, self.total = [], [], 0
        else:
            self._set_phases(phases)

    def _set_phases(self, phases: Sequence[dict]) -> None:
        if not phases:
            raise ValueError('LGDEAPhaseHook needs at least one phase')
        unit, by_epoch = self.unit, self.by_epoch
        known = {unit, 'terms', 'propagation', 'lr', 'batch_size'}
        self.phases: List[dict] = []
        for i, ph in enumerate(phases):
            if unit not in ph or int(ph[unit]) < 1:
                raise ValueError(f'LGDEAPhaseHook: phase {i} needs `{unit}` >= 1, got {ph}')
            if 'terms' not in ph:
                raise ValueError(f'LGDEAPhaseHook: phase {i} needs `terms`')
            extra = sorted(set(ph) - known)
            if extra:
                raise ValueError(f'LGDEAPhaseHook: phase {i} has unknown keys {extra}; a phase '
                                 f'takes {sorted(known)}.')
            if not by_epoch and 'batch_size' in ph:
                raise ValueError('LGDEAPhaseHook: per-phase batch sizes need by_epoch=True '
                                 '(an iteration-based loader cannot be rebuilt mid-run).')
            self.phases.append(dict(ph))
        self.bounds = []
        total = 0
        for ph in self.phases:
            total += int(ph[unit])
            self.bounds.append(total)
        self.total = total

    def phase_at(self, step: int) -> int:
        for i, end in enumerate(self.bounds):
            if step < end:
                return i
        return len(self.phases) - 1

    def position(self, step: int) -> dict:
        idx = self.phase_at(step)
        start = self.bounds[idx - 1] if idx else 0
        return dict(phase=idx + 1, **{f'{self.unit[:-1]}_in_phase': step - start})

    # ----------------------------------------------------------------- hooks
    def before_run(self, runner) -> None:
        if self.phases_from is not None:
            if self.phases_from not in runner.cfg:
                raise KeyError(f'LGDEAPhaseHook(phases={self.phases_from!r}): the config has no '
                               f'top-level `{self.phases_from}`; define the phase table there '
                               'or pass the list itself.')
            self._set_phases(runner.cfg[self.phases_from])
        model = runner.model.module if is_model_wrapper(runner.model) else runner.model
        for ph in self.phases:  # fail before training on a term the model cannot run
            model.set_phase(ph['terms'], bool(ph.get('propagation', False)))
        model.set_phase(self.phases[0]['terms'], bool(self.phases[0].get('propagation', False)))

    def before_train(self, runner) -> None:
        loop_total = runner.max_epochs if self.by_epoch else runner.max_iters
        if loop_total != self.total:
            raise ValueError(f'LGDEAPhaseHook: the phases last {self.total} {self.unit} but '
                             f'train_cfg runs {loop_total}; make them equal.')
        self._check_phase_batches(runner)
        groups = runner.optim_wrapper.optimizer.param_groups
        self._base_lrs = [g.get('initial_lr', g['lr']) for g in groups]
        self._base_lr = float(runner.cfg.optim_wrapper.optimizer.get('lr', self._base_lrs[0]))
        phase_lrs = [float(ph['lr']) for ph in self.phases if 'lr' in ph]
        if len(phase_lrs) == len(self.phases) and not any(
                math.isclose(lr, self._base_lr, rel_tol=1e-9) for lr in phase_lrs):
            runner.logger.warning(
                f'LGDEAPhaseHook: optim_wrapper.optimizer.lr={self._base_lr:g} is never used: '
                f'every phase sets its own lr ({", ".join(f"{lr:g}" for lr in phase_lrs)}), '
                'which replaces it (parameter groups keep their ratios to it). To change the '
                'learning rate set the phases\' lr, e.g. --cfg-options lgdea_phases.0.lr=..., '
                'or remove `lr` from a phase to train it at the optimizer\'s lr.')

    def _check_phase_batches(self, runner) -> None:
        """Refuse, before the first iteration, a phase whose global batch the propagation
        sampler would refuse when that phase starts (pools too small): otherwise the run
        fails only after the earlier phases have trained."""
        from lgdea.datasets.samplers import PropagationSampler
        loader = getattr(getattr(runner, 'train_loop', None), 'dataloader', None)
        sampler = getattr(loader, 'batch_sampler', None)
        if not self.by_epoch or not isinstance(sampler, PropagationSampler):
            return
        args = {k: v for k, v in dict(runner.cfg.train_dataloader.get('batch_sampler') or {})
                .items() if k not in ('type', 'batch_size', 'drop_last')}
        world = get_world_size()
        for i, ph in enumerate(self.phases):
            if 'batch_size' not in ph:
                continue
            global_batch = int(ph['batch_size'])
            if global_batch % world:
                raise ValueError(f'LGDEAPhaseHook: phase {i + 1} batch_size={global_batch} is '
                                 f'not divisible by the world size {world}.')
            try:
                PropagationSampler(sampler.sampler, batch_size=global_batch // world,
                                   drop_last=sampler.drop_last, **args)
            except ValueError as exc:
                raise ValueError(f'LGDEAPhaseHook: phase {i + 1} of {len(self.phases)} '
                                 f'(batch_size={global_batch}) cannot run: {exc}') from exc

    def before_train_epoch(self, runner) -> None:
        if self.by_epoch:
            self._apply(runner, self.phase_at(runner.epoch))

    def before_train_iter(self, runner, batch_idx: int, data_batch=None) -> None:
        if not self.by_epoch:
            self._apply(runner, self.phase_at(runner.iter))

    def before_save_checkpoint(self, runner, checkpoint: dict) -> None:
        # CheckpointHook saves before the loop increments epoch / iter: they are 0-based here
        step = runner.epoch if self.by_epoch else runner.iter
        checkpoint.setdefault('meta', {})['lgdea_phase'] = self.position(step)

    def after_load_checkpoint(self, runner, checkpoint: dict) -> None:
        self.current = None  # re-applied from the restored epoch / iteration

    # -------------------------------------------------------------- helpers
    def _apply(self, runner, idx: int) -> None:
        if idx == self.current:
            return
        ph = self.phases[idx]
        model = runner.model.module if is_model_wrapper(runner.model) else runner.model
        model.set_phase(ph['terms'], bool(ph.get('propagation', False)))
        if 'lr' in ph:
            for g, base in zip(runner.optim_wrapper.optimizer.param_groups, self._base_lrs):
                g['lr'] = base * float(ph['lr']) / self._base_lr
        if self.by_epoch and 'batch_size' in ph:
            self._rebuild_loader(runner, int(ph['batch_size']))
        self.current = idx
        runner.logger.info(
            f'LGDEA phase {idx + 1}/{len(self.phases)}: terms={list(ph["terms"])}, '
            f'propagation={bool(ph.get("propagation", False))}'
            + (f', lr={ph["lr"]}' if 'lr' in ph else '')
            + (f', global batch={ph["batch_size"]}' if 'batch_size' in ph else ''))

    def _rebuild_loader(self, runner, global_batch: int) -> None:
        world = get_world_size()
        if global_batch % world:
            raise ValueError(f'LGDEAPhaseHook: global batch {global_batch} is not divisible by '
                             f'the world size {world}.')
        per_rank = global_batch // world
        loop = runner.train_loop
        if getattr(loop.dataloader, 'batch_size', None) == per_rank or getattr(
                getattr(loop.dataloader, 'batch_sampler', None), 'batch_size', None) == per_rank:
            return
        cfg = copy.deepcopy(runner.cfg.train_dataloader)
        cfg['dataset'] = loop.dataloader.dataset
        cfg['batch_size'] = per_rank
        loop.dataloader = runner.build_dataloader(cfg, seed=runner.seed)
        done = sum(self.phases[i][self.unit] for i in range(self.phase_at(runner.epoch)))
        loop._max_iters = runner.iter + (self.total - done) * len(loop.dataloader)
