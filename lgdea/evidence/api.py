"""The evidence API used by the training and evaluation code.

* :func:`ensure_evidence` (training): phrases for every text; an offline extractor (``rule``)
  fills missing cache entries in-process, an LLM extractor raises
  :class:`EvidenceMissingError` with the exact ``tools/extract_evidence.py`` command.
* :func:`load_evidence` (evaluation): phrases from the cache; any missing entry is an error.
* :func:`run_extraction`: the cached, resumable extraction loop (progress bar, summary)
  behind both and behind ``tools/extract_evidence.py``.
"""
import json
import logging
import os
import shlex
import time
from dataclasses import asdict, dataclass, field
from typing import Dict, List, Optional, Sequence, Union

from lgdea.registry import EVIDENCE_EXTRACTORS

from .base import BaseEvidenceExtractor, normalize_report_text, report_key
from .cache import EvidenceCache, write_json_line
from .schema import EvidenceRecord

logger = logging.getLogger(__name__)

ExtractorCfg = Union[dict, str, BaseEvidenceExtractor, None]
#: The default extractor configuration (offline, deterministic).
DEFAULT_EXTRACTOR = dict(type='rule')
RUN_LOG = 'extraction_runs.jsonl'


class EvidenceMissingError(RuntimeError):
    """Evidence is missing from the cache (the message says how to extract it)."""


def build_extractor(cfg: ExtractorCfg = None) -> BaseEvidenceExtractor:
    """Build an extractor from a config dict (``type`` = registry name or ``'rule'``/``'llm'``),
    a bare type name, or return an extractor instance unchanged."""
    if isinstance(cfg, BaseEvidenceExtractor):
        return cfg
    if cfg is None:
        cfg = dict(DEFAULT_EXTRACTOR)
    if isinstance(cfg, str):
        cfg = dict(type=cfg)
    cfg = dict(cfg)
    if 'type' not in cfg:
        raise ValueError(f'evidence extractor config needs a "type" (rule, llm or a registered '
                         f'name); got keys {sorted(cfg)}')
    if 'api_key' in cfg:
        raise ValueError('evidence extractor config: do not put API keys in configs; set an '
                         'environment variable and name it in api_key_env')
    import lgdea.evidence  # noqa: F401  (registers the extractors)
    return EVIDENCE_EXTRACTORS.build(cfg)


@dataclass
class ExtractionSummary:
    """Counts of one extraction run.

    Attributes:
        total: unique texts asked for.
        cached: already in the cache (ok).
        done: extracted now with status ok.
        failed: extracted now and recorded as failures (plus cached failures not retried).
        rekeyed: records found under the raw-text key of an older cache and appended again
            under the whitespace-normalised key (counted in ``cached`` too).
        rejected: phrases rejected by verification in this run.
        rejected_by_reason: those rejections by reason (``unsupported``, ``laterality``,
            ``negation``, ``certainty``, ``finding_mismatch``; ``unrecorded`` for records
            without reasons).
        seconds: wall time of the run.
    """

    total: int = 0
    cached: int = 0
    done: int = 0
    failed: int = 0
    skipped_failed: int = 0
    rekeyed: int = 0
    rejected: int = 0
    rejected_by_reason: Dict[str, int] = field(default_factory=dict)
    seconds: float = 0.0
    extractor: Dict = field(default_factory=dict)

    def __str__(self) -> str:
        rate = self.done / self.seconds if self.seconds > 0 else float('nan')
        why = ', '.join(f'{k} {v}' for k, v in sorted(self.rejected_by_reason.items()))
        why = f' ({why})' if why else ''
        rekeyed = f' (re-keyed {self.rekeyed})' if self.rekeyed else ''
        return (f'evidence extraction: {self.total} reports | cached {self.cached} | done '
                f'{self.done} | failed {self.failed} (+{self.skipped_failed} earlier failures '
                f'not retried){rekeyed} | rejected phrases {self.rejected}{why}'
                f' | {self.seconds:.1f}s ({rate:.1f} reports/s)')


