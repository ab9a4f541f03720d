"""Throughput of evidence extraction (Eq. 2).

1. ``rule``: :class:`RuleEvidenceExtractor` reports/s on one core (the process is pinned to
   one CPU), on synthetic reports generated from this file's own templates (seeded), as
   ``extract()`` calls and end to end through the cache (``run_extraction``: hashing,
   extraction, durable JSONL appends).
2. ``llm``: :class:`LLMEvidenceExtractor` (``backend='openai'``, ``langchain-openai``) against
   a local OpenAI-compatible stub server on 127.0.0.1 (:class:`OpenAIStubServer`) that sleeps
   ``--latency`` seconds per request to stand in for generation, with N concurrent requests
   and a bounded request count. The ideal rate is N / latency; the gap is client overhead.

Usage::

    PYTHONPATH=. python benchmarks/bench_evidence_extraction.py
    PYTHONPATH=. python benchmarks/bench_evidence_extraction.py --n-reports 20000 \\
        --concurrency 1 4 16 --llm-requests 96 --latency 0.1
"""
import argparse
import os
import random
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

SIZES = ['small', 'moderate', 'large', 'mild', 'trace', 'minimal']
SIDES = ['left', 'right', 'bilateral']
POSITIVE = [
    '{size} {side} pleural effusion.', '{sev} cardiomegaly.', '{side} basilar atelectasis.',
    'Patchy opacity in the {side} lower lobe.', '{size} {side} apical pneumothorax.',
    '{sev} interstitial pulmonary edema.', 'Focal consolidation in the {side} upper lobe.',
    'A {n} mm nodule in the {side} mid lung.', 'Healed fracture of the {side} {ord} rib.',
    'Small hiatal hernia.', 'Calcified granuloma in the {side} upper lobe.',
    'Emphysematous changes.', 'Mild degenerative changes of the thoracic spine.',
]
HEDGED = ['{side} lower lobe pneumonia cannot be excluded.',
          'Opacity at the {side} base may represent atelectasis.',
          'Possible small {side} pleural effusion.']
NEGATED = ['No pneumothorax.', 'There is no pleural effusion or pneumothorax.',
           'No focal consolidation, pleural effusion, or pneumothorax.',
           'No evidence of pulmonary edema.', 'The heart is not enlarged.']
NORMAL = ['The lungs are clear.', 'Heart size is normal.', 'The mediastinal contours are normal.',
          'Osseous structures are intact.', 'No acute cardiopulmonary process.']
DEVICES = ['Endotracheal tube terminates 4 cm above the carina.',
           'Left subclavian central venous catheter tip in the SVC.',
           'Median sternotomy wires.', 'Dual-lead pacemaker.']
COMPARISON = ['No interval change.', 'Stable appearance of the chest.',
              'Improved aeration of the left base.']


def synthetic_reports(n: int, seed: int = 0):
    """``n`` reports of 4-9 sentences in FINDINGS / IMPRESSION form (own templates)."""
    rng = random.Random(seed)

    def fill(t):
        return t.format(size=rng.choice(SIZES), side=rng.choice(SIDES),
                        sev=rng.choice(['mild', 'moderate', 'severe']), n=rng.randint(4, 25),
                        ord=rng.choice(['4th', '5th', '6th', '7th']))

    out = []
    for _ in range(n):
        findings = [fill(rng.choice(NORMAL)) for _ in range(rng.randint(1, 3))]
        findings += [fill(rng.choice(NEGATED))]
        if rng.random() < 0.6:
            findings += [fill(rng.choice(POSITIVE)) for _ in range(rng.randint(1, 3))]
        if rng.random() < 0.2:
            findings.append(fill(rng.choice(HEDGED)))
        if rng.random() < 0.2:
            findings.append(fill(rng.choice(DEVICES)))
        rng.shuffle(findings)
        impression = fill(rng.choice(COMPARISON + NORMAL + POSITIVE))
        text = 'FINDINGS: ' + ' '.join(s[0].upper() + s[1:] for s in findings)
        out.append(text + '\nIMPRESSION: ' + impression[0].upper() + impression[1:])
    return out


def pin_one_core():
    try:
        core = sorted(os.sched_getaffinity(0))[0]
        os.sched_setaffinity(0, {core})
        return core
    except (AttributeError, OSError):
        return None


def bench_rule(n: int, repeats: int):
    from lgdea.evidence import RuleEvidenceExtractor, run_extraction
    reports = synthetic_reports(n)
    ext = RuleEvidenceExtractor()
    for r in reports[:200]:  # warm-up
        ext.extract(r)
    best = best_cpu = 0.0
    for _ in range(repeats):
        t, c = time.perf_counter(), time.process_time()
        for r in reports:
            ext.extract(r)
        best = max(best, n / (time.perf_counter() - t))
        best_cpu = max(best_cpu, n / (time.process_time() - c))
    chars = sum(len(r) for r in reports) / n
    print(f'rule extract():       {best:9.0f} reports/s wall, {best_cpu:.0f} reports per CPU '
          f'second  ({n} synthetic reports, mean {chars:.0f} chars, best of {repeats})')
    with tempfile.TemporaryDirectory() as d:
        t = time.perf_counter()
        s = run_extraction(reports, ext, d, show_progress=False)
        rate = s.done / (time.perf_counter() - t)
    print(f'rule run_extraction:  {rate:9.0f} reports/s  (unique {s.total}, with cache '
          f'appends + fsync every 512 records)')
    return best


