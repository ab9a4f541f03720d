"""Speed options of issue 12 on the CPU, each against the plain path (docs/get_started.md,
"Speed options"): fused attention (SDPA) in ``LesionQueryNeck``, activation checkpointing of
the ViT blocks, ``torch.compile`` of the encoders. bf16 autocast: tests/test_amp.py.

Measured on the CPU (float32), and asserted with a margin:

- SDPA vs explicit neck: outputs within 1e-6 absolute (asserted 1e-5), parameter gradients
  within 2.3e-7 of the largest gradient (asserted 1e-6);
- gradient checkpointing: loss and gradients bit-identical (asserted 1e-6 relative);
- ``torch.compile``: ``aot_eager`` bit-identical (asserted 1e-6), inductor 8.6e-7 absolute on
  the tiny ViT (asserted 1e-5; slow: about 30 s to compile on the CPU).
"""
import copy

import pytest
import torch
import torch.nn.functional as F

import lgdea.models.necks.lesion_query_neck as neck_module
from lgdea.models.necks import LesionQueryNeck
from lgdea.registry import MODELS

from conftest import tiny_bert, tiny_tokenizer, tiny_vit


# ------------------------------------------------------------------ SDPA in LesionQueryNeck
def _neck_pair(competition, num_layers=2):
    torch.manual_seed(0)
    cfg = dict(in_dims=32, embed_dims=16, num_queries=6, num_heads=4, num_layers=num_layers,
               attention_competition=competition, query_init_std=1.0)
    fused = LesionQueryNeck(**cfg)
    explicit = LesionQueryNeck(attention_impl='explicit', **cfg)
    explicit.load_state_dict(fused.state_dict())
    return fused, explicit


def _neck_step(neck, x, pad):
    x = x.clone().requires_grad_(True)
    neck.zero_grad()
    out = neck(x, key_padding_mask=pad)
    (out['v'].sin().sum() + 3 * out['H_I'].sum()).backward()
    return out, x.grad, {n: p.grad.clone() for n, p in neck.named_parameters()}


@pytest.mark.parametrize('competition', ['none', 'slot'])
@pytest.mark.parametrize('padded', [False, True])
def test_sdpa_neck_matches_the_explicit_path(competition, padded):
    fused, explicit = _neck_pair(competition)
    torch.manual_seed(1)
    x = torch.randn(3, 10, 32)
    pad = None
    if padded:
        pad = torch.zeros(3, 10, dtype=torch.bool)
        pad[1, 7:] = True
    out_f, gx_f, gp_f = _neck_step(fused, x, pad)
    out_e, gx_e, gp_e = _neck_step(explicit, x, pad)
    assert set(out_f) == set(out_e) == {'v', 'phi', 'H_I'}
    for key in out_f:
        assert torch.allclose(out_f[key], out_e[key], atol=1e-5, rtol=0), key
    assert torch.allclose(gx_f, gx_e, atol=1e-6, rtol=0)
    scale = max(g.abs().max() for g in gp_e.values())
    for name in gp_e:
        assert (gp_f[name] - gp_e[name]).abs().max() <= 1e-6 * scale, name


def _count_sdpa(monkeypatch):
    calls = []
    real = F.scaled_dot_product_attention

    def counting(*args, **kwargs):
        calls.append(args[0].shape)
        return real(*args, **kwargs)

    monkeypatch.setattr(neck_module.F, 'scaled_dot_product_attention', counting)
    return calls


def test_sdpa_runs_fused_and_forms_the_map_only_when_asked(monkeypatch):
    calls = _count_sdpa(monkeypatch)
    fused, explicit = _neck_pair('none', num_layers=2)
    x = torch.randn(2, 10, 32)
    out = fused(x)
    assert 'attn' not in out
    assert len(calls) == 4           # self- and cross-attention of both layers, fused
    calls.clear()
    with_map = fused(x, return_attn=True)
    assert len(calls) == 3           # the last cross-attention forms its weights
    assert with_map['attn'].shape == (2, 6, 10)
    assert torch.allclose(with_map['attn'], explicit(x, return_attn=True)['attn'], atol=1e-6)
    assert torch.allclose(with_map['v'], out['v'], atol=1e-5)
    calls.clear()
    explicit(x)
    assert calls == []               # attention_impl='explicit': no fused call at all
    slot, _ = _neck_pair('slot', num_layers=2)
    calls.clear()
    slot(x)
    assert len(calls) == 2           # slot cross-attention normalises over the queries


def test_lgdea_forms_lesion_maps_for_lesion_grounding_only():
    from test_lgdea_model import _lgdea
    images = torch.rand(2, 1, 32, 32)
    model = _lgdea()
    model.eval()
    with torch.no_grad():
        feats = model.extract_image(images)
    assert feats['lesion_attn'].shape == (2, 4, 16)
    patch = _lgdea(grounding='patch')
    with torch.no_grad():
        assert 'lesion_attn' not in patch.extract_image(images)
    with pytest.raises(ValueError, match='attention_impl'):
        LesionQueryNeck(in_dims=16, embed_dims=8, num_heads=2, attention_impl='flash')


# -------------------------------------------------------------- ViT gradient checkpointing
def _encoder_step(encoder, images):
    encoder.train()
    encoder.zero_grad()
    saved = []

    def pack(t):
        saved.append(t.numel())
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        out = encoder(images)
    loss = (out['global'] ** 2).sum() + out['local'].sin().sum()
    loss.backward()
    return loss.detach(), {n: p.grad.clone() for n, p in encoder.named_parameters()}, sum(saved)


