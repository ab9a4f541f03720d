# The demo-scale encoders, defined once and inherited by every method's demo model config
# (CLIP, CLIP on evidence, LGDEA, MGCA), so a head-to-head cannot drift apart: a tiny ViT from
# scratch (64 px, patch 8) and the offline pretrained MiniLM, frozen (mean pooling, the way it
# was trained), run in bf16 where the device computes it natively.
demo_image_encoder = dict(
    type='CXRImageEncoder',
    backbone=dict(type='mmpretrain.VisionTransformer',
                  arch=dict(embed_dims=128, num_layers=4, num_heads=4, feedforward_channels=256),
                  img_size=64, patch_size=8, in_channels=1, out_type='raw'))
demo_text_encoder = dict(type='HFTextEncoder', name_or_path='builtin:all-MiniLM-L6-v2',
                         pooling='mean', freeze=True, frozen_precision='auto')
