"""Tests of the GLoRIA plugin: losses against loop references of the official computation,
word-piece aggregation, the inference interface and checkpoint conversion."""
import math
import os
import sys
import types

import pytest
import torch
import torch.nn.functional as F
from mmpretrain.structures import DataSample

from lgdea.models.encoders import BUILTIN_MINILM
from lgdea.models.encoders.hf_text_encoder import resolve_text_model_path
from lgdea.registry import MODELS, TOKENIZER
from lgdea.models.utils import build_pair_targets
from lgdea.utils import register_all_modules

import projects.gloria.gloria  # noqa: F401  (registers the plugin)
from projects.gloria.gloria import (convert_official_gloria, gloria_clean_text,
                                    gloria_sentences, sample_sentence)
from projects.gloria.gloria.models import (GLoRIA, GLoRIALocalLoss, aggregate_word_pieces,
                                           chunked_local_scores, local_scores, subword_table,
                                           word_index_of_tokens)

register_all_modules()

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__)))))


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)
    yield


def _vocab() -> str:
    return os.path.join(resolve_text_model_path(BUILTIN_MINILM), 'vocab.txt')


def _tokenizer():
    return TOKENIZER.build(dict(type='HFTokenizer', vocab_file=_vocab()))


def _tiny_cfg(backbone='resnet', dims=32, **kw) -> dict:
    if backbone == 'resnet':
        bb = dict(type='mmpretrain.ResNet', depth=18, base_channels=8, stem_channels=8,
                  in_channels=1, out_indices=(2, 3))
    else:
        bb = dict(type='mmpretrain.VisionTransformer',
                  arch=dict(embed_dims=32, num_layers=2, num_heads=2, feedforward_channels=64),
                  img_size=32, patch_size=8, in_channels=1, out_type='raw')
    return dict(
        type='GLoRIA',
        image_encoder=dict(type='GLoRIAImageEncoder', backbone=bb, embed_dims=dims,
                           input_size=None),
        text_encoder=dict(type='GLoRIATextEncoder', encoder=dict(
            type='HFTextEncoder',
            config=dict(vocab_size=30522, hidden_size=dims, num_hidden_layers=4,
                        num_attention_heads=2, intermediate_size=2 * dims,
                        max_position_embeddings=128))),
        tokenizer=dict(type='HFTokenizer', vocab_file=_vocab()),
        data_preprocessor=dict(type='VLDataPreprocessor'), **kw)


def _batch(n=6, size=32):
    words = ['effusion', 'cardiomegaly', 'pneumothorax', 'edema', 'atelectasis', 'opacity']
    samples = []
    for i in range(n):
        ds = DataSample()
        ds.study_id = f's{i}'
        ds.paired = True
        ds.text = (f'FINDINGS: There is {words[i % len(words)]} on the '
                   f'{"left" if i % 2 else "right"}. IMPRESSION: {words[i % len(words)]}.')
        samples.append(ds)
    images = torch.zeros(n, 1, size, size, dtype=torch.uint8)
    for i in range(n):  # image i: a bright square whose size grows with i
        images[i, 0, :5 * (i + 1), :5 * (i + 1)] = 255
    return images, samples


# ----------------------------------------------------------------- loop references
def ref_attention(query, context, temp1):
    """Official attention written as plain loops-free bmm steps: query [B, D, T] words,
    context [B, D, h, w] regions -> weighted context [B, D, T]."""
    b, d, t = query.shape
    ctx = context.reshape(b, d, -1)  # [B, D, M]
    s = torch.bmm(ctx.transpose(1, 2), query)  # [B, M, T] region-word dot products
    a = torch.softmax(s, dim=2)  # softmax over the words, for every region
    a = torch.softmax(temp1 * a.transpose(1, 2), dim=2)  # [B, T, M] softmax over regions
    return torch.bmm(ctx, a.transpose(1, 2))


