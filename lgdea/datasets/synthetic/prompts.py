"""Zero-shot class prompts and grounding phrases of the synthetic benchmark.

``SYNTHETIC_CLASS_PROMPTS`` maps every class name used in a split's ``metainfo['classes']``
(the 8 findings, plus ``No Finding`` / ``Normal`` / ``No Pneumonia`` / ``COVID-19`` of the
classification sets) to several radiology-style prompts, written in the common vocabulary of
the report grammar (GLoRIA-style severity x location variants). The metric owns how prompts
are aggregated.

``SYNTHETIC_GROUNDING_PHRASES`` maps each finding class to every short grounding phrase the
grammar can produce for it (all severities / sides / zones), e.g. for vocabulary checks.
"""
import itertools
from typing import Dict, List

from . import lexicon as lx
from .config import FINDING_KEYS, KEY_TO_CLASS, SEVERITIES

SYNTHETIC_CLASS_PROMPTS: Dict[str, List[str]] = {
    'Atelectasis': [
        'atelectasis', 'bibasilar atelectasis', 'mild right basilar atelectasis',
        'plate-like atelectasis at the left base', 'moderate left lower lobe atelectasis',
        'subsegmental atelectasis at the right base', 'extensive bibasilar atelectasis'],
    'Cardiomegaly': [
        'cardiomegaly', 'mild cardiomegaly', 'moderate cardiomegaly', 'severe cardiomegaly',
        'the heart is enlarged', 'the heart size is moderately enlarged'],
    'Consolidation': [
        'consolidation', 'right lower lobe consolidation', 'focal consolidation in the left base',
        'dense consolidation in the right lower lobe with air bronchograms',
        'large left lower lobe consolidation', 'small right upper lobe consolidation'],
    'Edema': [
        'pulmonary edema', 'mild pulmonary edema', 'moderate pulmonary edema',
        'severe pulmonary edema', 'bilateral perihilar edema', 'interstitial edema'],
    'Lung Opacity': [
        'lung opacity', 'hazy opacity in the right lower lobe', 'ill-defined opacity in the left '
        'mid lung', 'small right upper lobe opacity', 'moderate left basilar opacity',
        'faint opacity in the right base'],
    'Pleural Effusion': [
        'pleural effusion', 'small right pleural effusion', 'moderate left pleural effusion',
        'large right pleural effusion', 'bilateral pleural effusions',
        'small left-sided pleural effusion'],
    'Pneumonia': [
        'pneumonia', 'right lower lobe pneumonia', 'left lower lobe pneumonia',
        'opacity concerning for pneumonia', 'pneumonia in the left base',
        'early right upper lobe pneumonia'],
    'Pneumothorax': [
        'pneumothorax', 'small right pneumothorax', 'small left apical pneumothorax',
        'moderate right pneumothorax', 'large left pneumothorax', 'right apicolateral '
        'pneumothorax'],
    'No Finding': [
        'no acute cardiopulmonary process', 'no acute cardiopulmonary abnormality',
        'the lungs are clear', 'normal chest radiograph',
        'the heart size is normal and the lungs are clear'],
    'COVID-19': [
        'multifocal bilateral peripheral pneumonia', 'bilateral peripheral patchy opacities',
        'bilateral peripheral pneumonia suggestive of viral infection',
        'multifocal peripheral opacities consistent with atypical pneumonia'],
}
SYNTHETIC_CLASS_PROMPTS['Normal'] = SYNTHETIC_CLASS_PROMPTS['No Finding']
SYNTHETIC_CLASS_PROMPTS['No Pneumonia'] = [
    'no pneumonia', 'no evidence of pneumonia', 'no focal consolidation to suggest pneumonia',
    'the lungs are clear'] + SYNTHETIC_CLASS_PROMPTS['No Finding'][:2]


def _expand_grounding(key: str) -> List[str]:
    phrases = set()
    table = lx.GROUNDING[key]
    for form, templates in table.items():
        sides = ('bilateral', ) if form in ('bi', 'peripheral') else ('right', 'left')
        zones = ('upper', 'mid', 'lower')
        for template, sev_i, side, zone in itertools.product(templates, range(len(SEVERITIES)),
                                                             sides, zones):
            lat = 'bi' if side == 'bilateral' else 'uni'
            for sev in lx.SEVERITY_WORDS[key][sev_i]:
                locs = [n.format(side=side) for n in lx.LOC_NOUN[zone][lat]]
                adjs = [a.format(side=side) for a in lx.LOC_ADJ[zone][lat]]
                for loc, adj in itertools.product(locs, adjs):
                    phrases.add(template.format(sev=sev, side=side, loc=loc, locadj=adj))
    return sorted(phrases)


SYNTHETIC_GROUNDING_PHRASES: Dict[str, List[str]] = {
    KEY_TO_CLASS[k]: _expand_grounding(k) for k in FINDING_KEYS}
