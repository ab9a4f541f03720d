"""The cached evidence phrases of a report (paper Eq. 2, docs/method.md "Evidence space")."""
from typing import List, Optional

from mmcv.transforms import BaseTransform

from lgdea.registry import TRANSFORMS


@TRANSFORMS.register_module()
class EvidenceTokenizer(BaseTransform):
    """Attach the cached evidence phrases ``E(R)`` of ``results['report']``.

    The phrases come from ``results['evidence']`` when the dataset already attached them
    (``LimitedPairingDataset(evidence=...)``, which extracts missing reports before training),
    otherwise from the evidence cache (evaluation sets). A report missing from the cache is
    extracted in memory with an offline extractor (``rule``); with an LLM extractor it is an
    error whose message gives the extraction command.

    Adds ``evidence`` (list[str], at most ``max_phrases``, report order). Phrases beyond
    ``max_phrases`` are dropped and counted in ``results['evidence_dropped']``. The phrases
    stay strings: the model tokenises them with its own tokenizer (``LGDEA.encode_phrases``,
    ``max_phrase_length`` tokens), so pipeline and model cannot disagree on the vocabulary.

    Args:
        max_phrases: ``N_max`` (8).
        evidence: ``dict(extractor=..., cache_dir=..., credentialed=...)`` for cache look-ups.
    """

    def __init__(self, max_phrases: int = 8, evidence: Optional[dict] = None):
        if max_phrases < 1:
            raise ValueError(f'EvidenceTokenizer: max_phrases must be >= 1, got {max_phrases}')
        self.max_phrases = max_phrases
        self.evidence_cfg = dict(evidence) if evidence else None
        self._cache = None
        self._extractor = None

    def _lookup(self, text: str) -> List[str]:
        if self.evidence_cfg is None:
            raise KeyError('EvidenceTokenizer: the record has no `evidence` and no evidence '
                           'cache is configured (set `evidence=dict(extractor=..., '
                           'cache_dir=...)`).')
        from lgdea.evidence import EvidenceCache, EvidenceMissingError, build_extractor
        from lgdea.evidence.base import normalize_report_text, report_key
        if self._cache is None:
            cfg = self.evidence_cfg
            self._extractor = build_extractor(cfg.get('extractor', cfg.get('extractor_cfg')))
            self._cache = EvidenceCache(cfg['cache_dir'], self._extractor)
        rec, _ = self._cache.lookup(text)
        if rec is not None and not rec.error:
            return list(rec.phrases)
        if self._extractor.offline:
            return list(self._extractor.extract(normalize_report_text(text)).phrases)
        raise EvidenceMissingError(
            f'No cached evidence for a report ({report_key(text)[:12]}) in '
            f'{self._cache.path}; run `python tools/extract_evidence.py CONFIG '
            f'--cache-dir {self.evidence_cfg["cache_dir"]}` for this dataset first.')

    def transform(self, results: dict) -> dict:
        if results.get('kind') == 'image':
            return results
        phrases = results.get('evidence')
        if phrases is None:
            text = results.get('report')
            if text is None or not str(text).strip():
                return results
            phrases = self._lookup(str(text))
        phrases = [p for p in phrases if str(p).strip()]
        if not phrases:
            raise ValueError(f'EvidenceTokenizer: report of study {results.get("study_id")} '
                             'has no evidence phrase; the extractor must give the canonical '
                             'no-finding phrase instead.')
        results['evidence_dropped'] = max(0, len(phrases) - self.max_phrases)
        phrases = list(phrases[:self.max_phrases])
        results['evidence'] = phrases
        return results

    def __repr__(self) -> str:
        return f'{self.__class__.__name__}(max_phrases={self.max_phrases})'
