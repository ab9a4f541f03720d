# MGCA at demo scale (synthetic benchmark): the CLIP demo's tiny ViT from scratch (64 px,
# patch 8 -> 8 x 8 patches) and the offline pretrained MiniLM, frozen as in the CLIP demo, so
# that the two baselines differ only in their objective. MiniLM was trained with mean pooling,
# so its mean-pooled feature is the report feature (the paper configs use [CLS], as the
# official code). Attention weights are used (word weights), hence the eager attention.
#
# Demo-size departure: the four projection heads use a 512-wide hidden layer instead of 2048
# (the image tokens are 128-wide); every loss, temperature and weight is the official one.
_base_ = ['../../../../../configs/_base_/models/encoders_demo.py']
model = dict(
    type='MGCA',
    image_encoder=_base_.demo_image_encoder,
    text_encoder=dict(_base_.demo_text_encoder, attn_implementation='eager'),
    embed_dims=128,
    hidden_dims=512,
    # official launcher weights 1 / 1 / 1; the official class defaults are
    # loss_weights=dict(ita=1.0, tca=0.7, cpa=0.5)
    loss_weights=dict(ita=1.0, tca=1.0, cpa=1.0),
    ita_loss=dict(type='ContrastiveLoss', direction_reduction='sum'),
    gather_ita=False,
    tca_loss=dict(type='TokenAlignmentLoss', temperature=0.1, bidirectional=True),
    cpa_loss=dict(type='PrototypeAlignmentLoss', num_prototypes=500, temperature=0.2,
                  epsilon=0.05, sinkhorn_iterations=3),
    max_text_length=96,
    data_preprocessor=dict(type='VLDataPreprocessor', mean=[127.5], std=[127.5]),
)
