"""Progress of a running train / test step, read from its log while it runs.

The train and test subprocesses of a run append their output to the run's ``benchmark.log``;
mmengine's ``LoggerHook`` writes a line every ``interval`` iterations, e.g.::

    Iter(train) [150/600]  lr: 1.0e-03  eta: 0:02:40  time: 0.3500  data_time: 0.01  loss: 2.3100
    Epoch(train) [1][400/1000]  ...
    Iter(test) [3/10]  ...

:class:`LogProgress` follows such a file from a background thread and reports, whenever a new
line arrives (at most every ``interval`` seconds), ``iter 150/600 (25%), loss 2.3100, ETA
0:02:40``. A log line without an ``eta`` (test loops) gets one estimated from the step's
elapsed time. :func:`latest_progress` parses a chunk of log text, :func:`latest_relayed`
finds the newest progress line a ``--only`` child process printed (``--dispatch local``).
"""
import datetime
import os.path as osp
import re
import threading
import time
from dataclasses import dataclass, replace
from typing import Callable, Optional

__all__ = ['PROGRESS_TAG', 'Progress', 'latest_progress', 'latest_relayed', 'read_from',
           'LogProgress']

_ITER_RE = re.compile(r'(Iter|Epoch)\((train|val|test)\)\s*(?:\[\s*(\d+)\])?\s*'
                      r'\[\s*(\d+)/(\d+)\]')
_ETA_RE = re.compile(r'\beta: ((?:\d+ days?, )?\d+:\d{2}:\d{2})')
_LOSS_RE = re.compile(r'(?<![\w/])loss: (\S+)')
#: Marks the progress lines :class:`LogProgress` reports (found again by :func:`latest_relayed`).
PROGRESS_TAG = 'progress:'


@dataclass
class Progress:
    """One parsed mmengine log line: loop mode, iteration / total (within ``epoch`` for
    epoch-based loops), the loss and mmengine's ETA (None where the line has none)."""

    mode: str
    current: int
    total: int
    epoch: Optional[int] = None
    loss: Optional[str] = None
    eta: Optional[str] = None

    def describe(self, elapsed: Optional[float] = None) -> str:
        """``iter 150/600 (25%), loss 2.3100, ETA 0:02:40``; without an ETA in the log, one
        is estimated from ``elapsed`` seconds (when given)."""
        where = f'epoch {self.epoch}, ' if self.epoch is not None else ''
        text = f'{self.mode} {where}iter {self.current}/{self.total}'
        if 0 < self.total and self.current <= self.total:
            text += f' ({100 * self.current / self.total:.0f}%)'
        if self.loss is not None:
            text += f', loss {self.loss}'
        eta = self.eta
        if eta is None and elapsed is not None and 0 < self.current <= self.total \
                and self.epoch is None:
            left = elapsed * (self.total - self.current) / self.current
            eta = f'{datetime.timedelta(seconds=int(left))} (estimated)'
        return text + (f', ETA {eta}' if eta else '')


def latest_progress(text: str) -> Optional[Progress]:
    """The last mmengine iteration line of ``text`` as :class:`Progress` (None if none)."""
    last = None
    for line in text.splitlines():
        m = _ITER_RE.search(line)
        if m:
            last = (m, line)
    if last is None:
        return None
    m, line = last
    eta, loss = _ETA_RE.search(line), _LOSS_RE.search(line)
    return Progress(mode=m.group(2), current=int(m.group(4)), total=int(m.group(5)),
                    epoch=int(m.group(3)) if m.group(3) else None,
                    loss=loss.group(1) if loss else None, eta=eta.group(1) if eta else None)


def latest_relayed(text: str) -> Optional[str]:
    """The last ``[benchmark] ... progress: ...`` line of ``text`` (a child's log)."""
    found = None
    for line in text.splitlines():
        if line.startswith('[benchmark]') and PROGRESS_TAG in line:
            found = line
    return found


def read_from(path: str, offset: int):
    """``(text appended since offset, new offset)``; ``('', offset)`` if the file is absent."""
    if not osp.isfile(path):
        return '', offset
    with open(path, 'rb') as f:
        f.seek(offset)
        data = f.read()
    return data.decode('utf-8', errors='replace'), offset + len(data)


class LogProgress:
    """Follows a log file in a thread and reports each new progress state.

    Use as a context manager around the step: only text appended after entering counts.

    Args:
        path: the log file.
        report: called with the description (``Progress.describe``).
        interval: seconds between reads.
        train_iters: ``train_cfg.max_iters`` of an iteration-based training: its lines are
            reported as ``iter <n>/<train_iters>``. (mmengine's epoch-style line of such a
            training, ``Epoch(train) [1][400/10]``, holds the global iteration over the
            length of one pass of the dataloader.)
    """

    def __init__(self, path: str, report: Callable[[str], None], interval: float = 10.0,
                 train_iters: Optional[int] = None):
        self.path, self.report, self.interval = path, report, interval
        self.train_iters = train_iters
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._follow, daemon=True)
        self._offset = 0
        self._last = None
        self._start = 0.0
        self._tail = ''

    def __enter__(self):
        self._offset = osp.getsize(self.path) if osp.isfile(self.path) else 0
        self._start = time.time()
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()
        return False

    def poll(self) -> None:
        """Read what was appended and report if the progress changed."""
        text, self._offset = read_from(self.path, self._offset)
        if not text:
            return
        # keep the unfinished last line for the next read
        text, self._tail = self._tail + text, ''
        if not text.endswith('\n'):
            text, _, self._tail = text.rpartition('\n')
        progress = latest_progress(text)
        if progress is not None and progress.mode == 'train' and self.train_iters:
            progress = replace(progress, total=int(self.train_iters), epoch=None)
        if progress is not None and progress != self._last:
            self._last = progress
            self.report(progress.describe(time.time() - self._start))

    def _follow(self) -> None:
        while not self._stop.wait(self.interval):
            self.poll()
