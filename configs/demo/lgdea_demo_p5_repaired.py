# LGDEA at 5% pairing with the repairs of docs/lgdea_departures.md (early measurements showed
# the paper-literal objective collapsing at demo scale: docs/design_lessons.md). Each repair
# is a config option; the paper-faithful demo is lgdea_demo_p5.py.
_base_ = ['./lgdea_demo_p5.py']
model = dict(
    # lesions compete for patches and carry only image content (no query residual)
    neck=dict(query_residual=False, attention_competition='slot', query_init_std=1.0),
    # L_rec does not pull the text projection onto the prototypes (text-side collapse)
    head=dict(detach_text=True),
    # propagated rows weighted by their mass; learnable alignment temperature (CLIP style)
    propagation=dict(row_weight='mass'),
    align_loss=dict(learnable_logit_scale=True),
)
