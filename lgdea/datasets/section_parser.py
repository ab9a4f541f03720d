"""Split a free-text radiology report into sections (MIMIC-CXR style).

Written from the documented behaviour of MIT-LCP's ``mimic-cxr/txt/section_parser.py``:

1. A section starts at a **header**: a capitalised phrase at the start of a line (leading
   spaces allowed) made of capital letters, spaces and ``( ) / , - &``, ending with a colon
   followed by white space, e.g. ``" FINDINGS:  ..."``, ``"IMPRESSION:\\n ..."``. The text
   before the first header is the ``preamble``; a report without any header is one section
   named ``full report``.
2. Header names are normalised (:func:`normalize_section_name`): lower case; known synonyms
   mapped (``CONCLUSION`` -> impression, ``FINDINGS AND IMPRESSION`` -> impression,
   ``REASON FOR EXAM`` -> indication, ...); misspellings within a small edit distance of a
   main section name corrected (``IMPRESSON`` -> impression); a name that contains a main
   section name takes it; a header that describes the study itself (``CHEST, PA AND
   LATERAL``, ``PORTABLE AP VIEW``) introduces findings.
3. Empty ``findings`` / ``impression`` sections are dropped (a report that repeats a header
   usually leaves one of them empty).
4. When the report has neither ``findings`` nor ``impression``, the last section is split
   at its first blank line and everything after it becomes ``last_paragraph`` (as MIT-LCP's
   parser does; the first paragraph is usually a title or the section's own text).

:func:`extract_report` picks the requested sections (the last occurrence of each, as
MIT-LCP's ``create_section_files.py`` does) and joins them in the requested order. Text is
whitespace-normalised (runs of white space -> one space).
"""
import re
from typing import List, Optional, Sequence, Tuple

__all__ = ['split_sections', 'normalize_section_name', 'extract_sections', 'extract_report',
           'MAIN_SECTIONS']

#: Section names that are never renamed by the containment / typo rules' targets.
MAIN_SECTIONS = ('impression', 'findings', 'indication', 'comparison', 'history', 'technique',
                 'examination', 'addendum', 'recommendations', 'notification')

# A header: start of a line, optional indentation, a capital letter, then capitals, spaces
# and a few punctuation marks, a colon, then white space or the end of the text.
_HEADER = re.compile(r'(?:^|(?<=\n))[ \t]*([A-Z][A-Z ()/,&-]*?)[ \t]*:(?=\s|$)')
_PARAGRAPH_BREAK = re.compile(r'\n[ \t]*\n')
_SPACES = re.compile(r'\s+')

# Synonyms of section names (after lower-casing and collapsing spaces).
_SYNONYMS = {
    'impressions': 'impression',
    'conclusion': 'impression',
    'conclusions': 'impression',
    'summary': 'impression',
    'findings and impression': 'impression',
    'findings/impression': 'impression',
    'findings / impression': 'impression',
    'impression and findings': 'impression',
    'finding': 'findings',
    'reference findings': 'findings',
    'comparisons': 'comparison',
    'comparison exam': 'comparison',
    'comparison film': 'comparison',
    'comparison study': 'comparison',
    'reference exam': 'comparison',
    'prior': 'comparison',
    'priors': 'comparison',
    'reason for exam': 'indication',
    'reason for examination': 'indication',
    'reason for study': 'indication',
    'clinical indication': 'indication',
    'indications': 'indication',
    'clinical history': 'history',
    'clinical information': 'history',
    'patient history': 'history',
    'pfi': 'history',
    'exam': 'examination',
    'type of examination': 'examination',
    'procedure': 'examination',
    'recommendation': 'recommendations',
    'recommendation(s)': 'recommendations',
    'wetread': 'wet read',
}

# Names whose misspellings are corrected (edit distance <= 2, names of 7+ letters).
_TYPO_TARGETS = ('impression', 'findings', 'indication', 'comparison', 'technique',
                 'examination')
