"""Word lists of the report grammar (one entry per finding key), plus locations and prompts.

Surface forms come in four *kinds*, chosen per mention with the config rates:

* ``common``: the words any radiology lexicon has ("pleural effusion", "pneumothorax").
* ``synonym``: paraphrases a rule-based extractor's lexicon does not contain ("layering pleural
  fluid", "airspace disease", "volume loss at the base", "vascular congestion").
* ``misspelling``: a common template whose head term is misspelled ("effusoin").
* ``abbreviation``: abbreviated forms ("PTX", "CHF", "PNA", "GGO").

Template slots: ``{sev}`` severity adjective, ``{sevadv}`` severity adverb, ``{side}`` right /
left / bilateral, ``{loc}`` location noun phrase with its determiner ("the right lower lobe",
"both lung bases"), ``{locadj}`` location adjective ("right lower lobe", "bibasilar"),
``{term}`` the head term (common or misspelled). A template starting with ``S:`` is a full
clause (it cannot be hedged or framed as a noun phrase). ``(template, max_severity_index)`` or
``(template, min, max)`` restricts a template to some severities.
"""
from typing import Dict

#: Severity adjectives per finding key: (mild, moderate, large) -> synonyms; first = canonical.
SEVERITY_WORDS: Dict[str, tuple] = dict(
    atelectasis=(('mild', 'minimal'), ('moderate', ), ('extensive', 'marked')),
    cardiomegaly=(('mild', 'slight'), ('moderate', ), ('severe', 'marked')),
    consolidation=(('small', 'minimal'), ('moderate', ), ('large', 'extensive')),
    edema=(('mild', 'slight'), ('moderate', ), ('severe', 'marked')),
    lung_opacity=(('small', 'faint', 'subtle'), ('moderate', ), ('large', 'extensive')),
    pleural_effusion=(('small', 'trace', 'tiny'), ('moderate', ), ('large', 'sizable')),
    pneumonia=(('mild', 'early', 'small'), ('moderate', ), ('extensive', 'severe')),
    pneumothorax=(('small', 'tiny'), ('moderate', ), ('large', 'sizable')),
)
SEVERITY_ADVERBS = (('mildly', 'slightly'), ('moderately', ), ('severely', 'markedly'))

#: Head terms per kind. ``common`` first entry = canonical.
TERMS: Dict[str, Dict[str, tuple]] = dict(
    atelectasis=dict(common=('atelectasis', ), misspelling=('atelectsis', 'atelactasis',
                                                           'atalectasis')),
    cardiomegaly=dict(common=('cardiomegaly', ), misspelling=('cardiomegally', 'cardiomeglay',
                                                             'cardiomegaley')),
    consolidation=dict(common=('consolidation', ), misspelling=('consolidaton', 'consoldiation',
                                                               'consolidatoin')),
    edema=dict(common=('pulmonary edema', 'interstitial edema', 'edema'),
               misspelling=('pulmonary edmea', 'pulmonary eddema', 'interstital edmea')),
    lung_opacity=dict(common=('opacity', ), misspelling=('opacitiy', 'opactiy', 'opasity')),
    pleural_effusion=dict(common=('pleural effusion', 'effusion'),
                          misspelling=('pleural effusoin', 'plueral effusion', 'pleural efusion',
                                       'effusoin')),
    pneumonia=dict(common=('pneumonia', ), misspelling=('pnuemonia', 'pneumona', 'pneumonai')),
    pneumothorax=dict(common=('pneumothorax', ), misspelling=('pnuemothorax', 'pneumothroax',
                                                             'pneumothorx')),
)

