import pytest
import torch
from mmpretrain.structures import DataSample

from lgdea.registry import MODELS
from lgdea.models.losses import ContrastiveLoss, soft_cross_entropy

from conftest import tiny_bert, tiny_tokenizer, tiny_vit


def _clip(**kw):
    model = MODELS.build(dict(type='CLIPBaseline', image_encoder=tiny_vit(), text_encoder=tiny_bert(),
                             tokenizer=tiny_tokenizer(), embed_dims=16,
                             data_preprocessor=dict(type='VLDataPreprocessor'), **kw))
    model.init_weights()
    return model


def _batch(n=6):
    words = ['effusion', 'cardiomegaly', 'pneumothorax', 'edema', 'atelectasis', 'opacity']
    imgs, samples = [], []
    for i in range(n):
        ds = DataSample()
        ds.study_id = f's{i}'
        ds.paired = True
        ds.text = f'there is {words[i % len(words)]} on the {"left" if i % 2 else "right"}'
        samples.append(ds)
    # image i: a bright square whose size grows with i (learnable, unlike pure noise)
    images = torch.zeros(n, 1, 32, 32, dtype=torch.uint8)
    for i in range(n):
        images[i, 0, :5 * (i + 1), :5 * (i + 1)] = 255
    return images, samples


def test_soft_cross_entropy_matches_ce_for_identity():
    logits = torch.randn(5, 5)
    ce = torch.nn.functional.cross_entropy(logits, torch.arange(5))
    assert torch.allclose(soft_cross_entropy(logits, torch.eye(5)), ce)
    # rows without positives are ignored; no positives at all gives 0, not NaN
    t = torch.zeros(5, 5)
    assert soft_cross_entropy(logits, t).item() == 0.0


def test_two_images_of_one_study_are_not_negatives():
    from lgdea.models.utils import build_pair_targets
    loss = ContrastiveLoss()
    img = torch.nn.functional.normalize(torch.randn(3, 8), dim=-1)
    rep = img[[0, 2]].clone()  # images 0 and 1 share study a; image 2 is study b
    y = build_pair_targets(torch.tensor([1, 1, 2]), torch.ones(3, dtype=torch.bool),
                           torch.tensor([1, 2]), torch.ones(2, dtype=torch.bool))
    out = loss(img, rep, torch.tensor(0.0), y)
    assert torch.isfinite(out['loss'])
    assert out['num_pos_rows'].item() == 3


def test_symmetric_infonce_direction_reductions():
    from lgdea.models.losses import symmetric_infonce
    g = torch.Generator().manual_seed(0)
    logits = torch.randn(4, 4, generator=g)
    y = torch.eye(4)
    ce = torch.nn.functional.cross_entropy
    i2t, t2i = ce(logits, torch.arange(4)), ce(logits.t(), torch.arange(4))
    mean = symmetric_infonce(logits, y, 'mean')
    total = symmetric_infonce(logits, y, 'sum')
    torch.testing.assert_close(mean['loss'], (i2t + t2i) / 2)
    torch.testing.assert_close(total['loss'], i2t + t2i)
    torch.testing.assert_close(total['i2t'], i2t)
    with pytest.raises(ValueError, match='direction_reduction'):
        symmetric_infonce(logits, y, 'max')
    weighted = ContrastiveLoss(direction_reduction='sum', loss_weight=0.5)(
        torch.nn.functional.normalize(logits, dim=-1), torch.nn.functional.normalize(
            logits, dim=-1), torch.tensor(0.0), y)
    assert weighted['loss'].item() == pytest.approx(
        0.5 * (weighted['i2t'] + weighted['t2i']).item(), rel=1e-6)


def test_clip_loss_decreases_on_a_tiny_batch():
    model = _clip()
    images, samples = _batch()
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3)
    losses = []
    for _ in range(25):
        data = model.data_preprocessor(
            dict(inputs=images, data_samples=samples, reports=samples), True)
        out = model(**data, mode='loss')
        opt.zero_grad()
        out['loss_contrastive'].backward()
        opt.step()
        losses.append(out['loss_contrastive'].item())
    assert losses[-1] < 0.5 * losses[0]


def test_clip_inference_interface():
    model = _clip().eval()
    images, samples = _batch(4)
    images = model.data_preprocessor(dict(inputs=images, data_samples=samples), False)['images']
    with torch.no_grad():
        img = model.extract_image(images)
        txt = model.extract_text(['left effusion', 'edema'], kind='phrase')
        sim = model.similarity(img, txt)
        gmap = model.grounding_map(img, dict(embed=txt['embed'][[0, 1, 0, 1]]))
        out = model.predict(images, samples)
    assert sim.shape == (4, 2)
    assert torch.allclose(img['embed'].norm(dim=-1), torch.ones(4))
    assert gmap.shape == (4, 4, 4)
    assert gmap.abs().max() <= 1.0 + 1e-5
    assert out[0].image_feats['embed'].shape == (16, )


