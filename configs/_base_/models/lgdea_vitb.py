# LGDEA with ViT-B/16 and a clinical BERT (paper setting): K = 64 prototypes, L = 64 lesion
# queries, d = 256. Both starting weights are local paths; a missing one stops the run.
vit_checkpoint = 'pretrained/vit-base-p16_in21k-pre_in1k_mmpretrain.pth'
text_model_path = 'pretrained/Bio_ClinicalBERT'
num_prototypes = 64
num_queries = 64

model = dict(
    type='LGDEA',
    image_encoder=dict(
        type='CXRImageEncoder',
        checkpoint=vit_checkpoint,
        backbone=dict(type='mmpretrain.VisionTransformer', arch='b', img_size=224,
                      patch_size=16, in_channels=3, out_type='raw', drop_path_rate=0.1)),
    text_encoder=dict(type='HFTextEncoder', name_or_path=text_model_path, pooling='cls'),
    neck=dict(type='LesionQueryNeck', num_queries=num_queries, num_layers=1, num_heads=8),
    head=dict(type='DiagnosticPrototypeHead', num_prototypes=num_prototypes, tau_t=0.1,
              tau_p=0.1,
              loss=dict(type='PrototypeReconstructionLoss', lambda_mu=1.0, loss_weight=1.0)),
    propagation=dict(type='EvidencePropagation', steps=2, tau_g=0.1, min_mass=1e-3),
    # one module per term (Eq. 9-12); the phase table switches terms, weights only scale
    paired_loss=dict(type='PairedEvidenceLoss', loss_weight=1.0),
    lesion_loss=dict(type='LesionConsistencyLoss', knn_k=5, tau_w=0.1, loss_weight=1.0),
    align_loss=dict(type='EvidenceAlignmentLoss', tau_2=0.07, loss_weight=1.0),
    embed_dims=256,
    max_phrases=8,
    max_phrase_length=32,
    data_preprocessor=dict(type='VLDataPreprocessor', mean=[127.5], std=[127.5], channels=3),
)
