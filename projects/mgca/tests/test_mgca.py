"""Tests of the MGCA plugin: every component against a literal loop reference, plus a training
smoke test, the checkpoint key map and the configs."""
import math
import os.path as osp
from types import SimpleNamespace

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F
from mmpretrain.structures import DataSample

import lgdea  # noqa: F401
import projects.mgca.mgca  # noqa: F401  (registers the plugin)
from lgdea.registry import HOOKS, METRICS, MODELS
from lgdea.utils import register_all_modules
from projects.mgca.mgca.ckpt_keys import convert_official_mgca, convert_timm_vit
from projects.mgca.mgca.models.losses import PrototypeAlignmentLoss, TokenAlignmentLoss
from projects.mgca.mgca.models.utils import (ViTCLSAttentionRecorder, aggregate_subwords,
                                             continuation_lookup, masked_quantile,
                                             percentile_clip, sinkhorn_knopp)

register_all_modules()

REPO = osp.dirname(osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__)))))


# ----------------------------------------------------------------------------- fixtures
def _vocab_file() -> str:
    from lgdea.models.encoders import BUILTIN_MINILM
    from lgdea.models.encoders.hf_text_encoder import resolve_text_model_path
    return osp.join(resolve_text_model_path(BUILTIN_MINILM), 'vocab.txt')


def _tiny_vit(dims=32, img_size=32, patch=8):
    return dict(type='CXRImageEncoder',
                backbone=dict(type='mmpretrain.VisionTransformer',
                              arch=dict(embed_dims=dims, num_layers=2, num_heads=2,
                                        feedforward_channels=2 * dims),
                              img_size=img_size, patch_size=patch, in_channels=1,
                              out_type='raw'))


def _bert_config(dims=32):
    return dict(vocab_size=30522, hidden_size=dims, num_hidden_layers=2, num_attention_heads=2,
                intermediate_size=2 * dims, max_position_embeddings=128,
                hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0)


def _tiny_bert(**kw):
    return dict(type='HFTextEncoder', pooling='cls', config=_bert_config(), **kw)


def _mgca(**kw):
    cfg = dict(type='MGCA', image_encoder=_tiny_vit(), text_encoder=_tiny_bert(),
               tokenizer=dict(type='HFTokenizer', vocab_file=_vocab_file()), embed_dims=16,
               hidden_dims=32, max_text_length=24,
               cpa_loss=dict(type='PrototypeAlignmentLoss', num_prototypes=20),
               data_preprocessor=dict(type='VLDataPreprocessor'))
    cfg.update(kw)
    return MODELS.build(cfg)


WORDS = ['effusion', 'cardiomegaly', 'pneumothorax', 'edema', 'atelectasis', 'opacity']


def _batch(n=6, size=32):
    samples = []
    for i in range(n):
        ds = DataSample()
        ds.study_id = f's{i}'
        ds.paired = True
        ds.text = (f'there is a small {WORDS[i % len(WORDS)]} on the '
                   f'{"left" if i % 2 else "right"}, unchanged consolidation')
        samples.append(ds)
    images = torch.zeros(n, 1, size, size, dtype=torch.uint8)
    for i in range(n):  # a bright square whose size grows with i: learnable, unlike noise
        images[i, 0, :5 * (i + 1), :5 * (i + 1)] = 255
    return images, samples


# ------------------------------------------------------------------------- Sinkhorn
def _sinkhorn_loop_reference(scores, eps, iters):
    """The official algorithm written out: Q = exp(z / eps)^T, total 1, then rows -> 1/K,
    columns -> 1/B, finally columns normalised; returned [B, K]."""
    q = torch.exp(scores.double() / eps).t()
    q = q / q.sum()
    k, b = q.shape
    for _ in range(iters):
        for r in range(k):
            q[r] = q[r] * (1.0 / k) / q[r].sum()
        for c in range(b):
            q[:, c] = q[:, c] * (1.0 / b) / q[:, c].sum()
    for c in range(b):
        q[:, c] = q[:, c] / q[:, c].sum()
    return q.t()


