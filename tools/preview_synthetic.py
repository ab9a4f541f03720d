"""Write a PNG grid of synthetic CXR images with their ground-truth boxes and reports.

Examples::

    # 8 pretraining studies, 64 px, rendered in memory
    python tools/preview_synthetic.py --out work_dirs/preview.png

    # one study per finding class, each next to its finding-free rendering, at 128 px
    python tools/preview_synthetic.py --per-class --with-normal --image-size 128 \\
        --out work_dirs/preview_classes.png

    # a harder benchmark (any SyntheticCXRConfig field)
    python tools/preview_synthetic.py --cfg-options signal_strength=0.6 noise_std=0.05
"""
import argparse
import ast
import os
import os.path as osp
import sys
import textwrap

import numpy as np

sys.path.insert(0, osp.dirname(osp.dirname(osp.abspath(__file__))))

from lgdea.datasets.synthetic import (FINDING_KEYS, SPLITS, SyntheticCXRConfig,  # noqa: E402
                                      SyntheticCXRGenerator)

#: One colour per finding key (box edges and legend).
COLOURS = dict(atelectasis='tab:orange', cardiomegaly='tab:red', consolidation='tab:purple',
               edema='tab:cyan', lung_opacity='tab:olive', pleural_effusion='tab:blue',
               pneumonia='tab:pink', pneumothorax='tab:green')


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--split', default='pretrain', choices=SPLITS)
    parser.add_argument('--num', type=int, default=8, help='studies to show')
    parser.add_argument('--per-class', action='store_true',
                        help='pick one study per finding class (overrides --num)')
    parser.add_argument('--with-normal', action='store_true',
                        help='show each image next to its rendering without findings')
    parser.add_argument('--image-size', type=int, default=64)
    parser.add_argument('--seed', type=int, default=0)
    parser.add_argument('--num-studies', type=int, default=200,
                        help='size of the pretrain split to draw the studies from')
    parser.add_argument('--cols', type=int, default=4, help='columns of the grid')
    parser.add_argument('--out', default='synthetic_preview.png', help='output PNG path')
    parser.add_argument('--cfg-options', nargs='+', default=[], metavar='KEY=VALUE',
                        help='any SyntheticCXRConfig field, e.g. signal_strength=0.6')
    return parser.parse_args(argv)


def parse_options(items):
    """``['a=1', 'b=0.5']`` -> ``{'a': 1, 'b': 0.5}`` (values as Python literals)."""
    out = {}
    valid = set(SyntheticCXRConfig.field_names())
    for item in items:
        if '=' not in item:
            raise SystemExit(f'--cfg-options: expected KEY=VALUE, got {item!r}.')
        key, value = item.split('=', 1)
        if key not in valid:
            raise SystemExit(f'--cfg-options: unknown field {key!r}; valid: {sorted(valid)}.')
        try:
            out[key] = ast.literal_eval(value)
        except (ValueError, SyntaxError):
            out[key] = value
    return out


def choose_studies(studies, num, per_class):
    if not per_class:
        return studies[:num]
    chosen, seen = [], set()
    for key in FINDING_KEYS:  # prefer studies whose first finding is the class
        for study in studies:
            cats = [f['category'] for f in study['findings']]
            if cats and cats[0] == key and study['study_id'] not in seen:
                chosen.append(study)
                seen.add(study['study_id'])
                break
    return chosen


def draw(gen, studies, with_normal, cols, out_path):
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.patches as patches
    import matplotlib.pyplot as plt

    panels = []  # (title, image, boxes, findings, report)
    for study in studies:
        images, boxes = gen.render_study(study)
        panels.append(('', images[0], boxes[0], study))
        if with_normal:
            normal, _ = gen.render_study(study, with_findings=False)
            panels.append(('same image without findings', normal[0], None, study))
    cols = max(1, min(cols, len(panels)))
    rows = int(np.ceil(len(panels) / cols))
    fig = plt.figure(figsize=(4.2 * cols, 6.2 * rows))
    grid = fig.add_gridspec(rows * 2, cols, height_ratios=[4.0, 2.0] * rows, hspace=0.08,
                            wspace=0.08)
    for k, (note, image, img_boxes, study) in enumerate(panels):
        r, c = divmod(k, cols)
        ax = fig.add_subplot(grid[2 * r, c])
        ax.imshow(image, cmap='gray', vmin=0, vmax=255, interpolation='nearest')
        ax.set_xticks([])
        ax.set_yticks([])
        cats = ', '.join(f"{f['severity']} {f['side']} {f['category']}"
                         for f in study['findings']) or 'normal'
        ax.set_title(f"{study['study_id']} {study['view']}\n{cats}", fontsize=7)
        if img_boxes is not None:
            for finding, fboxes in zip(study['findings'], img_boxes):
                for (x, y, w, h) in fboxes:
                    ax.add_patch(patches.Rectangle((x - 0.5, y - 0.5), w, h, fill=False,
                                                   lw=1.2, ec=COLOURS[finding['category']]))
        tax = fig.add_subplot(grid[2 * r + 1, c])
        tax.axis('off')
        text = note if note else study['report']
        wrapped = '\n'.join(textwrap.fill(part, 62) for part in text.split('\n'))
        tax.text(0, 1, wrapped, va='top', ha='left', fontsize=5.6, family='monospace')
    handles = [patches.Patch(edgecolor=c, facecolor='none', label=k) for k, c in COLOURS.items()]
    fig.legend(handles=handles, loc='lower center', ncol=8, fontsize=7, frameon=False)
    os.makedirs(osp.dirname(osp.abspath(out_path)), exist_ok=True)
    fig.savefig(out_path, dpi=130, bbox_inches='tight')
    plt.close(fig)


def main(argv=None):
    args = parse_args(argv)
    options = parse_options(args.cfg_options)
    options.setdefault('image_size', args.image_size)
    options.setdefault('seed', args.seed)
    options.setdefault('num_studies', args.num_studies)
    gen = SyntheticCXRGenerator(options, show_progress=False)
    studies = choose_studies(gen.studies(args.split), args.num, args.per_class)
    if not studies:
        raise SystemExit(f'no study to show in split {args.split!r}.')
    draw(gen, studies, args.with_normal, args.cols, args.out)
    print(f'wrote {args.out} ({len(studies)} studies)')


if __name__ == '__main__':
    main()
