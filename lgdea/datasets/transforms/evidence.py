"""Evidence phrases of a report -> padded token ids (paper Eq. 2, method.md "Evidence space")."""
from typing import List, Optional

import numpy as np
from mmcv.transforms import BaseTransform

from lgdea.registry import TOKENIZER, TRANSFORMS


@TRANSFORMS.register_module()
class EvidenceTokenizer(BaseTransform):
    """Attach the cached evidence phrases ``E(R)`` of ``results['report']`` and tokenise them.

    The phrases come from ``results['evidence']`` when the dataset already attached them
    (``LimitedPairingDataset(evidence=...)``, which extracts missing reports before training),
    otherwise from the evidence cache (evaluation sets). A report missing from the cache is
    extracted in memory with an offline extractor (``rule``); with an LLM extractor it is an
    error whose message gives the extraction command.

    Adds ``evidence`` (list[str], at most ``max_phrases``, report order) and, with a tokenizer,
    ``evidence_ids`` / ``evidence_mask`` (int64 [N_max, T_max], padded). Phrases beyond
    ``max_phrases`` are dropped and counted in ``results['evidence_dropped']``.

    Args:
        max_phrases: ``N_max`` (8).
        max_tokens: ``T_max`` (32).
        tokenizer: TOKENIZER config; use the text encoder's path so that pipeline and model
            cannot disagree. None keeps only the phrase strings (the model tokenises them).
        evidence: ``dict(extractor=..., cache_dir=..., credentialed=...)`` for cache look-ups.
    """

    def __init__(self, max_phrases: int = 8, max_tokens: int = 32,
                 tokenizer: Optional[dict] = None, evidence: Optional[dict] = None):
        if max_phrases < 1 or max_tokens < 2:
            raise ValueError('EvidenceTokenizer: max_phrases >= 1 and max_tokens >= 2 needed')
        self.max_phrases = max_phrases
        self.max_tokens = max_tokens
        self.tokenizer_cfg = tokenizer
        self.evidence_cfg = dict(evidence) if evidence else None
        self._tokenizer = None
        self._cache = None
        self._extractor = None

    def _lookup(self, text: str) -> List[str]:
        if self.evidence_cfg is None:
            raise KeyError('EvidenceTokenizer: the record has no `evidence` and no evidence '
                           'cache is configured (set `evidence=dict(extractor=..., '
                           'cache_dir=...)`).')
        from lgdea.evidence import EvidenceCache, EvidenceMissingError, build_extractor
        from lgdea.evidence.base import sha256_text
        if self._cache is None:
            cfg = self.evidence_cfg
            self._extractor = build_extractor(cfg.get('extractor', cfg.get('extractor_cfg')))
            self._cache = EvidenceCache(cfg['cache_dir'], self._extractor)
        rec = self._cache.get(sha256_text(text))
        if rec is not None and not rec.error:
            return list(rec.phrases)
        if self._extractor.offline:
            return list(self._extractor.extract(text).phrases)
        raise EvidenceMissingError(
            f'No cached evidence for a report ({sha256_text(text)[:12]}) in '
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
        if self.tokenizer_cfg is not None:
            if self._tokenizer is None:
                self._tokenizer = TOKENIZER.build(self.tokenizer_cfg)
            enc = self._tokenizer(phrases, padding='max_length', truncation=True,
                                  max_length=self.max_tokens, return_tensors='np')
            ids = np.zeros((self.max_phrases, self.max_tokens), dtype=np.int64)
            mask = np.zeros_like(ids)
            ids[:len(phrases)] = enc['input_ids']
            mask[:len(phrases)] = enc['attention_mask']
            results['evidence_ids'] = ids
            results['evidence_mask'] = mask
        return results

    def __repr__(self) -> str:
        return (f'{self.__class__.__name__}(max_phrases={self.max_phrases}, '
                f'max_tokens={self.max_tokens})')
