# CLIP baseline at demo scale: the shared demo encoders (tiny ViT from scratch, frozen
# pretrained MiniLM) + a trainable MLP head on the text side.
_base_ = ['./encoders_demo.py']
model = dict(
    type='CLIPBaseline',
    image_encoder=_base_.demo_image_encoder,
    text_encoder=_base_.demo_text_encoder,
    embed_dims=128,
    projection='mlp',
    max_text_length=96,
    data_preprocessor=dict(type='VLDataPreprocessor', mean=[127.5], std=[127.5]),
)
