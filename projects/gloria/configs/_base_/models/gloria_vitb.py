# GLoRIA on LGDEA's backbone: ViT-B/16 (patch tokens = regions, CLS = global), same text side
# and losses as the official ResNet-50 model. No 299 upsampling (14x14 regions at 224).
_base_ = ['./gloria_r50.py']
vit_checkpoint = 'pretrained/vit-base-p16_in21k-pre_in1k_mmpretrain.pth'

model = dict(
    image_encoder=dict(
        _delete_=True,
        type='GLoRIAImageEncoder',
        checkpoint=vit_checkpoint,
        embed_dims=768,
        input_size=None,
        backbone=dict(type='mmpretrain.VisionTransformer', arch='b', img_size=224,
                      patch_size=16, in_channels=3, out_type='raw', drop_path_rate=0.1)))
