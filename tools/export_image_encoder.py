"""Export the image encoder of any lgdea method to a plain timm / torchvision state dict.

    python tools/export_image_encoder.py CONFIG CHECKPOINT OUT.pth [--format auto|timm|torchvision|raw]

mmpretrain ``VisionTransformer`` backbones become timm ``VisionTransformer`` keys
(``timm.create_model('vit_base_patch16_224', num_classes=0)`` loads them with
``strict=True`` when the architecture matches; ``in_chans`` as trained), mmpretrain
``ResNet`` backbones become torchvision ``resnet*`` keys (without ``fc``), and ``raw`` keeps
the backbone keys as they are. The image encoder is found as the model's ``image_encoder``
attribute (every method of this project has one).
"""
import argparse
import re
import sys
from typing import Dict

import torch

#: mmpretrain ResNet key -> torchvision ResNet key.
MMPRETRAIN_RESNET_TO_TORCHVISION = (
    (r'^norm1\.', 'bn1.'),
    (r'^(layer\d+\.\d+)\.norm(\d)\.', r'\1.bn\2.'),
)


def _rename(state: Dict[str, torch.Tensor], rules) -> Dict[str, torch.Tensor]:
    compiled = [(re.compile(p), r) for p, r in rules]
    out = {}
    for key, value in state.items():
        new = key
        for pattern, repl in compiled:
            new, n = pattern.subn(repl, key)
            if n:
                break
        out[new] = value
    return out


def backbone_state(model) -> Dict[str, torch.Tensor]:
    """The backbone state dict of ``model.image_encoder`` (CXRImageEncoder or a timm one)."""
    enc = getattr(model, 'image_encoder', None)
    if enc is None:
        raise AttributeError(f'{type(model).__name__} has no `image_encoder`.')
    inner = getattr(enc, 'backbone', None) or getattr(enc, 'model', None) or enc
    return {k: v.detach().cpu().clone() for k, v in inner.state_dict().items()}


def export_state(model, fmt: str = 'auto') -> Dict[str, torch.Tensor]:
    state = backbone_state(model)
    kind = type(getattr(model.image_encoder, 'backbone', model.image_encoder)).__name__
    if fmt == 'auto':
        fmt = ('timm' if kind == 'VisionTransformer' else
               'torchvision' if kind.startswith('ResNet') else 'raw')
    if fmt == 'timm':
        if kind != 'VisionTransformer':
            raise ValueError(f'--format timm needs a VisionTransformer backbone, got {kind}')
        from lgdea.utils.vit_keys import mmpretrain_vit_to_timm_key  # the one key table
        return {mmpretrain_vit_to_timm_key(k): v for k, v in state.items()}
    if fmt == 'torchvision':
        if not kind.startswith('ResNet'):
            raise ValueError(f'--format torchvision needs a ResNet backbone, got {kind}')
        return _rename(state, MMPRETRAIN_RESNET_TO_TORCHVISION)
    if fmt == 'raw':
        return state
    raise ValueError(f'unknown --format {fmt!r}')


def main(argv=None) -> Dict[str, torch.Tensor]:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument('config')
    p.add_argument('checkpoint')
    p.add_argument('out')
    p.add_argument('--format', default='auto', choices=['auto', 'timm', 'torchvision', 'raw'])
    args = p.parse_args(argv)
    from lgdea.visualization import init_model

    # the image encoder's starting `checkpoint` is dropped: the trained weights come from
    # CHECKPOINT
    model = init_model(args.config, args.checkpoint, device='cpu', strict=False)
    state = export_state(model, args.format)
    torch.save(state, args.out)
    print(f'wrote {len(state)} tensors to {args.out}', file=sys.stderr)
    return state


if __name__ == '__main__':
    main()
