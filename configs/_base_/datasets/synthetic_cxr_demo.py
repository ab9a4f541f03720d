# The embedded synthetic CXR benchmark (docs/synthetic_benchmark.md): generated from a seed
# and cached under `data/synthetic_cxr`. Pretraining on the `pretrain` split in the
# limited-pairing setting; evaluation on a 5-class retrieval / zero-shot set (like
# MIMIC-5x200) and a grounding set with boxes (like MS-CXR).
synthetic_root = 'data/synthetic_cxr'
# Calibrated (docs/synthetic_benchmark.md, "Calibration"): 8000 pretraining studies so that 5%
# pairing still leaves ~400 paired studies, and findings 1.5x the generator's default contrast,
# so that within the demo budget CLIP at 100% pairing is clearly above CLIP at 5% and neither
# sits at chance or at ceiling.
synthetic = dict(type='SyntheticCXRDataset', cache_dir=synthetic_root, seed=0,
                 image_size=64, num_studies=8000, signal_strength=1.5)
pair_ratio = 1.0
pair_seed = 0
# Evidence phrases (Eq. 2) from the offline rule extractor, cached; evaluation candidates of
# every method carry them (LGDEA and the CLIP-on-evidence control encode them).
evidence = dict(extractor=dict(type='rule'), cache_dir='data/evidence_cache')

train_pipeline = [
    dict(type='LoadCXRImage'),
    dict(type='ResizeCXR', scale=(72, 72)),
    dict(type='RandomCropCXR', size=64),
    dict(type='PackVLInputs'),
]
test_pipeline = [
    dict(type='LoadCXRImage'),
    dict(type='ResizeCXR', scale=(64, 64)),
    dict(type='EvidenceTokenizer', max_phrases=8, evidence=evidence),
    dict(type='PackVLInputs'),
]
report_pipeline = [dict(type='EvidenceTokenizer', max_phrases=8), dict(type='PackVLInputs')]

# Paired-pool training (CLIP and the baselines); LGDEA configs switch to the propagation
# sampler and include the unpaired pools.
train_dataloader = dict(
    batch_size=64,
    num_workers=2,
    persistent_workers=True,
    sampler=dict(type='InfiniteSampler', shuffle=True),
    collate_fn=dict(type='vl_collate'),
    dataset=dict(type='LimitedPairingDataset', dataset=dict(synthetic, split='pretrain'),
                 pair_ratio=pair_ratio, pair_seed=pair_seed, include_unpaired=False,
                 pipeline=train_pipeline),
)

_retrieval = dict(synthetic, split='retrieval', pipeline=test_pipeline)
_grounding = dict(synthetic, split='grounding', pipeline=test_pipeline)
_eval_loader = dict(batch_size=100, num_workers=1, persistent_workers=False,
                    sampler=dict(type='DefaultSampler', shuffle=False),
                    collate_fn=dict(type='vl_collate'))

retrieval_evaluator = [
    dict(type='ZeroShotAccuracy'),
    dict(type='RetrievalPrecisionAtK', topk=(1, 2, 5, 10)),
]
grounding_evaluator = [dict(type='GroundingCNR')]

# Pretraining validation, the same for every method: zero-shot / P@K on the retrieval set and
# the training objective (every loss term, PairedValLoss) on its held-out image-report pairs.
val_dataloader = dict(_eval_loader, dataset=_retrieval)
val_evaluator = retrieval_evaluator
_pretrain_val = dict(
    _eval_loader,
    dataset=dict(type='LimitedPairingDataset', dataset=dict(synthetic, split='retrieval'),
                 pair_ratio=1.0, include_unpaired=False, evidence=evidence,
                 pipeline=[dict(type='LoadCXRImage'), dict(type='ResizeCXR', scale=(64, 64)),
                           dict(type='PackVLInputs')],
                 report_pipeline=report_pipeline))
# Measurement of what a run learns about its unpaired images (docs/benchmark.md, "Unpaired
# data"): rank of the withheld partner report among all pretraining reports for 256 unpaired
# images, after training; merged into the benchmark's results as train/partner_*.
unpaired_diagnostics = dict(
    type='UnpairedDiagnosticsHook', num_images=256,
    image_pipeline=[dict(type='LoadCXRImage'), dict(type='ResizeCXR', scale=(64, 64)),
                    dict(type='PackVLInputs')])

val_cfg = dict(type='VLMultiValLoop',
               extra_dataloaders=[_pretrain_val],
               extra_evaluators=[[dict(type='PairedValLoss', prefix='loss')]],
               prefixes=['synthetic_5x200', 'synthetic_pretrain_val'])

test_dataloader = dict(_eval_loader, dataset=_retrieval)
test_evaluator = retrieval_evaluator
test_cfg = dict(
    type='VLMultiTestLoop',
    extra_dataloaders=[dict(_eval_loader, dataset=_grounding)],
    extra_evaluators=[grounding_evaluator],
    prefixes=['synthetic_5x200', 'synthetic_grounding'])

# Linear probe (docs/linear_probe.md): a linear classifier on the frozen `probe` image features
# of the classification splits (RSNA-like binary, COVID-like 3-class, NIH-like 8-label), trained
# on the train subset, epoch / weight decay selected on val, scored on test. tools/test.py runs
# it after the test loop and merges '<task>/linear_probe@<pct>/<metric>' into the results JSON
# (--no-linear-probe skips it, --linear-probe-only runs only it); tools/linear_probe.py runs
# it alone. Features are cached in <work_dir>/linear_probe_features. The classification sets
# are smaller than the generator defaults (1000 / 900 / 1500 studies) to keep a demo run cheap
# (serialize_data=False: mmengine's serialisation runs a gc.collect() per dataset, ~0.4 s each).
linear_probe_synthetic = dict(synthetic, cls_binary_size=600, cls_multiclass_size=600,
                              cls_multilabel_size=800, serialize_data=False)
linear_probe_pipeline = [
    dict(type='LoadCXRImage'),
    dict(type='ResizeCXR', scale=(64, 64)),
    dict(type='PackVLInputs'),
]
linear_probe = dict(
    tasks=[
        dict(name='synthetic_cls_binary',
             dataset=dict(linear_probe_synthetic, split='cls_binary'),
             fractions=[100], multilabel=False),
        dict(name='synthetic_cls_multiclass',
             dataset=dict(linear_probe_synthetic, split='cls_multiclass'),
             fractions=[100], multilabel=False),
        dict(name='synthetic_cls_multilabel',
             dataset=dict(linear_probe_synthetic, split='cls_multilabel'),
             fractions=[100], multilabel=True),
    ],
    pipeline=linear_probe_pipeline,
    mode='linear',
    epochs=40,
    lr=5e-3,
    weight_decays=[0.0, 1e-2, 1e-1],
    batch_size=128,
    feature_batch_size=200,
    num_workers=0,
)