def ref_local_similarities(img, words, cap_lens, temp1=4.0, temp2=5.0, reduce='sum',
                           start=0):
    """One text at a time against all images, as the official loop: img [B_I, D, h, w],
    words [B_T, D, L]; words ``start .. start + cap_len - 1`` of text i are used."""
    b = img.shape[0]
    cols = []
    for i in range(words.shape[0]):
        n = int(cap_lens[i])
        w = words[i, :, start:start + n].unsqueeze(0).repeat(b, 1, 1)  # [B_I, D, n]
        c = ref_attention(w, img, temp1)
        w2 = w.transpose(1, 2).reshape(b * n, -1)
        c2 = c.transpose(1, 2).reshape(b * n, -1)
        cos = (w2 * c2).sum(1) / (w2.norm(dim=1) * c2.norm(dim=1)).clamp(min=1e-8)
        e = torch.exp(temp2 * cos.view(b, n))
        agg = e.max(dim=1, keepdim=True)[0] if reduce == 'max' else e.sum(1, keepdim=True)
        cols.append(torch.log(agg))
    return torch.cat(cols, dim=1)  # [B_I, B_T]


def ref_aggregate(tokenizer, ids, feats):
    """Official word-piece aggregation: walk the tokens, '##' pieces join the open word,
    stop after [SEP]; returns (word features [L, C] zero padded, word strings)."""
    vocab = {v: k for k, v in tokenizer.get_vocab().items()}
    out, words, bank, names = [], [], [], []
    for t in range(ids.shape[0]):
        tok = vocab[int(ids[t])]
        if tok == '[SEP]':
            out.append(torch.stack(bank).sum(0))
            words.append(''.join(names))
            out.append(feats[t])
            words.append(tok)
            break
        if tok.startswith('##'):
            bank.append(feats[t])
            names.append(tok[2:])
        else:
            if bank:
                out.append(torch.stack(bank).sum(0))
                words.append(''.join(names))
            bank, names = [feats[t]], [tok]
    agg = torch.zeros_like(feats)
    agg[:len(out)] = torch.stack(out)
    return agg, words


# ------------------------------------------------------------------------ tests
def test_text_cleaning_follows_official_rules():
    text = 'FINDINGS: 1. Small left Effusion. 2. No pneumothorax.\nHeart ok. Stable.'
    assert gloria_sentences(text) == ['small left effusion', 'no pneumothorax', 'heart ok']
    assert gloria_clean_text(text) == 'small left effusion no pneumothorax heart ok'
    assert gloria_clean_text('Effusion') == 'effusion'  # fallback, not an empty caption
    assert sample_sentence(text) in gloria_sentences(text)


def test_word_piece_aggregation_matches_loop_reference():
    tok = _tokenizer()
    texts = ['small left pneumothorax and cardiomegaly', 'atelectasis',
             'bibasilar opacities unchanged since hemidiaphragm elevation']
    enc = tok(texts, padding='longest', truncation=True, max_length=20, return_tensors='pt')
    assert (enc['attention_mask'][:, -1] == 0).any()  # padding present
    table = subword_table(tok)
    assert table[tok.convert_tokens_to_ids('##x')] and not table[tok.cls_token_id]
    feats = torch.randn(*enc['input_ids'].shape, 5)
    index = word_index_of_tokens(enc['input_ids'], enc['attention_mask'], table)
    words = aggregate_word_pieces(feats, index['word_index'], enc['attention_mask'])
    for n in range(len(texts)):
        ref, names = ref_aggregate(tok, enc['input_ids'][n], feats[n])
        assert torch.allclose(words[n], ref, atol=1e-6)
        assert int(index['num_words'][n]) == len(names)
        assert names[0] == '[CLS]' and names[-1] == '[SEP]'
    # a multi-piece word was actually merged
    assert int(index['num_words'][0]) < int(enc['attention_mask'][0].sum())


def test_word_mask_keeps_cls_and_excludes_sep():
    tok = _tokenizer()
    enc = tok(['small left pneumothorax'], return_tensors='pt')
    index = word_index_of_tokens(enc['input_ids'], enc['attention_mask'], subword_table(tok))
    n_total = int(index['num_words'][0])  # [CLS] + 3 words + [SEP]
    assert n_total == 5
    official = GLoRIA.word_mask(index['num_words'], 8, include_cls=True)[0]
    assert official.tolist() == [True, True, True, True, False, False, False, False]
    no_cls = GLoRIA.word_mask(index['num_words'], 8, include_cls=False)[0]
    assert no_cls.tolist() == [False, True, True, True, False, False, False, False]
    # the official cap_len: words not starting with '[' plus one
    _, names = ref_aggregate(tok, enc['input_ids'][0], torch.zeros(enc['input_ids'].shape[1], 1))
    assert int(official.sum()) == len([w for w in names if not w.startswith('[')]) + 1

    # the local score ignores the [SEP] slot and depends on the [CLS] slot
    regions, words = torch.randn(3, 6, 8), torch.randn(2, 8, 8)
    mask = GLoRIA.word_mask(torch.tensor([5, 4]), 8, include_cls=True)
    base = local_scores(regions, words, mask)
    w_sep, w_cls = words.clone(), words.clone()
    w_sep[0, 4] += 3.0
    w_cls[0, 0] += 3.0
    assert torch.allclose(local_scores(regions, w_sep, mask), base)
    assert not torch.allclose(local_scores(regions, w_cls, mask)[:, 0], base[:, 0])


