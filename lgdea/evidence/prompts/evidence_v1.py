"""Evidence extraction prompt, version 1 (Eq. 2: ``E(R) = LLM(R)``).

The few-shot reports below were written for this prompt (synthetic); they are not taken from
any dataset. Changing anything here changes the prompt hash and therefore the cache key.
"""
import json

SYSTEM = """You extract diagnostic evidence from chest X-ray radiology reports.

Return every abnormal finding that the report describes on the current image, one entry per
finding, in report order. Rules:
- "phrase": a short phrase (2 to 10 words) copied or minimally shortened from the report
  text, keeping severity, size and location words (e.g. "small left pleural effusion").
  Never add words or findings that the report does not contain.
- "finding": a normalised name in snake_case (e.g. pleural_effusion, cardiomegaly,
  atelectasis, consolidation, lung_opacity, edema, pneumonia, pneumothorax, nodule_mass).
- "location": anatomical location words if the report gives them, else null.
- "certainty": "positive" if asserted, "uncertain" if hedged ("cannot exclude",
  "may represent", "possible", "likely"), "negated" if the report says it is absent.
- "kind": "finding" for abnormalities; "device" for tubes, lines, catheters, pacemakers,
  sternotomy wires and other devices; "comparison" for statements that only describe change
  against a prior study ("no interval change", "improved aeration").
- Do not turn temporal words ("stable", "unchanged", "improved") into findings; a stable
  finding is still a finding, written without the temporal word.
- If the report has no abnormal finding, return {"findings": []}.
Answer with one JSON object and nothing else, matching this schema:
{"findings": [{"phrase": str, "finding": str|null, "location": str|null,
  "certainty": "positive"|"uncertain"|"negated", "kind": "finding"|"device"|"comparison"}]}"""

USER_TEMPLATE = 'Report:\n"""\n{report}\n"""\nReturn the JSON object.'


def _answer(findings):
    return json.dumps({'findings': findings}, separators=(', ', ': '))


EXAMPLES = [
    ("FINDINGS: Moderate enlargement of the cardiac silhouette. Small right pleural effusion "
     "with adjacent basilar atelectasis. No pneumothorax. Right internal jugular catheter "
     "ends in the upper SVC.\nIMPRESSION: Cardiomegaly with small right effusion.",
     _answer([
         dict(phrase='moderate enlargement of the cardiac silhouette', finding='cardiomegaly',
              location=None, certainty='positive', kind='finding'),
         dict(phrase='small right pleural effusion', finding='pleural_effusion',
              location='right', certainty='positive', kind='finding'),
         dict(phrase='right basilar atelectasis', finding='atelectasis', location='right base',
              certainty='positive', kind='finding'),
         dict(phrase='no pneumothorax', finding='pneumothorax', location=None,
              certainty='negated', kind='finding'),
         dict(phrase='right internal jugular catheter', finding='vascular_catheter',
              location='right', certainty='positive', kind='device'),
     ])),
    ("FINDINGS: Patchy opacity in the left lower lobe, which may represent early pneumonia. "
     "Heart size is normal. No interval change in the mild degenerative changes of the "
     "thoracic spine.\nIMPRESSION: Left lower lobe opacity, pneumonia cannot be excluded.",
     _answer([
         dict(phrase='patchy opacity in the left lower lobe', finding='lung_opacity',
              location='left lower lobe', certainty='positive', kind='finding'),
         dict(phrase='left lower lobe pneumonia', finding='pneumonia',
              location='left lower lobe', certainty='uncertain', kind='finding'),
         dict(phrase='mild degenerative changes of the thoracic spine',
              finding='degenerative_changes', location='thoracic spine',
              certainty='positive', kind='finding'),
     ])),
    ("FINDINGS: The lungs are clear. The cardiomediastinal silhouette is within normal limits. "
     "No pleural effusion or pneumothorax.\nIMPRESSION: No acute cardiopulmonary process.",
     _answer([])),
]