#: Positive-mention templates: common (with {term}), synonym and abbreviation, per laterality
#: ('uni' / 'bi'); ``peripheral`` is the COVID-like pneumonia pattern.
POSITIVE: Dict[str, Dict[str, Dict[str, tuple]]] = dict(
    atelectasis=dict(
        common=dict(uni=('{sev} {side} basilar {term}', '{sev} {term} at the {side} base',
                         ('subsegmental {term} at the {side} base', 0, 1),
                         '{sev} plate-like {term} in the {side} lower lobe',
                         '{sev} {side} lower lobe {term}'),
                    bi=('{sev} bibasilar {term}', '{sev} {term} at both lung bases',
                        '{sev} bilateral basilar {term}')),
        synonym=dict(uni=('{sev} volume loss at the {side} base',
                          '{sev} collapse of the {side} lower lobe',
                          ('discoid density at the {side} base', 0, 1),
                          'S:there is {sev} volume loss at the {side} lung base',
                          '{sev} band-like density at the {side} base'),
                     bi=('{sev} volume loss at both bases', '{sev} bibasilar collapse',
                         ('bibasilar discoid densities', 0, 1),
                         '{sev} bibasilar band-like densities')),
        abbreviation=dict(uni=('{sev} {side} basilar atx', ), bi=('{sev} bibasilar atx', )),
    ),
    cardiomegaly=dict(
        common=dict(uni=('{sev} {term}', 'S:the heart is {sevadv} enlarged',
                         'S:the heart size is {sevadv} enlarged')),
        synonym=dict(uni=('S:the cardiac silhouette is {sevadv} enlarged',
                          'S:the cardiothoracic ratio is {sevadv} increased',
                          '{sev} enlargement of the cardiac silhouette',
                          'S:heart size is {sevadv} increased')),
        abbreviation=dict(uni=('{sev} increase in the CTR', 'S:the CTR is {sevadv} increased')),
    ),
    consolidation=dict(
        common=dict(uni=('{sev} {locadj} {term}', '{sev} {term} in {loc}',
                         '{sev} focal {term} in {loc}',
                         ('dense {term} in {loc} with air bronchograms', 1, 2)),
                    bi=('{sev} {term} in {loc}', '{sev} {locadj} {term}')),
        synonym=dict(uni=('{sev} airspace disease in {loc}',
                          '{sev} dense airspace filling in {loc}',
                          '{sev} lobar airspace process in {loc}',
                          ('{sev} airspace filling in {loc} with air bronchograms', 1, 2)),
                     bi=('{sev} airspace disease in {loc}', '{sev} {locadj} airspace process')),
        abbreviation=dict(),
    ),
    edema=dict(
        common=dict(uni=('{sev} {term}', '{sev} bilateral perihilar {term}',
                         '{sev} {term} with perihilar predominance')),
        synonym=dict(uni=('{sev} pulmonary vascular congestion', '{sev} fluid overload',
                          'S:there is {sev} pulmonary venous congestion',
                          ('{sev} bilateral perihilar haziness with Kerley B lines', 1, 2),
                          'cephalization of the pulmonary vasculature with {sev} interstitial '
                          'thickening', '{sev} indistinctness of the perihilar vessels')),
        abbreviation=dict(uni=('findings of {sev} CHF', '{sev} CHF')),
    ),
    lung_opacity=dict(
        common=dict(uni=('{sev} {locadj} {term}', '{sev} hazy {term} in {loc}',
                         '{sev} ill-defined {term} in {loc}'),
                    bi=('{sev} hazy {term} in {loc}', '{sev} {locadj} {term}')),
        synonym=dict(uni=('{sev} haziness in {loc}', '{sev} area of increased density in {loc}',
                          '{sev} ground-glass attenuation in {loc}',
                          '{sev} ill-defined density in {loc}'),
                     bi=('{sev} haziness in {loc}', '{sev} ground-glass attenuation in {loc}')),
        abbreviation=dict(uni=('{sev} {locadj} GGO', ), bi=('{sev} {locadj} GGO', )),
    ),
    pleural_effusion=dict(
        common=dict(uni=('{sev} {side} {term}', '{sev} {term} on the {side}',
                         '{sev} {side}-sided {term}', '{sev} layering {side} {term}'),
                    bi=('{sev} bilateral {term}s', '{sev} {term}s bilaterally')),
        synonym=dict(uni=('{sev} amount of {side} pleural fluid', '{sev} {side} hydrothorax',
                          ('blunting of the {side} costophrenic angle', 0, 0),
                          '{sev} fluid collection in the {side} pleural space',
                          'meniscus of fluid at the {side} base',
                          'S:the {side} costophrenic sulcus is {sevadv} obscured by fluid'),
                     bi=('{sev} bilateral pleural fluid', ('blunting of both costophrenic '
                                                           'angles', 0, 0),
                         '{sev} bilateral hydrothoraces')),
        abbreviation=dict(uni=('{sev} {side} pl eff', '{sev} {side} pleural eff'),
                          bi=('{sev} bilateral pl effs', )),
    ),
    pneumonia=dict(
        common=dict(uni=('{sev} {locadj} {term}', '{term} in {loc}',
                         '{locadj} opacity concerning for {term}'),
                    bi=('{sev} multifocal {term} in {loc}', '{sev} {locadj} {term}')),
        synonym=dict(uni=('{sev} patchy infiltrate in {loc}', '{sev} infectious process in {loc}',
                          '{sev} {locadj} airspace disease compatible with infection'),
                     bi=('{sev} patchy infiltrates in {loc}',
                         '{sev} multifocal infectious process in {loc}')),
        abbreviation=dict(uni=('{sev} {locadj} PNA', ), bi=('{sev} multifocal PNA', )),
        peripheral=dict(
            common=('{sev} multifocal bilateral peripheral {term}',
                    'bilateral peripheral patchy opacities consistent with atypical {term}',
                    '{sev} bilateral peripheral {term} suggestive of viral infection'),
            synonym=('{sev} multifocal peripheral airspace process suggestive of viral infection',
                     'bilateral peripheral patchy infiltrates compatible with COVID-19 infection'),
            abbreviation=('{sev} multifocal bilateral peripheral PNA', )),
    ),
    pneumothorax=dict(
        common=dict(uni=('{sev} {side} {term}', '{sev} {side} apical {term}',
                         '{sev} {side} apicolateral {term}', '{sev} {term} on the {side}')),
        synonym=dict(uni=('{sev} {side} apical pleural line with absent lung markings beyond it',
                          '{sev} collection of air in the {side} pleural space',
                          'S:a {side} visceral pleural line is seen with no lung markings '
                          'peripherally')),
        abbreviation=dict(uni=('{sev} {side} PTX', '{sev} {side} apical PTX')),
    ),
)

