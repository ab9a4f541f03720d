# MGCA, ResNet-50 (docs/baselines.md 2.3): input upsampled to 299, local = layer3 (19 x 19 x 1024),
# global = pooled layer4 (2048); uniform patch weights and an L2-normalised patch-side word
# context (both chosen automatically for a CNN encoder, as the official code does).
_base_ = ['./mgca_vitb.py']
resnet_checkpoint = 'pretrained/resnet50_torchvision.pth'  # torchvision ImageNet weights
model = dict(
    image_encoder=dict(
        _delete_=True,
        type='CNNLocalGlobalEncoder',
        backbone=dict(type='mmpretrain.ResNet', depth=50),
        local_stage=2, global_stage=3, input_size=(299, 299),
        checkpoint=resnet_checkpoint))
