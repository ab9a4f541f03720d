# CLIP at 5% pairing trained on the extracted evidence phrases as its text: the control arm
# that separates the evidence extractor's contribution from LGDEA's (docs/design_lessons.md, lesson 2).
# Use the same extractor as the LGDEA run it is compared with (`evidence` of the dataset base).
_base_ = ['./clip_vitb_p5.py']
train_dataloader = dict(dataset=dict(evidence={{_base_.evidence}}))
model = dict(text_source='evidence', max_phrase_length=32)
