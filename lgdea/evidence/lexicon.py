"""Radiology lexicon of the rule extractor: findings, devices, NegEx-style triggers.

Every entry is a lower-case regular-expression fragment matched on whole words. The lexicon
is written from general radiology vocabulary (CheXpert / NegEx style categories); it holds no
report text from any dataset. It was tuned on the "tune" half of a hash split of a public
report set (``tools/eval_extractor_iu.py``); the other half is only used for the report.

Trigger directions follow NegEx: a ``*_PRE`` trigger scopes over the words after it (until a
termination term or ``window`` words), a ``*_POST`` trigger over the words before it.
"""
from collections import OrderedDict

# --------------------------------------------------------------------------- findings
#: Normalised finding name -> surface patterns (synonyms). Order does not matter: matching
#: is leftmost-longest over all patterns, so "pericardial effusion" wins over "effusion".
FINDING_PATTERNS = OrderedDict([
    ('atelectasis', [
        r'atelectas[ie]s', r'atelectatic(?: changes?)?', r'volume loss',
        r'(?:lobar|lobe|lung|segmental|subsegmental) collapse',
        r'collapse of the (?:\w+ ){0,3}(?:lobe|lung)']),
    ('cardiomegaly', [
        r'cardiomegaly', r'cardiac enlargement', r'cardiac hypertrophy',
        r'enlarge(?:d|ment of the) (?:heart|cardiac (?:silhouette|shadow|size|contour))',
        r'enlarged heart(?: size)?',
        r'increased (?:heart|cardiac) size',
        r'(?:heart|heart size|cardiac size|cardiac silhouette|cardiac shadow|cardiac contour)'
        r'(?: [\w/-]+){0,4}? (?:enlarged|increased in size)', r'heart enlargement']),
    ('enlarged_cardiomediastinum', [
        r'widen(?:ed|ing) (?:of )?(?:the )?(?:superior )?mediastin(?:um|al silhouette|al contour)',
        r'mediastinal (?:widening|enlargement|prominence)',
        r'enlarged (?:cardio)?mediastin(?:um|al silhouette|al contours?)',
        r'(?:cardio)?mediastinal (?:silhouette|contours?) (?:is|are|appears?|remains?)'
        r'(?: (?:again|still|mildly|moderately|markedly|slightly|not))* (?:enlarged|widened)']),
    ('consolidation', [
        r'consolidations?', r'consolidated',
        r'consolidative (?:opacity|opacities|process|changes?|density|densities)']),
    ('lung_opacity', [
        r'opacit(?:y|ies)', r'opacification', r'opacified',
        r'air ?-?space (?:disease|opacity|opacities|process|filling)',
        r'densit(?:y|ies)', r'haziness', r'hazy (?:opacity|opacities|density|densities)',
        r'ground[- ]glass(?: opacity| opacities| attenuation)?',
        r'reticul(?:ar|onodular) (?:opacity|opacities|pattern|changes?|densities)']),
    ('infiltrate', [r'infiltrates?', r'infiltration', r'infiltrative (?:process|changes?)']),
    ('edema', [
        r'o?edema(?:tous)?', r'(?:pulmonary )?vascular congestion',
        r'(?:pulmonary|interstitial|alveolar|venous) congestion', r'congestive (?:heart )?failure',
        r'chf', r'fluid overload', r'cephalization', r'kerley b(?:-| )lines',
        r'vascular redistribution']),
    ('pneumonia', [r'(?:broncho)?pneumonias?', r'pneumonic', r'infectious process']),
    ('pneumothorax', [r'(?:hydro)?pneumothora(?:x|ces)', r'ptx']),
    ('pleural_effusion', [
        r'(?:pleural )?effusions?', r'pleural fluid', r'hydrothora(?:x|ces)',
        r'fluid (?:in|within) the (?:\w+ )?(?:fissure|pleural space)']),
    ('pericardial_effusion', [r'pericardial effusions?']),
    ('costophrenic_blunting', [
        r'blunt(?:ing|ed) (?:of )?(?:the )?(?:\w+ ){0,2}(?:costophrenic|cp) '
        r'(?:angles?|sulc(?:us|i)|'
        r'recess(?:es)?)',
        r'(?:costophrenic|cp) (?:angles?|sulc(?:us|i)) (?:is |are )?(?:\w+ )?blunt(?:ed|ing)']),
    ('nodule_mass', [
        r'nodules?', r'nodular lesions?', r'mass(?:es)?', r'masslike', r'mass-like',
        r'(?:lung|pulmonary|cavitary|parenchymal|spiculated) lesions?']),
    ('granuloma', [r'granulomas?', r'granulomata',
                   r'granulomatous(?: disease| changes?| process| infection| scarring)?']),
    ('emphysema', [r'emphysema(?:tous)?(?: changes?)?',
                   r'bull(?:a|ae|ous)(?: emphysema| disease| changes?)?', r'blebs?']),
    ('subcutaneous_emphysema', [r'subcutaneous (?:emphysema|air|gas)',
                                r'soft tissue (?:emphysema|air)']),
    ('copd', [r'chronic obstructive (?:pulmonary|lung|airways?) disease', r'copd']),
    ('hyperinflation', [
        r'hyperinflat(?:ion|ed)', r'hyperexpan(?:sion|ded)', r'hyperaerat(?:ion|ed)',
        r'over-?inflat(?:ion|ed)', r'over-?expan(?:sion|ded)', r'hyperlucen(?:t|cy)',
        r'flatten(?:ed|ing) (?:of )?(?:the )?(?:\w+ )?(?:hemi)?diaphragms?']),
    ('fracture', [r'fractures?', r'fractured', r'fx']),
    ('hernia', [r'hernias?', r'herniation']),
    ('fibrosis', [r'fibros(?:is|es)', r'fibrotic(?: changes?)?', r'scar(?:ring|s)?',
                  r'cicatri(?:x|cial)', r'interstitial lung disease', r'honeycomb(?:ing)?']),
    ('pleural_thickening', [
        r'pleural thickening', r'thicken(?:ed|ing) (?:of )?(?:the )?pleura',
        r'pleural (?:plaques?|calcifications?)', r'apical (?:pleural )?(?:capping|cap|thickening)',
        r'pleural-parenchymal (?:scarring|thickening)']),
    ('interstitial_markings', [
        r'(?:interstitial|bronchovascular|lung|pulmonary|vascular) markings',
        r'interstitial (?:prominence|pattern|changes?|thickening|process|disease)',
        r'peribronchial (?:cuffing|thickening)', r'bronchial wall thickening']),
    ('calcification', [
        r'calcifications?', r'calcified (?:aorta|aortic (?:knob|arch)|plaques?)',
        r'calcified (?:\w+ ){0,3}?(?:lymph )?nodes?',
        r'atheroscleros(?:is|tic(?: changes?| calcifications?| disease| plaques?)?)',
        r'atheromatous(?: changes?| calcifications?| disease)?']),
    ('tortuous_aorta', [
        r'tortu(?:ous|osity)(?: of the)?(?: thoracic| descending)? aort(?:a|ic arch|ic knob)',
        r'aort(?:a|ic arch|ic knob) (?:is|appears?|remains?) (?:\w+ )?'
        r'(?:tortuous|ectatic|unfolded|dilated|enlarged)',
        r'(?:tortuous|ectatic|unfolded|dilated|enlarged) (?:thoracic |descending )?'
        r'aort(?:a|ic arch|ic knob)',
        r'aortic (?:ectasia|tortuosity|aneurysm|dilatation|dilation|enlargement|unfolding)',
        r'tortuosity']),
    ('degenerative_changes', [
        r'degenerative (?:\w+ )?(?:changes?|disease|spurring|arthritis|arthropathy)',
        r'spondylos(?:is|es)', r'osteophytes?', r'osteophytic(?: changes?)?',
        r'osteoarthrit(?:is|ic(?: changes?)?)', r'djd', r'arthritis', r'arthritic changes?',
        r'spurring']),
    ('scoliosis', [r'(?:dextro|levo)?scolios(?:is|es)', r'(?:dextro|levo)?scoliotic(?: curvature)?',
                   r'(?:dextro|levo)convex curvature']),
    ('kyphosis', [r'kyphos(?:is|es)', r'kyphotic']),
    ('elevated_hemidiaphragm', [
        r'elevat(?:ed|ion of the) (?:\w+ )?hemidiaphragms?',
        r'hemidiaphragm (?:is|remains?|appears?) (?:\w+ )?elevated', r'eventration']),
    ('bronchiectasis', [r'bronchiectas(?:is|es|tic(?: changes?)?)']),
    ('cavitation', [r'cavit(?:y|ies|ary (?:lesions?|mass|nodule)|ation)']),
    ('lymphadenopathy', [r'(?:lymph)?adenopathy', r'lymph node enlargement',
                         r'enlarged (?:hilar |mediastinal )?lymph nodes?']),
    ('hilar_enlargement', [
        r'hil(?:ar|a|um) (?:prominence|enlargement|fullness)',
        r'(?:prominent|enlarged|full|bulky) (?:hila|hilum|hilar (?:shadows?|regions?|contours?))',
        r'hil(?:a|um) (?:is|are|appears?) (?:\w+ )?(?:prominent|enlarged|full)']),
    ('pneumomediastinum', [r'pneumomediastinum']),
    ('low_lung_volumes', [r'(?:low|decreased|diminished|reduced) lung volumes?',
                          r'lung volumes (?:are|remain) (?:\w+ )?'
                          r'(?:low|decreased|diminished|reduced)',
                          r'hypoinflat(?:ion|ed)', r'(?:poor|shallow) inspiration',
                          r'bronchovascular crowding']),
    ('cardiac_chamber_enlargement', [
        r'(?:left|right) (?:atrial|ventricular) (?:enlargement|prominence|hypertrophy)',
        r'enlarged (?:left|right) (?:atrium|ventricle)']),
    ('pneumoperitoneum', [r'pneumoperitoneum',
                          r'free (?:intraperitoneal |subdiaphragmatic |abdominal )?air']),
    ('osteopenia', [r'osteopeni(?:a|c)', r'demineraliz(?:ation|ed)', r'osteoporo(?:sis|tic)']),
    ('deformity', [r'(?:compression|wedge|wedging)(?: deformit(?:y|ies))?', r'deformit(?:y|ies)',
                   r'loss of (?:vertebral )?(?:body )?height']),
    ('pulmonary_hypertension', [
        r'pulmonary (?:arterial )?hypertension',
        r'enlarged (?:central )?pulmonary arter(?:y|ies)',
        r'pulmonary arter(?:y|ies) (?:are|is|appears?) (?:\w+ )?(?:enlarged|prominent|dilated)']),
])

