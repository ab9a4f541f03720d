# CLIP baseline at demo scale: a tiny ViT from scratch and the offline pretrained MiniLM.
model = dict(
    type='CLIPBaseline',
    image_encoder=dict(
        type='CXRImageEncoder',
        backbone=dict(type='mmpretrain.VisionTransformer',
                      arch=dict(embed_dims=128, num_layers=4, num_heads=4,
                                feedforward_channels=256),
                      img_size=64, patch_size=8, in_channels=1, out_type='raw')),
    # frozen pretrained MiniLM + a trainable MLP head (fast on CPU; docs/design_lessons.md setting),
    # run in bf16 where the CPU/GPU computes it natively (2.1x faster report encoding)
    text_encoder=dict(type='HFTextEncoder', name_or_path='builtin:all-MiniLM-L6-v2',
                      pooling='mean', freeze=True, frozen_precision='auto'),
    embed_dims=128,
    projection='mlp',
    max_text_length=96,
    data_preprocessor=dict(type='VLDataPreprocessor', mean=[127.5], std=[127.5]),
)