def test_local_loss_matches_official_loop_reference():
    b, d, h, w, length = 4, 16, 3, 3, 7
    img = torch.randn(b, d, h, w, requires_grad=True)
    words = torch.randn(b, d, length, requires_grad=True)
    cap_lens = [5, 3, 7, 2]
    ref = ref_local_similarities(img, words, cap_lens) * 10.0
    labels = torch.arange(b)
    ref_loss = F.cross_entropy(ref, labels) + F.cross_entropy(ref.t(), labels)
    ref_grads = torch.autograd.grad(ref_loss, (img, words))

    regions = img.flatten(2).transpose(1, 2)
    word_feats = words.transpose(1, 2)
    mask = torch.arange(length)[None] < torch.tensor(cap_lens)[:, None]
    out = GLoRIALocalLoss()(regions, word_feats, mask, torch.eye(b))
    assert torch.allclose(out['loss'], ref_loss, atol=1e-4, rtol=1e-5)
    grads = torch.autograd.grad(out['loss'], (img, words))
    for g, rg in zip(grads, ref_grads):
        assert torch.allclose(g, rg, atol=1e-4, rtol=1e-4)


def test_clean_variant_differs_from_official():
    regions, words = torch.randn(3, 9, 16), torch.randn(4, 6, 16)
    mask = torch.ones(4, 6, dtype=torch.bool)
    official = local_scores(regions, words, mask, variant='official')
    clean = local_scores(regions, words, mask, variant='clean')
    assert not torch.allclose(official, clean)
    # clean = the paper: single softmax over regions of tau1 * s, (1 / tau2) log-sum-exp
    s = torch.einsum('ltd,kmd->kltm', words, regions)
    ctx = torch.einsum('kltm,kmd->kltd', torch.softmax(4.0 * s, dim=-1), regions)
    cos = F.cosine_similarity(words[None], ctx, dim=-1)
    assert torch.allclose(clean, torch.logsumexp(5.0 * cos, dim=-1) / 5.0, atol=1e-5)
    with pytest.raises(ValueError, match='variant'):
        local_scores(regions, words, mask, variant='paper')


def test_global_loss_reduces_to_official_ce_and_uses_pair_targets():
    loss = MODELS.build(dict(type='GLoRIAGlobalLoss'))
    img, txt = torch.randn(5, 8), torch.randn(5, 8)
    logits = 10.0 * F.normalize(img, dim=-1) @ F.normalize(txt, dim=-1).t()
    expect = F.cross_entropy(logits, torch.arange(5)) + F.cross_entropy(logits.t(),
                                                                         torch.arange(5))
    assert torch.allclose(loss(img, txt, torch.eye(5))['loss'], expect, atol=1e-5)
    # two images of one study: the other image's report is a positive, not a negative
    keys2 = torch.tensor([0, 0, 1, 2, 3])
    y2 = build_pair_targets(keys2, torch.ones(5, dtype=torch.bool), keys2,
                            torch.ones(5, dtype=torch.bool))
    assert y2[0, 1] == 1 and y2[1, 0] == 1
    out = loss(img, txt, y2)
    assert torch.isfinite(out['loss']) and not torch.allclose(out['loss'], expect)


def test_gloria_loss_decreases_on_a_tiny_batch():
    model = MODELS.build(_tiny_cfg('vit'))
    images, samples = _batch()
    opt = torch.optim.Adam(model.parameters(), lr=2e-3)
    totals = []
    for _ in range(15):
        data = model.data_preprocessor(
            dict(inputs=images, data_samples=samples, reports=samples), True)
        out = model(**data, mode='loss')
        total = out['loss_global'] + out['loss_local']
        opt.zero_grad()
        total.backward()
        opt.step()
        totals.append(total.item())
    assert set(out) >= {'loss_global', 'loss_local', 'global_i2t', 'local_t2i'}
    assert sum(totals[-5:]) / 5 < 0.5 * totals[0]


