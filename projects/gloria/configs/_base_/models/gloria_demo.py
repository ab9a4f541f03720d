# GLoRIA at demo scale (synthetic benchmark, 64 px, 2 CPU cores).
# Image side: a tiny ResNet-18 (16 base channels) from scratch, the official architecture
# family: layer3 gives the regions on an 8x8 grid at 64 px (strides (1, 2, 1, 2), the role
# of the official 299 upsampling), pooled layer4 the global feature. The demo benchmark runs
# GLoRIA on the shared demo ViT instead (gloria_demo_vit.py): there the image embeddings
# collapsed to one vector within 50 steps, but learning tau3 did not prevent it; the cause was
# the training caption (one random sentence of the whole report), see projects/gloria/README.md.
# Text side: the offline pretrained MiniLM, frozen, with the official emb_local / emb_global
# projection hooks switched on (bias-free, 128-d joint space).
model = dict(
    type='GLoRIA',
    image_encoder=dict(
        type='GLoRIAImageEncoder',
        embed_dims=128,
        input_size=None,
        backbone=dict(type='mmpretrain.ResNet', depth=18, base_channels=16, stem_channels=16,
                      strides=(1, 2, 1, 2), in_channels=1, out_indices=(2, 3))),
    text_encoder=dict(
        type='GLoRIATextEncoder',
        last_n_layers=4,
        embed_dims=128,
        encoder=dict(type='HFTextEncoder', name_or_path='builtin:all-MiniLM-L6-v2',
                     freeze=True, frozen_precision='auto')),
    variant='official',
    max_text_length=97,
    max_phrase_length=97,
    data_preprocessor=dict(type='VLDataPreprocessor', mean=[127.5], std=[127.5]),
)
