"""Convert an official (released) checkpoint of a baseline into an lgdea checkpoint.

Usage (from the repository root)::

    python tools/convert_official_ckpt.py gloria pretrained/chexpert_resnet50.ckpt \\
        pretrained/gloria_r50_chexpert_lgdea.pth \\
        --config projects/gloria/configs/gloria_r50_p100.py

The per-method key maps live in the projects (``projects/<method>/<method>``), which register
them in ``lgdea.utils.ckpt_convert.CKPT_CONVERTERS`` or define a module-level
``CKPT_CONVERTERS`` dict; ``--plugin`` names another module to import. With ``--config`` the
model is built (no weights are loaded from the hub) and every model key the checkpoint does
not fill, or fills with a different shape, is reported; ``--strict`` then fails. The output is
``{'state_dict': ..., 'meta': ...}``, usable as ``load_from`` of an mmengine config.
"""
import argparse
import os
import sys

import torch

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from lgdea.utils.ckpt_convert import (compare_with_model, find_converter,  # noqa: E402
                                      load_official_state_dict)


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('method', help='converter name, e.g. gloria or mgca')
    parser.add_argument('src', help='official checkpoint')
    parser.add_argument('dst', help='output checkpoint')
    parser.add_argument('--config', help='lgdea config of the target model (checks the keys)')
    parser.add_argument('--plugin', help='module to import for the converter '
                        '(default projects.<method>.<method>)')
    parser.add_argument('--strict', action='store_true',
                        help='fail when a model key is not filled or a key is unmatched')
    return parser.parse_args(argv)


def build_model(config: str):
    from mmengine.config import Config
    from mmengine.registry import init_default_scope
    from mmengine.utils import import_modules_from_strings

    cfg = Config.fromfile(config)
    if cfg.get('custom_imports'):
        import_modules_from_strings(**cfg.custom_imports)
    init_default_scope(cfg.get('default_scope', 'lgdea'))
    from lgdea.registry import MODELS
    return MODELS.build(cfg.model)


def main(argv=None) -> int:
    args = parse_args(argv)
    if not os.path.isfile(args.src):
        print(f'error: {args.src} does not exist', file=sys.stderr)
        return 2
    converter = find_converter(args.method, args.plugin)
    state = load_official_state_dict(args.src)
    new_state, report = converter(state)
    if args.config:
        model = build_model(args.config)
        compare_with_model(new_state, model, report)
    print(report.summary())
    os.makedirs(os.path.dirname(os.path.abspath(args.dst)), exist_ok=True)
    torch.save(dict(state_dict=new_state,
                    meta=dict(converted_from=os.path.abspath(args.src), method=args.method,
                              unmatched=report.unmatched, dropped=report.dropped)), args.dst)
    print(f'saved {len(new_state)} tensors to {args.dst}')
    if args.strict and (report.unmatched or report.missing or report.shape_mismatch):
        return 1
    return 0


if __name__ == '__main__':
    sys.exit(main())
