"""Train-step time of LGDEA vs the CLIP baseline with the same encoders, batch and resolution.

    PYTHONPATH=. python benchmarks/bench_lgdea_step.py [--batch 32] [--steps 10] [--img 64]

Conditions (issue target LGDEA <= 1.10x CLIP): the same ViT and trainable MiniLM text
encoder, dynamic padding, identical evidence phrases encoded once per batch, L_g off, CLIP
encoding full reports at max length 112. Both see one synthetic batch of B images and B
reports (LGDEA: half paired, half unpaired). Prints seconds per step and the ratio.
"""
import argparse
import time

import torch
from mmpretrain.structures import DataSample

from lgdea.registry import MODELS
from lgdea.utils import register_all_modules


def encoders(img: int):
    image = dict(type='CXRImageEncoder',
                 backbone=dict(type='mmpretrain.VisionTransformer',
                               arch=dict(embed_dims=192, num_layers=6, num_heads=3,
                                         feedforward_channels=768),
                               img_size=img, patch_size=8, in_channels=1, out_type='raw'))
    text = dict(type='HFTextEncoder', name_or_path='builtin:all-MiniLM-L6-v2', pooling='mean')
    return image, text


def batch(n: int, img: int):
    from lgdea.datasets.synthetic import SyntheticCXRGenerator
    gen = SyntheticCXRGenerator(dict(num_studies=max(n, 40), image_size=img), show_progress=False)
    from lgdea.evidence import RuleEvidenceExtractor
    ext = RuleEvidenceExtractor()
    imgs, samples = [], []
    for i, (study, images, _) in enumerate(gen.iter_split('pretrain')):
        if i == n:
            break
        imgs.append(torch.as_tensor(images[0]).float().view(1, img, img))
        ds = DataSample(metainfo=dict(study_id=str(i), paired=i < n // 2))
        ds.text = study['report']
        ds.evidence = list(ext.extract(study['report']).phrases)
        samples.append(ds)
    images = torch.stack(imgs)
    return (images - 127.5) / 127.5, samples


def time_steps(model, images, samples, steps: int) -> float:
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-4)
    for i in range(steps + 2):
        if i == 2:
            t0 = time.perf_counter()
        out = model(images, samples, samples, mode='loss')
        loss = sum(v for k, v in out.items() if 'loss' in k)
        opt.zero_grad()
        loss.backward()
        opt.step()
    return (time.perf_counter() - t0) / steps


def main():
    p = argparse.ArgumentParser()
    p.add_argument('--batch', type=int, default=32)
    p.add_argument('--steps', type=int, default=10)
    p.add_argument('--img', type=int, default=64)
    args = p.parse_args()
    register_all_modules()
    torch.manual_seed(0)
    image, text = encoders(args.img)
    images, samples = batch(args.batch, args.img)
    clip = MODELS.build(dict(type='CLIPBaseline', image_encoder=image, text_encoder=text,
                             embed_dims=256, max_text_length=112))
    lgdea = MODELS.build(dict(type='LGDEA', image_encoder=image, text_encoder=text,
                              neck=dict(type='LesionQueryNeck', num_queries=64, num_heads=8),
                              head=dict(type='DiagnosticPrototypeHead', num_prototypes=64),
                              propagation=dict(type='EvidencePropagation'),
                              embed_dims=256))
    t_clip = time_steps(clip, images, samples, args.steps)
    t_lgdea = time_steps(lgdea, images, samples, args.steps)
    n_phr = sum(len(s.evidence) for s in samples)
    n_uniq = len({p for s in samples for p in s.evidence})
    print(f'batch {args.batch}, {args.img}px, threads {torch.get_num_threads()}; evidence '
          f'phrases {n_phr} ({n_uniq} unique)')
    print(f'CLIP  {t_clip * 1e3:8.1f} ms/step')
    print(f'LGDEA {t_lgdea * 1e3:8.1f} ms/step   ratio LGDEA/CLIP = {t_lgdea / t_clip:.2f}')


if __name__ == '__main__':
    main()