#: Devices, lines and surgical material (kind='device', dropped by default).
DEVICE_PATTERNS = OrderedDict([
    ('endotracheal_tube', [r'endotracheal tubes?', r'et tubes?', r'ett',
                           r'tracheostomy(?: tubes?)?', r'trach tubes?']),
    ('enteric_tube', [r'(?:nasogastric|orogastric|enteric|feeding|dobhoff|ng|og|gastric|'
                      r'nasoenteric) tubes?', r'dobhoff']),
    ('chest_tube', [r'chest tubes?', r'thoracostomy tubes?', r'pleural (?:drain|catheter|tube)s?',
                    r'pigtail(?: catheters?| drains?)?']),
    ('vascular_catheter', [
        r'(?:central venous|central|venous|dialysis|hemodialysis|subclavian|jugular|ij|picc|'
        r'swan-?ganz|pulmonary artery|arterial|midline|port) (?:catheters?|lines?)',
        r'picc', r'port-?a-?cath', r'(?:chest wall |subcutaneous |infusion )?port',
        r'swan-?ganz', r'catheters?']),
    ('cardiac_device', [
        r'pacemakers?', r'pacer(?: leads?| wires?| generator)?',
        r'(?:aicd|icd|defibrillator)(?: leads?| generator)?', r'loop recorder',
        r'(?:transvenous|pacing|pacemaker|cardiac) (?:leads?|wires?)',
        r'(?:prosthetic|mechanical|artificial|bioprosthetic) (?:\w+ )?valves?',
        r'valve (?:replacement|prosthesis)', r'lvad', r'ventricular assist device', r'impella']),
    ('surgical_material', [
        r'(?:median )?sternotomy(?: wires?| sutures?)?', r'sternal (?:wires?|sutures?|cerclage)',
        r'(?:surgical|vascular|cholecystectomy|axillary|embolization) clips?', r'clips',
        r'(?:surgical |skin )?staples', r'sutures?(?: material)?',
        r'(?:orthopedic |spinal |fixation |surgical |postsurgical )?hardware',
        r'(?:fixation )?(?:plates?|screws?|rods?)', r'stents?', r'coils?', r'cabg',
        r'post-?(?:surgical|operative) changes?', r'(?:breast )?implants?', r'prosthes(?:is|es)',
        r'wires?', r'(?:ekg|ecg|monitoring|telemetry) (?:leads|wires|electrodes|pads)',
        r'electrodes?', r'tubes?', r'drains?',
        r'(?:vagal |vagus |spinal |nerve |neuro)*stimulators?',
        r'(?:cardiac |external |telemetry )?monitor(?:ing)? (?:leads|wires|electrodes)',
        r'(?:closure|electronic|medical|cardiac|implanted|implantable) devices?',
        r'(?:vertebro|kypho)plast(?:y|ies)',
        r'tip (?:projects|projecting|overlies|overlying|terminates|terminating|approximat\w+|'
        r'(?:is|lies) (?:in|at|within|projecting|overlying))']),
])