def test_sinkhorn_marginals_and_reference():
    torch.manual_seed(0)
    scores = F.normalize(torch.randn(8, 5), dim=1)  # cosines
    codes = sinkhorn_knopp(scores, epsilon=0.05, iterations=3)
    assert codes.shape == (8, 5)
    assert torch.allclose(codes.sum(1), torch.ones(8), atol=1e-5)   # each sample: a distribution
    ref = _sinkhorn_loop_reference(scores, 0.05, 3)
    assert torch.allclose(codes.double(), ref, atol=1e-5)
    # converged: every prototype gets the same mass B / K (equipartition)
    converged = sinkhorn_knopp(scores, epsilon=0.05, iterations=500)
    assert torch.allclose(converged.sum(0), torch.full((5, ), 8 / 5), atol=1e-3)
    # 3 iterations are not converged, so the marginal is not yet exact (the test can tell)
    assert not torch.allclose(codes.sum(0), torch.full((5, ), 8 / 5), atol=1e-4)
    # large exponents (1 / 0.05 on cosines; half precision input) stay finite
    half = sinkhorn_knopp(scores.half(), epsilon=0.01, iterations=3)
    assert torch.isfinite(half).all()


# ----------------------------------------------------------------- percentile clipping
def test_percentile_clip_matches_loop_reference():
    torch.manual_seed(1)
    w = torch.rand(5, 11)
    w[0, 7:] = 0.0          # padding
    w[1, 1:] = 0.0          # a single non-zero entry
    w[2, ::2] = 0.0
    mask = w != 0
    ref = w.clone()
    for b in range(w.shape[0]):  # the official per-sample loop over the non-zero entries
        nz = w[b].nonzero().squeeze()
        lo, hi = torch.quantile(w[b][nz], 0.1), torch.quantile(w[b][nz], 0.9)
        ref[b][nz] = w[b][nz].clip(lo, hi)
    out = percentile_clip(w, mask, 0.1, 0.9)
    assert torch.allclose(out, ref, atol=1e-7)
    assert (out[0, 7:] == 0).all()
    # no mask: plain per-row torch.quantile (the patch side)
    full = percentile_clip(w, None, 0.1, 0.9)
    for b in range(w.shape[0]):
        lo, hi = torch.quantile(w[b], 0.1), torch.quantile(w[b], 0.9)
        assert torch.allclose(full[b], w[b].clip(lo, hi), atol=1e-7)
    for q in (0.0, 0.37, 1.0):
        assert torch.allclose(masked_quantile(w, q), torch.quantile(w, q, dim=1), atol=1e-7)
    assert torch.isnan(masked_quantile(w, 0.5, torch.zeros_like(mask))).all()


# ------------------------------------------------------------------------------- TCA
def _tca_loop_reference(word, patch, ww, pw, pad, tau, normalize_ctx):
    """Literal per-sample, per-token computation of L_word and L_patch."""
    b_size, n_w, _ = word.shape
    n_p = patch.shape[1]
    loss_word = torch.zeros((), dtype=word.dtype)
    loss_patch = torch.zeros((), dtype=word.dtype)
    for b in range(b_size):
        wb = ww[b] / ww[b].sum()
        ctx = []
        for i in range(n_w):
            scores = torch.stack([word[b, i] @ patch[b, j] / tau for j in range(n_p)])
            a = torch.softmax(scores, 0)
            o = sum(a[j] * patch[b, j] for j in range(n_p))
            ctx.append(o / o.norm())
        s = torch.stack([torch.stack([word[b, i] @ ctx[k] / tau for k in range(n_w)])
                         for i in range(n_w)])
        for i in range(n_w):
            row = -torch.log_softmax(s[i], 0)[i]
            col = -torch.log_softmax(s[:, i], 0)[i]
            loss_word = loss_word + 0.5 * wb[i] * (row + col)
        pb = pw[b] / pw[b].sum()
        valid = [m for m in range(n_w) if not pad[b, m]]
        ctx = []
        for j in range(n_p):
            scores = torch.stack([patch[b, j] @ word[b, m] / tau for m in valid])
            a = torch.softmax(scores, 0)
            q = sum(a[n] * word[b, m] for n, m in enumerate(valid))
            ctx.append(q / q.norm() if normalize_ctx else q)
        s = torch.stack([torch.stack([patch[b, j] @ ctx[m] / tau for m in range(n_p)])
                         for j in range(n_p)])
        for j in range(n_p):
            row = -torch.log_softmax(s[j], 0)[j]
            col = -torch.log_softmax(s[:, j], 0)[j]
            loss_patch = loss_patch + 0.5 * pb[j] * (row + col)
    return loss_word / b_size, loss_patch / b_size


