# LGDEA with ViT-B/16 and a clinical BERT (paper setting): K = 64 prototypes, L = 64 lesion
# queries, d = 256. Both starting weights are local paths; a missing one stops the run.
_base_ = ['./encoders_vitb.py']
num_prototypes = 64
num_queries = 64

model = dict(
    type='LGDEA',
    image_encoder=_base_.vitb_image_encoder,
    text_encoder=_base_.clinical_text_encoder,
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
