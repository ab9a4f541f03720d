"""GLoRIA's caption preprocessing (docs/baselines.md, section 1.2).

The official pretraining dataset and ``GLoRIA.process_text`` clean a report the same way:

1. newlines become spaces;
2. the text is split on numbered-list markers (regex ``[0-9]+\\.``), then on ``.``;
3. each piece is lower-cased and tokenised into alphanumeric runs (``\\w+``);
4. pieces with at most one token are dropped; non-ASCII characters are removed;
5. a sentence is its tokens joined by single spaces.

Training samples **one random sentence** of the study per step (``full_report: false``);
evaluation texts (candidate reports, prompts, grounding phrases) join all sentences.

Departures, both on by default and switchable:

- ``drop_section_headers``: upper-case section headers such as ``FINDINGS:`` are removed
  first (the official input, the CheXpert impression column, had none; MIMIC-CXR /
  synthetic reports may have them).
- When nothing survives step 4 (a one-word prompt such as ``"effusion"`` or a one-word report)
  the text falls back to all its lower-cased ASCII tokens instead of becoming empty (the
  official code would encode an empty caption ``[CLS] [SEP]``).
"""
import re
from typing import List, Optional

import torch

__all__ = ['gloria_sentences', 'gloria_clean_text', 'sample_sentence', 'impression_section']

_LIST_MARKER = re.compile(r'[0-9]+\.')
_WORD = re.compile(r'\w+')
_SECTION_HEADER = re.compile(r'\b[A-Z][A-Z /&-]*[A-Z]\s*:')
_IMPRESSION = re.compile(r'\bIMPRESSIONS?\s*:')


def impression_section(text: Optional[str]) -> Optional[str]:
    """The IMPRESSION section of a report (the text after its last ``IMPRESSION:`` header, up
    to the next upper-case section header); the whole text when it has no such header or the
    section is empty. The official model trained on the CheXpert impression column."""
    if text is None:
        return None
    text = str(text)
    starts = list(_IMPRESSION.finditer(text))
    if not starts:
        return text
    rest = text[starts[-1].end():]
    nxt = _SECTION_HEADER.search(rest)
    section = rest[:nxt.start()] if nxt else rest
    return section if section.strip() else text


def _ascii_tokens(text: str) -> List[str]:
    tokens = [t.encode('ascii', 'ignore').decode('ascii') for t in _WORD.findall(text.lower())]
    return [t for t in tokens if t]


def gloria_sentences(text: Optional[str], drop_section_headers: bool = True) -> List[str]:
    """Split and clean a report into GLoRIA sentences (steps 1-5 above).

    Returns:
        The cleaned sentences in report order; empty when the text has none with at least
        two tokens.
    """
    if text is None:
        return []
    text = str(text)
    if drop_section_headers:
        text = _SECTION_HEADER.sub(' ', text)
    text = text.replace('\n', ' ')
    pieces = [s for point in _LIST_MARKER.split(text) for s in point.split('.')]
    sentences = []
    for piece in pieces:
        piece = piece.replace('\ufffd\ufffd', ' ')
        words = _WORD.findall(piece.lower())
        if len(words) <= 1:  # official: sentences of <= 1 token are dropped before ASCII
            continue
        tokens = _ascii_tokens(piece)
        if tokens:
            sentences.append(' '.join(tokens))
    return sentences


def gloria_clean_text(text: Optional[str], drop_section_headers: bool = True) -> str:
    """All cleaned sentences joined by spaces (official ``process_text``), with the
    all-tokens fallback when no sentence survives."""
    sentences = gloria_sentences(text, drop_section_headers)
    if sentences:
        return ' '.join(sentences)
    return _fallback(text, drop_section_headers)


def sample_sentence(text: Optional[str], drop_section_headers: bool = True,
                    generator: Optional[torch.Generator] = None) -> str:
    """One uniformly sampled cleaned sentence of ``text`` (the official training caption).

    Uses torch's RNG (seeded by mmengine's ``randomness``) so runs are reproducible.
    """
    sentences = gloria_sentences(text, drop_section_headers)
    if not sentences:
        return _fallback(text, drop_section_headers)
    index = int(torch.randint(len(sentences), (1, ), generator=generator).item())
    return sentences[index]


def _fallback(text: Optional[str], drop_section_headers: bool) -> str:
    text = '' if text is None else str(text)
    if drop_section_headers:
        text = _SECTION_HEADER.sub(' ', text)
    return ' '.join(_ascii_tokens(text))
