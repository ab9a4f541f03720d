# GLoRIA, official architecture (docs/baselines.md 1.3-1.5): torchvision-ImageNet ResNet-50,
# inputs upsampled to 299 (layer3 -> 19x19 regions, pooled layer4 -> global), 1x1-conv / linear
# projections to 768, Bio_ClinicalBERT (last 4 layers summed, word pieces summed into words,
# no text projection), tau1/tau2/tau3 = 4/5/10, loss weights 1/1.
# Both starting weights are local files (no hub downloads); a missing one stops the run.
r50_checkpoint = 'pretrained/resnet50-0676ba61.pth'  # torchvision IMAGENET1K_V1
text_model_path = 'pretrained/Bio_ClinicalBERT'

model = dict(
    type='GLoRIA',
    image_encoder=dict(
        type='GLoRIAImageEncoder',
        checkpoint=r50_checkpoint,
        embed_dims=768,
        input_size=299,
        backbone=dict(type='mmpretrain.ResNet', depth=50, in_channels=3, out_indices=(2, 3))),
    text_encoder=dict(
        type='GLoRIATextEncoder',
        last_n_layers=4,
        layer_aggregation='sum',
        embed_dims=None,
        encoder=dict(type='HFTextEncoder', name_or_path=text_model_path)),
    variant='official',  # 'clean' = the paper's formulas (single softmax, 1/tau2 power)
    temp1=4.0,
    temp2=5.0,
    temp3=10.0,
    global_loss_weight=1.0,
    local_loss_weight=1.0,
    train_caption='sentence',
    max_text_length=97,
    max_phrase_length=97,
    # images: uint8 -> (x - 127.5) / 127.5 (official norm 'half'), grey repeated to RGB
    data_preprocessor=dict(type='VLDataPreprocessor', mean=[127.5], std=[127.5], channels=3),
)