def test_vit_gradient_checkpointing_same_gradients_fewer_saved_activations():
    torch.manual_seed(0)
    cfg = tiny_vit()
    plain = MODELS.build(cfg)
    ckpt = MODELS.build(dict(cfg, gradient_checkpointing=True))
    ckpt.load_state_dict(plain.state_dict())
    # names and keys unchanged: checkpoints and parameter-wise settings see the same model
    assert list(ckpt.state_dict()) == list(plain.state_dict())
    assert [n for n, _ in ckpt.named_parameters()] == [n for n, _ in plain.named_parameters()]
    images = torch.randn(3, 1, 32, 32)
    loss_p, grads_p, saved_p = _encoder_step(plain, images)
    loss_c, grads_c, saved_c = _encoder_step(ckpt, images)
    assert torch.allclose(loss_c, loss_p, rtol=1e-6, atol=0)
    for name in grads_p:
        scale = grads_p[name].abs().max().clamp_min(1e-12)
        assert (grads_c[name] - grads_p[name]).abs().max() <= 1e-6 * scale, name
    # the blocks keep only their inputs for backward (measured: 10,182 vs 66,602 elements)
    assert saved_c < 0.3 * saved_p
    copied = copy.deepcopy(ckpt)     # EMA / model soups copy the model: still checkpointed
    loss_d, _, saved_d = _encoder_step(copied, images)
    assert saved_d == saved_c and torch.equal(loss_d, loss_c)
    with torch.no_grad():            # inference runs the plain forward
        ckpt.eval()
        assert torch.equal(ckpt(images)['local'], plain.eval()(images)['local'])


def test_gradient_checkpointing_refuses_a_cnn_and_reaches_gloria():
    resnet = dict(type='CXRImageEncoder', gradient_checkpointing=True,
                  backbone=dict(type='mmpretrain.ResNet', depth=18, in_channels=1))
    with pytest.raises(ValueError, match='not a ViT'):
        MODELS.build(resnet)
    import projects.gloria.gloria  # noqa: F401
    gloria_enc = MODELS.build(dict(type='GLoRIAImageEncoder', backbone=tiny_vit()['backbone'],
                                   embed_dims=16, input_size=None, gradient_checkpointing=True))
    assert gloria_enc.encoder.gradient_checkpointing
    images = torch.randn(2, 1, 32, 32)
    *_, saved = _encoder_step(gloria_enc.encoder, images)
    plain = MODELS.build(tiny_vit())
    *_, saved_plain = _encoder_step(plain, images)
    assert saved < 0.3 * saved_plain


# ------------------------------------------------------------------------- torch.compile
def test_compiled_image_encoder_matches_eager():
    torch.manual_seed(0)
    cfg = tiny_vit()
    eager = MODELS.build(cfg)
    compiled = MODELS.build(dict(cfg, torch_compile=dict(backend='aot_eager')))
    compiled.load_state_dict(eager.state_dict())
    assert list(compiled.state_dict()) == list(eager.state_dict())
    images = torch.randn(3, 1, 32, 32)
    torch._dynamo.reset()
    loss_e, grads_e, _ = _encoder_step(eager, images)
    loss_c, grads_c, _ = _encoder_step(compiled, images)
    assert compiled.__dict__['_compiled_module'][0] is compiled.backbone  # it ran compiled
    assert torch.allclose(loss_c, loss_e, rtol=1e-6, atol=0)
    for name in grads_e:
        assert torch.allclose(grads_c[name], grads_e[name], rtol=1e-6, atol=1e-7), name


def test_compiled_text_encoder_matches_eager():
    from lgdea.models.encoders import build_hf_tokenizer, tokenize
    torch.manual_seed(0)
    eager = MODELS.build(tiny_bert())
    compiled = MODELS.build(dict(tiny_bert(), torch_compile=dict(backend='aot_eager')))
    compiled.load_state_dict(eager.state_dict())
    eager.eval()
    compiled.eval()
    tok = build_hf_tokenizer(**{k: v for k, v in tiny_tokenizer().items() if k != 'type'})
    batch = tokenize(tok, ['small left pleural effusion', 'no pneumothorax'], 16)
    with torch.no_grad():
        ref, out = eager(**batch), compiled(**batch)
    assert '_compiled_module' in compiled.__dict__
    assert torch.allclose(out['pooled'], ref['pooled'], rtol=1e-6, atol=1e-6)
    with pytest.raises(ValueError, match='unknown torch.compile arguments'):
        MODELS.build(dict(tiny_bert(), torch_compile=dict(backend='eager', speed='max')))


@pytest.mark.slow  # inductor compiles C++ kernels: about 30 s on the shared 2-core machine
def test_inductor_compiled_image_encoder_matches_eager():
    torch.manual_seed(0)
    cfg = tiny_vit()
    eager = MODELS.build(cfg).eval()
    compiled = MODELS.build(dict(cfg, torch_compile=True)).eval()
    compiled.load_state_dict(eager.state_dict())
    images = torch.randn(3, 1, 32, 32)
    with torch.no_grad():
        ref, out = eager(images), compiled(images)
    assert torch.allclose(out['local'], ref['local'], atol=1e-5, rtol=0)
    assert torch.allclose(out['global'], ref['global'], atol=1e-5, rtol=0)
