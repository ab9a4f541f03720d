# CLIP / ConVIRT global contrastive baseline: ViT-B/16 + clinical BERT (paper setting).
# Both starting weights are local paths (no hub downloads); the run stops with a clear error
# when a path is missing.
vit_checkpoint = 'pretrained/vit-base-p16_in21k-pre_in1k_mmpretrain.pth'
text_model_path = 'pretrained/Bio_ClinicalBERT'

model = dict(
    type='CLIPBaseline',
    image_encoder=dict(
        type='CXRImageEncoder',
        checkpoint=vit_checkpoint,
        backbone=dict(type='mmpretrain.VisionTransformer', arch='b', img_size=224,
                      patch_size=16, in_channels=3, out_type='raw', drop_path_rate=0.1)),
    text_encoder=dict(type='HFTextEncoder', name_or_path=text_model_path, pooling='cls'),
    embed_dims=256,
    max_text_length=112,
    data_preprocessor=dict(type='VLDataPreprocessor', mean=[127.5], std=[127.5], channels=3),
)