#: Spans masked before matching findings (look like findings, are not).
FALSE_POSITIVE_PATTERNS = [
    r'bone (?:mineral )?densit(?:y|ies)', r'breast (?:tissue )?densit(?:y|ies)',
    r'soft tissue densit(?:y|ies) of the breasts?', r'nipple shadows?',
    r'normal (?:lung )?densit(?:y|ies)', r'no (?:acute )?cardiopulmonary (?:disease|process)',
    r'heart size (?:is )?(?:within )?(?:the )?upper limits? of normal',
]

# --------------------------------------------------------------------------- triggers
#: Uncertainty before the finding ("possible pneumonia", "cannot exclude effusion").
UNCERTAIN_PRE = [
    r'cannot be entirely excluded', r'cannot (?:entirely |completely )?(?:exclude|rule out)',
    r'can ?not (?:exclude|rule out)', r"can't (?:exclude|rule out)",
    r'difficult to (?:exclude|rule out)',
    r'not (?:entirely |completely )?(?:exclude|excluded|ruled out)', r'possibility of',
    r'possible', r'possibly', r'probable', r'probably', r'likely', r'presumed', r'presumably',
    r'(?:may|might|could|possibly|probably|likely) (?:be )?(?:due to|related to|secondary to)',
    r'may (?:represent|reflect|indicate|be)',
    r'might (?:represent|reflect|indicate|be)', r'could (?:represent|reflect|indicate|be)',
    r'suggest(?:s|ing|ive of)?', r'suspicious for', r'suspicion (?:for|of)', r'suspect(?:ed)?',
    r'concerning for', r'concern for', r'worrisome for', r'questionable', r'question of',
    r'differential (?:diagnosis )?(?:includes?|considerations? includes?)?', r'versus', r'vs',
    r'borderline', r'equivocal', r'indeterminate', r'favou?r(?:ed|s)?', r'(?:to )?rule out',
    r'r/o', r'evaluat(?:e|ion) for', r'assess(?:ment)? for', r'raising the possibility of',
    r'may', r'might',
    ]
