# LGDEA at demo scale: the same tiny ViT and frozen MiniLM as the CLIP demo model.
model = dict(
    type='LGDEA',
    image_encoder=dict(
        type='CXRImageEncoder',
        backbone=dict(type='mmpretrain.VisionTransformer',
                      arch=dict(embed_dims=128, num_layers=4, num_heads=4,
                                feedforward_channels=256),
                      img_size=64, patch_size=8, in_channels=1, out_type='raw')),
    text_encoder=dict(type='HFTextEncoder', name_or_path='builtin:all-MiniLM-L6-v2',
                      pooling='mean', freeze=True, frozen_precision='auto'),
    neck=dict(type='LesionQueryNeck', num_queries=16, num_layers=1, num_heads=4),
    head=dict(type='DiagnosticPrototypeHead', num_prototypes=16),
    propagation=dict(type='EvidencePropagation', steps=2),
    # one module per term (Eq. 9-12); the phase table switches terms, weights only scale
    paired_loss=dict(type='PairedEvidenceLoss', loss_weight=1.0),
    lesion_loss=dict(type='LesionConsistencyLoss', knn_k=5, tau_w=0.1, loss_weight=1.0),
    align_loss=dict(type='EvidenceAlignmentLoss', tau_2=0.07, loss_weight=1.0),
    embed_dims=128,
    text_projection='mlp',
    max_phrases=8,
    max_phrase_length=32,
    data_preprocessor=dict(type='VLDataPreprocessor', mean=[127.5], std=[127.5]),
)
