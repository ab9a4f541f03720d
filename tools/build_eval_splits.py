#!/usr/bin/env python
"""Write the evaluation ID lists (splits) and the pretraining exclusion list.

Every list is a CSV whose first column holds the IDs the matching dataset filters on
(``split_file=``), optionally with a ``label`` column (class name). It starts with ``#``
comment lines (name, seed, sha256 of each source file) and has a JSON sidecar
``<list>.json`` with the same provenance plus counts and the list's own sha256.

Subcommands::

    mimic-5x200  MIMIC-5x200: official test split, frontal images, exactly one of the five
                 competition findings positive (== 1) and the other 13 observations 0 or
                 blank; --per-class studies per class (one frontal image each); the
                 retrieval candidates are those studies' reports.
                 -> mimic_5x200.csv (dicom_id, study_id, subject_id, view, label)
                    mimic_5x200_retrieval_candidates.csv (study_id, subject_id, label)
    rsna         RSNA Pneumonia, balanced classes as MedCLIP builds them (the larger class
                 down-sampled to the smaller), stratified 70/15/15 train/val/test, and
                 stratified, nested 1/10/100 % training subsets.
                 -> rsna_{train,val,test}.csv, rsna_train_{1,10,100}pct.csv (patientId, label)
    covid        COVID-19 Radiography Database, the same recipe over class folders.
                 -> covid_{train,val,test}.csv, covid_train_{...}pct.csv (path, label)
    nih          NIH ChestX-ray14 official lists (test_list.txt; train_val_list.txt split
                 into train/val by patient) plus stratified 1/10 % training subsets.
                 -> nih_{train,val,test}.csv, nih_train_{1,10}pct.csv (image_index)
    exclude      Subjects pretraining must drop: MS-CXR subjects, MIMIC-5x200 subjects and
                 the subjects of the official MIMIC test split.
                 -> exclude_subjects.txt (one subject ID per line)

Examples::

    python tools/build_eval_splits.py mimic-5x200 --mimic-root $MIMIC --out-dir splits
    python tools/build_eval_splits.py rsna --rsna-root $RSNA --out-dir splits --seed 0
    python tools/build_eval_splits.py exclude --mimic-root $MIMIC \\
        --ms-cxr-csv $MSCXR/MS_CXR_Local_Alignment_v1.1.0.csv \\
        --five-x200 splits/mimic_5x200.csv --out-dir splits
"""
import argparse
import hashlib
import json
import os
import os.path as osp
import re
import sys
from typing import Dict, List, Optional, Sequence

import numpy as np
import pandas as pd

sys.path.insert(0, osp.dirname(osp.dirname(osp.abspath(__file__))))

from lgdea.datasets.base_cxr import (CHEXPERT_CLASSES, CHEXPERT_COMPETITION_TASKS,  # noqa: E402
                                     FRONTAL_VIEWS, normalize_view, read_id_file, read_table,
                                     resolve_file)
from lgdea.datasets.covid import COVID_CLASSES, list_covid_images  # noqa: E402
from lgdea.datasets.mimic_cxr import mimic_report_relpath  # noqa: E402
from lgdea.datasets.rsna import RSNA_CLASSES, read_rsna_labels  # noqa: E402
from lgdea.datasets.section_parser import extract_report  # noqa: E402

TOOL = 'tools/build_eval_splits.py'


# --------------------------------------------------------------------------------------
# provenance
def sha256_file(path: str, chunk: int = 1 << 20) -> str:
    """Hex sha256 of a file's bytes."""
    digest = hashlib.sha256()
    with open(path, 'rb') as f:
        for block in iter(lambda: f.read(chunk), b''):
            digest.update(block)
    return digest.hexdigest()