#: Uncertainty after the finding ("effusion is not excluded").
UNCERTAIN_POST = [
    r'(?:is|are) not (?:entirely |completely )?excluded', r'not (?:entirely )?excluded',
    r'can ?not be (?:entirely |completely )?(?:excluded|ruled out)',
    r'could not be (?:excluded|ruled out)', r'not (?:be )?ruled out',
    r'(?:is|are) (?:possible|suspected|questioned|likely|probable|favou?red|a possibility)',
    r'(?:could|may|might) be present', r'versus', r'vs', r'not (?:be )?excluded']
#: Negation before the finding, wide scope ("no pleural effusion or pneumothorax").
NEGATION_PRE = [
    r'no evidence of', r'no signs? of', r'no radiographic (?:evidence|signs?) of',
    r'negative for', r'free of', r'absence of', r'lack of', r'resolution of',
    r'interval (?:resolution|removal) of', r'clearing of', r'removal of', r'no longer',
    r'clear of', r'cleared of',
    r'without', r'no', r'not', r'neither', r'nor', r'never', r'resolved']
#: Negation before the finding, narrow scope ("normal interstitial markings").
NEGATION_PRE_SHORT = [r'normal', r'unremarkable']
#: Negation after the finding ("pneumothorax is not seen").
NEGATION_POST = [
    r'(?:is|are|was|were) not (?:definitely |clearly |well )?(?:seen|identified|visualized|present|'
    r'appreciated|evident|demonstrated|detected|noted|visible|apparent)',
    r'not (?:definitely |clearly )?(?:seen|identified|visualized|present|appreciated|evident|'
    r'demonstrated|detected|noted|visible|apparent)',
    r'(?:is|are|was|were|has|have)? ?(?:been )?(?:resolved|cleared|removed)',
    r'(?:has|have) (?:since )?(?:resolved|cleared)', r'(?:is|are) (?:absent|gone)',
    r'no longer (?:seen|present|visualized|identified|evident|visible)',
    r'(?:has|have) been (?:excluded|ruled out)', r'ruled out', r'unlikely',
    r'(?:is|are) (?:normal|unremarkable)', r'within normal limits', r'normal in (?:size|caliber)',
    r'absent']