@pytest.mark.parametrize('normalize_ctx', [False, True])
def test_tca_matches_loop_reference(normalize_ctx):
    torch.manual_seed(2)
    word = F.normalize(torch.randn(2, 5, 4, dtype=torch.float64), dim=-1)
    patch = F.normalize(torch.randn(2, 3, 4, dtype=torch.float64), dim=-1)
    pad = torch.tensor([[False, False, False, True, True], [False, False, False, False, True]])
    ww = torch.rand(2, 5, dtype=torch.float64).masked_fill(pad, 0.0)
    pw = torch.rand(2, 3, dtype=torch.float64)
    out = TokenAlignmentLoss(temperature=0.1)(word, patch, ww, pw, pad, normalize_ctx)
    ref_word, ref_patch = _tca_loop_reference(word, patch, ww, pw, pad, 0.1, normalize_ctx)
    assert torch.allclose(out['loss_word'], ref_word, atol=1e-9)
    assert torch.allclose(out['loss_patch'], ref_patch, atol=1e-9)
    assert torch.allclose(out['loss'], ref_word + ref_patch, atol=1e-9)
    # padding words take no part in the patch-side context
    word2 = word.clone()
    word2[0, 3:] = F.normalize(torch.randn(2, 4, dtype=torch.float64), dim=-1)
    out2 = TokenAlignmentLoss(temperature=0.1)(word2, patch, ww, pw, pad, normalize_ctx)
    assert torch.allclose(out2['loss_patch'], out['loss_patch'], atol=1e-12)
    one_dir = TokenAlignmentLoss(temperature=0.1, bidirectional=False)(word, patch, ww, pw, pad)
    assert torch.allclose(one_dir['loss'], ref_word, atol=1e-9)


# -------------------------------------------------------------------- word aggregation
class _FakeTokenizer:
    vocab = ['[PAD]', '[CLS]', '[SEP]', 'the', 'left', 'pleu', '##ral', 'eff', '##usion', '##s',
             'heart']

    def get_vocab(self):
        return {t: i for i, t in enumerate(self.vocab)}

    def __len__(self):
        return len(self.vocab)


def _aggregate_loop_reference(feats, ids, attn, vocab, shift):
    """The official ``aggregate_tokens`` loop (token banks, [SEP] ends, zip truncation)."""
    n, t, c = feats.shape
    words = torch.zeros(n, t, c, dtype=feats.dtype)
    weights = torch.zeros(n, t, dtype=attn.dtype)
    for b in range(n):
        att = attn[b, 1:] if shift else attn[b]
        agg, agg_w, bank, bank_w = [], [], [], []
        for m in range(len(att)):
            tok = vocab[int(ids[b, m])]
            if tok == '[SEP]':
                agg.append(sum(bank))
                agg_w.append(sum(bank_w))
                agg.append(feats[b, m])
                agg_w.append(att[m])
                break
            if not tok.startswith('##'):
                if bank:
                    agg.append(sum(bank))
                    agg_w.append(sum(bank_w))
                bank, bank_w = [feats[b, m]], [att[m]]
            else:
                bank.append(feats[b, m])
                bank_w.append(att[m])
        for k, (f, a) in enumerate(zip(agg, agg_w)):
            words[b, k] = f
            weights[b, k] = a
    return words, weights


@pytest.mark.parametrize('shift', [True, False])
def test_word_aggregation_matches_loop_reference(shift):
    torch.manual_seed(3)
    tok = _FakeTokenizer()
    ids = torch.tensor([
        [1, 3, 5, 6, 7, 8, 9, 2, 0, 0],      # the pleu##ral eff##usion##s [SEP] pad
        [1, 10, 4, 5, 6, 2, 0, 0, 0, 0],
        [1, 3, 10, 4, 5, 6, 7, 8, 10, 2],    # fills the length: [SEP] at the last position
    ])
    feats = torch.randn(3, 10, 4)
    attn = torch.softmax(torch.randn(3, 10), dim=1)
    out = aggregate_subwords(feats, ids, attn, continuation_lookup(tok), sep_token_id=2,
                             attention_shift=shift)
    ref_words, ref_w = _aggregate_loop_reference(feats, ids, attn, tok.vocab, shift)
    assert torch.allclose(out['cls'], ref_words[:, 0], atol=1e-6)
    assert torch.allclose(out['words'], ref_words[:, 1:], atol=1e-6)
    assert torch.allclose(out['weights'], ref_w[:, 1:], atol=1e-7)
    # 4 words + [SEP] in text 0; 4 + [SEP] in text 1
    assert out['num_words'][:2].tolist() == [4, 4]
    assert out['pad_mask'][0].tolist() == [False] * 4 + [True] * 5
    # text 2 with the official shift never reaches its final [SEP]: the last word is dropped
    assert out['num_words'][2].item() == (5 if shift else 7)