def _unique(texts: Sequence[str]) -> Dict[str, List[str]]:
    """``report_key -> [raw texts with that key]``; the first text is the normalised one."""
    out: Dict[str, List[str]] = {}
    for i, t in enumerate(texts):
        if not isinstance(t, str) or not t.strip():
            raise ValueError(f'report {i} has no text ({t!r}); records without a report must '
                             'be left out before evidence extraction')
        norm = normalize_report_text(t)
        variants = out.setdefault(report_key(norm), [norm])
        if t not in variants:
            variants.append(t)
    return out


def _find(cache: EvidenceCache, variants: List[str]):
    """``(record, legacy)`` of one unique report: its normalised key, then the raw-text keys
    of older caches for each variant as given."""
    for text in variants:
        rec, legacy = cache.lookup(text)
        if rec is not None:
            return rec, legacy
    return None, False


def run_extraction(texts: Sequence[str], extractor: ExtractorCfg, cache_dir: str,
                   credentialed: bool = False, allow_remote: bool = False,
                   retry_failed: bool = False, show_progress: bool = True,
                   flush_every: Optional[int] = None, flush_seconds: float = 2.0,
                   limit: Optional[int] = None) -> ExtractionSummary:
    """Extract the evidence of ``texts`` that the cache lacks, appending as results arrive.

    Args:
        texts: report texts (duplicates are extracted once).
        extractor: extractor or its config.
        cache_dir: cache directory.
        credentialed: the texts come from a credentialed dataset (data-use guardrail).
        allow_remote: allow a non-loopback LLM endpoint for credentialed data (warns).
        retry_failed: extract again the reports whose earlier attempt was recorded failed.
        show_progress: tqdm progress bar (rate and ETA).
        flush_every: records per durable append (default: 1 for LLM extractors, 512 for
            offline ones); a batch is also flushed every ``flush_seconds``.
        limit: extract at most this many missing reports (for trials).

    Returns:
        :class:`ExtractionSummary`.
    """
    ext = build_extractor(extractor)
    t0 = time.time()
    cache = EvidenceCache(cache_dir, ext)
    unique = _unique(texts)
    summary = ExtractionSummary(total=len(unique), extractor=ext.describe())
    todo: List[str] = []
    rekey: List[EvidenceRecord] = []
    for key, variants in unique.items():
        rec, legacy = _find(cache, variants)
        if rec is not None and legacy and (rec.status == 'ok' or not retry_failed):
            rekey.append(rec.model_copy(update=dict(text_sha256=key)))
        if rec is not None and rec.status == 'ok':
            summary.cached += 1
        elif rec is not None and not retry_failed:
            summary.skipped_failed += 1
        else:
            todo.append(variants[0])
    if rekey:
        summary.rekeyed = cache.append(rekey)
        logger.info('evidence cache %s: %d records stored under the raw-text key of an older '
                    'cache were re-keyed under the whitespace-normalised key', cache.path,
                    len(rekey))
    if limit is not None:
        todo = todo[:max(0, int(limit))]
    if todo:
        ext.check_data_use(credentialed=credentialed, allow_remote=allow_remote)
        flush_every = flush_every or (512 if ext.offline else 1)
        pending: List[EvidenceRecord] = []
        last_flush = [time.time()]
        bar = None
        if show_progress:
            from tqdm import tqdm
            bar = tqdm(total=len(todo), unit='report', desc=f'evidence[{ext.extractor_id}]',
                       dynamic_ncols=True, mininterval=0.5)

        def flush():
            cache.append(pending)
            pending.clear()
            last_flush[0] = time.time()

        def on_result(_: int, rec: EvidenceRecord) -> None:
            pending.append(rec)
            if rec.status == 'ok':
                summary.done += 1
            else:
                summary.failed += 1
            summary.rejected += len(rec.rejected)
            for reason in rec.rejected_reasons or ['unrecorded'] * len(rec.rejected):
                summary.rejected_by_reason[reason] = summary.rejected_by_reason.get(reason, 0) + 1
            if len(pending) >= flush_every or time.time() - last_flush[0] >= flush_seconds:
                flush()
            if bar is not None:
                bar.update(1)
                bar.set_postfix(failed=summary.failed, rejected=summary.rejected, refresh=False)

        try:
            ext.extract_many(todo, on_result=on_result)
        finally:
            flush()
            if bar is not None:
                bar.close()
    summary.seconds = time.time() - t0
    if todo or rekey:
        write_json_line(os.path.join(cache.cache_dir, RUN_LOG),
                        dict(time=time.time(), cache_file=os.path.basename(cache.path),
                             **{k: v for k, v in asdict(summary).items()}))
    logger.info('%s', summary)
    return summary