def write_id_list(path: str,
                  table: Optional[pd.DataFrame],
                  name: str,
                  subcommand: str,
                  seed: Optional[int],
                  sources: Sequence[str],
                  args: dict,
                  counts: Optional[dict] = None,
                  lines: Optional[List[str]] = None) -> dict:
    """Write an ID list with a ``#`` provenance header and a JSON sidecar ``path + '.json'``.

    Args:
        path: output file.
        table: rows to write as CSV (header row included), or None to write ``lines``.
        name / subcommand / seed / args: provenance.
        sources: the files the list was derived from (their sha256 is recorded).
        counts: extra counts for the sidecar (e.g. per class).
        lines: plain lines (one ID each) instead of a table.

    Returns:
        The sidecar dict.
    """
    source_info = [dict(path=osp.abspath(s), sha256=sha256_file(s), bytes=osp.getsize(s))
                   for s in sources]
    header = [f'# lgdea evaluation list: {name}',
              f'# created by {TOOL} {subcommand} (seed={seed})']
    header += [f'# source {osp.basename(s["path"])} sha256={s["sha256"]}' for s in source_info]
    header.append(f'# provenance: {osp.basename(path)}.json')
    os.makedirs(osp.dirname(osp.abspath(path)), exist_ok=True)
    with open(path, 'w', encoding='utf-8', newline='') as f:
        f.write('\n'.join(header) + '\n')
        if table is not None:
            table.to_csv(f, index=False, lineterminator='\n')
        else:
            f.write(''.join(f'{line}\n' for line in lines))
    rows = len(table) if table is not None else len(lines)
    sidecar = dict(name=name, tool=TOOL, subcommand=subcommand, seed=seed,
                   args={k: v for k, v in args.items() if k != 'func'}, sources=source_info,
                   rows=rows, counts=counts or {}, file=osp.basename(path),
                   file_sha256=sha256_file(path))
    with open(path + '.json', 'w', encoding='utf-8') as f:
        json.dump(sidecar, f, indent=2, sort_keys=True, default=str)
    print(f'wrote {path} ({rows} rows)')
    return sidecar


# --------------------------------------------------------------------------------------
# MIMIC-5x200
def _strip(value: str, prefix: str) -> str:
    value = str(value).strip()
    return value[1:] if value.startswith(prefix) and value[1:].isdigit() else value


def select_mimic_5x200(split_df: pd.DataFrame,
                       meta_df: pd.DataFrame,
                       chexpert_df: pd.DataFrame,
                       per_class: int = 200,
                       seed: int = 0,
                       official_split: str = 'test',
                       classes: Sequence[str] = CHEXPERT_COMPETITION_TASKS,
                       views: Sequence[str] = FRONTAL_VIEWS,
                       usable_studies: Optional[set] = None,
                       allow_fewer: bool = False) -> pd.DataFrame:
    """The MIMIC-5x200 selection rule.

    A study is eligible for class ``c`` when its CheXpert label ``c`` is 1 and each of the
    other 13 observations is 0 or blank (so uncertain -1 anywhere excludes it), it belongs
    to ``official_split`` and has at least one image with a view in ``views`` (and, when
    ``usable_studies`` is given, is in it: e.g. studies with a usable report). ``per_class``
    studies are drawn per class with ``numpy.random.default_rng(seed)`` from the sorted
    eligible study IDs, then one of each study's frontal images (sorted by ``dicom_id``) is
    drawn with the same generator.

    Returns:
        DataFrame ``dicom_id, study_id, subject_id, view, label`` sorted by label order then
        study ID.
    """
    for name, df, cols in (('split', split_df, ['dicom_id', 'study_id', 'subject_id', 'split']),
                           ('metadata', meta_df, ['dicom_id', 'ViewPosition']),
                           ('chexpert', chexpert_df, ['study_id', *CHEXPERT_CLASSES])):
        missing = [c for c in cols if c not in df.columns]
        if missing:
            raise KeyError(f'{name} table lacks columns {missing}')
    images = split_df[split_df['split'] == official_split][['dicom_id', 'study_id', 'subject_id']]
    images = images.merge(meta_df[['dicom_id', 'ViewPosition']], on='dicom_id', how='inner')
    images = images.assign(view=[normalize_view(v) for v in images['ViewPosition']],
                           study_id=[_strip(s, 's') for s in images['study_id']],
                           subject_id=[_strip(s, 'p') for s in images['subject_id']])
    images = images[images['view'].isin(list(views))]

    labels = chexpert_df.copy()
    labels['study_id'] = [_strip(s, 's') for s in labels['study_id']]
    values = {}
    for column in CHEXPERT_CLASSES:
        numeric = pd.to_numeric(labels[column], errors='coerce')
        blank = labels[column].isna() | (labels[column].astype(str).str.strip() == '')
        bad = numeric.isna() & ~blank
        if bad.any():
            raise ValueError(f'chexpert column {column!r} holds {labels[column][bad].iloc[0]!r}')
        values[column] = numeric.fillna(0.0)  # blank counts as 0 for the rule
    positive_one = {c: values[c] == 1 for c in CHEXPERT_CLASSES}
    zero = {c: values[c] == 0 for c in CHEXPERT_CLASSES}  # 0 or blank; -1 fails

    frontal_studies = set(images['study_id'])
    rng = np.random.default_rng(seed)
    chosen = []
    for label in classes:
        mask = positive_one[label].copy()
        for other in CHEXPERT_CLASSES:
            if other != label:
                mask &= zero[other]
        eligible = sorted(set(labels.loc[mask, 'study_id']) & frontal_studies)
        if usable_studies is not None:
            eligible = [s for s in eligible if s in usable_studies]
        if len(eligible) < per_class and not allow_fewer:
            raise ValueError(f'only {len(eligible)} eligible {official_split} studies for '
                             f'{label!r} (need {per_class}); lower --per-class or pass '
                             f'--allow-fewer.')
        take = min(per_class, len(eligible))
        picked = rng.choice(np.array(eligible, dtype=object), size=take, replace=False)
        for study in sorted(picked):
            chosen.append((label, study))
    rows = []
    by_study = {s: g.sort_values('dicom_id') for s, g in images.groupby('study_id')}
    for label, study in chosen:
        group = by_study[study]
        pick = group.iloc[int(rng.integers(len(group)))]
        rows.append(dict(dicom_id=pick['dicom_id'], study_id=study, subject_id=pick['subject_id'],
                         view=pick['view'], label=label))
    return pd.DataFrame(rows, columns=['dicom_id', 'study_id', 'subject_id', 'view', 'label'])