#: Phrases that contain a negation word but negate nothing ("no change", "not only").
PSEUDO_NEGATION = [
    r'no (?:significant |appreciable |substantial |definite )?(?:interval )?(?:change|increase|'
    r'decrease|worsening|improvement|progression)',
    r'not (?:significantly |substantially )?(?:changed|increased|decreased)',
    r'without (?:significant |appreciable )?(?:interval )?change', r'not only', r'no new',
    r'gram negative', r'no other', r'to (?:suggest|indicate|represent)']
#: Words that end a trigger's scope.
TERMINATION = [
    r'but', r'however', r'although', r'though', r'yet', r'aside from', r'apart from', r'except',
    r'with the exception of', r'other than', r'which', r'whereas', r'while', r'because',
    r'secondary to', r'due to', r'there (?:is|are|has been|have been)',
    r'(?:is|are) (?:again |still |now |also )?(?:present|seen|noted|identified|demonstrated|'
    r'visualized|evident|redemonstrated)', r'remains?', r'persists?', r'consistent with',
    r'compatible with', r'represents?', r'suggesting', r':']

# ----------------------------------------------------------------- phrase construction
#: Words that may precede a finding inside its phrase ("small left", "mild", "right basilar").
MODIFIER_WORDS = [
    'small', 'smaller', 'tiny', 'trace', 'minimal', 'minimally', 'minor', 'mild', 'mildly',
    'moderate', 'moderately', 'large', 'larger', 'severe', 'severely', 'marked', 'markedly',
    'massive', 'extensive', 'significant', 'slight', 'slightly', 'subtle', 'faint', 'focal',
    'patchy', 'diffuse', 'scattered', 'multifocal', 'multiple', 'few', 'several', 'numerous',
    'streaky', 'linear', 'plate-like', 'platelike', 'plate', 'discoid', 'subsegmental',
    'segmental', 'lobar', 'bibasilar', 'basilar', 'bibasal', 'basal', 'apical', 'biapical',
    'perihilar', 'hilar', 'peripheral', 'central', 'retrocardiac', 'lingular', 'interstitial',
    'alveolar', 'airspace', 'air-space', 'reticular', 'reticulonodular', 'nodular', 'calcified',
    'noncalcified', 'non-calcified', 'granulomatous', 'chronic', 'old', 'healed', 'healing',
    'acute', 'subacute', 'loculated', 'layering', 'dependent', 'bilateral', 'left', 'right',
    'left-sided', 'right-sided', 'upper', 'mid', 'middle', 'lower', 'lobe', 'lung', 'pleural',
    'pulmonary', 'hiatal', 'hiatus', 'paraesophageal', 'sliding', 'underlying', 'residual',
    'borderline', 'thoracic', 'thoracolumbar', 'lumbar', 'cervical', 'spinal', 'vertebral',
    'rib', 'posterior', 'anterior', 'lateral', 'medial', 'ill-defined', 'well-defined',
    'rounded', 'round', 'irregular', 'spiculated', 'cavitary', 'ground-glass', 'hazy',
    'confluent', 'dense', 'coarse', 'coarsened', 'fine', 'prominent', 'degenerative',
    'dextroconvex', 'levoconvex', 's-shaped', 'compression', 'wedge', 'aspiration',
    'pneumonic', 'infectious', 'vascular', 'cardiac', 'venous', 'bony', 'osseous',
    'cardiomediastinal', 'mediastinal', 'hilar', 'pericardial', 'costophrenic', 'hemi',
    'to', 'and', 'cm', 'mm', 'x', 'mild-to-moderate', 'small-to-moderate',
    'moderate-to-large', 'upper-lobe', 'lower-lobe', 'basilar-predominant', 'increased',
    'prominent', 'apparent', 'minimal', 'biapical', 'thickened', 'sclerotic', 'lucent',
    'emphysematous', 'atelectatic', 'bronchovascular', 'endotracheal', 'nasogastric', 'enteric',
    'feeding', 'central', 'venous', 'dual-lead', 'dual', 'single', 'lead', 'transvenous',
    'median', 'sternal', 'surgical', 'postsurgical', 'postoperative', 'orthopedic', 'fixation',
    'right-sided', 'left-sided', 'chest', 'wall', 'subclavian', 'jugular', 'internal',
    'external', 'catheter', 'cardiac', 'thoracic', 'descending', 'ascending', 'aortic',
]
#: Temporal / comparison words (kept inside phrases only when ``keep_comparisons``).
TEMPORAL_WORDS = [
    'stable', 'stably', 'unchanged', 'persistent', 'persisting', 'new', 'newly', 'increasing',
    'decreased', 'decreasing', 'improved', 'improving', 'worsened', 'worsening', 'enlarging',
    'redemonstrated', 'recurrent', 'interval', 'again', 'previously', 'known', 're-demonstrated',
    'developing', 'progressive', 'progressing', 'similar', 'resolving']
