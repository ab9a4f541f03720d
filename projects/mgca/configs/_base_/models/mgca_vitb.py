# MGCA, ViT-B/16 (official default, docs/baselines.md 2.3). Both starting weights are local files
# (no hub downloads); a missing path stops the run with a clear error.
#
# - Image: ViT-B/16 from DeiT-B/16 (deit_base_patch16_224-b5f2ef4d.pth, as the official code);
#   convert the timm file once with
#     python tools/convert_official_ckpt.py timm_vit deit_base_patch16_224-b5f2ef4d.pth \
#         pretrained/deit-base-p16_mmpretrain.pth
# - Text: Bio_ClinicalBERT truncated to its first 6 layers (official bert_config.json),
#   report feature = [CLS], eager attention (the word weights are [CLS] attentions).
vit_checkpoint = 'pretrained/deit-base-p16_mmpretrain.pth'
text_model_path = 'pretrained/Bio_ClinicalBERT'

model = dict(
    type='MGCA',
    image_encoder=dict(
        type='CXRImageEncoder',
        checkpoint=vit_checkpoint,
        backbone=dict(type='mmpretrain.VisionTransformer', arch='b', img_size=224,
                      patch_size=16, in_channels=3, out_type='raw', drop_path_rate=0.0)),
    text_encoder=dict(type='HFTextEncoder', name_or_path=text_model_path, pooling='cls',
                      num_layers=6, attn_implementation='eager'),
    embed_dims=128,
    hidden_dims=2048,
    # Loss weights: the official launcher (cli_main, argparse defaults) trains with 1 / 1 / 1,
    # the default here. The official MGCA class defaults are lambda_1 / lambda_2 / lambda_3 =
    # 1 / 0.7 / 0.5: loss_weights=dict(ita=1.0, tca=0.7, cpa=0.5).
    loss_weights=dict(ita=1.0, tca=1.0, cpa=1.0),
    # ITA: tau 0.07, sum of both directions, no cross-rank gather (official); gather_ita=True
    # is the open_clip-style option.
    ita_temperature=0.07,
    ita_loss=dict(type='ContrastiveLoss', direction_reduction='sum'),
    gather_ita=False,
    tca_loss=dict(type='TokenAlignmentLoss', temperature=0.1, bidirectional=True),
    cpa_loss=dict(type='PrototypeAlignmentLoss', num_prototypes=500, temperature=0.2,
                  epsilon=0.05, sinkhorn_iterations=3, distributed_sinkhorn=False),
    patch_weights='auto',             # ViT: last-block [CLS] attention, clipped 10-90 %
    normalize_patch_context='auto',   # official quirk: only for CNN encoders
    clip_percentiles=(0.1, 0.9),
    word_attention_shift=True,        # official off-by-one (docs/baselines.md 2.3)
    text_padding='max_length',
    max_text_length=112,
    # images: (x / 255 - 0.5) / 0.5, grayscale repeated to 3 channels (official)
    data_preprocessor=dict(type='VLDataPreprocessor', mean=[127.5], std=[127.5], channels=3),
)