def cmd_mimic_5x200(args) -> None:
    root = args.mimic_root
    split_path = resolve_file(args.split_csv, [root], 'split file', 'mimic-5x200')
    meta_path = resolve_file(args.metadata_csv, [root], 'metadata file', 'mimic-5x200')
    chex_path = resolve_file(args.chexpert_csv, [root], 'CheXpert label file', 'mimic-5x200')
    split_df = read_table(split_path, ['dicom_id', 'study_id', 'subject_id', 'split'])
    meta_df = read_table(meta_path, ['dicom_id', 'ViewPosition'])
    chex_df = read_table(chex_path, ['study_id', *CHEXPERT_CLASSES])
    usable = None
    if args.report_root:
        usable = set()
        test = split_df[split_df['split'] == args.official_split]
        for subject, study in test[['subject_id', 'study_id']].drop_duplicates().itertuples(
                index=False):
            subject, study = _strip(subject, 'p'), _strip(study, 's')
            path = osp.join(args.report_root, mimic_report_relpath(subject, study))
            if osp.isfile(path):
                with open(path, encoding='utf-8', errors='replace') as f:
                    if extract_report(f.read(), tuple(args.sections)) is not None:
                        usable.add(study)
    table = select_mimic_5x200(split_df, meta_df, chex_df, args.per_class, args.seed,
                               args.official_split, usable_studies=usable,
                               allow_fewer=args.allow_fewer)
    counts = table['label'].value_counts().to_dict()
    vargs = vars(args)
    sources = [split_path, meta_path, chex_path]
    write_id_list(osp.join(args.out_dir, 'mimic_5x200.csv'), table, 'mimic_5x200',
                  'mimic-5x200', args.seed, sources, vargs, counts)
    candidates = table[['study_id', 'subject_id', 'label']].drop_duplicates('study_id')
    write_id_list(osp.join(args.out_dir, 'mimic_5x200_retrieval_candidates.csv'), candidates,
                  'mimic_5x200_retrieval_candidates', 'mimic-5x200', args.seed, sources, vargs,
                  counts)


# --------------------------------------------------------------------------------------
# balanced / stratified splits (RSNA, COVID)
def balance_classes(ids: Sequence[str], labels: Sequence[str], seed: int) -> pd.DataFrame:
    """Down-sample every class to the size of the smallest (MedCLIP's balanced sets)."""
    df = pd.DataFrame(dict(id=list(ids), label=list(labels))).sort_values('id')
    n = int(df['label'].value_counts().min())
    rng = np.random.default_rng(seed)
    parts = []
    for label in sorted(df['label'].unique()):
        group = df[df['label'] == label]
        index = rng.choice(len(group), size=n, replace=False)
        parts.append(group.iloc[np.sort(index)])
    return pd.concat(parts).sort_values(['label', 'id']).reset_index(drop=True)