#: Location words allowed after a finding ("atelectasis at the left base").
LOCATION_WORDS = [
    'left', 'right', 'bilateral', 'bilaterally', 'both', 'upper', 'middle', 'mid', 'lower',
    'lobe', 'lobes', 'lung', 'lungs', 'base', 'bases', 'apex', 'apices', 'apical', 'lingula',
    'hemithorax', 'hemithoraces', 'hila', 'hilum', 'hilar', 'perihilar', 'midlung', 'zone',
    'zones', 'field', 'fields', 'costophrenic', 'angle', 'angles', 'retrocardiac', 'region',
    'regions', 'lateral', 'medial', 'posterior', 'anterior', 'basilar', 'chest', 'thorax',
    'rib', 'ribs', 'clavicle', 'clavicles', 'spine', 'thoracic', 'lumbar', 'thoracolumbar',
    'humerus', 'humeral', 'shoulder', 'shoulders', 'scapula', 'sternum', 'vertebra',
    'vertebrae', 'vertebral', 'body', 'bodies', 'neck', 'head', 'superior', 'inferior',
    'mediastinum', 'aspect', 'aspects', 'portion', 'portions', 'segment', 'lingular', 'side',
    'hemidiaphragm', 'diaphragm', 'fissure', 'minor', 'major', 'axilla', 'axillary',
    'first', 'second', 'third', 'fourth', 'fifth', 'sixth', 'seventh', 'eighth', 'ninth',
    'tenth', 'eleventh', 'twelfth', 'and', 'of', 'the', 'greater', 'lesser',
    'tuberosity', 'glenohumeral', 'acromioclavicular', 'ac', 'joint', 'joints', 'distal',
    'proximal', 'lobar', 'subpleural', 'peripheral', 'central', 'abdomen', 'quadrant',
    'descending', 'ascending', 'aorta', 'aortic', 'arch', 'knob', 'endplate', 'endplates',
]
#: Words that name a location (used for the ``location`` field and de-duplication).
LOCATION_FIELD_WORDS = [
    'left', 'right', 'bilateral', 'bilaterally', 'both', 'upper', 'middle', 'mid', 'lower',
    'lobe', 'base', 'bases', 'basilar', 'bibasilar', 'apex', 'apices', 'apical', 'biapical',
    'lingula', 'lingular', 'perihilar', 'hilar', 'retrocardiac', 'midlung', 'lateral', 'medial',
    'posterior', 'anterior', 'rib', 'ribs', 'clavicle', 'spine', 'thoracic', 'lumbar',
    'humerus', 'shoulder', 'hemithorax', 'costophrenic', 'subpleural', 'peripheral',
]
#: Prepositions that may introduce a location after a finding.
LOCATION_PREPOSITIONS = [
    r'in', r'at', r'of', r'within', r'involving', r'along', r'over', r'overlying',
    r'projecting over', r'at the level of', r'adjacent to', r'near', r'on', r'from']

