"""Train and evaluate the demo configs on the embedded synthetic CXR benchmark.

    python tools/demo.py                       # CLIP 100% / 5% and LGDEA 5% (README table)
    python tools/demo.py --configs configs/demo/clip_demo_p5.py --iters 200

Each run is ``tools/train.py`` then ``tools/test.py`` in its own process; finished runs
(checkpoint and test results present) are reused, so an interrupted demo resumes. The
metrics table is printed and written to ``<work-dir>/demo_results.md`` / ``.json``.
"""
import argparse
import glob
import json
import os
import os.path as osp
import subprocess
import sys
import time

ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
DEFAULT_CONFIGS = [
    'configs/demo/clip_demo_p100.py',
    'configs/demo/clip_demo_p5.py',
    'configs/demo/lgdea_demo_p5.py',
]
COLUMNS = [('zero-shot acc', 'synthetic_5x200/zero_shot/accuracy'),
           ('P@1', 'synthetic_5x200/retrieval/P@1'), ('P@2', 'synthetic_5x200/retrieval/P@2'),
           ('P@5', 'synthetic_5x200/retrieval/P@5'), ('P@10', 'synthetic_5x200/retrieval/P@10'),
           ('grounding CNR', 'synthetic_grounding/grounding/cnr')]


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument('--configs', nargs='+', default=DEFAULT_CONFIGS)
    p.add_argument('--work-dir', default='work_dirs/demo')
    p.add_argument('--iters', type=int, default=None,
                   help='override train_cfg.max_iters (phase lengths scale with it)')
    p.add_argument('--seed', type=int, default=0)
    p.add_argument('--cfg-options', nargs='*', default=[],
                   help='extra key=value overrides for every run')
    return p.parse_args(argv)


def _overrides(cfg_path: str, iters, seed: int, extra) -> list:
    opts = [f'randomness.seed={seed}'] + list(extra)
    if iters is not None:
        from mmengine.config import Config
        cfg = Config.fromfile(osp.join(ROOT, cfg_path))
        opts += [f'train_cfg.max_iters={iters}', f'train_cfg.val_interval={iters}',
                 f'default_hooks.checkpoint.interval={iters}']
        for i, hook in enumerate(cfg.get('custom_hooks', [])):
            if hook.get('type') == 'LGDEAPhaseHook':
                total = sum(ph['iters'] for ph in hook['phases'])
                lengths = [max(1, round(ph['iters'] * iters / total)) for ph in hook['phases']]
                lengths[-1] = iters - sum(lengths[:-1])
                opts += [f'custom_hooks.{i}.phases.{j}.iters={n}' for j, n in enumerate(lengths)]
        opts += ['param_scheduler=[]'] if iters < 100 else []
    return opts


def _run(cmd, log_path) -> None:
    with open(log_path, 'a') as log:
        proc = subprocess.run(cmd, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT)
    if proc.returncode:
        tail = open(log_path).read()[-3000:]
        raise SystemExit(f'command failed ({proc.returncode}): {" ".join(cmd)}\n'
                         f'--- last lines of {log_path} ---\n{tail}')


def run_one(cfg_path: str, args) -> dict:
    name = osp.splitext(osp.basename(cfg_path))[0]
    wd = osp.join(args.work_dir, f'{name}_seed{args.seed}')
    os.makedirs(wd, exist_ok=True)
    log = osp.join(wd, 'demo.log')
    opts = _overrides(cfg_path, args.iters, args.seed, args.cfg_options)
    results = sorted(glob.glob(osp.join(wd, '*_test_results.json')))
    t0 = time.time()
    if not results:
        ckpts = sorted(glob.glob(osp.join(wd, 'iter_*.pth')),
                       key=lambda p: int(p.rsplit('_', 1)[1][:-4]))
        if not ckpts:
            print(f'[demo] training {name} (log: {log})', flush=True)
            _run([sys.executable, 'tools/train.py', cfg_path, '--work-dir', wd,
                  '--cfg-options', *opts], log)
            ckpts = sorted(glob.glob(osp.join(wd, 'iter_*.pth')),
                           key=lambda p: int(p.rsplit('_', 1)[1][:-4]))
        print(f'[demo] evaluating {name}', flush=True)
        _run([sys.executable, 'tools/test.py', cfg_path, ckpts[-1], '--work-dir', wd,
              '--cfg-options', *opts], log)
        results = sorted(glob.glob(osp.join(wd, '*_test_results.json')))
    with open(results[-1]) as f:
        metrics = json.load(f)
    metrics = metrics.get('metrics', metrics)
    return dict(name=name, seconds=round(time.time() - t0, 1), metrics=metrics)


def format_table(rows) -> str:
    head = '| run | ' + ' | '.join(c for c, _ in COLUMNS) + ' | wall time (s) |'
    lines = [head, '|' + '---|' * (len(COLUMNS) + 2)]
    for r in rows:
        cells = []
        for _, key in COLUMNS:
            v = r['metrics'].get(key)
            cells.append('n/a' if v is None else f'{v:.2f}' if 'cnr' in key else f'{v:.1f}')
        lines.append(f'| {r["name"]} | ' + ' | '.join(cells) + f' | {r["seconds"]} |')
    return '\n'.join(lines)


def main(argv=None):
    args = parse_args(argv)
    os.environ.setdefault('HF_HUB_OFFLINE', '1')
    start = time.time()
    rows = [run_one(c, args) for c in args.configs]
    table = format_table(rows)
    total = time.time() - start
    print('\nSynthetic CXR benchmark (accuracy and P@K in %, chance = 20%):\n')
    print(table)
    print(f'\ntotal wall time: {total:.0f} s')
    with open(osp.join(args.work_dir, 'demo_results.md'), 'w') as f:
        f.write(table + f'\n\ntotal wall time: {total:.0f} s\n')
    with open(osp.join(args.work_dir, 'demo_results.json'), 'w') as f:
        json.dump(rows, f, indent=1)
    return rows


if __name__ == '__main__':
    main()