@pytest.mark.parametrize('backbone', ['resnet', 'vit'])
def test_inference_interface_and_chunked_similarity(backbone):
    model = MODELS.build(_tiny_cfg(backbone)).eval()
    images, samples = _batch(5)
    phrases = ['left effusion', 'mild cardiomegaly', 'pneumothorax', 'no acute findings']
    with torch.no_grad():
        data = model.data_preprocessor(dict(inputs=images, data_samples=samples), False)
        img = model.extract_image(data['images'])
        txt = model.extract_text(phrases, kind='phrase')
        sim = model.similarity(img, txt)
        model.similarity_max_elements = 40  # forces 1 image x 1 text chunks
        sim_chunked = model.similarity(img, txt)
        gmap = model.grounding_map(img, dict(embed=txt['embed'][[0, 1, 2, 3, 0]]))
        preds = model.predict(data['images'], samples)
        glob_only = model.similarity(img, dict(embed=txt['embed']))
    h, w = img['grid']
    p, d = img['patch_embed'].shape[1:]
    assert p == h * w and d == 32 and sim.shape == (5, 4)
    assert torch.allclose(img['embed'].norm(dim=-1), torch.ones(5), atol=1e-5)
    assert torch.allclose(img['patch_embed'].norm(dim=-1), torch.ones(5, p), atol=1e-5)
    assert img['probe'].shape == (5, 64 if backbone == 'resnet' else 32)
    assert txt['word_embed'].shape[:2] == txt['word_mask'].shape
    assert not txt['word_mask'][:, 0].any()  # [CLS] is not a word of the similarity
    assert torch.allclose(sim, sim_chunked, atol=1e-5)
    assert gmap.shape == (5, h, w)
    assert preds[0].image_feats['patch_norm'].shape == (p, )
    assert torch.allclose(glob_only, img['embed'] @ txt['embed'].t(), atol=1e-5)

    # the official zero-shot score: (tau2 max_i cos + global cosine) / 2, words without [CLS]
    regions = img['patch_embed'] * img['patch_norm'][..., None]
    n_words = txt['word_mask'].sum(1)
    local = ref_local_similarities(regions.transpose(1, 2).reshape(5, d, h, w),
                                   txt['word_embed'].transpose(1, 2), n_words, reduce='max',
                                   start=1)
    assert torch.allclose(sim, (local + img['embed'] @ txt['embed'].t()) / 2, atol=1e-4)


def test_chunked_local_scores_equal_unchunked():
    regions, words = torch.randn(7, 5, 8), torch.randn(6, 4, 8)
    mask = torch.rand(6, 4) > 0.3
    mask[:, 1] = True
    full = chunked_local_scores(regions, words, mask, max_elements=None, word_reduce='max')
    for budget in (1, 20, 150, 10**6):
        part = chunked_local_scores(regions, words, mask, max_elements=budget, word_reduce='max')
        assert torch.allclose(full, part, atol=1e-6)


def _official_state_dict(model: GLoRIA) -> dict:
    """A state dict with the official GLoRIA key names, built from torchvision's ResNet and
    HF's BertModel (with its pooler) - independent of this implementation's names."""
    import torchvision
    from transformers import BertConfig, BertModel
    resnet = torchvision.models.resnet18(weights=None)
    resnet.conv1 = torch.nn.Conv2d(1, 64, 7, 2, 3, bias=False)
    resnet.fc = torch.nn.Identity()
    text_cfg = model.text_encoder.encoder.model.config
    bert = BertModel(BertConfig(**{k: getattr(text_cfg, k) for k in (
        'vocab_size', 'hidden_size', 'num_hidden_layers', 'num_attention_heads',
        'intermediate_size', 'max_position_embeddings')}), add_pooling_layer=True)
    state = {}
    for k, v in resnet.state_dict().items():  # random values (variances positive)
        if v.is_floating_point():
            v = torch.rand_like(v) + 0.5 if 'running_var' in k else 0.1 * torch.randn_like(v)
        state[f'gloria.img_encoder.model.{k}'] = v
    for k, v in bert.state_dict().items():
        state[f'gloria.text_encoder.model.{k}'] = v.clone()
    state['gloria.img_encoder.global_embedder.weight'] = torch.randn(32, 512)
    state['gloria.img_encoder.global_embedder.bias'] = torch.randn(32)
    state['gloria.img_encoder.local_embedder.weight'] = torch.randn(32, 256, 1, 1)
    state['gloria.text_encoder.model.embeddings.position_ids'] = torch.arange(128)[None]
    return state, resnet