def bench_llm(concurrency, n_requests: int, latency: float):
    try:
        import langchain_openai  # noqa: F401
    except ImportError:
        print('llm: skipped (langchain-openai is not installed: pip install langchain-openai)')
        return
    from lgdea.evidence import LLMEvidenceExtractor
    from lgdea.evidence.testing import OpenAIStubServer
    reports = synthetic_reports(n_requests * len(concurrency), seed=1)
    with OpenAIStubServer(latency_s=latency) as server:
        warm = LLMEvidenceExtractor(backend='openai', model='stub', base_url=server.url)
        warm.extract_many(reports[:2])
        for i, c in enumerate(concurrency):
            batch = reports[i * n_requests:(i + 1) * n_requests]
            ext = LLMEvidenceExtractor(backend='openai', model='stub', base_url=server.url,
                                       concurrency=c, structured_output='json')
            before = server.n_requests
            server.max_in_flight = 0
            t = time.perf_counter()
            recs = ext.extract_many(batch)
            dt = time.perf_counter() - t
            ok = sum(r.status == 'ok' for r in recs)
            print(f'llm concurrency {c:3d}:  {n_requests / dt:9.1f} reports/s  (ideal '
                  f'{c / latency:.1f}; {server.n_requests - before} requests, latency '
                  f'{latency * 1000:.0f} ms, {ok}/{len(recs)} ok, max in flight '
                  f'{server.max_in_flight})')


def eval_synthetic(num_studies: int, split: str = 'pretrain', seed: int = 0):
    """Per-class precision / recall of the rule extractor on the synthetic benchmark's
    reports against its ground-truth finding labels (``lgdea.datasets.synthetic``)."""
    try:
        from lgdea.datasets.synthetic import (FINDING_KEYS, GENERATOR_VERSION,
                                             SyntheticCXRGenerator)
    except ImportError as e:
        print(f'synthetic: skipped ({e})')
        return
    from lgdea.evidence import RuleEvidenceExtractor
    gen = SyntheticCXRGenerator(dict(num_studies=num_studies, seed=seed), show_progress=False)
    studies = gen.studies(split)
    variants = {'hedged kept (default policy)': RuleEvidenceExtractor(),
                'positive only (keep_uncertain=False)':
                    RuleEvidenceExtractor(policy=dict(keep_uncertain=False))}
    print(f'synthetic {split}: {len(studies)} studies, seed {seed}, generator version '
          f'{GENERATOR_VERSION}')
    for name, ext in variants.items():
        stats = {k: [0, 0, 0] for k in FINDING_KEYS}
        for study in studies:
            found = {f.finding for f in ext.extract(study['report']).findings}
            for k, label in zip(FINDING_KEYS, study['labels']):
                p, g = k in found, bool(label)
                stats[k][0] += p and g
                stats[k][1] += p and not g
                stats[k][2] += g and not p
        print(f'  {name}')
        print('  | class | support | precision | recall |')
        print('  |---|---|---|---|')
        tot = [0, 0, 0]
        for k, (tp, fp, fn) in stats.items():
            tot = [a + b for a, b in zip(tot, (tp, fp, fn))]
            prec = tp / (tp + fp) if tp + fp else float('nan')
            rec = tp / (tp + fn) if tp + fn else float('nan')
            print(f'  | {k} | {tp + fn} | {prec:.3f} | {rec:.3f} |')
        tp, fp, fn = tot
        print(f'  | micro | {tp + fn} | {tp / (tp + fp):.3f} | {tp / (tp + fn):.3f} |')


def main():
    p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    p.add_argument('--n-reports', type=int, default=20000)
    p.add_argument('--repeats', type=int, default=3)
    p.add_argument('--concurrency', type=int, nargs='+', default=[1, 4, 16])
    p.add_argument('--llm-requests', type=int, default=64, help='requests per concurrency')
    p.add_argument('--latency', type=float, default=0.1, help='stub seconds per request')
    p.add_argument('--skip-llm', action='store_true')
    p.add_argument('--synthetic-studies', type=int, default=0,
                   help='also measure P/R on this many synthetic-benchmark studies (0: skip)')
    args = p.parse_args()
    affinity = os.sched_getaffinity(0) if hasattr(os, 'sched_getaffinity') else None
    core = pin_one_core()
    print(f'python {sys.version.split()[0]}, rule extractor pinned to CPU core {core}')
    bench_rule(args.n_reports, args.repeats)
    if affinity is not None:  # the stub server and the client get all cores back
        os.sched_setaffinity(0, affinity)
    if not args.skip_llm:
        bench_llm(args.concurrency, args.llm_requests, args.latency)
    if args.synthetic_studies:
        eval_synthetic(args.synthetic_studies)


if __name__ == '__main__':
    main()
