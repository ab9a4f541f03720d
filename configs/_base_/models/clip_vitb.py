# CLIP / ConVIRT global contrastive baseline: ViT-B/16 + clinical BERT (paper setting).
# Both starting weights are local paths (no hub downloads); the run stops with a clear error
# when a path is missing.
_base_ = ['./encoders_vitb.py']

model = dict(
    type='CLIPBaseline',
    image_encoder=_base_.vitb_image_encoder,
    text_encoder=_base_.clinical_text_encoder,
    embed_dims=256,
    max_text_length=112,
    data_preprocessor=dict(type='VLDataPreprocessor', mean=[127.5], std=[127.5], channels=3),
)
