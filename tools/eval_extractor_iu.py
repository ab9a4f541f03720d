"""Precision / recall of an evidence extractor on IU X-ray reports against their MeSH labels.

The reports are read in place (``/work/shared/data/iu_xray_reports_dev/reports.jsonl``; CC
BY-NC-ND: never copy their text into the repository). Each report goes to the ``tune`` or the
``report`` half by a hash of its id (sha256, even/odd); the lexicon was tuned on ``tune`` only
and the table in docs/evidence.md is measured on ``report``.

Ground truth: ``labels_from_mesh`` (flags derived from the MeSH major terms). Extracted
findings are mapped to those labels (``LABEL_MAP``); an uncertain (hedged) finding counts as
positive; ``normal`` is predicted when the extractor keeps no finding and no device.

Usage:
    python tools/eval_extractor_iu.py --split report [--markdown]
    python tools/eval_extractor_iu.py --split tune --show-errors atelectasis   # tuning only
"""
import argparse
import hashlib
import json
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from lgdea.evidence.report_io import format_sectioned_report  # noqa: E402

DEFAULT_DATA = '/work/shared/data/iu_xray_reports_dev/reports.jsonl'

#: MeSH-derived label -> extractor finding names (kind='finding') or the 'device' kind.
LABEL_MAP = {
    'cardiomegaly': {'cardiomegaly'},
    'pleural_effusion': {'pleural_effusion'},
    'atelectasis': {'atelectasis'},
    'opacity': {'lung_opacity', 'infiltrate', 'consolidation', 'pneumonia'},
    'edema': {'edema'},
    'pneumothorax': {'pneumothorax'},
    'nodule_mass': {'nodule_mass'},
    'emphysema': {'emphysema'},
    'granuloma': {'granuloma'},
    'fracture': {'fracture'},
    'support_devices': {'__device__'},
}


def split_of(report_id: str) -> str:
    """'tune' or 'report', from the parity of the first 8 hex digits of sha256(id)."""
    return 'tune' if int(hashlib.sha256(report_id.encode()).hexdigest()[:8], 16) % 2 == 0 \
        else 'report'


def predicted_labels(findings) -> set:
    names = {f.finding for f in findings if f.kind == 'finding'}
    if any(f.kind == 'device' for f in findings):
        names.add('__device__')
    out = {lab for lab, src in LABEL_MAP.items() if names & src}
    if not findings:
        out.add('normal')
    return out


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--data', default=DEFAULT_DATA, help='IU reports.jsonl')
    parser.add_argument('--split', choices=['tune', 'report', 'all'], default='report')
    parser.add_argument('--no-uncertain', action='store_true',
                        help='count only positive findings (drop hedged ones)')
    parser.add_argument('--markdown', action='store_true', help='print a markdown table')
    parser.add_argument('--show-errors', metavar='LABEL', default=None,
                        help='print false positives/negatives of LABEL (tune split only)')
    args = parser.parse_args(argv)
    if args.show_errors and args.split != 'tune':
        parser.error('--show-errors is for tuning and only allowed with --split tune')

    from lgdea.evidence.rule_extractor import RuleEvidenceExtractor
    extractor = RuleEvidenceExtractor(policy=dict(keep_devices=True,
                                                  keep_uncertain=not args.no_uncertain))
    if not os.path.isfile(args.data):
        sys.exit(f'no IU report file at {args.data!r} (use --data)')
    with open(args.data, encoding='utf-8') as f:
        records = [json.loads(line) for line in f if line.strip()]
    labels = ['normal'] + list(LABEL_MAP)
    stats = {lab: [0, 0, 0] for lab in labels}  # tp, fp, fn
    n, n_empty, t0, extract_s = 0, 0, time.time(), 0.0
    for rec in records:
        if args.split != 'all' and split_of(rec['id']) != args.split:
            continue
        text = format_sectioned_report(rec.get('findings'), rec.get('impression'))
        if text is None:
            n_empty += 1
            continue
        n += 1
        t = time.perf_counter()
        result = extractor.extract(text)
        extract_s += time.perf_counter() - t
        pred = predicted_labels(result.findings)
        truth = {lab for lab in labels if rec['labels_from_mesh'].get(lab) == 1}
        for lab in labels:
            p, g = lab in pred, lab in truth
            stats[lab][0] += p and g
            stats[lab][1] += p and not g
            stats[lab][2] += g and not p
            if args.show_errors == lab and p != g:
                kind = 'FP' if p else 'FN'
                print(f'--- {kind} {rec["id"]}: {result.phrases} '
                      f'{[(f.finding, f.certainty) for f in result.findings]}\n{text}\n')
    if args.show_errors:
        return

    def fmt(x):
        return f'{x:.3f}' if x == x else 'n/a'

    rows = []
    tot = [0, 0, 0]
    for lab in labels:
        tp, fp, fn = stats[lab]
        prec = tp / (tp + fp) if tp + fp else float('nan')
        rec_ = tp / (tp + fn) if tp + fn else float('nan')
        f1 = 2 * prec * rec_ / (prec + rec_) if tp else (0.0 if tp + fp + fn else float('nan'))
        rows.append((lab, tp + fn, tp + fp, fmt(prec), fmt(rec_), fmt(f1)))
        if lab != 'normal':
            tot = [a + b for a, b in zip(tot, stats[lab])]
    tp, fp, fn = tot
    micro = (tp / (tp + fp), tp / (tp + fn))
    rows.append(('micro (findings)', tp + fn, tp + fp, fmt(micro[0]), fmt(micro[1]),
                 fmt(2 * micro[0] * micro[1] / (micro[0] + micro[1]))))
    print(f'split={args.split} reports={n} (skipped {n_empty} without text) '
          f'extract {n / max(extract_s, 1e-9):.0f} reports/s, total {time.time() - t0:.1f}s')
    head = ('label', 'support', 'predicted', 'precision', 'recall', 'F1')
    if args.markdown:
        print('| ' + ' | '.join(head) + ' |')
        print('|' + '---|' * len(head))
        for r in rows:
            print('| ' + ' | '.join(str(x) for x in r) + ' |')
    else:
        print('{:<18}{:>8}{:>10}{:>10}{:>8}{:>8}'.format(*head))
        for r in rows:
            print('{:<18}{:>8}{:>10}{:>10}{:>8}{:>8}'.format(*r))


if __name__ == '__main__':
    main()
