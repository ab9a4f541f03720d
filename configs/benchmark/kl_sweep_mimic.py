# Sensitivity of LGDEA to the number of diagnostic prototypes K (L = 64) and of lesion
# queries L (K = 64) on MIMIC-CXR (paper Tables X-XI and Fig. 7; configs/lgdea_ablations/
# README.md): cfg overrides of configs/lgdea_vitb_p5.py. The K = 64, L = 64 run is shared by
# both sweeps. The paper's K = 64 / L = 64 rows repeat its 10% results: set `_pairing = 10`
# to sweep at 10% pairing.
#   python tools/benchmark.py configs/benchmark/kl_sweep_mimic.py --dispatch print > jobs.txt
_pairing = 5
_base_options = ([] if _pairing == 5 else
                 [f'train_dataloader.dataset.pair_ratio={_pairing / 100}'])
_lgdea = dict(config='configs/lgdea_vitb_p5.py', pairing=_pairing)
runs = [
    dict(_lgdea, name='LGDEA_K64_L64', label='LGDEA (K = 64, L = 64)', sweep=dict(K=64, L=64),
         cfg_options=list(_base_options)),
    *[dict(_lgdea, name=f'LGDEA_K{k}', label=f'LGDEA (K = {k})', sweep=dict(K=k),
           cfg_options=_base_options + [f'model.head.num_prototypes={k}'])
      for k in (32, 96, 128)],
    *[dict(_lgdea, name=f'LGDEA_L{n}', label=f'LGDEA (L = {n})', sweep=dict(L=n),
           cfg_options=_base_options + [f'model.neck.num_queries={n}'])
      for n in (32, 48, 80)],
]
seeds = [0, 1, 2]
datasets = 'mimic'
tables = ['sweep_K', 'sweep_L']
work_dir = 'work_dirs/benchmark/kl_sweep_mimic'
# Fig. 7: mean CNR and zero-shot accuracy against K and L (mean ± std over seeds).
figures = dict(sensitivity=dict(metrics=[
    ('{grounding}/grounding/cnr', 'mean CNR (MS-CXR)'),
    ('{retrieval}/zero_shot/accuracy', 'zero-shot accuracy (%, MIMIC-5x200)'),
]))
