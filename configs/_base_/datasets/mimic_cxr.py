# MIMIC-CXR-JPG pretraining in the limited-pairing setting, evaluated on MIMIC-5x200
# (zero-shot accuracy, image-to-text retrieval P@K) and MS-CXR (grounding CNR).
# Layouts: docs/datasets.md. Evaluation ID lists: `python tools/build_eval_splits.py`.
mimic_root = 'data/mimic-cxr-jpg'
mscxr_root = 'data/ms-cxr'
eval_split_root = 'data/eval_splits'
pair_ratio = 1.0
pair_seed = 0
# MIMIC-CXR is credentialed data: the LLM extractor refuses non-loopback endpoints unless
# allow_remote=True (tools/extract_evidence.py); the rule extractor runs offline.
evidence = dict(extractor=dict(type='rule'), cache_dir='data/evidence_cache', credentialed=True)

train_pipeline = [
    dict(type='LoadCXRImage', on_error='skip'),
    dict(type='ResizeCXR', scale=(256, 256)),
    dict(type='RandomCropCXR', size=224),
    dict(type='PackVLInputs'),
]
test_pipeline = [
    dict(type='LoadCXRImage'),
    dict(type='ResizeCXR', scale=(224, 224)),
    dict(type='EvidenceTokenizer', max_phrases=8, evidence=evidence),
    dict(type='PackVLInputs'),
]
report_pipeline = [dict(type='EvidenceTokenizer', max_phrases=8), dict(type='PackVLInputs')]

mimic_train = dict(type='MIMICCXRDataset', data_root=mimic_root, split='train',
                   sections=('findings', 'impression'),
                   exclude_subjects_file=eval_split_root + '/exclude_subjects.txt')
train_dataloader = dict(
    batch_size=64,
    num_workers=8,
    persistent_workers=True,
    sampler=dict(type='InfiniteSampler', shuffle=True),
    collate_fn=dict(type='vl_collate'),
    dataset=dict(type='LimitedPairingDataset', dataset=mimic_train, pair_ratio=pair_ratio,
                 pair_seed=pair_seed, include_unpaired=False, pipeline=train_pipeline),
)

# Zero-shot prompts of the five 5x200 classes (one set for every method).
mimic_5x200_prompts = {
    'Atelectasis': ['atelectasis', 'subsegmental atelectasis', 'linear atelectasis at the lung base',
                    'bibasilar atelectasis', 'platelike atelectasis'],
    'Cardiomegaly': ['cardiomegaly', 'the heart is enlarged', 'mild cardiomegaly',
                     'moderate enlargement of the cardiac silhouette', 'enlarged heart size'],
    'Consolidation': ['consolidation', 'focal consolidation', 'lobar consolidation',
                      'airspace consolidation in the lower lobe', 'dense consolidation'],
    'Edema': ['pulmonary edema', 'mild pulmonary edema', 'interstitial edema',
              'vascular congestion and edema', 'moderate pulmonary edema'],
    'Pleural Effusion': ['pleural effusion', 'small pleural effusion', 'bilateral pleural effusions',
                         'moderate left pleural effusion', 'layering pleural effusion'],
}
_eval_loader = dict(batch_size=64, num_workers=4, persistent_workers=False,
                    sampler=dict(type='DefaultSampler', shuffle=False),
                    collate_fn=dict(type='vl_collate'))
mimic_5x200 = dict(type='MIMICCXRDataset', data_root=mimic_root, split='test',
                   split_file=eval_split_root + '/mimic_5x200.csv',
                   classes=('Atelectasis', 'Cardiomegaly', 'Consolidation', 'Edema',
                            'Pleural Effusion'),
                   pipeline=test_pipeline)
ms_cxr = dict(type='MSCXRDataset', data_root=mscxr_root, image_root=mimic_root, split='test',
              pipeline=test_pipeline)

retrieval_evaluator = [
    dict(type='ZeroShotAccuracy', prompts=mimic_5x200_prompts,
         extra_protocols=[dict(name='official_gloria', aggregation='max', zscore=True)]),
    dict(type='RetrievalPrecisionAtK', topk=(1, 2, 5, 10)),
]
grounding_evaluator = [dict(type='GroundingCNR')]

