#!/usr/bin/env python
"""Resize an image tree once (e.g. MIMIC-CXR-JPG) so the longer side is at most --max-size.

The output keeps the relative paths and file formats of the input. ``DST/sizes.csv`` lists
every finished image with its original size (``path, width, height`` — ``path`` relative to
SRC with ``/`` separators — plus ``new_width, new_height``), which is what
``MIMICCXRDataset(preprocessed_root=DST)`` reads for ``ori_shape``. Images already small
enough are copied byte for byte.

Resumable: an image whose output exists and which is listed in ``sizes.csv`` is skipped;
outputs are written to a temporary name and renamed, so an interrupted run never leaves a
half-written file that looks finished. Corrupt / unreadable images are counted, listed in
``DST/corrupt.txt`` and reported; they do not stop the run (``--strict`` makes the exit code
non-zero when there were any).

Example::

    python tools/preprocess_images.py $MIMIC_JPG/files $OUT/files --max-size 512 --workers 8
    # or the whole root (CSV files are not images and are ignored):
    python tools/preprocess_images.py $MIMIC_JPG $OUT --max-size 512 --workers 8
"""
import argparse
import csv
import os
import os.path as osp
import shutil
import sys
from multiprocessing import Pool
from typing import Dict, Iterable, List, Optional, Sequence, Tuple

from PIL import Image

try:
    from tqdm import tqdm
except ImportError:  # pragma: no cover - tqdm ships with the environment
    tqdm = None

SIZES_FILE = 'sizes.csv'
CORRUPT_FILE = 'corrupt.txt'
SIZE_COLUMNS = ('path', 'width', 'height', 'new_width', 'new_height')
DEFAULT_EXTS = ('.jpg', '.jpeg', '.png', '.bmp', '.tif', '.tiff')
_FORMATS = {'.jpg': 'JPEG', '.jpeg': 'JPEG', '.png': 'PNG', '.bmp': 'BMP', '.tif': 'TIFF',
            '.tiff': 'TIFF'}


def target_size(width: int, height: int, max_size: int) -> Tuple[int, int]:
    """Size with the longer side at most ``max_size`` (aspect kept, rounded, at least 1)."""
    longer = max(width, height)
    if longer <= max_size:
        return width, height
    scale = max_size / float(longer)
    return max(1, int(round(width * scale))), max(1, int(round(height * scale)))


def list_images(src: str, exts: Sequence[str], skip: Optional[str] = None) -> List[str]:
    """Sorted relative paths (``/`` separators) of the images under ``src``.

    ``skip`` (an absolute folder, e.g. the output when it lies inside ``src``) is not
    entered.
    """
    exts = tuple(e.lower() for e in exts)
    skip = osp.abspath(skip) if skip else None
    out = []
    for folder, dirs, files in os.walk(src):
        dirs[:] = sorted(d for d in dirs if osp.abspath(osp.join(folder, d)) != skip)
        for name in files:
            if osp.splitext(name)[1].lower() in exts:
                rel = osp.relpath(osp.join(folder, name), src)
                out.append(rel.replace(os.sep, '/'))
    return sorted(out)


def read_sizes(path: str) -> Dict[str, dict]:
    """Rows of an existing ``sizes.csv`` by path (the last row of a path wins)."""
    rows = {}
    if osp.isfile(path):
        with open(path, newline='', encoding='utf-8') as f:
            for row in csv.DictReader(f):
                if row.get('path'):
                    rows[row['path']] = row
    return rows


def process_one(task: Tuple[str, str, str, int, int]) -> Tuple[str, str, tuple, str]:
    """Resize or copy one image.

    Args:
        task: ``(rel, src_path, dst_path, max_size, quality)``.

    Returns:
        ``(rel, status, (width, height, new_width, new_height), error)`` with status
        ``'resized'``, ``'copied'`` or ``'corrupt'``.
    """
    rel, src_path, dst_path, max_size, quality = task
    tmp_path = None
    try:
        with Image.open(src_path) as img:
            width, height = img.size
            new_w, new_h = target_size(width, height, max_size)
            os.makedirs(osp.dirname(dst_path), exist_ok=True)
            ext = osp.splitext(dst_path)[1].lower()
            tmp_path = f'{dst_path}.tmp{os.getpid()}{ext}'
            if (new_w, new_h) == (width, height):
                img.load()  # decode fully: a truncated file is corrupt, not copied
                shutil.copyfile(src_path, tmp_path)
                status = 'copied'
            else:
                if img.format == 'JPEG':
                    img.draft(img.mode, (new_w, new_h))  # decode at a reduced scale (>= target)
                img.load()
                out = img.resize((new_w, new_h), Image.Resampling.LANCZOS)
                fmt = _FORMATS.get(ext, img.format)
                params = dict(quality=quality) if fmt == 'JPEG' else {}
                out.save(tmp_path, format=fmt, **params)
                status = 'resized'
        os.replace(tmp_path, dst_path)
        return rel, status, (width, height, new_w, new_h), ''
    except Exception as exc:  # noqa: BLE001 - any decoder error means "corrupt"
        if tmp_path and osp.exists(tmp_path):
            os.remove(tmp_path)
        return rel, 'corrupt', (), f'{type(exc).__name__}: {exc}'