def test_clip_evidence_text_source():
    model = _clip(text_source='evidence')
    images, samples = _batch(2)
    images = images.float()
    samples[0].evidence = ['small left pleural effusion']
    samples[1].evidence = ['mild cardiomegaly', 'small left pleural effusion']
    out = model.loss(images, samples, samples)
    assert torch.isfinite(out['loss_contrastive'])
    del samples[1].evidence
    with pytest.raises(KeyError, match='evidence'):
        model.loss(images, samples, samples)


def test_frozen_text_encoder_cache_matches_direct_encoding():
    from lgdea.models.encoders import HFTextEncoder, build_hf_tokenizer, tokenize
    from conftest import tiny_bert
    cfg = dict(tiny_bert())
    cfg.pop('type')
    enc = HFTextEncoder(freeze=True, **cfg).train()
    assert not enc.model.training  # frozen encoders stay in eval mode (no dropout)
    tok = build_hf_tokenizer(vocab_file=tiny_tokenizer()['vocab_file'])
    batch = tokenize(tok, ['left effusion', 'a much longer report about the heart size'], 32)
    cached = enc(**batch)['pooled']
    assert len(enc._pooled_cache) == 2
    enc.cache_frozen = False
    direct = enc(**batch)['pooled']
    assert torch.allclose(cached, direct, atol=1e-5)
    enc.cache_frozen = True
    again = enc(**tokenize(tok, ['left effusion'], 32))['pooled']
    assert torch.allclose(again[0], direct[0], atol=1e-5)
    assert len(enc._pooled_cache) == 2


def test_frozen_text_encoder_bf16_precision(monkeypatch):
    """``frozen_precision='bf16'`` runs the frozen pass under bf16 autocast, hands float32 on
    and stays close to fp32 (the real pretrained MiniLM); ``'auto'`` follows the device
    check; a trainable encoder ignores it."""
    import lgdea.models.encoders.hf_text_encoder as hf
    from lgdea.models.encoders import BUILTIN_MINILM, HFTextEncoder, build_hf_tokenizer, tokenize
    from conftest import tiny_bert
    common = dict(name_or_path=BUILTIN_MINILM, pooling='mean', freeze=True, cache_frozen=False,
                  attn_implementation='eager')
    ref = HFTextEncoder(**common)
    bf16 = HFTextEncoder(frozen_precision='bf16', **common)
    tok = build_hf_tokenizer(BUILTIN_MINILM)
    batch = tokenize(tok, ['Small left pleural effusion.',
                           'The heart is enlarged. No pneumothorax. Bibasilar atelectasis.'], 32)
    calls = []
    real_autocast = torch.autocast
    monkeypatch.setattr(hf.torch, 'autocast', lambda **kw: calls.append(kw) or real_autocast(**kw))
    out_ref = ref(**batch, output_attentions=True)
    assert calls == []
    out = bf16(**batch, output_hidden_states=True, output_attentions=True)
    assert calls and calls[-1]['dtype'] is torch.bfloat16
    for key in ('tokens', 'pooled'):
        assert out[key].dtype is torch.float32
    assert all(h.dtype is torch.float32 for h in out['hidden_states'])
    assert all(a.dtype is torch.float32 for a in out['attentions'])
    cos = torch.nn.functional.cosine_similarity(out['pooled'], out_ref['pooled'])
    assert cos.min() > 0.999 and not torch.equal(out['pooled'], out_ref['pooled'])
    # the cached pooled path uses the same precision
    bf16.cache_frozen = True
    assert torch.allclose(bf16(**batch)['pooled'], out['pooled'], atol=1e-5)

    cfg = dict(tiny_bert())
    cfg.pop('type')
    tiny_batch = tokenize(build_hf_tokenizer(vocab_file=tiny_tokenizer()['vocab_file']),
                          ['left effusion'], 16)
    auto = HFTextEncoder(freeze=True, cache_frozen=False, frozen_precision='auto', **cfg)
    for native in (False, True):
        monkeypatch.setattr(hf, 'native_bf16_available', lambda device, n=native: n)
        calls.clear()
        auto(**tiny_batch)
        assert bool(calls) is native
    trainable = HFTextEncoder(freeze=False, frozen_precision='bf16', **cfg)
    calls.clear()
    assert trainable(**tiny_batch)['pooled'].requires_grad and calls == []
    with pytest.raises(ValueError, match='frozen_precision'):
        HFTextEncoder(freeze=True, frozen_precision='fp16', **cfg)
