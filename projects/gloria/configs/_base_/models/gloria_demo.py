# GLoRIA at demo scale (synthetic benchmark, 64 px, 2 CPU cores). Image side: the tiny ViT of
# the CLIP demo (configs/_base_/models/clip_demo.py), from scratch: patch tokens on the 8x8
# grid are the regions, CLS the global feature, so the demo comparison with CLIP changes the
# objective only (a tiny ResNet-18 with an 8x8 layer3 grid costs about twice as much here).
# Text side: the offline pretrained MiniLM, frozen, with the official emb_local / emb_global
# projection hooks switched on (128-d joint space).
model = dict(
    type='GLoRIA',
    image_encoder=dict(
        type='GLoRIAImageEncoder',
        embed_dims=128,
        input_size=None,
        backbone=dict(type='mmpretrain.VisionTransformer',
                      arch=dict(embed_dims=128, num_layers=4, num_heads=4,
                                feedforward_channels=256),
                      img_size=64, patch_size=8, in_channels=1, out_type='raw')),
    text_encoder=dict(
        type='GLoRIATextEncoder',
        last_n_layers=4,
        embed_dims=128,
        encoder=dict(type='HFTextEncoder', name_or_path='builtin:all-MiniLM-L6-v2',
                     freeze=True)),
    variant='official',
    max_text_length=97,
    max_phrase_length=97,
    data_preprocessor=dict(type='VLDataPreprocessor', mean=[127.5], std=[127.5]),
)