def _round_half_up(x: float) -> int:
    return int(np.floor(x + 0.5))


def stratified_split(df: pd.DataFrame, ratios: Sequence[float], seed: int,
                     names: Sequence[str] = ('train', 'val', 'test')) -> Dict[str, pd.DataFrame]:
    """Split ``df`` (columns ``id``, ``label``) per class in ``ratios`` (seeded shuffle).

    Per class of size n, every part after the first gets ``round(ratio * n)`` rows (half up)
    and the first part (train) the rest, so the parts partition the class.
    """
    if len(ratios) != len(names) or abs(sum(ratios) - 1.0) > 1e-6 or min(ratios) < 0:
        raise ValueError(f'ratios {ratios} must be {len(names)} non-negative numbers summing to 1')
    rng = np.random.default_rng(seed)
    out = {name: [] for name in names}
    for label in sorted(df['label'].unique()):
        group = df[df['label'] == label].sort_values('id')
        order = rng.permutation(len(group))
        sizes = [_round_half_up(r * len(group)) for r in ratios[1:]]
        sizes = [len(group) - sum(sizes)] + sizes
        if sizes[0] < 0:
            raise ValueError(f'class {label!r} has {len(group)} items, too few for ratios {ratios}')
        start = 0
        for name, size in zip(names, sizes):
            out[name].append(group.iloc[order[start:start + size]])
            start += size
    return {name: pd.concat(parts).sort_values(['label', 'id']).reset_index(drop=True)
            for name, parts in out.items()}


def stratified_fractions(train: pd.DataFrame, percents: Sequence[float],
                         seed: int) -> Dict[float, pd.DataFrame]:
    """Nested stratified subsets of ``train``: ``max(1, round(p / 100 * n_c))`` rows per class
    (half up).

    One seeded permutation per class; the p % subset is its first rows, so a smaller
    fraction is always contained in a larger one.
    """
    if len(train) == 0:
        raise ValueError('the training split is empty; use more data or other ratios')
    rng = np.random.default_rng(seed)
    orders = {}
    for label in sorted(train['label'].unique()):
        group = train[train['label'] == label].sort_values('id')
        orders[label] = group.iloc[rng.permutation(len(group))]
    out = {}
    for p in percents:
        if not 0 < p <= 100:
            raise ValueError(f'fraction {p} % must be in (0, 100]')
        parts = [g.iloc[:max(1, _round_half_up(p / 100.0 * len(g)))] for g in orders.values()]
        out[p] = pd.concat(parts).sort_values(['label', 'id']).reset_index(drop=True)
    return out


def _pct_name(p: float) -> str:
    return f'{int(p)}pct' if float(p).is_integer() else f'{p:g}pct'.replace('.', 'p')


def _write_split_family(prefix: str, id_column: str, df: pd.DataFrame, args, sources,
                        subcommand: str) -> None:
    splits = stratified_split(df, args.ratios, args.seed)
    vargs = vars(args)
    for name, part in splits.items():
        write_id_list(osp.join(args.out_dir, f'{prefix}_{name}.csv'),
                      part.rename(columns={'id': id_column}), f'{prefix}_{name}', subcommand,
                      args.seed, sources, vargs, part['label'].value_counts().to_dict())
    for p, part in stratified_fractions(splits['train'], args.fractions, args.seed).items():
        write_id_list(osp.join(args.out_dir, f'{prefix}_train_{_pct_name(p)}.csv'),
                      part.rename(columns={'id': id_column}), f'{prefix}_train_{_pct_name(p)}',
                      subcommand, args.seed, sources, vargs, part['label'].value_counts().to_dict())


def cmd_rsna(args) -> None:
    path = resolve_file(args.labels_csv, [args.rsna_root], 'labels file', 'rsna')
    table = read_rsna_labels(path)
    labels = [RSNA_CLASSES[t] for t in table['Target']]
    if args.no_balance:
        df = pd.DataFrame(dict(id=table['patientId'], label=labels))
    else:
        df = balance_classes(table['patientId'], labels, args.seed)
    _write_split_family('rsna', 'patientId', df, args, [path], 'rsna')