@pytest.mark.parametrize('shift', [True, False])
def test_report_words_equal_official_max_length_padding(shift):
    """The encoder runs on the longest report (+1 pad token); the words must equal the
    official encoding with every report padded to max_text_length."""
    torch.manual_seed(13)
    model = _mgca(word_attention_shift=shift, max_text_length=40).eval()
    texts = ['small left pleural effusion', 'cardiomegaly',
             'there is a moderate right pneumothorax with atelectasis of the lung base']
    with torch.no_grad():
        fast = model.encode_report_words(texts)
        enc = model.tokenizer(texts, padding='max_length', truncation=True, max_length=40,
                              return_tensors='pt')
        out = model.text_encoder(enc['input_ids'], enc['attention_mask'],
                                 output_attentions=True)
        ref = aggregate_subwords(out['tokens'], enc['input_ids'],
                                 out['attentions'][-1][:, :, 0, :].mean(1),
                                 model._is_continuation, model.tokenizer.sep_token_id, shift)
    assert fast['words'].shape == (3, 39, 32)
    assert torch.allclose(fast['words'], ref['words'], atol=1e-5)
    assert torch.allclose(fast['word_weights'], ref['weights'], atol=1e-6)
    assert torch.equal(fast['word_pad_mask'], ref['pad_mask'])
    assert torch.allclose(fast['report'], out['pooled'], atol=1e-5)


# --------------------------------------------------------------------- ViT attention
def _capture_last_attention(attn_module):
    store = {}

    def hook(module, args, output):
        store['x'], store['out'] = args[0].detach(), output.detach()

    return store, attn_module.register_forward_hook(hook)