#: Negations of an absent finding: every item is a "no ..." phrase (joinable with "or" and
#: usable after "without"), except full clauses marked ``S:``.
NEGATIVE: Dict[str, Dict[str, tuple]] = dict(
    atelectasis=dict(common=('no {term}', 'no significant {term}'),
                     synonym=('no volume loss', ), abbreviation=()),
    cardiomegaly=dict(common=('no {term}', 'S:the heart size is normal',
                              'S:heart size is within normal limits',
                              'S:the cardiomediastinal silhouette is normal'),
                      synonym=('S:the cardiac silhouette is not enlarged',
                               'S:cardiothoracic ratio is normal'), abbreviation=()),
    consolidation=dict(common=('no focal {term}', 'no {term}'),
                       synonym=('no focal airspace disease', 'no airspace process'),
                       abbreviation=()),
    edema=dict(common=('no pulmonary edema', 'no {term}'),
               synonym=('no vascular congestion', 'no fluid overload'),
               abbreviation=('no evidence of CHF', )),
    lung_opacity=dict(common=('no focal {term}', ), synonym=('no focal haziness', ),
                      abbreviation=()),
    pleural_effusion=dict(common=('no {term}', 'no large {term}'),
                          synonym=('S:the costophrenic angles are sharp', 'no pleural fluid'),
                          abbreviation=('no pl eff', )),
    pneumonia=dict(common=('no {term}', 'no evidence of {term}'),
                   synonym=('no findings of infection', ), abbreviation=('no PNA', )),
    pneumothorax=dict(common=('no {term}', ), synonym=('no air in the pleural space', ),
                      abbreviation=('no PTX', )),
)