def extraction_command(extractor: BaseEvidenceExtractor, cache_dir: str,
                       source: Optional[dict] = None, credentialed: bool = False) -> str:
    """The ``tools/extract_evidence.py`` command that fills this cache for ``source``.

    ``source`` is ``dict(config=PATH, dataset_keys=[...])`` or ``dict(reports=PATH)``.
    """
    source = source or {}
    if 'config' in source:
        args = [source['config']]
        for key in source.get('dataset_keys', []) or []:
            args += ['--dataset-key', key]
    elif 'reports' in source:
        args = ['--reports', source['reports']]
    else:
        args = ['--reports', 'REPORTS.jsonl']
    ext_args = extractor.cli_args()
    if ext_args is None:
        ext_args = ['--extractor', extractor.extractor_id]
    args += ext_args + ['--cache-dir', cache_dir]
    if credentialed:
        args.append('--credentialed')
    return 'python tools/extract_evidence.py ' + ' '.join(shlex.quote(a) for a in args)


def _missing(cache: EvidenceCache, unique: Dict[str, List[str]]):
    """``(found, missing, failed)``: found maps key -> record; the others list
    ``(key, normalised text)``."""
    found, missing, failed = {}, [], []
    for key, variants in unique.items():
        rec, _ = _find(cache, variants)
        if rec is None:
            missing.append((key, variants[0]))
        elif rec.status != 'ok':
            failed.append((key, variants[0]))
        else:
            found[key] = rec
    return found, missing, failed


def _write_missing_file(cache_dir: str, items) -> str:
    path = os.path.join(cache_dir, f'missing-reports-{time.strftime("%Y%m%d-%H%M%S")}.jsonl')
    with open(path, 'w', encoding='utf-8') as f:
        for key, text in items:
            f.write(json.dumps({'id': key, 'report': text}) + '\n')
    return path


def _missing_message(ext, cache, missing, failed, unique, source, credentialed, what) -> str:
    if source is None:
        source = dict(reports=_write_missing_file(cache.cache_dir, missing + failed))
        where = f' (the missing report texts were written to {source["reports"]})'
    else:
        where = ''
    cmd = extraction_command(ext, cache.cache_dir, source, credentialed)
    if failed:
        cmd += ' --retry-failed'
    msg = (f'{what}: {len(missing)} of {len(unique)} reports have no evidence in {cache.path}'
           f' and {len(failed)} are recorded as failed extractions{where}. Extract them '
           f'first with:\n  {cmd}')
    others = sorted(f for f in os.listdir(cache.cache_dir)
                    if f.startswith(f'evidence-{ext.extractor_id}-') and f.endswith('.jsonl')
                    and f != os.path.basename(cache.path))
    if others:
        msg += (f'\nThe cache directory also holds {len(others)} other {ext.extractor_id} cache '
                f'file(s) ({", ".join(others[:3])}{" ..." if len(others) > 3 else ""}) written '
                f'with different settings (extractor version, prompt, policy or verifier '
                f'checks); their records are not used for these settings.')
    msg += ('\nIf these reports were extracted from a file whose whitespace differs from the '
            'dataset text (trailing newlines, double spaces, tabs, CRLF) by a version that '
            'hashed the raw text, re-run that extraction command on the same file: its '
            'records are re-keyed under the normalised key without being extracted again.')
    if ext.extractor_id == 'llm':
        msg += '\n(LLM extraction is an offline step and never runs inside training.)'
    return msg


