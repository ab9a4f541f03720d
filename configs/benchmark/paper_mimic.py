# The paper's comparison on MIMIC-CXR (Tables II-V; docs/benchmark.md): the baselines at
# 100/50/10/5% pairing (trained on their paired pool, same number of steps at every ratio),
# CLIP trained on the evidence phrases (5%), and LGDEA at 5/10% in the single-domain and
# cross-domain (CheXpert images) settings.
# Evaluation: MIMIC-5x200 (zero-shot, retrieval), MS-CXR (grounding), linear probes on
# COVID / RSNA / NIH. Needs the data of docs/datasets.md and the local starting weights.
#   python tools/benchmark.py configs/benchmark/paper_mimic.py --dispatch print > jobs.txt
#   python tools/benchmark.py configs/benchmark/paper_mimic.py --collect
_baselines = 'Baselines'
_single = 'Single domain'
_cross = 'Cross domain'
runs = [
    *[dict(name='CLIP', config=f'configs/clip_vitb_p{p}.py', pairing=p, group=_baselines)
      for p in (100, 50, 10, 5)],
    # GLoRIA with its official ResNet-50 (ViT-B/16 variants: gloria_vitb_p100.py / _p5.py)
    *[dict(name='GLoRIA', config=f'projects/gloria/configs/gloria_r50_p{p}.py', pairing=p,
           group=_baselines) for p in (100, 50, 10, 5)],
    *[dict(name='MGCA', config=f'projects/mgca/configs/mgca_vitb_p{p}.py', pairing=p,
           group=_baselines) for p in (100, 50, 10, 5)],
    # control arm: CLIP whose text is the extracted evidence phrases (same extractor as LGDEA)
    dict(name='CLIP-evidence', config='configs/clip_evidence_vitb_p5.py', pairing=5,
         group=_baselines, label='CLIP on evidence phrases (5% pairs)'),
    dict(name='LGDEA', config='configs/lgdea_vitb_p5.py', pairing=5, group=_single),
    dict(name='LGDEA', config='configs/lgdea_vitb_p10.py', pairing=10, group=_single),
    dict(name='LGDEA-CD', config='configs/lgdea_vitb_p5_crossdomain.py', pairing=5,
         group=_cross, label='LGDEA cross-domain (5% pairs)'),
    dict(name='LGDEA-CD', config='configs/lgdea_vitb_p5_crossdomain.py', pairing=10,
         group=_cross, label='LGDEA cross-domain (10% pairs)',
         cfg_options=['train_dataloader.dataset.pair_ratio=0.1']),
]
seeds = [0, 1, 2]  # --seeds 0 for a single-seed pass
datasets = 'mimic'  # metric prefixes mimic_5x200, ms_cxr, covid, rsna, nih
linear_probe_pct = 100
tables = ['grounding', 'grounding_pairing', 'retrieval', 'classification']
work_dir = 'work_dirs/benchmark/paper_mimic'
figures = dict(
    grounding=dict(runs=['GLoRIA_p5', 'MGCA_p5', 'LGDEA_p5', 'LGDEA_p10'], per_class=1),
    retrieval=dict(runs=['CLIP_p10', 'GLoRIA_p10', 'MGCA_p10', 'LGDEA_p10'], num_queries=3,
                   topk=2),
)
