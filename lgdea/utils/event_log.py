"""Append-only event records shared by a training process and its DataLoader workers.

DataLoader workers are separate processes, so an in-memory counter would stay in the
workers. A record is a JSON-lines file created by the process that builds the component (the
trainer process of each rank); the component carries the file's path into the workers (fork or
spawn alike) and appends one line per event. The count is the number of lines. A hook reads
and resets the record once per epoch.
"""
import atexit
import json
import os
import tempfile
import threading
from collections import Counter
from typing import Dict, List, Optional, Tuple

__all__ = ['EventLog']


class EventLog:
    """One kind of event (e.g. skipped images), recorded in a per-process JSON-lines file.

    Args:
        prefix: prefix of the temporary file's name.
    """

    def __init__(self, prefix: str):
        self.prefix = prefix
        self._lock = threading.Lock()
        self._path: Optional[str] = None

    def path(self) -> str:
        """Path of this process's record (created on first use, removed at exit)."""
        with self._lock:
            if self._path is None or not os.path.exists(self._path):
                fd, path = tempfile.mkstemp(prefix=f'{self.prefix}_{os.getpid()}_',
                                            suffix='.jsonl')
                os.close(fd)
                self._path = path
                owner = os.getpid()
                atexit.register(lambda: os.getpid() == owner and os.path.exists(path)
                                and os.remove(path))
            return self._path

    @staticmethod
    def append(path: str, **fields) -> None:
        """Append one event (string values are cut at 500 characters)."""
        event = {k: (str(v)[:500] if isinstance(v, str) else v) for k, v in fields.items()}
        line = json.dumps(event) + '\n'
        # one small O_APPEND write per event: lines from several workers do not interleave.
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        try:
            os.write(fd, line.encode('utf-8'))
        finally:
            os.close(fd)

    def read(self, path: Optional[str] = None) -> List[dict]:
        """Every event recorded since the last reset, in order."""
        path = path or self.path()
        if not os.path.exists(path):
            return []
        with open(path, encoding='utf-8') as f:
            return [json.loads(line) for line in f if line.strip()]

    def stats(self, max_items: int = 5, path: Optional[str] = None,
              by: Optional[str] = None) -> Tuple[int, List[dict], Dict[str, int]]:
        """``(count, first max_items events, count per value of field `by` ({} if None))``."""
        events = self.read(path)
        per = dict(Counter(str(e.get(by)) for e in events)) if by else {}
        return len(events), events[:max_items], per

    def reset(self, path: Optional[str] = None) -> None:
        """Empty the record."""
        with open(path or self.path(), 'w', encoding='utf-8'):
            pass