def _pick_cfg(extractor_cfg: ExtractorCfg, extractor: ExtractorCfg) -> ExtractorCfg:
    if extractor_cfg is not None and extractor is not None:
        raise ValueError('give the extractor config once (extractor_cfg= or its alias '
                         'extractor=), not both')
    return extractor_cfg if extractor_cfg is not None else extractor


def ensure_evidence(texts: Sequence[str], extractor_cfg: ExtractorCfg = None,
                    cache_dir: Optional[str] = None, credentialed: bool = False,
                    allow_remote: bool = False, show_progress: bool = True,
                    source: Optional[dict] = None, extractor: ExtractorCfg = None
                    ) -> List[List[str]]:
    """Evidence phrases ``E(R)`` for every text (training entry point).

    With an offline extractor (``rule``) the missing reports are extracted here (progress
    bar, appended to the cache). With an LLM extractor a missing or failed entry raises
    :class:`EvidenceMissingError` whose message holds the exact command to run.

    Args:
        texts: report texts, exactly as the dataset gives them (they are hashed).
        extractor_cfg: extractor config (``dict(type='rule')``, ``dict(type='llm', ...)``).
        cache_dir: cache directory.
        credentialed: the reports are credentialed data (guardrail; printed in the command).
        allow_remote: passed to the guardrail.
        show_progress: progress bar while extracting.
        source: how the command should read the reports: ``dict(config=PATH,
            dataset_keys=[...])`` or ``dict(reports=PATH)``; without it the missing reports
            are written to a JSONL file in ``cache_dir`` and the command reads that file.
        extractor: alias of ``extractor_cfg`` (dataset configs use
            ``evidence=dict(extractor=..., cache_dir=..., credentialed=...)``).

    Returns:
        One list of phrases (``len >= 1``) per input text, in input order.
    """
    ext = build_extractor(_pick_cfg(extractor_cfg, extractor))
    if not cache_dir:
        raise ValueError('ensure_evidence needs cache_dir= (the evidence cache directory)')
    unique = _unique(texts)
    cache = EvidenceCache(cache_dir, ext)
    found, missing, failed = _missing(cache, unique)
    if missing or failed:
        if not ext.offline:
            raise EvidenceMissingError(_missing_message(ext, cache, missing, failed, unique,
                                                        source, credentialed, 'ensure_evidence'))
        run_extraction([t for _, t in missing + failed], ext, cache_dir,
                       credentialed=credentialed, allow_remote=allow_remote,
                       retry_failed=True, show_progress=show_progress)
        cache = EvidenceCache(cache_dir, ext)
        found, missing, failed = _missing(cache, unique)
        if missing or failed:
            errors = {cache.get(k).error for k, _ in failed if cache.get(k) is not None}
            raise EvidenceMissingError(f'{ext.extractor_id} extraction left {len(missing)} '
                                       f'reports missing and {len(failed)} failed: {errors}')
    return [list(found[report_key(t)].phrases) for t in texts]


def load_evidence(texts: Sequence[str], extractor_cfg: ExtractorCfg = None,
                  cache_dir: Optional[str] = None, source: Optional[dict] = None,
                  credentialed: bool = False, return_records: bool = False,
                  extractor: ExtractorCfg = None
                  ) -> Union[List[List[str]], List[EvidenceRecord]]:
    """Evidence of ``texts`` from the cache only (evaluation); a missing entry is an error.

    Args:
        texts, extractor_cfg, cache_dir, source, credentialed, extractor: as in
            :func:`ensure_evidence`.
        return_records: return the full :class:`EvidenceRecord` (flags, hedges) instead of
            the phrase lists.
    """
    ext = build_extractor(_pick_cfg(extractor_cfg, extractor))
    if not cache_dir:
        raise ValueError('load_evidence needs cache_dir= (the evidence cache directory)')
    unique = _unique(texts)
    cache = EvidenceCache(cache_dir, ext)
    found, missing, failed = _missing(cache, unique)
    if missing or failed:
        raise EvidenceMissingError(_missing_message(ext, cache, missing, failed, unique, source,
                                                    credentialed, 'load_evidence'))
    recs = [found[report_key(t)] for t in texts]
    return recs if return_records else [list(r.phrases) for r in recs]
