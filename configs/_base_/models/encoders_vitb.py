# The paper-scale encoders shared by the CLIP and LGDEA paper configs: ViT-B/16 and a clinical
# BERT. Both starting weights are local paths (no hub downloads); a missing path stops the run.
vit_checkpoint = 'pretrained/vit-base-p16_in21k-pre_in1k_mmpretrain.pth'
text_model_path = 'pretrained/Bio_ClinicalBERT'
vitb_image_encoder = dict(
    type='CXRImageEncoder',
    checkpoint=vit_checkpoint,
    backbone=dict(type='mmpretrain.VisionTransformer', arch='b', img_size=224, patch_size=16,
                  in_channels=3, out_type='raw', drop_path_rate=0.1))
clinical_text_encoder = dict(type='HFTextEncoder', name_or_path=text_model_path, pooling='cls')
