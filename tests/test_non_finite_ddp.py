"""The divergence guard and the skip wrapper under DDP (2 CPU processes, gloo): a NaN on one
rank must stop (hook) or skip (wrapper) on every rank at the same iteration, never leave the
other rank waiting in the next collective."""
from types import SimpleNamespace

import torch
import torch.nn as nn
from mmengine.logging import MessageHub
from torch.nn.parallel import DistributedDataParallel

from lgdea.engine.hooks.non_finite_guard_hook import NonFiniteGuardHook
from lgdea.engine.optimizers import SkipNonFiniteOptimWrapper
from utils_dist import run_distributed


def _guard_on_rank(rank, world_size):
    torch.manual_seed(0)
    model = nn.Linear(3, 1)
    runner = SimpleNamespace(model=model, optim_wrapper=SimpleNamespace(), iter=4, epoch=0,
                             message_hub=MessageHub.get_instance(f'guard_ddp_{rank}'))
    finite = dict(loss=torch.tensor(1.0))
    nan_on_rank1 = dict(loss=torch.tensor(float('nan') if rank == 1 else 1.0))
    hook = NonFiniteGuardHook(check_grad_norm=False)
    hook.after_train_iter(runner, 0, data_batch=None, outputs=finite)  # all finite: no error
    try:
        hook.after_train_iter(runner, 1, data_batch=None, outputs=nan_on_rank1)
    except RuntimeError as err:
        return str(err)
    return None


def test_guard_stops_every_rank_when_one_rank_diverges():
    messages = run_distributed(_guard_on_rank, world_size=2, timeout=60)
    assert messages[1] is not None and 'iteration 5' in messages[1]
    assert 'non-finite loss=nan' in messages[1]
    # rank 0 saw only finite values and still stops at the same iteration, saying why
    assert messages[0] is not None and 'iteration 5' in messages[0]
    assert 'non-finite value on another rank' in messages[0]


def _skip_on_rank(rank, world_size):
    torch.manual_seed(0)
    model = DistributedDataParallel(nn.Linear(3, 1))
    hub = MessageHub.get_current_instance()
    wrapper = SkipNonFiniteOptimWrapper(torch.optim.SGD(model.parameters(), lr=0.1),
                                        max_skipped_steps=5)
    x = torch.full((2, 3), float(rank + 1))
    weights = [model.module.weight.detach().clone()]
    for it in range(3):
        hub.update_info('iter', it)
        loss = model(x).pow(2).mean()
        if it == 1 and rank == 1:
            loss = loss * float('nan')
        wrapper.update_params(loss)
        weights.append(model.module.weight.detach().clone())
    return dict(weights=weights, skipped=wrapper.skipped_steps)


def test_skip_wrapper_skips_on_every_rank_when_one_rank_has_a_nan_loss():
    results = run_distributed(_skip_on_rank, world_size=2, timeout=60)
    for r in results:
        assert r['skipped'] == [(2, 'loss')]
        w = r['weights']
        assert not torch.equal(w[0], w[1])  # iteration 1 updated
        assert torch.equal(w[1], w[2])  # iteration 2 skipped on both ranks
        assert not torch.equal(w[2], w[3])  # iteration 3 updated again
    for a, b in zip(results[0]['weights'], results[1]['weights']):
        assert torch.equal(a, b)  # the replicas never diverge
