# GLoRIA at demo scale on the shared demo image encoder (configs/_base_/models/encoders_demo.py,
# the tiny ViT from scratch that CLIP, MGCA and LGDEA use): patch tokens = regions (8x8 at
# 64 px, patch 8), CLS = global. Text side: the shared frozen MiniLM with the official
# emb_local / emb_global projection hooks (bias-free, 128-d joint space), as gloria_demo.py.
#
# One departure from the defaults (projects/gloria/README.md, "Demo on the shared ViT"):
# train_caption_section='impression' -- the one random training sentence is drawn from the
# report's IMPRESSION section, as the official model trained on the CheXpert impression
# column. From the whole synthetic report (6.8 sentences on average, mostly negations and
# boilerplate such as "no pneumothorax", "pa and lateral views of the chest") the sentence
# rarely names a finding, and the image embeddings collapsed (mean pairwise cosine 0.996 by
# step 50, both losses at chance, P@1 20.0). Losses, temperatures (tau1, tau2, tau3 = 4, 5, 10,
# fixed), weights, learning rate and schedule are the official / shared ones.
_base_ = ['../../../../../configs/_base_/models/encoders_demo.py', './gloria_demo.py']
model = dict(
    image_encoder=dict(
        _delete_=True,
        type='GLoRIAImageEncoder',
        embed_dims=128,
        input_size=None,
        backbone=_base_.demo_image_encoder.backbone),
    text_encoder=dict(encoder=dict(_delete_=True, **_base_.demo_text_encoder)),
    train_caption_section='impression',
)
