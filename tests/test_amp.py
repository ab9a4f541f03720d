"""bf16 autocast (``tools/train.py --amp``) for every method, on the CPU.

Under ``torch.autocast('cpu', dtype=torch.bfloat16)`` the encoders run their matmuls in bf16
while the losses and the heads before them run in float32 (``float32_forward``). For CLIP,
CLIP-on-evidence, LGDEA, GLoRIA and MGCA (tiny random encoders, random-noise images) the
training loss terms and the gradients of one step are compared with float32.

Measured on this CPU (torch 2.x): loss terms within 4.4e-3 relative (asserted 1e-2);
gradients (all parameters as one vector) at 1 - cosine <= 6.1e-4 (asserted 2e-3) and within
3.6e-2 relative L2 error (asserted 8e-2). bf16 keeps 8 mantissa bits (about 3 significant
digits), so these are the expected sizes. Without the float32 heads and losses
(``float32_forward`` made a plain call) LGDEA's ``loss_p`` / ``loss_u`` / ``loss_align`` and
MGCA's ``loss_tca`` come out in bf16 (LGDEA 1.1e-2 off) and the dtype checks fail.
"""
import copy

import pytest
import torch
from mmengine.optim import OptimWrapper
from mmpretrain.structures import DataSample

from lgdea.engine.optimizers import AutocastOptimWrapper
from lgdea.registry import MODELS
from lgdea.utils import register_all_modules

from conftest import tiny_bert, tiny_tokenizer, tiny_vit

PHRASES = ['small left pleural effusion', 'mild cardiomegaly', 'right basilar atelectasis',
           'no acute cardiopulmonary abnormality', 'left upper lobe consolidation']


def _cfg(method):
    register_all_modules()
    tok = tiny_tokenizer()
    if method in ('clip', 'clip_ev'):
        cfg = dict(type='CLIPBaseline', image_encoder=tiny_vit(), text_encoder=tiny_bert(),
                   tokenizer=tok, embed_dims=16)
        if method == 'clip_ev':
            cfg['text_source'] = 'evidence'
        return cfg
    if method == 'lgdea':
        return dict(type='LGDEA', image_encoder=tiny_vit(), text_encoder=tiny_bert(),
                    tokenizer=tok, neck=dict(type='LesionQueryNeck', num_queries=4, num_heads=2),
                    head=dict(type='DiagnosticPrototypeHead', num_prototypes=6),
                    propagation=dict(type='EvidencePropagation', steps=2), embed_dims=16)
    if method == 'gloria':
        import projects.gloria.gloria  # noqa: F401
        return dict(type='GLoRIA', tokenizer=tok,
                    text_encoder=dict(type='GLoRIATextEncoder',
                                      encoder=dict(tiny_bert(), freeze=False), last_n_layers=2),
                    image_encoder=dict(type='GLoRIAImageEncoder', backbone=tiny_vit()['backbone'],
                                       embed_dims=32, input_size=None))
    import projects.mgca.mgca  # noqa: F401
    return dict(type='MGCA', tokenizer=tok, image_encoder=tiny_vit(),
                text_encoder=dict(tiny_bert(), pooling='cls'), embed_dims=16, hidden_dims=32,
                max_text_length=24, cpa_loss=dict(type='PrototypeAlignmentLoss',
                                                  num_prototypes=20))


def _model(method):
    torch.manual_seed(0)
    model = MODELS.build(_cfg(method))
    model.init_weights()
    model.train()
    for m in model.modules():
        if isinstance(m, torch.nn.Dropout):
            m.p = 0.0
        # A random tiny BERT gives nearly the same [CLS] feature for every report; batch
        # statistics over it divide by a near-zero spread (tests/test_ddp_parity_baselines.py
        # keeps these layers at their running statistics for the same reason).
        if isinstance(m, torch.nn.modules.batchnorm._BatchNorm):
            m.eval()
    return model


def _batch(n=6):
    images = torch.randint(0, 256, (n, 1, 32, 32), generator=torch.Generator().manual_seed(0),
                           dtype=torch.uint8)
    samples, reports = [], []
    for i in range(n):
        img = DataSample(metainfo=dict(study_id=f's{i}', paired=True))
        rep = DataSample(metainfo=dict(study_id=f's{i}', paired=True))
        rep.text = (f'FINDINGS: there is {PHRASES[i % 5]} on the '
                    f'{"left" if i % 2 else "right"}. IMPRESSION: {PHRASES[(i + 1) % 5]}.')
        rep.evidence = [PHRASES[i % 5]] + ([PHRASES[(i + 2) % 5]] if i % 2 else [])
        img.text = rep.text
        samples.append(img)
        reports.append(rep)
    return dict(inputs=images, data_samples=samples, reports=reports)


def _first_linear_dtypes(model):
    """Output dtypes of the image encoder's first attention projection (one per forward)."""
    seen = []
    linear = next(m for name, m in model.image_encoder.named_modules()
                  if isinstance(m, torch.nn.Linear))
    linear.register_forward_hook(lambda mod, inp, out: seen.append(out.dtype))
    return seen


