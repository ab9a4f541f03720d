"""Ground a phrase on one image with any lgdea method and save the heatmap as a PNG.

    python tools/visualize_grounding.py CONFIG CKPT IMAGE "phrase" [--out out.png]
        [--device cpu] [--box x y w h] [--box x y w h] [--alpha 0.5]

IMAGE is any PNG / JPEG (8 or 16 bit) of any size and aspect, or a DICOM file (with pydicom).
It is packed by the config's test pipeline (that of its grounding test set), the method's
``grounding_map`` of the phrase is mapped back to the original pixels exactly as the
``GroundingCNR`` metric does (``GroundingCNR.original_maps``: optional smoothing, then
``invert_map`` through the recorded resize / crop / pad), and the PNG shows the image and the
overlay side by side, each with the image's aspect, plus the ``--box`` boxes (``x y w h`` in
original pixels; their CNR is printed when given). The path of the PNG is printed.
See docs/visualization.md.
"""
import argparse
import os.path as osp
import sys
from typing import List, Optional

import numpy as np

_REPO_ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
if _REPO_ROOT not in sys.path:
    sys.path.insert(0, _REPO_ROOT)


def parse_args(argv: Optional[List[str]] = None) -> argparse.Namespace:
    """Parse the command line (``argv`` None = ``sys.argv[1:]``)."""
    p = argparse.ArgumentParser(description='Phrase grounding heatmap of one image (lgdea)')
    p.add_argument('config', help='config file of the method')
    p.add_argument('checkpoint', help='checkpoint file')
    p.add_argument('image', help='image file (PNG / JPEG / DICOM)')
    p.add_argument('phrase', help='the phrase to ground, e.g. "right lower lobe opacity"')
    p.add_argument('--out', help='output PNG (default: ./<image name>_grounding.png)')
    p.add_argument('--device', default='cpu', help='cpu (default), cuda, cuda:1, ...')
    p.add_argument('--box', nargs=4, type=float, action='append', metavar=('X', 'Y', 'W', 'H'),
                   help='a ground-truth box in original pixels (repeatable)')
    p.add_argument('--alpha', type=float, default=0.5, help='heatmap opacity (default 0.5)')
    args = p.parse_args(argv)
    if not str(args.phrase).strip():
        p.error('the phrase is empty')
    if not 0.0 <= args.alpha <= 1.0:
        p.error(f'--alpha must be in [0, 1], got {args.alpha}')
    return args


def main(argv: Optional[List[str]] = None) -> dict:
    """Run the tool.

    Returns:
        ``dict(out_file, map=[H, W] float64 grounding map in original pixels (NaN outside the
        field of view), image=[H, W] uint8, cnr=float or None)``.

    Raises:
        FileNotFoundError: the image, config or checkpoint does not exist.
        CorruptImageError: the image file cannot be decoded.
    """
    args = parse_args(argv)
    from lgdea.visualization import (grounding_image_figure, grounding_maps, init_model,
                                     load_config, read_display_image)

    from lgdea.datasets.transforms import CorruptImageError

    # read the image first: a missing / unreadable file fails before the model is built
    if not osp.isfile(args.image):
        raise FileNotFoundError(f'image file not found: "{args.image}"')
    try:
        image = read_display_image(args.image)
    except CorruptImageError as exc:
        raise CorruptImageError(f'cannot read "{args.image}" as an image (PNG, JPEG or DICOM): '
                                f'{exc.__cause__ or exc}') from exc
    boxes = np.asarray(args.box or [], dtype=np.float32).reshape(-1, 4)
    cfg = load_config(args.config)
    model = init_model(cfg, args.checkpoint, device=args.device)
    record = dict(img_path=osp.abspath(args.image), phrase=args.phrase, boxes=boxes,
                  kind='image')
    [(result, full, cnr)] = grounding_maps(model, cfg, [record])
    if tuple(full.shape) != tuple(image.shape[:2]):
        raise RuntimeError(f'the map came back as {full.shape}, the image is {image.shape}')
    out = args.out or f'{osp.splitext(osp.basename(args.image))[0]}_grounding.png'
    cnr = float(cnr) if len(boxes) else None
    grounding_image_figure(image, full, out, phrase=args.phrase,
                           boxes=boxes if len(boxes) else None, cnr=cnr, alpha=args.alpha)
    if cnr is not None:
        print(f'CNR of the boxes: {cnr:.4f}', file=sys.stderr)
    print(out)
    return dict(out_file=out, map=full, image=image, cnr=cnr)


if __name__ == '__main__':
    try:
        main()
    except (OSError, ImportError) as exc:  # missing / unreadable file, no pydicom: no traceback
        print(f'error: {exc}', file=sys.stderr)
        sys.exit(1)