def _r18_cfg():
    cfg = _tiny_cfg()
    cfg['image_encoder']['backbone'] = dict(type='mmpretrain.ResNet', depth=18, in_channels=1,
                                            out_indices=(2, 3))
    return cfg


def test_checkpoint_conversion_round_trip(tmp_path):
    model = MODELS.build(_r18_cfg()).eval()
    state, resnet = _official_state_dict(model)
    new_state, report = convert_official_gloria(state)
    assert not report.unmatched
    assert any('pooler' in k for k in report.dropped)
    assert 'gloria.text_encoder.model.embeddings.position_ids' in report.dropped
    missing, unexpected = model.load_state_dict(new_state, strict=False)
    assert not missing and not unexpected
    sd = model.state_dict()
    for new_key, old_key in report.renamed.items():
        assert torch.equal(sd[new_key], state[old_key])
    # same numbers as the official torchvision forward (layer3 = local, pooled layer4)
    resnet.load_state_dict({k[len('gloria.img_encoder.model.'):]: v for k, v in state.items()
                            if k.startswith('gloria.img_encoder.model.')})
    resnet.eval()
    x = torch.randn(2, 1, 64, 64)
    with torch.no_grad():
        y = resnet.maxpool(resnet.relu(resnet.bn1(resnet.conv1(x))))
        l3 = resnet.layer3(resnet.layer2(resnet.layer1(y)))
        pooled = resnet.layer4(l3).mean((2, 3))
        feats = model.image_encoder.backbone_features(x)
    assert torch.allclose(feats['local_map'], l3, atol=1e-4)
    assert torch.allclose(feats['global'], pooled, atol=1e-4)

    # the shared tool: Lightning-style file whose config object cannot be unpickled here
    mod = types.ModuleType('gloria_fake_omegaconf')

    class DictConfig:  # stands for omegaconf.DictConfig
        def __init__(self):
            self.lr = 5e-5

    DictConfig.__module__ = mod.__name__
    DictConfig.__qualname__ = 'DictConfig'
    mod.DictConfig = DictConfig
    sys.modules[mod.__name__] = mod
    src = tmp_path / 'chexpert_resnet50.ckpt'
    try:
        torch.save(dict(state_dict=state, hyper_parameters=DictConfig()), src)
    finally:
        del sys.modules[mod.__name__]
    cfg_file = tmp_path / 'gloria_tiny.py'
    cfg_file.write_text(f"default_scope = 'lgdea'\ncustom_imports = dict(imports=['lgdea', "
                        f"'projects.gloria.gloria'])\nmodel = {_r18_cfg()!r}\n")
    sys.path.insert(0, os.path.join(REPO, 'tools'))
    try:
        import convert_official_ckpt
    finally:
        sys.path.pop(0)
    dst = tmp_path / 'out.pth'
    rc = convert_official_ckpt.main(['gloria', str(src), str(dst), '--config', str(cfg_file),
                                     '--strict'])
    assert rc == 0
    converted = torch.load(dst, map_location='cpu', weights_only=True)['state_dict']
    assert torch.equal(converted['image_encoder.local_embedder.weight'],
                       state['gloria.img_encoder.local_embedder.weight'])


def test_demo_config_builds_and_trains_one_step():
    from mmengine.config import Config
    cfg = Config.fromfile(os.path.join(REPO, 'projects/gloria/configs/gloria_demo_p5.py'))
    assert cfg.train_dataloader.dataset.include_unpaired is False
    assert cfg.train_dataloader.dataset.pair_ratio == 0.05
    model = MODELS.build(cfg.model)
    images, samples = _batch(4, size=64)
    data = model.data_preprocessor(dict(inputs=images, data_samples=samples, reports=samples),
                                   True)
    out = model(**data, mode='loss')
    (out['loss_global'] + out['loss_local']).backward()
    assert all(torch.isfinite(out[k]) for k in ('loss_global', 'loss_local'))
    # frozen MiniLM, trainable projections; 8x8 region grid at 64 px
    assert not any(p.requires_grad for p in model.text_encoder.encoder.parameters())
    assert model.text_encoder.emb_local.weight.grad is not None
    with torch.no_grad():
        assert model.extract_image(data['images'])['grid'] == (8, 8)


