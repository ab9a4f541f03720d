"""Rule evidence extractor (Eq. 2, offline default) on synthetic report sentences."""
import pytest

from lgdea.evidence import NO_FINDING_PHRASE, RuleEvidenceExtractor, build_extractor
from lgdea.registry import EVIDENCE_EXTRACTORS


@pytest.fixture(scope='module')
def rule():
    return RuleEvidenceExtractor()


def findings(ext, text):
    return [(f.finding, f.certainty, f.kind) for f in ext.extract(text).findings]


def test_registry_names():
    assert EVIDENCE_EXTRACTORS.get('rule') is RuleEvidenceExtractor
    assert EVIDENCE_EXTRACTORS.get('RuleEvidenceExtractor') is RuleEvidenceExtractor
    assert isinstance(build_extractor(dict(type='rule')), RuleEvidenceExtractor)
    assert isinstance(build_extractor(None), RuleEvidenceExtractor)


@pytest.mark.parametrize('text, expected', [
    ('Small left pleural effusion.', ['small left pleural effusion']),
    ('Mild cardiomegaly.', ['mild cardiomegaly']),
    ('Right basilar atelectasis.', ['right basilar atelectasis']),
    ('Patchy opacity in the left lower lobe.', ['patchy opacity in the left lower lobe']),
    ('Moderate pulmonary edema. Large right pneumothorax.',
     ['moderate pulmonary edema', 'large right pneumothorax']),
    ('The heart is moderately enlarged.', ['heart is moderately enlarged']),
    ('Healed fracture of the left 7th rib.', ['healed fracture of the left 7th rib']),
    ('Small hiatal hernia. Calcified granuloma in the right upper lobe.',
     ['small hiatal hernia', 'calcified granuloma in the right upper lobe']),
])
def test_positive_phrases_are_short_and_grounded(rule, text, expected):
    rec = rule.extract(text)
    assert rec.status == 'ok'
    assert rec.phrases == expected
    for p in rec.phrases:
        assert p in text.lower()  # report-grounded: copied from the text
        assert len(p.split()) <= rule.max_phrase_words


@pytest.mark.parametrize('text', [
    'No pneumothorax.',
    'There is no pleural effusion or pneumothorax.',
    'No focal consolidation, pleural effusion, or pneumothorax.',
    'The lungs are clear without consolidation or edema.',
    'No evidence of pneumonia.',
    'Pneumothorax is not seen.',
    'The previously noted effusion has resolved.',
    'The heart is not enlarged.',
    'Lungs are clear of focal airspace disease.',
    'No opacity to suggest pneumonia.',
])
def test_negated_findings_are_dropped(rule, text):
    rec = rule.extract(text)
    assert rec.phrases == [NO_FINDING_PHRASE]
    assert rec.dropped.get('negated', 0) >= 1


def test_negation_scope_ends_at_termination_and_sentence(rule):
    rec = rule.extract('No pneumothorax, but there is a small right effusion. Mild edema.')
    assert rec.phrases == ['small right effusion', 'mild edema']
    all_findings = RuleEvidenceExtractor(policy=dict(keep_negated=True))
    assert findings(all_findings, 'No pneumothorax. Left basilar atelectasis.') == [
        ('pneumothorax', 'negated', 'finding'), ('atelectasis', 'positive', 'finding')]
    assert findings(all_findings, 'Left basilar atelectasis. No pneumothorax.') == [
        ('atelectasis', 'positive', 'finding'), ('pneumothorax', 'negated', 'finding')]


@pytest.mark.parametrize('text, name', [
    ('Right lower lobe pneumonia cannot be excluded.', 'pneumonia'),
    ('Cannot exclude small left effusion.', 'pleural_effusion'),
    ('Opacity at the left base may represent atelectasis.', 'atelectasis'),
    ('Possible right upper lobe nodule.', 'nodule_mass'),
    ('Findings are suspicious for early edema.', 'edema'),
])
def test_uncertain_findings_kept_with_hedge(rule, text, name):
    rec = rule.extract(text)
    hedged = [f for f in rec.findings if f.finding == name]
    assert hedged and hedged[0].certainty == 'uncertain' and hedged[0].hedged
    assert hedged[0].phrase in rec.phrases
    strict = RuleEvidenceExtractor(policy=dict(keep_uncertain=False))
    assert name not in {f.finding for f in strict.extract(text).findings}
    assert strict.extract(text).dropped.get('uncertain', 0) >= 1


def test_uncertainty_beats_embedded_negation_word(rule):
    # "can not exclude" contains "not": it is uncertainty, not negation
    assert findings(rule, 'We can not exclude a small pneumothorax.') == [
        ('pneumothorax', 'uncertain', 'finding')]