#: Hedged statements about an *absent* finding (label stays 0); ``{side}`` is random.
HEDGED_ABSENT: Dict[str, tuple] = dict(
    atelectasis=('minimal {side} basilar atelectasis is possible',
                 'subtle {side} basilar opacity could reflect atelectasis'),
    consolidation=('a small focal consolidation cannot be excluded', ),
    edema=('possible mild interstitial edema', ),
    pleural_effusion=('possible trace {side} pleural effusion',
                      'questionable small {side} effusion'),
    pneumonia=('cannot exclude early pneumonia', 'early pneumonia cannot be excluded'),
    pneumothorax=('questionable tiny {side} apical pneumothorax', ),
)

#: Canonical evidence phrase of a positive finding (for measuring extractors).
CANONICAL: Dict[str, Dict[str, str]] = dict(
    atelectasis=dict(uni='{sev} {side} basilar atelectasis', bi='{sev} bibasilar atelectasis'),
    cardiomegaly=dict(uni='{sev} cardiomegaly'),
    consolidation=dict(uni='{sev} {locadj} consolidation', bi='{sev} {locadj} consolidation'),
    edema=dict(uni='{sev} pulmonary edema'),
    lung_opacity=dict(uni='{sev} {locadj} opacity', bi='{sev} {locadj} opacity'),
    pleural_effusion=dict(uni='{sev} {side} pleural effusion',
                          bi='{sev} bilateral pleural effusions'),
    pneumonia=dict(uni='{sev} {locadj} pneumonia', bi='{sev} {locadj} pneumonia',
                   peripheral='{sev} bilateral peripheral pneumonia'),
    pneumothorax=dict(uni='{sev} {side} pneumothorax'),
)

#: Short grounding phrases (MS-CXR style), common words only.
GROUNDING: Dict[str, Dict[str, tuple]] = dict(
    atelectasis=dict(uni=('{side} basilar atelectasis', '{sev} {side} basilar atelectasis',
                          '{side} lower lobe atelectasis'),
                     bi=('bibasilar atelectasis', '{sev} bibasilar atelectasis')),
    cardiomegaly=dict(uni=('cardiomegaly', '{sev} cardiomegaly', 'enlarged cardiac silhouette')),
    consolidation=dict(uni=('{locadj} consolidation', '{sev} {locadj} consolidation'),
                       bi=('{locadj} consolidation', )),
    edema=dict(uni=('pulmonary edema', '{sev} pulmonary edema', 'bilateral perihilar edema')),
    lung_opacity=dict(uni=('{locadj} opacity', 'hazy {locadj} opacity'),
                      bi=('{locadj} opacities', )),
    pleural_effusion=dict(uni=('{sev} {side} pleural effusion', '{side} pleural effusion',
                               '{side} effusion'),
                          bi=('bilateral pleural effusions', '{sev} bilateral effusions')),
    pneumonia=dict(uni=('{locadj} pneumonia', 'opacity concerning for pneumonia in {loc}'),
                   bi=('multifocal pneumonia', '{locadj} pneumonia'),
                   peripheral=('bilateral peripheral opacities',
                               'multifocal peripheral pneumonia')),
    pneumothorax=dict(uni=('{side} pneumothorax', '{sev} {side} pneumothorax',
                           '{side} apical pneumothorax')),
)

