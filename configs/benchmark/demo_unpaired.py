# Issue-11 experiments on the synthetic benchmark: does LGDEA learn from unpaired data? The
# control is CLIP on the evidence phrases at the same pairing (no unpaired data); its 100% run
# is the ceiling. docs/benchmark.md, "Unpaired data".
#   python tools/benchmark.py configs/benchmark/demo_unpaired.py --dispatch local --jobs 2
_base_ = ['./demo_synthetic.py']
runs = [
    dict(name='CLIP-evidence', config='configs/demo/clip_evidence_demo_p100.py', pairing=100,
         group='Ceiling', label='CLIP on evidence phrases (100% pairs)'),
    dict(name='CLIP-evidence', config='configs/demo/clip_evidence_demo_p5.py', pairing=5,
         group='Control', label='CLIP on evidence phrases (5% pairs)'),
    dict(name='LGDEA', config='configs/demo/lgdea_demo_p5_repaired.py', pairing=5,
         group='LGDEA', label='LGDEA repaired (5% pairs)'),
    dict(name='LGDEA-cosine', config='configs/demo/unpaired/lgdea_p5_cosine.py', pairing=5,
         group='LGDEA', label='LGDEA repaired, cosine LR (5% pairs)'),
    dict(name='LGDEA-oracle', config='configs/demo/lgdea_demo_p5_oracle.py', pairing=5,
         group='Oracle', label='LGDEA oracle propagation (5% pairs)'),
    dict(name='LGDEA-oracle-cosine', config='configs/demo/unpaired/oracle_p5_cosine.py',
         pairing=5, group='Oracle', label='LGDEA oracle propagation, cosine LR (5% pairs)'),
    dict(name='LGDEA-align-only', config='configs/demo/unpaired/lgdea_p5_align_only.py',
         pairing=5, group='Ladder', label='rung 1: alignment only, P = Y (5% pairs)'),
    dict(name='LGDEA-cls', config='configs/demo/unpaired/lgdea_p5_cls.py', pairing=5,
         group='LGDEA', label='LGDEA repaired, H_I from the global token (5% pairs)'),
    dict(name='LGDEA-oracle-cls', config='configs/demo/unpaired/oracle_p5_cls.py', pairing=5,
         group='Oracle', label='LGDEA oracle propagation, H_I from the global token (5% pairs)'),
    dict(name='LGDEA-cls-early', config='configs/demo/unpaired/lgdea_p5_cls_early.py',
         pairing=5, group='LGDEA', label='LGDEA, H_I global, propagation from step 0 (5%)'),
    dict(name='LGDEA-oracle-cls-early', config='configs/demo/unpaired/oracle_p5_cls_early.py',
         pairing=5, group='Oracle', label='LGDEA oracle, H_I global, from step 0 (5% pairs)'),
    dict(name='LGDEA-cls-pseudo', config='configs/demo/unpaired/lgdea_p5_cls_pseudo.py',
         pairing=5, group='LGDEA', label='LGDEA, H_I global, cross-modal pseudo-links (5%)'),
    dict(name='LGDEA-cls-pseudo-w200',
         config='configs/demo/unpaired/lgdea_p5_cls_pseudo_w200.py', pairing=5, group='LGDEA',
         label='LGDEA, H_I global, pseudo-links after 200 steps (5%)'),
    dict(name='LGDEA-cls-pseudo-b96', config='configs/demo/unpaired/lgdea_p5_cls_pseudo_b96.py',
         pairing=5, group='LGDEA',
         label='LGDEA, H_I global, pseudo-links, 64 paired + 32 unpaired per batch (5%)'),
    dict(name='LGDEA-cls-pseudo-b96-ema',
         config='configs/demo/unpaired/lgdea_p5_cls_pseudo_b96_ema.py', pairing=5, group='LGDEA',
         label='the b96 variant with pseudo-links from a mean teacher (EMA 0.99) (5%)'),
    dict(name='LGDEA-cls-pseudo-b96-replinks',
         config='configs/demo/unpaired/lgdea_p5_cls_pseudo_b96_replinks.py', pairing=5,
         group='LGDEA', label='the b96 variant with report-side evidence links (5%)'),
    *[dict(name=f'LGDEA-cls-pseudo-b96-replinks{cos}',
           config='configs/demo/unpaired/lgdea_p5_cls_pseudo_b96_replinks.py', pairing=5,
           group='LGDEA', cfg_options=[f'model.propagation.report_link_cos={cos}'],
           label=f'the b96 variant with report links to the nearest paired report, cos >= {cos} '
                 '(5%)')
      for cos in (0.9, -1.0)],
    dict(name='LGDEA-cls-pseudo-b96-t0',
         config='configs/demo/unpaired/lgdea_p5_cls_pseudo_b96.py', pairing=5, group='LGDEA',
         cfg_options=['model.propagation.threshold=0.0'],
         label='the b96 variant with every unpaired image linked (threshold 0) (5%)'),
    dict(name='LGDEA-oracle-b96', config='configs/demo/unpaired/oracle_p5_cls_b96.py',
         pairing=5, group='Oracle', label='oracle targets in the b96 variant (5%)'),
    *[dict(name=f'LGDEA-oracle-b96-noise{eps}', config='configs/demo/unpaired/oracle_p5_cls_b96.py',
           pairing=5, group='Oracle', cfg_options=[f'model.propagation.label_noise={eps}'],
           label=f'oracle targets in the b96 variant, label_noise {eps} (5%)')
      for eps in (0.3, 0.6)],
    *[dict(name=f'LGDEA-oracle-b96-{side}', config='configs/demo/unpaired/oracle_p5_cls_b96.py',
           pairing=5, group='Oracle', cfg_options=[f'model.propagation.links={links}'],
           label=f'oracle targets in the b96 variant, {links} only (5%)')
      for side, links in (('images', 'unpaired_images'), ('reports', 'unpaired_reports'))],
    dict(name='LGDEA-cls-paired-only', config='configs/demo/unpaired/lgdea_p5_cls_paired_only.py',
         pairing=5, group='Ladder',
         label='LGDEA, P = Y, 64 paired studies and no unpaired item (5%)'),
    dict(name='LGDEA-cls-b96', config='configs/demo/unpaired/lgdea_p5_cls_b96.py', pairing=5,
         group='Ladder', label='the same batch, P = Y (no propagation) (5%)'),
]
seeds = [0, 1, 2, 3, 4]
tables = ['overview']
# the claims: paired differences over the same seeds, mean, sample std, 95% t interval
comparisons = [
    dict(a='LGDEA_p5', b='CLIP-evidence_p5', metrics=['zero_shot', 'P@1']),
    dict(a='LGDEA-cls-pseudo_p5', b='CLIP-evidence_p5', metrics=['zero_shot', 'P@1']),
    dict(a='LGDEA-cls-pseudo_p5', b='LGDEA_p5', metrics=['zero_shot', 'P@1']),
    dict(a='LGDEA-oracle-cls-early_p5', b='CLIP-evidence_p5', metrics=['zero_shot', 'P@1']),
    dict(a='CLIP-evidence_p100', b='CLIP-evidence_p5', metrics=['zero_shot', 'P@1']),
    dict(a='LGDEA-cls-pseudo-b96_p5', b='CLIP-evidence_p5', metrics=['zero_shot', 'P@1']),
    dict(a='LGDEA-cls-pseudo-b96_p5', b='LGDEA-cls-b96_p5', metrics=['zero_shot', 'P@1']),
    dict(a='LGDEA-cls-pseudo-b96-ema_p5', b='CLIP-evidence_p5', metrics=['zero_shot', 'P@1']),
    dict(a='LGDEA-cls-pseudo-b96-ema_p5', b='LGDEA-cls-pseudo-b96_p5',
         metrics=['zero_shot', 'P@1']),
    dict(a='LGDEA-cls-b96_p5', b='LGDEA-cls-paired-only_p5', metrics=['zero_shot', 'P@1']),
    dict(a='LGDEA-cls-paired-only_p5', b='CLIP-evidence_p5', metrics=['zero_shot', 'P@1']),
    dict(a='LGDEA-cls-pseudo-b96-replinks_p5', b='LGDEA-cls-pseudo-b96_p5',
         metrics=['zero_shot', 'P@1']),
    dict(a='LGDEA-oracle-b96_p5', b='CLIP-evidence_p5', metrics=['zero_shot', 'P@1']),
    dict(a='LGDEA-oracle-b96_p5', b='LGDEA-cls-b96_p5', metrics=['zero_shot', 'P@1']),
    dict(a='LGDEA-oracle-b96-noise0.3_p5', b='LGDEA-cls-b96_p5', metrics=['zero_shot', 'P@1']),
    dict(a='LGDEA-oracle-b96-noise0.6_p5', b='LGDEA-cls-b96_p5', metrics=['zero_shot', 'P@1']),
]
figures = None
work_dir = 'work_dirs/benchmark/demo_unpaired'