def test_devices_dropped_by_default_and_kept_on_request(rule):
    text = ('Endotracheal tube ends 4 cm above the carina. Left subclavian central venous '
            'catheter. Median sternotomy wires. Dual-lead pacemaker. Mild cardiomegaly.')
    rec = rule.extract(text)
    assert rec.phrases == ['mild cardiomegaly']
    assert rec.dropped['device'] >= 4
    with_devices = RuleEvidenceExtractor(policy=dict(keep_devices=True)).extract(text)
    kinds = [f.kind for f in with_devices.findings]
    assert kinds.count('device') >= 4
    assert any('pacemaker' in p for p in with_devices.phrases)


def test_comparison_statements_dropped(rule):
    rec = rule.extract('No interval change. Stable mild cardiomegaly. Improved aeration.')
    assert rec.phrases == ['mild cardiomegaly']  # temporal word stripped, finding kept
    assert rec.dropped.get('comparison', 0) >= 1
    keep = RuleEvidenceExtractor(policy=dict(keep_comparisons=True)).extract(
        'No interval change. Stable mild cardiomegaly. Improved aeration.')
    assert 'stable mild cardiomegaly' in keep.phrases
    assert any(f.kind == 'comparison' for f in keep.findings)


def test_canonical_phrase_for_normal_reports(rule):
    for text in ['The lungs are clear. Heart size is normal.',
                 'FINDINGS: Normal chest radiograph. IMPRESSION: No acute disease.', '   ']:
        assert rule(text) == [NO_FINDING_PHRASE]
    custom = RuleEvidenceExtractor(policy=dict(no_finding_phrase='normal chest'))
    assert custom('Clear lungs.') == ['normal chest']
    assert custom.namespace != rule.namespace  # the phrase is part of the cache key


def test_sections_indication_and_history_are_skipped(rule):
    text = ('INDICATION: Rule out pneumonia. HISTORY: Cough.\n'
            'FINDINGS: Small right pleural effusion.\nIMPRESSION: Effusion.')
    rec = rule.extract(text)
    assert [f.finding for f in rec.findings] == ['pleural_effusion']
    # unsectioned text is read whole
    assert rule('Small right pleural effusion.') == ['small right pleural effusion']


def test_dedupe_restated_findings(rule):
    rec = rule.extract('FINDINGS: Small left pleural effusion. '
                       'IMPRESSION: Left pleural effusion.')
    assert rec.phrases == ['small left pleural effusion']
    assert rec.dropped['duplicate'] == 1
    both_sides = rule.extract('Right basilar atelectasis. Left basilar atelectasis.')
    assert both_sides.phrases == ['right basilar atelectasis', 'left basilar atelectasis']
    # a less specific restatement is merged into the specific phrase
    assert rule('Atelectasis. Right basilar atelectasis.') == ['right basilar atelectasis']


def test_question_mark_and_list_markers(rule):
    assert findings(rule, 'Pneumonia?') == [('pneumonia', 'uncertain', 'finding')]
    rec = rule.extract('1. Moderate cardiomegaly. 2. 1.5 cm nodule in the right upper lobe.')
    assert rec.phrases == ['moderate cardiomegaly', '1.5 cm nodule in the right upper lobe']


def test_lexicon_covers_required_findings(rule):
    sentences = {
        'atelectasis': 'Bibasilar atelectasis.', 'cardiomegaly': 'Cardiomegaly.',
        'consolidation': 'Right lower lobe consolidation.', 'lung_opacity': 'Hazy opacity.',
        'edema': 'Interstitial edema.', 'pneumonia': 'Left lower lobe pneumonia.',
        'pneumothorax': 'Small apical pneumothorax.',
        'pleural_effusion': 'Bilateral pleural effusions.', 'nodule_mass': 'Spiculated mass.',
        'emphysema': 'Emphysema.', 'fracture': 'Rib fracture.', 'hernia': 'Hiatal hernia.',
        'fibrosis': 'Apical scarring.', 'granuloma': 'Calcified granuloma.',
        'infiltrate': 'Patchy infiltrates.',
        'enlarged_cardiomediastinum': 'Widened mediastinum.',
    }
    for name, sentence in sentences.items():
        got = [f.finding for f in rule.extract(sentence).findings]
        assert got == [name], (sentence, got)


def test_extra_lexicon_entries_and_deterministic(rule):
    ext = RuleEvidenceExtractor(extra_findings={'sarcoidosis': [r'sarcoid(?:osis)?']})
    assert ext('Findings of sarcoidosis.') == ['sarcoidosis']
    assert ext.namespace != rule.namespace
    text = 'Mild cardiomegaly. Small left effusion. Possible pneumonia.'
    assert [rule.extract(text).model_dump(exclude={'created'}) for _ in range(2)] == \
        [rule.extract(text).model_dump(exclude={'created'})] * 2
    with pytest.raises(ValueError, match='capturing groups'):
        RuleEvidenceExtractor(extra_findings={'bad': [r'(bad)']})
    with pytest.raises(ValueError, match='unknown section'):
        RuleEvidenceExtractor(sections=['findngs'])
