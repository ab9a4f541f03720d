"""Section parsing of MIMIC-style reports (synthetic report texts written for these tests)."""
from lgdea.datasets.section_parser import (extract_report, extract_sections,
                                           normalize_section_name, split_sections)

FULL = """                                 FINAL REPORT
 EXAMINATION:  CHEST (PA AND LAT)
 
 INDICATION:  ___ year old woman with cough.
 
 COMPARISON:  None.
 
 FINDINGS: 
 
 The lungs are clear.  No pleural effusion.
 Heart size is normal.
 
 IMPRESSION: 
 
 No acute cardiopulmonary process.
"""

TYPO_AND_SYNONYM = """ INDICATION:  Fever.
 
 PA AND LATERAL VIEWS OF THE CHEST:  Mild cardiomegaly is present.
 
 CONCLUSION:  Cardiomegaly without edema.
"""

NO_SECTIONS = """                                 FINAL REPORT
 CHEST RADIOGRAPH PERFORMED ON ___
 
 Small left pleural effusion is new.
 
 Otherwise no change.
"""

IMPRESSION_TYPO = """ HISTORY:  Dyspnea.
 
 IMPRESSON:  Moderate pulmonary edema.
"""

EMPTY_FINDINGS_REPEATED = """ FINDINGS:
 
 FINDINGS:  Right lower lobe opacity.
 
 IMPRESSION:  Pneumonia.
"""

ONLY_PREAMBLE = """                                 FINAL REPORT
 WET READ: ___ no pneumothorax
"""


def test_split_sections_names_and_order():
    names = [name for name, _ in split_sections(FULL)]
    assert names == ['preamble', 'examination', 'indication', 'comparison', 'findings',
                     'impression']


def test_findings_then_impression_default():
    text = extract_report(FULL)
    assert text == ('The lungs are clear. No pleural effusion. Heart size is normal. '
                    'No acute cardiopulmonary process.')


def test_section_order_and_choice():
    assert extract_report(FULL, sections=('impression', )) == 'No acute cardiopulmonary process.'
    assert extract_report(FULL, sections=('impression', 'findings')).startswith('No acute')


def test_synonyms_study_description_and_typos():
    sections = extract_sections(TYPO_AND_SYNONYM)
    assert sections['findings'] == 'Mild cardiomegaly is present.'
    assert sections['impression'] == 'Cardiomegaly without edema.'
    assert extract_sections(IMPRESSION_TYPO)['impression'] == 'Moderate pulmonary edema.'
    assert normalize_section_name('FINDINGS AND IMPRESSION') == 'impression'
    assert normalize_section_name('REASON FOR EXAMINATION') == 'indication'
    assert normalize_section_name('FINIDNGS') == 'findings'
    assert normalize_section_name('TECHNIQUE') == 'technique'


def test_last_paragraph_fallback():
    sections = dict(split_sections(NO_SECTIONS))
    assert 'findings' not in sections and 'impression' not in sections
    # everything after the first paragraph of the last section
    assert extract_report(NO_SECTIONS) == 'Small left pleural effusion is new. Otherwise no change.'
    assert extract_report(NO_SECTIONS, fallback=None) is None


def test_no_fallback_when_findings_or_impression_exist():
    # only an impression is requested but the report has findings too -> the impression
    assert extract_report(TYPO_AND_SYNONYM, sections=('impression', )) == \
        'Cardiomegaly without edema.'
    only_findings = ' FINDINGS:  Clear lungs.\n \n Second paragraph.\n'
    assert extract_report(only_findings, sections=('impression', )) is None


def test_empty_duplicate_section_dropped_and_last_occurrence_used():
    assert extract_report(EMPTY_FINDINGS_REPEATED) == 'Right lower lobe opacity. Pneumonia.'


def test_no_usable_section():
    assert extract_report(ONLY_PREAMBLE) is None
    assert extract_report('') is None
    assert extract_report(None) is None


def test_header_must_start_a_line_and_be_capitalised():
    text = ' FINDINGS:  The ratio 1:2 and Note: lower case are not headers.\n'
    assert extract_sections(text)['findings'] == \
        'The ratio 1:2 and Note: lower case are not headers.'