def cmd_covid(args) -> None:
    ids, labels = [], []
    for name in args.classes:
        if not osp.isdir(osp.join(args.covid_root, name)):
            raise FileNotFoundError(f'class folder {name!r} not found in {args.covid_root}')
        paths, _ = list_covid_images(args.covid_root, name)
        ids += paths
        labels += [name] * len(paths)
    df = (pd.DataFrame(dict(id=ids, label=labels)) if args.no_balance
          else balance_classes(ids, labels, args.seed))
    # the sources are the folder listings: hash a manifest of the listed files
    manifest = osp.join(args.out_dir, 'covid_source_manifest.txt')
    os.makedirs(args.out_dir, exist_ok=True)
    with open(manifest, 'w', encoding='utf-8') as f:
        f.write(''.join(f'{i}\n' for i in sorted(ids)))
    _write_split_family('covid', 'path', df, args, [manifest], 'covid')


def cmd_nih(args) -> None:
    root = args.nih_root
    train_val_path = resolve_file('train_val_list.txt', [root], 'official list', 'nih')
    test_path = resolve_file('test_list.txt', [root], 'official list', 'nih')
    train_val, _ = read_id_file(train_val_path)
    test, _ = read_id_file(test_path)
    sources = [train_val_path, test_path]
    abnormal = {}
    entry_path = None
    for name in ('Data_Entry_2017_v2020.csv', 'Data_Entry_2017.csv'):
        try:
            entry_path = resolve_file(name, [root], 'data entry', 'nih')
            break
        except FileNotFoundError:
            continue
    if entry_path is not None:
        entry = read_table(entry_path, ['Image Index', 'Finding Labels'])
        abnormal = {n.strip(): ('No Finding' not in str(v)) for n, v in
                    zip(entry['Image Index'], entry['Finding Labels'])}
        sources.append(entry_path)
    vargs = vars(args)
    patients = sorted({i.split('_')[0] for i in train_val})
    rng = np.random.default_rng(args.seed)
    n_val = int(round(args.val_fraction * len(patients)))
    val_patients = set(rng.choice(np.array(patients, dtype=object), size=n_val, replace=False)) \
        if n_val else set()
    train = sorted(i for i in train_val if i.split('_')[0] not in val_patients)
    val = sorted(i for i in train_val if i.split('_')[0] in val_patients)
    for name, ids in (('train', train), ('val', val), ('test', sorted(test))):
        if ids:
            write_id_list(osp.join(args.out_dir, f'nih_{name}.csv'), None, f'nih_{name}', 'nih',
                          args.seed, sources, vargs, lines=['image_index'] + ids)
    strata = ['abnormal' if abnormal.get(i, False) else 'normal_or_unknown' for i in train]
    df = pd.DataFrame(dict(id=train, label=strata))
    for p, part in stratified_fractions(df, args.fractions, args.seed).items():
        write_id_list(osp.join(args.out_dir, f'nih_train_{_pct_name(p)}.csv'), None,
                      f'nih_train_{_pct_name(p)}', 'nih', args.seed, sources, vargs,
                      counts=part['label'].value_counts().to_dict(),
                      lines=['image_index'] + sorted(part['id']))


# --------------------------------------------------------------------------------------
# exclusion list
_SUBJECT_IN_PATH = re.compile(r'(?:^|/)p(\d{6,})/')