def _eager_attention(module, x):
    """Full softmax(q k^T / sqrt(d)) and the module output computed by hand."""
    b, n, c = x.shape
    heads = module.num_heads
    qkv = F.linear(x, module.qkv.weight, module.qkv.bias).view(b, n, 3, heads, c // heads)
    q, k, v = qkv.permute(2, 0, 3, 1, 4)
    attn = torch.softmax(q @ k.transpose(-2, -1) / math.sqrt(c // heads), dim=-1)
    out = module.proj((attn @ v).transpose(1, 2).reshape(b, n, c))
    return attn, out


def test_vit_attention_recompute_matches_eager_reference():
    torch.manual_seed(4)
    vit = MODELS.build(_tiny_vit()['backbone'])
    vit.eval()  # mmpretrain's ViT.train() returns None: no chaining
    recorder = ViTCLSAttentionRecorder(vit)
    store, handle = _capture_last_attention(vit.layers[-1].attn)
    x = torch.randn(3, 1, 32, 32)
    with torch.no_grad():
        vit(x)  # not recording
        assert recorder.attention is None
        with recorder.recording():
            vit(x)
    handle.remove()
    attn, out = _eager_attention(vit.layers[-1].attn, store['x'])
    # the hand-computed attention is the one the fused kernel used: it reproduces the output
    assert torch.allclose(out, store['out'], atol=1e-5)
    assert torch.allclose(recorder.attention, attn[:, :, 0, :], atol=1e-6)
    patch_w = recorder.patch_attention()
    assert patch_w.shape == (3, 16)
    assert torch.allclose(patch_w, attn[:, :, 0, 1:].mean(1), atol=1e-6)


def test_vit_attention_recompute_timm():
    import timm
    torch.manual_seed(5)
    vit = timm.models.vision_transformer.VisionTransformer(
        img_size=32, patch_size=8, in_chans=1, embed_dim=32, depth=2, num_heads=2,
        mlp_ratio=2.0, num_classes=0, global_pool='').eval()
    recorder = ViTCLSAttentionRecorder(vit)
    store, handle = _capture_last_attention(vit.blocks[-1].attn)
    with torch.no_grad(), recorder.recording():
        vit.forward_features(torch.randn(2, 1, 32, 32))
    handle.remove()
    attn, out = _eager_attention(vit.blocks[-1].attn, store['x'])
    assert torch.allclose(out, store['out'], atol=1e-5)
    assert torch.allclose(recorder.attention, attn[:, :, 0, :], atol=1e-6)


# -------------------------------------------------------------------- text attentions
def test_text_attentions_need_eager():
    ids = torch.randint(1000, 2000, (2, 7))
    mask = torch.ones_like(ids)
    mask[1, 5:] = 0
    eager = MODELS.build(_tiny_bert(attn_implementation='eager')).eval()
    out = eager(ids, mask, output_attentions=True)
    assert len(out['attentions']) == 2
    assert out['attentions'][-1].shape == (2, 2, 7, 7)
    assert torch.allclose(out['attentions'][-1].sum(-1), torch.ones(2, 2, 7), atol=1e-5)
    assert (out['attentions'][-1][1, :, :, 5:] == 0).all()  # padding gets no attention
    sdpa = MODELS.build(_tiny_bert(attn_implementation='sdpa')).eval()
    with pytest.raises(RuntimeError, match='eager'):
        sdpa(ids, mask, output_attentions=True)
    with pytest.raises(ValueError, match='eager'):
        _mgca(text_encoder=_tiny_bert(attn_implementation='sdpa'))
    # MGCA builds its text encoder with eager attention when unset
    assert _mgca().text_encoder.attn_implementation == 'eager'


# ------------------------------------------------------------------ prototype freezing
class _ProtoNet(nn.Module):

    def __init__(self):
        super().__init__()
        self.proj = nn.Linear(4, 4)
        self.cpa_loss = PrototypeAlignmentLoss(embed_dims=4, num_prototypes=3)
        self.cpa_loss.normalize_prototypes()

    def forward(self, x, y):
        return self.cpa_loss(F.normalize(self.proj(x), dim=1),
                             F.normalize(self.proj(y), dim=1))['loss']


def _fake_runner(model, epoch_based: bool):
    from mmengine.logging import MMLogger
    from mmengine.optim import OptimWrapper
    from mmengine.runner import EpochBasedTrainLoop
    loop = EpochBasedTrainLoop.__new__(EpochBasedTrainLoop) if epoch_based else object()
    loader = torch.utils.data.DataLoader(list(range(10)), batch_size=4)  # 3 iters / epoch
    return SimpleNamespace(
        model=model, train_loop=loop, train_dataloader=loader, world_size=1, iter=0, epoch=0,
        optim_wrapper=OptimWrapper(torch.optim.AdamW(model.parameters(), lr=0.1)),
        logger=MMLogger.get_instance('mgca_test'))


def _step(runner, hook):
    hook.before_train_iter(runner, runner.iter)
    torch.manual_seed(runner.iter)
    loss = runner.model(torch.randn(6, 4), torch.randn(6, 4))
    protos = runner.model.cpa_loss.prototype_layer.weight.detach().clone()
    proj = runner.model.proj.weight.detach().clone()
    runner.optim_wrapper.backward(loss)
    grad = runner.model.cpa_loss.prototype_layer.weight.grad
    if hook.frozen:  # zeroed during backward: gradient clipping sees no prototype gradient
        assert grad is not None and (grad == 0).all()
    else:
        assert grad.abs().max() > 0
    runner.optim_wrapper.step()
    runner.optim_wrapper.zero_grad()
    runner.iter += 1
    new_protos = runner.model.cpa_loss.prototype_layer.weight.detach()
    moved = (new_protos - protos).abs().max().item()
    proj_moved = (runner.model.proj.weight.detach() - proj).abs().max().item()
    return moved, proj_moved


@pytest.mark.parametrize('epoch_based', [False, True])
def test_prototype_freeze_hook(epoch_based):
    torch.manual_seed(6)
    runner = _fake_runner(_ProtoNet(), epoch_based)
    hook = HOOKS.build(dict(type='MGCAPrototypeFreezeHook', freeze_epochs=1))
    hook.before_train(runner)
    for _ in range(3):  # epoch 0 (3 iterations of batch 4 over 10 items)
        moved, proj_moved = _step(runner, hook)
        assert moved < 1e-6           # prototypes fixed
        assert proj_moved > 1e-4      # encoders still learn from L_CPA
    if epoch_based:
        runner.epoch = 1
    moved, _ = _step(runner, hook)
    assert moved > 1e-4               # trainable from epoch 1
    assert not hook.frozen
    hook.after_train(runner)
    with pytest.raises(KeyError, match='param_prefixes'):
        HOOKS.build(dict(type='MGCAPrototypeFreezeHook',
                         param_prefixes=('nope.', ))).before_train(runner)


# ------------------------------------------------------------------------ the model
def test_mgca_loss_decreases_on_a_tiny_batch():
    torch.manual_seed(7)
    # frozen text encoder (as the demo configs): the heads and the ViT learn; fast on CPU
    model = _mgca(text_encoder=_tiny_bert(freeze=True))
    images, samples = _batch()
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3)
    totals = []
    for _ in range(25):
        data = model.data_preprocessor(dict(inputs=images, data_samples=samples,
                                            reports=samples), True)
        out = model(**data, mode='loss')
        assert set(out) >= {'loss_ita', 'loss_tca', 'loss_cpa', 'acc_i2t'}
        assert not any('loss' in k for k in out if k not in ('loss_ita', 'loss_tca',
                                                            'loss_cpa'))
        total = out['loss_ita'] + out['loss_tca'] + out['loss_cpa']
        opt.zero_grad()
        total.backward()
        opt.step()
        totals.append(total.item())
    assert all(math.isfinite(t) for t in totals)
    assert totals[-1] < 0.5 * totals[0]


def test_mgca_loss_terms_and_weights():
    torch.manual_seed(8)
    images, samples = _batch(4)
    model = _mgca()
    data = model.data_preprocessor(dict(inputs=images, data_samples=samples, reports=samples),
                                   True)
    out = model(**data, mode='loss')
    # ITA = CE(U^I U^T^T / 0.07, diag) + CE of the transpose (sum of both directions), computed
    # from the same forward (train-mode BatchNorm uses the batch statistics: deterministic)
    with torch.no_grad():
        feats = model.image_encoder(data['images'])
        u_img = F.normalize(model.image_global_embed(feats['global']), dim=-1)
        text = model.encode_report_words([s.text for s in samples])
        u_txt = F.normalize(model.text_global_embed(text['report']), dim=-1)
        logits = u_img @ u_txt.t() / 0.07
        target = torch.arange(4)
        ref = F.cross_entropy(logits, target) + F.cross_entropy(logits.t(), target)
    assert torch.allclose(out['loss_ita'], ref, rtol=1e-5)
    torch.manual_seed(8)
    weighted = _mgca(loss_weights=dict(ita=1.0, tca=0.7, cpa=0.5))
    out_w = weighted(**data, mode='loss')
    assert torch.allclose(out_w['loss_tca'], 0.7 * out['loss_tca'], rtol=1e-5)
    assert torch.allclose(out_w['loss_cpa'], 0.5 * out['loss_cpa'], rtol=1e-5)
    with pytest.raises(KeyError, match='loss_weights'):
        _mgca(loss_weights=dict(local=1.0))


def test_mgca_rejects_unpaired_batches():
    model = _mgca()
    images, samples = _batch(4)
    samples[2].paired = False
    data = model.data_preprocessor(dict(inputs=images, data_samples=samples, reports=samples),
                                   True)
    with pytest.raises(ValueError, match='include_unpaired=False'):
        model(**data, mode='loss')
    with pytest.raises(ValueError, match='pairs only'):
        model.loss(data['images'], data['data_samples'], data['reports'][:3])


def test_mgca_inference_interface():
    torch.manual_seed(9)
    model = _mgca().eval()
    images, samples = _batch(4)
    data = model.data_preprocessor(dict(inputs=images, data_samples=samples, reports=samples),
                                   False)
    with torch.no_grad():
        img = model.extract_image(data['images'])
        txt = model.extract_text(['left effusion', 'edema'], kind='phrase')
        rep = model.extract_text([s.text for s in samples], kind='report')
        sim = model.similarity(img, txt)
        gmap = model.grounding_map(img, dict(embed=txt['embed'][[0, 1, 0, 1]]))
        preds = model.predict(data['images'], data['data_samples'])
    assert img['embed'].shape == (4, 16) and rep['embed'].shape == (4, 16)
    assert torch.allclose(img['embed'].norm(dim=-1), torch.ones(4), atol=1e-5)
    assert torch.allclose(img['patch_embed'].norm(dim=-1), torch.ones(4, 16), atol=1e-5)
    assert img['probe'].shape == (4, 32)  # the un-projected CLS token
    assert tuple(img['grid']) == (4, 4)
    assert sim.shape == (4, 2) and gmap.shape == (4, 4, 4)
    assert torch.allclose(sim, img['embed'] @ txt['embed'].t())
    assert preds[0].image_feats['embed'].shape == (16, )


def test_mgca_resnet_branch():
    torch.manual_seed(10)
    enc = dict(type='CNNLocalGlobalEncoder', backbone=dict(type='mmpretrain.ResNet', depth=18),
               input_size=(64, 64))
    model = _mgca(image_encoder=enc,
                  data_preprocessor=dict(type='VLDataPreprocessor', channels=3))
    assert model.patch_weights == 'uniform' and model.normalize_patch_context is True
    assert model._attn_recorder is None
    images, samples = _batch(4)
    data = model.data_preprocessor(dict(inputs=images, data_samples=samples, reports=samples),
                                   True)
    feats = model.image_encoder(data['images'])
    assert feats['global'].shape == (4, 512) and feats['local'].shape == (4, 16, 256)
    assert tuple(feats['grid']) == (4, 4)
    out = model(**data, mode='loss')
    assert all(torch.isfinite(out[k]) for k in ('loss_ita', 'loss_tca', 'loss_cpa'))
    with pytest.raises(ValueError, match='ViT'):
        _mgca(image_encoder=enc, patch_weights='cls_attention')


def test_paired_val_loss_metric():
    torch.manual_seed(11)
    model = _mgca().eval()
    images, samples = _batch(4)
    metric = METRICS.build(dict(type='PairedValLoss'))
    metric.bind_model(model)
    batch = dict(inputs=images, data_samples=samples, reports=samples)
    metric.process(batch, [])
    metric.process(dict(inputs=images[:2], data_samples=samples[:2], reports=samples[:2]), [])
    res = metric.compute_metrics(metric.results)
    assert set(res) == {'loss', 'loss_ita', 'loss_tca', 'loss_cpa'}
    assert math.isclose(res['loss'], res['loss_ita'] + res['loss_tca'] + res['loss_cpa'],
                        rel_tol=1e-6)


# --------------------------------------------------------------- checkpoint conversion
def _official_head(in_dims, hidden, out, conv):
    lin = (lambda i, o: nn.Conv1d(i, o, 1)) if conv else nn.Linear
    return nn.Sequential(lin(in_dims, hidden), nn.BatchNorm1d(hidden), nn.ReLU(),
                         lin(hidden, out), nn.BatchNorm1d(out, affine=False))


def test_official_checkpoint_conversion():
    import timm
    from transformers import BertConfig, BertModel
    torch.manual_seed(12)
    vit = timm.models.vision_transformer.VisionTransformer(
        img_size=32, patch_size=8, in_chans=1, embed_dim=32, depth=2, num_heads=2,
        mlp_ratio=2.0, num_classes=0, global_pool='').eval()
    bert = BertModel(BertConfig(**_bert_config()), add_pooling_layer=True).eval()
    official = {}
    for prefix, module in [('img_encoder_q.model.', vit), ('text_encoder_q.model.', bert),
                           ('img_encoder_q.global_embed.head.', _official_head(32, 32, 16, False)),
                           ('img_encoder_q.local_embed.head.', _official_head(32, 32, 16, True)),
                           ('text_encoder_q.global_embed.head.', _official_head(32, 32, 16, False)),
                           ('text_encoder_q.local_embed.head.', _official_head(32, 32, 16, True)),
                           ('patch_local_atten_layer.', nn.MultiheadAttention(16, 1)),
                           ('word_local_atten_layer.', nn.MultiheadAttention(16, 1))]:
        for k, v in module.state_dict().items():
            official[prefix + k] = v.clone()
    official['text_encoder_q.model.embeddings.position_ids'] = torch.arange(128)[None]
    official['text_encoder_q.model.encoder.layer.0.crossattention.self.query.weight'] = \
        torch.zeros(32, 32)
    official['prototype_layer.weight'] = F.normalize(torch.randn(20, 16), dim=1)

    state, report = convert_official_mgca(official)
    assert report.unmatched == []
    assert any('crossattention' in k for k in report.dropped)
    assert any('local_atten_layer' in k for k in report.dropped)
    model = _mgca().eval()
    model.load_state_dict(state, strict=True)
    # the converted backbone computes what the official timm ViT computes
    x = torch.randn(2, 1, 32, 32)
    with torch.no_grad():
        ours = model.image_encoder.backbone(x)[-1]
        assert torch.allclose(ours, vit.forward_features(x), atol=1e-5)
        ids = torch.randint(1000, 2000, (2, 6))
        ours_t = model.text_encoder(ids, torch.ones_like(ids))['tokens']
        assert torch.allclose(ours_t, bert(ids).last_hidden_state, atol=1e-5)
    assert torch.equal(model.cpa_loss.prototype_layer.weight, official['prototype_layer.weight'])

    # the DeiT / timm starting weights for `image_encoder.checkpoint`
    timm_state = dict(vit.state_dict(), **{'head.weight': torch.zeros(3, 32)})
    backbone_state, rep = convert_timm_vit(timm_state)
    assert rep.unmatched == [] and rep.dropped == ['head.weight']
    fresh = MODELS.build(_tiny_vit()['backbone'])
    fresh.load_state_dict(backbone_state, strict=True)


def test_converter_is_found_by_the_shared_tool():
    from lgdea.utils.ckpt_convert import find_converter
    assert find_converter('mgca') is convert_official_mgca
    assert find_converter('timm_vit', 'projects.mgca.mgca') is convert_timm_vit


# ---------------------------------------------------------------------------- configs
CONFIG_DIR = osp.join(REPO, 'projects', 'mgca', 'configs')


@pytest.mark.parametrize('name,ratio', [('mgca_demo_p100.py', 1.0), ('mgca_demo_p5.py', 0.05)])
def test_demo_configs(name, ratio):
    from mmengine.config import Config
    cfg = Config.fromfile(osp.join(CONFIG_DIR, name))
    assert cfg.model.type == 'MGCA'
    assert cfg.train_dataloader.dataset.pair_ratio == ratio
    assert cfg.train_dataloader.dataset.include_unpaired is False
    assert cfg.train_cfg.type == 'IterBasedTrainLoop'
    assert 'projects.mgca.mgca' in cfg.custom_imports.imports
    assert any(h.type == 'MGCAPrototypeFreezeHook' for h in cfg.custom_hooks)
    assert cfg.model.loss_weights == dict(ita=1.0, tca=1.0, cpa=1.0)


def test_demo_model_builds_and_trains_one_step():
    from mmengine.config import Config
    cfg = Config.fromfile(osp.join(CONFIG_DIR, 'mgca_demo_p100.py'))
    model = MODELS.build(cfg.model)
    assert model.text_encoder.attn_implementation == 'eager'
    images, samples = _batch(4, size=64)
    data = model.data_preprocessor(dict(inputs=images, data_samples=samples, reports=samples),
                                   True)
    out = model(**data, mode='loss')
    total = out['loss_ita'] + out['loss_tca'] + out['loss_cpa']
    total.backward()
    assert math.isfinite(total.item())
    assert model.image_encoder.backbone.patch_embed.projection.weight.grad is not None
    assert all(p.grad is None for p in model.text_encoder.parameters())  # frozen MiniLM


@pytest.mark.parametrize('name', ['mgca_vitb_p100.py', 'mgca_vitb_p50.py', 'mgca_vitb_p10.py',
                                  'mgca_vitb_p5.py', 'mgca_r50_p100.py',
                                  'mgca_vitb_p100_earlystop.py'])
def test_paper_configs(name):
    from mmengine.config import Config
    if not osp.isfile(osp.join(REPO, 'configs', '_base_', 'datasets', 'mimic_cxr.py')):
        pytest.skip('configs/_base_/datasets/mimic_cxr.py is not in the tree yet')
    cfg = Config.fromfile(osp.join(CONFIG_DIR, name))
    assert cfg.model.type == 'MGCA'
    assert cfg.model.text_encoder.num_layers == 6
    assert cfg.train_dataloader.dataset.include_unpaired is False
    assert cfg.train_cfg.type == 'IterBasedTrainLoop'
    assert cfg.model_selection in ('last', 'min_val_loss')


@pytest.mark.parametrize('text_padding', ['max_length', 'longest'])
def test_mgca_frozen_text_cache_matches_computed_words(text_padding):
    """The cached report / word features equal the computed ones for every batch layout
    (reports seen before in a batch of other length, repeated reports, new ones)."""
    torch.manual_seed(9)
    cached = _mgca(text_encoder=_tiny_bert(freeze=True), text_padding=text_padding)
    plain = _mgca(text_encoder=_tiny_bert(freeze=True), text_padding=text_padding,
                  cache_frozen_text=False)
    plain.load_state_dict(cached.state_dict())
    assert cached._word_cache is not None and plain._word_cache is None
    texts = [s.text for s in _batch(6)[1]]
    long_text = 'a much longer report with many words: ' + ' '.join(WORDS * 2)
    batches = [texts[:3], [long_text] + texts[1:5], texts[2:4] + texts[2:3] + ['no effusion']]
    for batch in batches:
        got, want = cached.encode_report_words(batch), plain.encode_report_words(batch)
        assert set(got) == set(want)
        for key in want:
            assert got[key].shape == want[key].shape, key
            assert got[key].dtype == want[key].dtype, key
            assert torch.allclose(got[key].float(), want[key].float(), atol=1e-5), key
    assert len(cached._word_cache) == len(set(sum(batches, [])))
    # a trainable text encoder is never cached
    assert _mgca(text_encoder=_tiny_bert())._word_cache is None