#: Sentence-level comparison statements ("no interval change", "improved aeration").
COMPARISON_TERMS = [
    r'unchanged', r'stable', r'improved', r'improving', r'improvement', r'worsened',
    r'worsening', r'increased', r'decreased', r'(?:no|without) (?:significant |appreciable )?'
    r'(?:interval )?change', r'similar (?:to|in appearance)', r'compared (?:to|with)',
    r'since (?:the )?(?:prior|previous|last)', r'interval (?:change|improvement|worsening|'
    r'increase|decrease|progression)', r'redemonstrated', r'again (?:seen|noted|demonstrated)']

#: Section headers (case-insensitive, followed by a colon) and which ones are read.
SECTION_NAMES = {
    'findings': 'findings', 'finding': 'findings', 'impression': 'impression',
    'impressions': 'impression', 'conclusion': 'conclusion', 'conclusions': 'conclusion',
    'opinion': 'opinion', 'summary': 'summary', 'addendum': 'addendum',
    'indication': 'indication', 'indications': 'indication', 'history': 'history',
    'clinical history': 'history', 'clinical information': 'history',
    'clinical indication': 'indication', 'reason for exam': 'indication',
    'reason for examination': 'indication', 'reason for study': 'indication',
    'comparison': 'comparison', 'comparisons': 'comparison', 'technique': 'technique',
    'examination': 'examination', 'exam': 'examination', 'procedure': 'technique',
    'recommendation': 'recommendation', 'recommendations': 'recommendation',
    'notification': 'notification', 'wet read': 'wet_read', 'final report': 'header',
}
#: Sections read by default (text before the first header is read only when no header).
DEFAULT_KEEP_SECTIONS = ('findings', 'impression', 'conclusion', 'opinion', 'summary',
                         'addendum')

#: Side words -> the sides they state (verification of LLM phrases compares these between a
#: phrase and the report sentence it matched; ``bilateral`` states both sides).
LATERALITY_WORDS = {
    'left': ('left',), 'left-sided': ('left',), 'right': ('right',), 'right-sided': ('right',),
    'bilateral': ('left', 'right'), 'bilaterally': ('left', 'right'),
    'both': ('left', 'right'), 'bibasilar': ('left', 'right'), 'bibasal': ('left', 'right'),
    'biapical': ('left', 'right'),
}