def cmd_exclude(args) -> None:
    subjects: Dict[str, set] = {}
    sources = []
    if args.mimic_root:
        split_path = resolve_file(args.split_csv, [args.mimic_root], 'split file', 'exclude')
        split_df = read_table(split_path, ['subject_id', 'split'])
        for split in args.official_splits:
            subjects[f'mimic_official_{split}'] = {
                _strip(s, 'p') for s in split_df.loc[split_df['split'] == split, 'subject_id']}
        sources.append(split_path)
    if args.ms_cxr_csv:
        ms = read_table(args.ms_cxr_csv, ['path'])
        found = set()
        for path in ms['path']:
            match = _SUBJECT_IN_PATH.search(str(path).replace('\\', '/'))
            if match is None:
                raise ValueError(f'{args.ms_cxr_csv}: cannot read a subject from path {path!r}')
            found.add(match.group(1))
        subjects['ms_cxr'] = found
        sources.append(args.ms_cxr_csv)
    for path in args.five_x200 or []:
        table = pd.read_csv(path, comment='#', dtype=str)
        if 'subject_id' not in table.columns:
            raise KeyError(f'{path}: no subject_id column (expected mimic_5x200.csv)')
        subjects[f'five_x200:{osp.basename(path)}'] = {_strip(s, 'p') for s in table['subject_id']}
        sources.append(path)
    if not subjects:
        raise SystemExit('exclude: give at least one of --mimic-root, --ms-cxr-csv, --five-x200')
    union = sorted(set().union(*subjects.values()))
    counts = {k: len(v) for k, v in subjects.items()}
    counts['total_unique'] = len(union)
    write_id_list(osp.join(args.out_dir, 'exclude_subjects.txt'), None, 'exclude_subjects',
                  'exclude', None, sources, vars(args), counts, lines=union)


# --------------------------------------------------------------------------------------
def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest='command', required=True)

    def common(p, seed=True):
        p.add_argument('--out-dir', required=True, help='folder for the lists')
        if seed:
            p.add_argument('--seed', type=int, default=0)

    p = sub.add_parser('mimic-5x200', help='MIMIC-5x200 zero-shot / retrieval set')
    common(p)
    p.add_argument('--mimic-root', required=True, help='MIMIC-CXR-JPG root (the CSVs)')
    p.add_argument('--per-class', type=int, default=200)
    p.add_argument('--official-split', default='test')
    p.add_argument('--report-root', default=None,
                   help='MIMIC-CXR root with files/pXX/pS/sN.txt: keep only studies whose report '
                        'has a usable section')
    p.add_argument('--sections', nargs='+', default=['findings', 'impression'])
    p.add_argument('--allow-fewer', action='store_true')
    p.add_argument('--split-csv', default='mimic-cxr-2.0.0-split.csv')
    p.add_argument('--metadata-csv', default='mimic-cxr-2.0.0-metadata.csv')
    p.add_argument('--chexpert-csv', default='mimic-cxr-2.0.0-chexpert.csv')
    p.set_defaults(func=cmd_mimic_5x200)

    for name, func, root_help in (('rsna', cmd_rsna, 'RSNA folder (stage_2_train_labels.csv)'),
                                  ('covid', cmd_covid, 'COVID-19_Radiography_Dataset folder')):
        p = sub.add_parser(name, help=f'{name} balanced 70/15/15 split + train fractions')
        common(p)
        p.add_argument(f'--{name}-root', required=True, help=root_help)
        p.add_argument('--ratios', type=float, nargs=3, default=[0.7, 0.15, 0.15])
        p.add_argument('--fractions', type=float, nargs='+', default=[1, 10, 100],
                       help='training subsets in percent')
        p.add_argument('--no-balance', action='store_true', help='keep the class imbalance')
        if name == 'rsna':
            p.add_argument('--labels-csv', default='stage_2_train_labels.csv')
        else:
            p.add_argument('--classes', nargs='+', default=list(COVID_CLASSES))
        p.set_defaults(func=func)

    p = sub.add_parser('nih', help='NIH ChestX-ray14 official lists + fractions')
    common(p)
    p.add_argument('--nih-root', required=True)
    p.add_argument('--val-fraction', type=float, default=0.1,
                   help='fraction of train_val patients held out as validation')
    p.add_argument('--fractions', type=float, nargs='+', default=[1, 10])
    p.set_defaults(func=cmd_nih)

    p = sub.add_parser('exclude', help='exclude_subjects.txt for pretraining')
    common(p, seed=False)
    p.add_argument('--mimic-root', default=None)
    p.add_argument('--split-csv', default='mimic-cxr-2.0.0-split.csv')
    p.add_argument('--official-splits', nargs='+', default=['test'])
    p.add_argument('--ms-cxr-csv', default=None)
    p.add_argument('--five-x200', nargs='+', default=None, help='mimic_5x200.csv file(s)')
    p.set_defaults(func=cmd_exclude)
    return parser


def main(argv: Optional[Sequence[str]] = None) -> None:
    args = build_parser().parse_args(argv)
    args.func(args)


if __name__ == '__main__':
    main()