def preprocess_tree(src: str,
                    dst: str,
                    max_size: int = 512,
                    workers: int = 0,
                    exts: Sequence[str] = DEFAULT_EXTS,
                    quality: int = 95,
                    progress: bool = True) -> dict:
    """Resize every image of ``src`` into ``dst`` (see the module docstring).

    Returns:
        Counts: ``total``, ``skipped`` (already done), ``resized``, ``copied``, ``corrupt``,
        and ``corrupt_files`` (list of ``(rel, error)``).
    """
    if max_size < 1:
        raise ValueError(f'--max-size must be positive, got {max_size}')
    src, dst = osp.abspath(src), osp.abspath(dst)
    if not osp.isdir(src):
        raise FileNotFoundError(f'source folder {src!r} does not exist')
    if src == dst:
        raise ValueError('the output folder must differ from the source folder')
    os.makedirs(dst, exist_ok=True)
    sizes_path = osp.join(dst, SIZES_FILE)
    done = read_sizes(sizes_path)
    # drop rows whose output disappeared; they are redone
    stale = [p for p in done if not osp.isfile(osp.join(dst, p))]
    for p in stale:
        del done[p]
    rewrite = bool(stale) or (osp.isfile(sizes_path) and _count_rows(sizes_path) != len(done))
    if rewrite or not osp.isfile(sizes_path):
        _write_sizes(sizes_path, done.values())

    images = list_images(src, exts, skip=dst)
    todo = [rel for rel in images if rel not in done]
    counts = dict(total=len(images), skipped=len(images) - len(todo), resized=0, copied=0,
                  corrupt=0)
    corrupt: List[Tuple[str, str]] = []
    tasks = [(rel, osp.join(src, rel), osp.join(dst, rel), max_size, quality) for rel in todo]
    with open(sizes_path, 'a', newline='', encoding='utf-8') as f:
        writer = csv.writer(f)
        for i, (rel, status, size, error) in enumerate(_run(tasks, workers, progress)):
            counts[status] += 1
            if status == 'corrupt':
                corrupt.append((rel, error))
            else:
                writer.writerow([rel, *size])
                if i % 256 == 0:
                    f.flush()
    with open(osp.join(dst, CORRUPT_FILE), 'w', encoding='utf-8') as f:
        f.write(''.join(f'{rel}\t{error}\n' for rel, error in sorted(corrupt)))
    counts['corrupt_files'] = sorted(corrupt)
    return counts


def _count_rows(path: str) -> int:
    with open(path, newline='', encoding='utf-8') as f:
        return max(0, sum(1 for _ in csv.reader(f)) - 1)


def _write_sizes(path: str, rows: Iterable[dict]) -> None:
    tmp = path + '.tmp'
    with open(tmp, 'w', newline='', encoding='utf-8') as f:
        writer = csv.writer(f)
        writer.writerow(SIZE_COLUMNS)
        for row in rows:
            writer.writerow([row.get(c, '') for c in SIZE_COLUMNS])
    os.replace(tmp, path)


def _run(tasks, workers: int, progress: bool):
    bar = tqdm(total=len(tasks), unit='img', disable=not progress) if tqdm else None
    try:
        if workers and workers > 1:
            with Pool(workers) as pool:
                for result in pool.imap_unordered(process_one, tasks, chunksize=16):
                    if bar is not None:
                        bar.update(1)
                    yield result
        else:
            for task in tasks:
                result = process_one(task)
                if bar is not None:
                    bar.update(1)
                yield result
    finally:
        if bar is not None:
            bar.close()


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('src', help='source image tree (e.g. the MIMIC-CXR-JPG root)')
    parser.add_argument('dst', help='output tree (created); gets sizes.csv and corrupt.txt')
    parser.add_argument('--max-size', type=int, default=512, help='longest side in pixels')
    parser.add_argument('--workers', type=int, default=0, help='processes (0/1: no pool)')
    parser.add_argument('--exts', nargs='+', default=list(DEFAULT_EXTS))
    parser.add_argument('--quality', type=int, default=95, help='JPEG quality')
    parser.add_argument('--no-progress', action='store_true')
    parser.add_argument('--strict', action='store_true', help='exit 1 when images were corrupt')
    args = parser.parse_args(argv)
    counts = preprocess_tree(args.src, args.dst, args.max_size, args.workers, args.exts,
                             args.quality, progress=not args.no_progress)
    corrupt = counts.pop('corrupt_files')
    print(', '.join(f'{k}={v}' for k, v in counts.items()))
    if corrupt:
        listed = '\n'.join(f'  {rel}: {err}' for rel, err in corrupt[:10])
        print(f'{len(corrupt)} corrupt image(s) (all listed in '
              f'{osp.join(args.dst, CORRUPT_FILE)}):\n{listed}', file=sys.stderr)
    return 1 if corrupt and args.strict else 0


if __name__ == '__main__':
    sys.exit(main())