val_dataloader = dict(_eval_loader, dataset=mimic_5x200)
val_evaluator = retrieval_evaluator
val_cfg = dict(type='VLValLoop')
test_dataloader = dict(_eval_loader, dataset=mimic_5x200)
test_evaluator = retrieval_evaluator
test_cfg = dict(type='VLMultiTestLoop',
                extra_dataloaders=[dict(_eval_loader, dataset=ms_cxr)],
                extra_evaluators=[grounding_evaluator],
                prefixes=['mimic_5x200', 'ms_cxr'])

# Linear probe (docs/linear_probe.md; Table V): a linear classifier on the frozen `probe` image
# features, trained on 1 / 10 / 100 % of the training labels (Table V columns: 100 %), epoch and
# weight decay selected on val, scored on test. RSNA / COVID: accuracy; NIH: 14-label BCE,
# macro AUROC. ID lists: `python tools/build_eval_splits.py rsna|covid|nih --out-dir
# data/eval_splits ...` (1 / 10 % subsets in <name>_train_{pct}pct.csv; NIH's 100 % is
# nih_train.csv). tools/test.py runs it after the test loop (--no-linear-probe skips it).
rsna_root = 'data/rsna-pneumonia'                  # stage_2_train_labels.csv, stage_2_train_images/
covid_root = 'data/COVID-19_Radiography_Dataset'   # COVID/images, Normal/images, ...
nih_root = 'data/ChestX-ray14'                     # Data_Entry_2017_v2020.csv, images*/
linear_probe_pipeline = [
    dict(type='LoadCXRImage'),
    dict(type='ResizeCXR', scale=(224, 224)),
    dict(type='PackVLInputs'),
]
_rsna = dict(type='RSNAPneumoniaDataset', data_root=rsna_root)
_covid = dict(type='COVIDRadiographyDataset', data_root=covid_root)
_nih = dict(type='NIHChestXray14Dataset', data_root=nih_root, mode='classification')
linear_probe = dict(
    tasks=[
        dict(name='rsna', multilabel=False, fractions=[1, 10, 100],
             train=dict(_rsna, split_file=eval_split_root + '/rsna_train.csv'),
             val=dict(_rsna, split_file=eval_split_root + '/rsna_val.csv'),
             test=dict(_rsna, split_file=eval_split_root + '/rsna_test.csv'),
             train_fraction_override=dict(
                 split_file=eval_split_root + '/rsna_train_{pct}pct.csv')),
        dict(name='covid', multilabel=False, fractions=[1, 10, 100],
             train=dict(_covid, split_file=eval_split_root + '/covid_train.csv'),
             val=dict(_covid, split_file=eval_split_root + '/covid_val.csv'),
             test=dict(_covid, split_file=eval_split_root + '/covid_test.csv'),
             train_fraction_override=dict(
                 split_file=eval_split_root + '/covid_train_{pct}pct.csv')),
        # rare labels (Hernia: ~0.2 %) can have no positive at 1 %: counted, not an error
        dict(name='nih', multilabel=True, fractions=[1, 10, 100],
             allow_labels_without_positives=True,
             train=dict(_nih, split_file=eval_split_root + '/nih_train.csv'),
             val=dict(_nih, split_file=eval_split_root + '/nih_val.csv'),
             test=dict(_nih, split_file=eval_split_root + '/nih_test.csv'),
             train_fraction_override=dict(
                 split_file=eval_split_root + '/nih_train_{pct}pct.csv')),
    ],
    pipeline=linear_probe_pipeline,
    mode='linear',
    epochs=100,
    lr=1e-3,
    weight_decays=[0.0, 1e-4, 1e-3, 1e-2],
    batch_size=256,
    feature_batch_size=128,
    num_workers=4,
    # BenchX-style full fine-tuning (mode='finetune'): encoder lr = lr * encoder_lr_mult
    finetune=dict(epochs=10, lr=1e-3, weight_decay=1e-4, encoder_lr_mult=0.1, batch_size=32),
)