def _step(model, amp):
    torch.manual_seed(1)             # GLoRIA samples one sentence per report
    model.zero_grad()
    data = model.data_preprocessor(_batch(), True)
    with torch.autocast('cpu', dtype=torch.bfloat16, enabled=amp):
        out = model(**data, mode='loss')
    losses = {k: v for k, v in out.items() if k.startswith('loss')}
    sum(losses.values()).backward()
    grads = torch.cat([p.grad.flatten() for p in model.parameters() if p.grad is not None])
    return losses, grads


@pytest.mark.parametrize('method', ['clip', 'clip_ev', 'lgdea', 'gloria', 'mgca'])
def test_bf16_autocast_loss_and_gradients_match_float32(method):
    ref_model = _model(method)
    amp_model = copy.deepcopy(ref_model)
    dtypes = _first_linear_dtypes(amp_model)
    ref, ref_grad = _step(ref_model, amp=False)
    out, grad = _step(amp_model, amp=True)
    assert dtypes and set(dtypes) == {torch.bfloat16}      # the encoder did run in bf16
    assert set(out) == set(ref)
    for key, value in out.items():
        assert value.dtype == torch.float32, f'{key} is {value.dtype} under autocast'
        assert abs(value.item() - ref[key].item()) <= 1e-2 * max(abs(ref[key].item()), 1e-2), key
    assert grad.shape == ref_grad.shape
    cosine = torch.nn.functional.cosine_similarity(grad, ref_grad, dim=0)
    assert 1 - cosine.item() <= 2e-3
    assert ((grad - ref_grad).norm() / ref_grad.norm()).item() <= 8e-2


def test_autocast_optim_wrapper_trains_through_train_step_on_cpu():
    model = _model('lgdea')
    reference = copy.deepcopy(model)
    dtypes = _first_linear_dtypes(model)
    wrapper = AutocastOptimWrapper(optimizer=torch.optim.SGD(model.parameters(), lr=0.1))
    plain = OptimWrapper(optimizer=torch.optim.SGD(reference.parameters(), lr=0.1))
    torch.manual_seed(1)
    log_vars = model.train_step(_batch(), wrapper)
    torch.manual_seed(1)
    ref_vars = reference.train_step(_batch(), plain)
    assert set(dtypes) == {torch.bfloat16}
    assert log_vars['loss'].dtype == torch.float32
    assert abs(log_vars['loss'].item() - ref_vars['loss'].item()) <= 1e-2 * ref_vars['loss'].item()
    moved = [(p - q).abs().max().item() for p, q in zip(model.parameters(),
                                                          reference.parameters())]
    assert max(moved) > 0                       # the bf16 step is not the float32 one ...
    start = _model('lgdea')
    step = max((p - q).abs().max().item() for p, q in zip(reference.parameters(),
                                                            start.parameters()))
    assert max(moved) < 0.1 * step              # ... but the same update within bf16 noise
    assert all(p.dtype == torch.float32 for p in model.parameters())
    assert not hasattr(wrapper, 'loss_scaler')  # bf16: no loss scaling
    with pytest.raises(ValueError, match='AmpOptimWrapper'):
        AutocastOptimWrapper(optimizer=torch.optim.SGD(model.parameters(), lr=0.1),
                             dtype='float16')


def test_float32_forward_is_a_plain_call_outside_autocast():
    from lgdea.models.utils import float32_forward

    @float32_forward
    def add(x, y):
        return x + y

    a = torch.randn(3, dtype=torch.bfloat16)
    assert add(a, a).dtype == torch.bfloat16        # outside autocast: untouched
    with torch.autocast('cpu', dtype=torch.bfloat16):
        assert add(a, dict(b=a)['b']).dtype == torch.float32
        assert torch.is_autocast_enabled('cpu')      # the region is restored afterwards


def test_fsdp_and_deepspeed_convert_the_autocast_wrapper():
    from mmengine.config import Config

    from lgdea.engine.runner import strategies
    cfg = Config(dict(strategy=dict(type='FSDPStrategy'),
                      optim_wrapper=dict(type='AutocastOptimWrapper', dtype='bfloat16',
                                         optimizer=dict(type='AdamW', lr=1e-4),
                                         clip_grad=dict(max_norm=1.0))))
    strategies._adapt_fsdp(cfg)
    assert cfg.optim_wrapper.type == strategies.FSDP_AUTOCAST_OPTIM_WRAPPER
    assert cfg.optim_wrapper.clip_grad == dict(max_norm=1.0)
    cfg = Config(dict(strategy=dict(type='DeepSpeedStrategy'),
                      optim_wrapper=dict(type='AutocastOptimWrapper', dtype='bfloat16',
                                         optimizer=dict(type='AdamW', lr=1e-4))))
    strategies._adapt_deepspeed_optim_wrapper(cfg)
    assert dict(cfg.optim_wrapper) == dict(type='DeepSpeedOptimWrapper',
                                           optimizer=dict(type='AdamW', lr=1e-4))
