"""Test harness: run a callable in a small CPU (gloo) process group and collect its results.

Usage::

    from utils_dist import run_distributed

    def step(rank, world_size, batch):          # module-level: spawn pickles it by name
        ...                                      # torch.distributed is initialised (gloo)
        return dict(params=...)                  # picklable; tensors are moved to the CPU

    results = run_distributed(step, world_size=2, args=(batch, ))   # [rank 0, rank 1]

The callable runs in ``world_size`` spawned processes with ``MASTER_ADDR``, ``MASTER_PORT``
(a free port), ``RANK``, ``WORLD_SIZE`` and ``LOCAL_RANK`` exported (what ``torchrun`` sets),
one intra-op thread each, and - unless ``init_process_group=False`` - the default gloo group
initialised. The group is destroyed after the callable returns or raises. An exception in any
rank is re-raised in the caller with the rank's traceback; a hang ends in ``TimeoutError``.
"""
import datetime
import os
import pickle
import socket
import tempfile
import time
from typing import Any, Callable, List, Sequence

import torch
import torch.distributed as dist
import torch.multiprocessing as mp

__all__ = ['find_free_port', 'run_distributed', 'to_cpu']


def find_free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(('127.0.0.1', 0))
        return sock.getsockname()[1]


def to_cpu(obj: Any) -> Any:
    """Detach tensors (recursively in dicts, lists, tuples) and move them to the CPU."""
    if isinstance(obj, torch.Tensor):
        return obj.detach().cpu()
    if isinstance(obj, dict):
        return {k: to_cpu(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return type(obj)(to_cpu(v) for v in obj)
    return obj


def _worker(rank: int, fn: Callable, world_size: int, args: Sequence, port: int, backend: str,
            init_process_group: bool, timeout: float, out_dir: str) -> None:
    os.environ.update(MASTER_ADDR='127.0.0.1', MASTER_PORT=str(port), RANK=str(rank),
                      WORLD_SIZE=str(world_size), LOCAL_RANK=str(rank))
    torch.set_num_threads(1)
    if init_process_group:
        dist.init_process_group(backend=backend, init_method=f'tcp://127.0.0.1:{port}',
                                rank=rank, world_size=world_size,
                                timeout=datetime.timedelta(seconds=timeout))
    try:
        result = fn(rank, world_size, *args)
    finally:
        if dist.is_initialized():
            dist.destroy_process_group()
    with open(os.path.join(out_dir, f'rank{rank}.pkl'), 'wb') as f:
        pickle.dump(to_cpu(result), f)


def run_distributed(fn: Callable, world_size: int = 2, args: Sequence = (),
                    backend: str = 'gloo', init_process_group: bool = True,
                    timeout: float = 120.0) -> List[Any]:
    """Run ``fn(rank, world_size, *args)`` in ``world_size`` processes; return every result.

    Args:
        fn: a module-level function (spawned processes import it by its qualified name).
        world_size: number of processes.
        args: extra positional arguments (picklable), the same for every rank.
        backend: process-group backend.
        init_process_group: initialise the default group before calling ``fn`` (False: only
            export the torchrun environment variables, e.g. to test code that initialises it).
        timeout: seconds for the whole run and for each collective.

    Returns:
        ``[result of rank 0, result of rank 1, ...]`` (tensors detached, on the CPU).
    """
    port = find_free_port()
    with tempfile.TemporaryDirectory(prefix='lgdea_dist_') as out_dir:
        context = mp.start_processes(
            _worker, args=(fn, world_size, tuple(args), port, backend, init_process_group,
                           timeout, out_dir),
            nprocs=world_size, join=False, start_method='spawn')
        deadline = time.monotonic() + timeout
        while not context.join(timeout=0.5):
            if time.monotonic() > deadline:
                for process in context.processes:
                    if process.is_alive():
                        process.terminate()
                for process in context.processes:
                    process.join(5)
                raise TimeoutError(f'run_distributed({fn.__name__}) did not finish in '
                                   f'{timeout} s')
        results = []
        for rank in range(world_size):
            with open(os.path.join(out_dir, f'rank{rank}.pkl'), 'rb') as f:
                results.append(pickle.load(f))
    return results