@pytest.mark.parametrize('embed_dims', [None, 16])
def test_gloria_frozen_text_cache_matches_computed_words(embed_dims):
    """Cached word / sentence features equal the computed ones for batches of other
    lengths, repeated captions and new ones; a trainable encoder is not cached."""
    from lgdea.models.encoders import tokenize
    torch.manual_seed(3)
    encoder = dict(type='HFTextEncoder', freeze=True,
                   config=dict(vocab_size=30522, hidden_size=32, num_hidden_layers=4,
                               num_attention_heads=2, intermediate_size=64,
                               max_position_embeddings=128))
    cached = MODELS.build(dict(type='GLoRIATextEncoder', encoder=encoder,
                               embed_dims=embed_dims))
    plain = MODELS.build(dict(type='GLoRIATextEncoder', encoder=encoder,
                              embed_dims=embed_dims, cache_frozen=False))
    plain.load_state_dict(cached.state_dict())
    assert cached._word_cache is not None and plain._word_cache is None
    tok = _tokenizer()
    table = subword_table(tok)
    texts = ['small left effusion', 'cardiomegaly unchanged', 'no pneumothorax seen today',
             'bibasilar atelectasis with a much longer description of the lung bases']
    batches = [texts[:2], texts[1:], [texts[0], texts[0], 'new opacity']]
    for batch in batches:
        tokens = tokenize(tok, batch, 32)
        got = cached(**tokens, is_subword=table)
        want = plain(**tokens, is_subword=table)
        for key in ('words', 'num_words', 'sentence'):
            assert got[key].shape == want[key].shape, key
            assert torch.allclose(got[key].float(), want[key].float(), atol=1e-5), key
    assert len(cached._word_cache) == 5
    trainable = MODELS.build(dict(type='GLoRIATextEncoder', encoder=dict(encoder, freeze=False)))
    assert trainable._word_cache is None


def test_collapse_diagnostics_mean_pairwise_cosine():
    from projects.gloria.gloria.models.gloria import mean_pairwise_cosine
    x = torch.randn(7, 5)
    z = F.normalize(x, dim=-1)
    sim = z @ z.t()
    want = (sim.sum() - sim.diagonal().sum()) / (7 * 6)
    assert torch.allclose(mean_pairwise_cosine(x), want, atol=1e-6)
    assert torch.allclose(mean_pairwise_cosine(x[:1].repeat(4, 1) * 3), torch.tensor(1.0))
    model = MODELS.build(_tiny_cfg('vit'))
    images, samples = _batch(4)
    data = model.data_preprocessor(dict(inputs=images, data_samples=samples, reports=samples),
                                   True)
    out = model(**data, mode='loss')
    assert 0 < float(out['img_cos']) <= 1 and -1 <= float(out['txt_cos']) <= 1
    assert not out['img_cos'].requires_grad      # logged only, never summed into the loss
    assert not any('loss' in k for k in ('img_cos', 'txt_cos'))


def test_learnable_temp3_is_shared_trained_and_clamped():
    """Official: tau3 is a fixed float (no parameter); learnable_temp3 makes it one shared
    parameter of both losses, starting at temp3 (same loss at init), with gradient, clamped
    to max_temp3."""
    images, samples = _batch(4)
    fixed = MODELS.build(_tiny_cfg('vit', temp3=10.0))
    assert not any('temp3' in n for n, _ in fixed.named_parameters())
    learn = MODELS.build(_tiny_cfg('vit', temp3=10.0, learnable_temp3=True, max_temp3=50.0))
    missing = learn.load_state_dict(fixed.state_dict(), strict=False).missing_keys
    assert missing == ['log_temp3']
    data = fixed.data_preprocessor(dict(inputs=images, data_samples=samples, reports=samples),
                                   True)
    fixed.eval(), learn.eval()                    # no dropout: identical forward
    out_f = fixed(**data, mode='loss')
    out_l = learn(**data, mode='loss')
    assert 'temp3' not in out_f and float(out_l['temp3']) == pytest.approx(10.0)
    for key in ('loss_global', 'loss_local'):
        assert torch.allclose(out_f[key], out_l[key], atol=1e-5), key
    for key in ('loss_global', 'loss_local'):     # both losses use the learnable tau3
        (grad, ) = torch.autograd.grad(out_l[key], learn.log_temp3, retain_graph=True)
        assert float(grad.abs()) > 0, key
    with torch.no_grad():
        learn.log_temp3.fill_(math.log(500.0))
    out = learn(**data, mode='loss')
    assert float(out['temp3']) == pytest.approx(50.0)
    with pytest.raises(ValueError, match='max_temp3'):
        MODELS.build(_tiny_cfg('vit', temp3=200.0, learnable_temp3=True))


