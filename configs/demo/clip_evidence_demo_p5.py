_base_ = ['./clip_demo_p5.py']
# The control arm of the head-to-head benchmark (docs/design_lessons.md, lesson 2): CLIP at 5% pairing
# whose text is the report's extracted evidence phrases (mean of the phrase embeddings) instead
# of the report. It separates what the evidence extractor contributes from what LGDEA adds.
train_dataloader = dict(dataset=dict(evidence={{_base_.evidence}}))
model = dict(text_source='evidence', max_phrase_length=32)
