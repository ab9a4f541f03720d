# LGDEA at demo scale: the shared demo encoders (the same as every demo method).
_base_ = ['./encoders_demo.py']
model = dict(
    type='LGDEA',
    image_encoder=_base_.demo_image_encoder,
    text_encoder=_base_.demo_text_encoder,
    # explicit attention: the demo's measured results (README, docs/benchmark.md) were trained
    # with it, and on the CPU the fused SDPA path is no faster (benchmarks/README.md); SDPA
    # (the neck's default) rounds differently, so a run would not reproduce them bit for bit
    neck=dict(type='LesionQueryNeck', num_queries=16, num_layers=1, num_heads=4,
              attention_impl='explicit'),
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