#: Location nouns (with determiner) and adjectives per zone, for one side ("{side}") or both.
LOC_NOUN = dict(
    upper=dict(uni=('the {side} upper lobe', 'the {side} upper zone', 'the {side} apex'),
               bi=('both upper lobes', 'both upper zones')),
    mid=dict(uni=('the {side} mid lung', 'the {side} perihilar region'),
             bi=('both mid lungs', 'both perihilar regions')),
    lower=dict(uni=('the {side} lower lobe', 'the {side} lung base', 'the {side} base'),
               bi=('both lung bases', 'both lower lobes')),
)
LOC_EXTRA = dict(mid=dict(right=('the right middle lobe', ), left=('the lingula', )),
                 lower=dict(left=('the retrocardiac region', )))
LOC_ADJ = dict(
    upper=dict(uni=('{side} upper lobe', '{side} apical'), bi=('bilateral upper lobe', 'biapical')),
    mid=dict(uni=('{side} mid lung', '{side} perihilar'), bi=('bilateral mid lung',
                                                            'bilateral perihilar')),
    lower=dict(uni=('{side} lower lobe', '{side} basilar'), bi=('bibasilar',
                                                             'bilateral lower lobe')),
)
#: Canonical location adjective per zone (first entry of LOC_ADJ).

#: Sentence frames around a positive noun phrase ({np} / {NP} = capitalised at sentence start).
NP_FRAMES = ('{NP}.', 'There is {np}.', 'Findings are notable for {np}.', 'Evidence of {np}.',
             '{NP} {is} noted.', '{NP} {is} present.')
CHANGE_FRAMES = ('{NP}, unchanged from prior.', '{NP} {is} again seen.', 'Interval increase in '
                 '{np}.', 'New {np}.', 'Interval development of {np}.', 'Redemonstration of {np}.')
HEDGE_FRAMES = ('Possible {np}.', '{NP} cannot be excluded.', 'Cannot exclude {np}.',
                'Questionable {np}.', 'Findings may represent {np}.', 'Suspected {np}.')

TECHNIQUE = dict(PA=('PA and lateral views of the chest were obtained.',
                     'PA and lateral chest radiographs.', 'Frontal and lateral views of the chest.',
                     'PA and lateral views of the chest provided.'),
                 AP=('Single portable AP view of the chest.',
                     'Portable AP upright chest radiograph.',
                     'AP portable semi-upright view of the chest was obtained.'))
COMPARISON = ('Comparison is made to the prior study from ___.',
              'Compared to prior chest radiograph from ___.',
              'Prior radiograph from ___ is available for comparison.',
              'Comparison with the study of ___.')
NO_COMPARISON = ('No prior studies for comparison.', 'No prior examinations are available.')
LUNGS_CLEAR = ('The lungs are clear.', 'Lungs are well expanded and clear.', 'The lungs are '
               'clear bilaterally.')
BONES = ('No acute osseous abnormality.', 'The visualized osseous structures are unremarkable.',
         'Degenerative changes of the thoracic spine.', 'Hilar contours are unremarkable.')
IMPRESSION_NORMAL = ('No acute cardiopulmonary process.', 'No acute cardiopulmonary abnormality.',
                     'No acute intrathoracic process.', 'Normal chest radiograph.')
DEVICE_SENTENCES = dict(
    picc_right=('Right PICC line terminates in the SVC.',
                'A right-sided PICC line is seen with its tip in the mid SVC.',
                'Right upper extremity PICC tip projects over the cavoatrial junction.'),
    picc_left=('Left PICC line terminates in the SVC.',
               'A left-sided PICC line is seen with its tip in the lower SVC.'),
    ij_right=('Right internal jugular central venous catheter terminates in the SVC.',
              'Right IJ line tip is in the SVC.'),
    ett=('Endotracheal tube terminates approximately 4 cm above the carina.',
         'ET tube is in standard position.'),
    ng=('Enteric tube courses below the diaphragm with its tip in the stomach.',
        'NG tube tip is in the stomach.'),
    ecg=('EKG leads overlie the chest.', 'Monitoring leads are noted.'),
)