def test_impression_section_and_training_caption_source():
    from projects.gloria.gloria import impression_section
    report = ('FINDINGS: No pneumothorax. Lungs are clear.\n\nIMPRESSION: Moderate left '
              'effusion. Mild cardiomegaly.')
    assert impression_section(report).strip() == 'Moderate left effusion. Mild cardiomegaly.'
    assert impression_section('FINDINGS: No pneumothorax. IMPRESSION: Small effusion. '
                              'RECOMMENDATION: Follow up.').strip() == 'Small effusion.'
    assert impression_section('No pneumothorax seen.') == 'No pneumothorax seen.'  # no header
    assert impression_section('FINDINGS: Clear lungs. IMPRESSION: ') .startswith('FINDINGS')
    official = MODELS.build(_tiny_cfg('vit'))
    impr = MODELS.build(_tiny_cfg('vit', train_caption_section='impression'))
    findings = {'no pneumothorax', 'lungs are clear'}
    got_official = {official.training_caption(report) for _ in range(40)}
    got_impr = {impr.training_caption(report) for _ in range(40)}
    assert got_official & findings                # official: any sentence of the report
    assert got_impr == {'moderate left effusion', 'mild cardiomegaly'}
    full = MODELS.build(_tiny_cfg('vit', train_caption='full',
                                  train_caption_section='impression'))
    assert full.training_caption(report) == 'moderate left effusion mild cardiomegaly'
    # evaluation texts keep every section
    assert 'no pneumothorax' in gloria_clean_text(report)
    with pytest.raises(ValueError, match='train_caption_section'):
        MODELS.build(_tiny_cfg('vit', train_caption_section='findings'))


@pytest.mark.parametrize('name', ['gloria_demo_vit_p100.py', 'gloria_demo_vit_p5.py'])
def test_vit_demo_configs_use_the_shared_encoders_and_train(name):
    """The ViT demo configs inherit the shared demo ViT / MiniLM (configs/_base_/models/
    encoders_demo.py, as CLIP, MGCA and LGDEA) and train a couple of optimizer steps."""
    from mmengine.config import Config
    from mmengine.optim import build_optim_wrapper
    cfg = Config.fromfile(os.path.join(REPO, 'projects/gloria/configs', name))
    shared = Config.fromfile(os.path.join(REPO, 'configs/_base_/models/encoders_demo.py'))
    assert cfg.model.image_encoder.type == 'GLoRIAImageEncoder'
    assert cfg.model.image_encoder.backbone.to_dict() == \
        shared.demo_image_encoder.backbone.to_dict()
    assert cfg.model.text_encoder.encoder.to_dict() == shared.demo_text_encoder.to_dict()
    assert cfg.train_dataloader.dataset.include_unpaired is False
    assert cfg.train_dataloader.dataset.pair_ratio == (1.0 if 'p100' in name else 0.05)
    torch.manual_seed(0)
    model = MODELS.build(cfg.model)
    clip = Config.fromfile(os.path.join(REPO, 'configs/demo/clip_demo_p100.py'))
    torch.manual_seed(0)
    clip_img = MODELS.build(clip.model.image_encoder)
    ours = model.image_encoder.encoder.backbone.state_dict()
    theirs = clip_img.backbone.state_dict()
    assert ours.keys() == theirs.keys()
    assert all(ours[k].shape == theirs[k].shape for k in ours)
    optim = build_optim_wrapper(model, cfg.optim_wrapper)
    images, samples = _batch(4, size=64)
    before = model.image_encoder.global_embedder.weight.detach().clone()
    for _ in range(2):
        log = model.train_step(dict(inputs=images, data_samples=samples, reports=samples),
                               optim)
    assert all(torch.isfinite(v) for v in log.values())
    assert {'loss_global', 'loss_local', 'img_cos', 'txt_cos'} <= set(log)
    assert not torch.equal(before, model.image_encoder.global_embedder.weight)
    with torch.no_grad():
        feats = model.extract_image(model.data_preprocessor(
            dict(inputs=images, data_samples=samples, reports=samples), False)['images'])
    assert feats['grid'] == (8, 8) and feats['patch_embed'].shape[1] == 64