# Containment rule: a name containing one of these becomes it (first match wins, so
# "findings and impression" style names become impression).
_CONTAINS = ('impression', 'findings', 'history', 'comparison', 'addendum', 'indication')
# A header describing the study itself introduces the findings.
_STUDY_DESCRIPTION = re.compile(
    r'\b(chest|portable|pa|ap|lat|lateral|frontal|views?|upright|supine|semi-upright|ribs|'
    r'bone window|one view|two views)\b')


def _edit_distance(a: str, b: str) -> int:
    """Levenshtein distance (insertions, deletions, substitutions each cost 1)."""
    previous = list(range(len(b) + 1))
    for i, ca in enumerate(a, 1):
        current = [i]
        for j, cb in enumerate(b, 1):
            current.append(min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (ca != cb)))
        previous = current
    return previous[-1]


def normalize_section_name(name: str) -> str:
    """Canonical section name of a header (see the module docstring, rule 2)."""
    key = ' '.join(name.lower().split())
    if key in ('preamble', 'full report', 'last_paragraph'):
        return key
    if key in _SYNONYMS:
        return _SYNONYMS[key]
    if key in MAIN_SECTIONS:
        return key
    for target in _TYPO_TARGETS:
        if len(key) >= 7 and abs(len(key) - len(target)) <= 2 and _edit_distance(key, target) <= 2:
            return target
    for target in _CONTAINS:
        if target in key:
            return target
    if _STUDY_DESCRIPTION.search(key):
        return 'findings'
    return key


def split_sections(text: str) -> List[Tuple[str, str]]:
    """Split a report into ``(normalised name, raw section text)`` pairs, in report order.

    Applies rules 1-4 of the module docstring. The section texts are not whitespace-
    normalised here (paragraph breaks are kept).
    """
    if text is None:
        return []
    text = text.replace('\r\n', '\n').replace('\r', '\n')
    headers = list(_HEADER.finditer(text))
    sections: List[Tuple[str, str]] = []
    if not headers:
        sections.append(('full report', text))
    else:
        sections.append(('preamble', text[:headers[0].start()]))
        for i, match in enumerate(headers):
            end = headers[i + 1].start() if i + 1 < len(headers) else len(text)
            sections.append((normalize_section_name(match.group(1)), text[match.end():end]))
    sections = [(name, body) for name, body in sections
                if not (name in ('findings', 'impression') and not body.strip())]
    names = {name for name, _ in sections}
    if 'findings' not in names and 'impression' not in names and sections:
        name, body = sections[-1]
        parts = _PARAGRAPH_BREAK.split(body.strip('\n'), maxsplit=1)
        if len(parts) == 2 and parts[1].strip():
            sections[-1] = (name, parts[0])
            sections.append(('last_paragraph', parts[1]))
    return sections


def _clean(text: str) -> str:
    return _SPACES.sub(' ', text).strip()


def extract_sections(text: str) -> dict:
    """Map each section name to its whitespace-normalised text (last occurrence wins)."""
    out = {}
    for name, body in split_sections(text):
        body = _clean(body)
        if body:
            out[name] = body
    return out


def extract_report(text: Optional[str],
                   sections: Sequence[str] = ('findings', 'impression'),
                   fallback: Optional[str] = 'last_paragraph',
                   joiner: str = ' ') -> Optional[str]:
    """The requested sections of a report, joined in the requested order.

    Args:
        text: the raw report (None gives None).
        sections: section names to keep, in output order (e.g. ``('impression',)`` or
            ``('findings', 'impression')``).
        fallback: the section used when the report has neither findings nor impression
            (``'last_paragraph'``; None disables the fallback).
        joiner: string between the kept sections.

    Returns:
        The text, or None when nothing usable is left (the report then counts as having
        no usable section).
    """
    if text is None:
        return None
    parsed = extract_sections(text)
    pieces = [parsed[name] for name in sections if parsed.get(name)]
    if not pieces and fallback and 'findings' not in parsed and 'impression' not in parsed:
        if parsed.get(fallback):
            pieces = [parsed[fallback]]
    joined = joiner.join(pieces).strip()
    return joined or None
