_base_ = ['./clip_demo_p100.py']
# CLIP on the extracted evidence phrases at 100% pairing: the upper bound of the evidence text
# (every study paired). With clip_evidence_demo_p5.py it measures the headroom that unpaired
# data could close at 5% pairing (docs/benchmark.md, "Unpaired data").
train_dataloader = dict(dataset=dict(evidence={{_base_.evidence}}))
model = dict(text_source='evidence', max_phrase_length=32)
