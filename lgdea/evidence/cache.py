"""Persistent, append-only evidence cache (JSONL, one file per extractor namespace).

Key of an entry: ``(sha256 of the whitespace-normalised report text (:func:`report_key`),
extractor id, extractor version, prompt hash, config hash)``. The four extractor fields
select the file ``<cache_dir>/evidence-<extractor_id>-<namespace>.jsonl``; inside it entries
are found by the text hash. The report text itself is never stored.

Durability: records are appended with one ``os.write`` per batch on an ``O_APPEND`` descriptor
under an advisory lock, then ``fsync``-ed, so a process killed at any moment leaves at most a
truncated last line. Opening the cache repairs that (the partial tail is cut off, counted
and reported), so an interrupted run resumes without losing or redoing finished reports.
The last record of a key wins (a failure retried later is replaced by its success).

Caches written before keys were whitespace-normalised hold the sha256 of the raw text;
:meth:`EvidenceCache.lookup` falls back to that key, and :func:`run_extraction` re-keys such
records under the normalised key (no re-extraction).
"""
import json
import logging
import os
import re
from contextlib import contextmanager
from typing import Dict, Iterable, Iterator, List, Optional, Tuple

from .base import BaseEvidenceExtractor, report_key, sha256_text
from .schema import EvidenceRecord

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows: no advisory lock
    fcntl = None

logger = logging.getLogger(__name__)

_SAFE = re.compile(r'[^A-Za-z0-9_.-]+')


class EvidenceCache:
    """Append-only JSONL cache of :class:`EvidenceRecord` for one extractor.

    Args:
        cache_dir: directory of the cache files (created if missing).
        extractor: the extractor whose records this cache holds (selects the file).

    Attributes:
        path: the JSONL file.
        n_repaired_bytes: bytes of a truncated last line cut off when opening.
        n_bad_lines: complete lines that could not be parsed (skipped, warned).
    """

    def __init__(self, cache_dir: str, extractor: BaseEvidenceExtractor):
        self.cache_dir = os.path.abspath(os.path.expanduser(str(cache_dir)))
        os.makedirs(self.cache_dir, exist_ok=True)
        self.extractor = extractor
        name = _SAFE.sub('_', extractor.extractor_id)
        self.path = os.path.join(self.cache_dir, f'evidence-{name}-{extractor.namespace}.jsonl')
        self.n_repaired_bytes = 0
        self.n_bad_lines = 0
        self._records: Dict[str, EvidenceRecord] = {}
        self._load()

    # ------------------------------------------------------------------------ locking
    @contextmanager
    def _locked_fd(self) -> Iterator[int]:
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_APPEND, 0o644)
        try:
            if fcntl is not None:
                fcntl.flock(fd, fcntl.LOCK_EX)
            yield fd
        finally:
            try:
                if fcntl is not None:
                    fcntl.flock(fd, fcntl.LOCK_UN)
            finally:
                os.close(fd)

    def _repair_tail(self, fd: int) -> None:
        """Cut a truncated last line (no trailing newline) left by a killed writer."""
        size = os.fstat(fd).st_size
        if size == 0:
            return
        os.lseek(fd, size - 1, os.SEEK_SET)
        if os.read(fd, 1) == b'\n':
            return
        # find the last newline
        pos, chunk = size, 4096
        last_nl = -1
        while pos > 0 and last_nl < 0:
            start = max(0, pos - chunk)
            os.lseek(fd, start, os.SEEK_SET)
            buf = os.read(fd, pos - start)
            idx = buf.rfind(b'\n')
            if idx >= 0:
                last_nl = start + idx
            pos = start
        keep = last_nl + 1
        self.n_repaired_bytes += size - keep
        os.ftruncate(fd, keep)
        os.fsync(fd)
        logger.warning('evidence cache %s: cut a truncated last line (%d bytes) left by an '
                       'interrupted run; that report will be extracted again',
                       self.path, size - keep)

    # ------------------------------------------------------------------------ reading
    def _load(self) -> None:
        with self._locked_fd() as fd:
            self._repair_tail(fd)
        with open(self.path, encoding='utf-8') as f:
            for lineno, line in enumerate(f, 1):
                if not line.strip():
                    continue
                try:
                    rec = EvidenceRecord.model_validate_json(line)
                except ValueError as e:
                    self.n_bad_lines += 1
                    logger.warning('evidence cache %s: line %d is not a valid record (%s); '
                                   'skipped', self.path, lineno, str(e).splitlines()[0])
                    continue
                self._accept(rec)

    def _accept(self, rec: EvidenceRecord) -> None:
        ex = self.extractor
        if (rec.extractor_id, rec.extractor_version, rec.prompt_hash, rec.config_hash) != \
                (ex.extractor_id, ex.version, ex.prompt_hash, ex.config_hash):
            self.n_bad_lines += 1
            return
        self._records[rec.text_sha256] = rec

    def get(self, text_sha256: str) -> Optional[EvidenceRecord]:
        return self._records.get(text_sha256)

    def lookup(self, text: str) -> Tuple[Optional[EvidenceRecord], bool]:
        """``(record, legacy)`` of a report text: the record under :func:`report_key`, else
        under the raw-text digest of older caches (``legacy=True``), else ``(None, False)``."""
        rec = self._records.get(report_key(text))
        if rec is not None:
            return rec, False
        rec = self._records.get(sha256_text(text))
        return (rec, True) if rec is not None else (None, False)

    def __contains__(self, text_sha256: str) -> bool:
        return text_sha256 in self._records

    def __len__(self) -> int:
        return len(self._records)

    def records(self) -> List[EvidenceRecord]:
        return list(self._records.values())

    # ------------------------------------------------------------------------ writing
    def append(self, records: Iterable[EvidenceRecord]) -> int:
        """Append records durably (one write + fsync for the batch). Returns the count."""
        records = list(records)
        if not records:
            return 0
        blob = ''.join(r.model_dump_json() + '\n' for r in records).encode('utf-8')
        with self._locked_fd() as fd:
            self._repair_tail(fd)
            view = memoryview(blob)
            while view:
                n = os.write(fd, view)
                view = view[n:]
            os.fsync(fd)
        for r in records:
            self._accept(r)
        return len(records)


def write_json_line(path: str, obj: dict) -> None:
    """Append one JSON object as a line (run logs), flushed and fsync-ed."""
    with open(path, 'a', encoding='utf-8') as f:
        f.write(json.dumps(obj, sort_keys=True, default=str) + '\n')
        f.flush()
        os.fsync(f.fileno())
