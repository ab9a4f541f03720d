"""Equation-level tests of the LGDEA tensor components (docs/method.md, paper Eq. 1-18).

Every expected value is computed independently (by hand or with a small numpy / dense torch
reference), never by calling the component under test a second time.
"""
import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from lgdea.models.heads import DiagnosticPrototypeHead, EvidencePropagation
from lgdea.models.losses import (ContrastiveLoss, EvidenceAlignmentLoss, LesionConsistencyLoss,
                                 PairedEvidenceLoss, PrototypeReconstructionLoss,
                                 lesion_diagnostics, lesion_knn)
from lgdea.models.necks import LesionQueryNeck
from lgdea.registry import MODELS


# ----------------------------------------------------------------------------- helpers
def np_graph(h: np.ndarray, tau: float) -> np.ndarray:
    """Row-normalised exp(cos/tau) without self loops (Eq. 15-16), by hand."""
    h = h / np.linalg.norm(h, axis=1, keepdims=True)
    a = np.exp(h @ h.T / tau)
    np.fill_diagonal(a, 0.0)
    return a / a.sum(1, keepdims=True)


def dense_lu(v: torch.Tensor, q: torch.Tensor, k: int, tau_w: float,
             image_index=None, exclude_same_image=False) -> torch.Tensor:
    """Dense Eq. 10 reference: full N_L x N_L similarity, explicit per-pair KL."""
    vn = F.normalize(v.detach(), dim=-1)
    sim = vn @ vn.t()
    n = sim.shape[0]
    sim.fill_diagonal_(float('-inf'))
    if exclude_same_image:
        sim[image_index[:, None] == image_index[None, :]] = float('-inf')
    vals, idx = sim.topk(k, dim=1)
    w = (vals / tau_w).softmax(1)
    total = q.new_zeros(())
    for i in range(n):
        for jj in range(k):
            qj = q[idx[i, jj]].detach()
            total = total + w[i, jj] * (q[i] * (q[i].log() - qj.log())).sum()
    return total / n


def _prop(h_i, h_r, y, propagate=True, **kw):
    """EvidencePropagation on a batch whose paired flags follow from ``Y``."""
    return EvidencePropagation(**kw)(h_i, h_r, y, y.sum(1) > 0, y.sum(0) > 0,
                                     propagate=propagate)


def _rec_loss(**kw):
    return dict(type='PrototypeReconstructionLoss', **kw)


# ------------------------------------------------------------ DiagnosticPrototypeHead
def test_registry_builds_all_components():
    head = MODELS.build(dict(type='DiagnosticPrototypeHead', num_prototypes=4, embed_dims=8))
    neck = MODELS.build(dict(type='LesionQueryNeck', in_dims=16, embed_dims=8, num_queries=3,
                             num_heads=2))
    prop = MODELS.build(dict(type='EvidencePropagation'))
    assert isinstance(head, DiagnosticPrototypeHead) and isinstance(neck, LesionQueryNeck)
    assert isinstance(prop, EvidencePropagation)
    assert isinstance(head.loss_module, PrototypeReconstructionLoss)
    for cls in (ContrastiveLoss, EvidenceAlignmentLoss, LesionConsistencyLoss,
                PairedEvidenceLoss, PrototypeReconstructionLoss):
        assert isinstance(MODELS.build(dict(type=cls.__name__)), cls)
    # prototypes start on the unit sphere
    assert torch.allclose(head.mu.norm(dim=1), torch.ones(4), atol=1e-5)


def test_rec_zero_for_single_prototype_equal_to_z():
    head = DiagnosticPrototypeHead(num_prototypes=1, embed_dims=6, loss=_rec_loss(lambda_mu=0.0))
    z = head.mu.detach().clone().repeat(5, 1)
    out = head.loss(z)
    assert out['loss_rec'].item() == 0.0
    assert out['rec_reg'].item() == 0.0


@pytest.mark.parametrize('tau_t', [1.0, 0.1])
def test_rec_orthonormal_prototypes_by_hand(tau_t):
    k, d = 4, 8
    head = DiagnosticPrototypeHead(num_prototypes=k, embed_dims=d, tau_t=tau_t, loss=_rec_loss(lambda_mu=1.0))
    head.mu.data.copy_(torch.eye(d)[:k])
    z = torch.eye(d)[:1].repeat(2, 1)                      # z = mu_1, twice (N_E = 2)
    e = math.exp(1.0 / tau_t)
    p1, pk = e / (e + 3), 1.0 / (e + 3)
    recon = (1 - p1) ** 2 + 3 * pk ** 2
    out = head.loss(z)
    assert out['rec_recon'].item() == pytest.approx(recon, rel=1e-5, abs=1e-9)
    assert out['rec_reg'].item() == pytest.approx(1.0 * k / 2, rel=1e-6)   # lambda sum||mu||^2/N_E
    assert out['loss_rec'].item() == pytest.approx(recon + k / 2, rel=1e-5)
    # Eq. 4 itself
    p = head.assign(z[:1])[0]
    assert torch.allclose(p, torch.tensor([p1, pk, pk, pk]), atol=1e-6)


def test_rec_ignores_padding_and_counts_only_valid_phrases():
    torch.manual_seed(1)
    head = DiagnosticPrototypeHead(num_prototypes=3, embed_dims=5, loss=_rec_loss(lambda_mu=0.5))
    z = F.normalize(torch.randn(2, 3, 5), dim=-1)
    mask = torch.tensor([[True, True, False], [True, False, False]])
    z_pad = z.clone()
    z_pad[~mask] = 1e3                                     # garbage in the padding
    out = head.loss(z_pad, mask)
    zv = z[mask]                                           # N_E = 3
    mu = head.mu.detach()
    p = torch.softmax(zv @ mu.t() / 0.1, dim=1)
    recon = ((zv - p @ mu) ** 2).sum() / 3
    reg = 0.5 * (mu ** 2).sum() / 3
    assert out['rec_recon'].item() == pytest.approx(recon.item(), rel=1e-5)
    assert out['rec_reg'].item() == pytest.approx(reg.item(), rel=1e-6)
    assert out['loss_rec'].item() == pytest.approx((recon + reg).item(), rel=1e-5)


def test_report_distribution_is_mean_over_valid_phrases():
    torch.manual_seed(2)
    head = DiagnosticPrototypeHead(num_prototypes=4, embed_dims=6)
    z = F.normalize(torch.randn(3, 2, 6), dim=-1)
    mask = torch.tensor([[True, True], [True, False], [False, True]])
    q = head.report_distribution(z, mask)
    p = torch.softmax(z @ head.mu.detach().t() / 0.1, dim=-1)
    expected = torch.stack([(p[0, 0] + p[0, 1]) / 2, p[1, 0], p[2, 1]])
    assert torch.allclose(q, expected, atol=1e-6)
    assert torch.allclose(q.sum(1), torch.ones(3), atol=1e-6)
    # one phrase per report: still finite and equal to that phrase's assignment
    q1 = head.report_distribution(z[:, :1], torch.ones(3, 1, dtype=torch.bool))
    assert torch.isfinite(q1).all() and torch.allclose(q1, p[:, 0], atol=1e-6)
    with pytest.raises(ValueError, match='no valid evidence phrase'):
        head.report_distribution(z, torch.tensor([[True, True], [False, False], [True, True]]))


def test_prototype_norms_survive_sgd_at_default_lambda():
    torch.manual_seed(0)
    head = DiagnosticPrototypeHead(num_prototypes=8, embed_dims=32)
    opt = torch.optim.SGD(head.parameters(), lr=0.5)
    for _ in range(50):
        z = F.normalize(torch.randn(64, 32), dim=-1)
        loss = head.loss(z)['loss_rec']
        opt.zero_grad()
        loss.backward()
        opt.step()
    norms = head.mu.detach().norm(dim=1)
    # the un-normalised penalty (Eq. 5 with a mean recon term) drives them to ~0.01 here
    assert norms.min().item() > 0.3


def test_prototype_diagnostics_values():
    head = DiagnosticPrototypeHead(num_prototypes=4, embed_dims=4, tau_t=1e-3)
    head.mu.data.copy_(torch.eye(4) * 2.0)
    z = torch.eye(4)[[0, 1, 2, 3, 0, 1, 2, 3]]             # each prototype used equally, sharply
    d = head.loss(z)
    assert d['proto_norm'].item() == pytest.approx(2.0)
    assert d['assign_entropy'].item() == pytest.approx(0.0, abs=1e-6)
    assert d['proto_perplexity'].item() == pytest.approx(4.0, rel=1e-5)
    d2 = head.loss(torch.eye(4)[[0, 0, 0]])             # one prototype only
    assert d2['proto_perplexity'].item() == pytest.approx(1.0, rel=1e-5)


def test_freeze_keeps_prototypes_and_still_trains_text():
    head = DiagnosticPrototypeHead(num_prototypes=3, embed_dims=4, freeze=True)
    before = head.mu.detach().clone()
    z = torch.randn(5, 4, requires_grad=True)
    head.loss(z)['loss_rec'].backward()
    assert not head.mu.requires_grad and head.mu.grad is None
    assert z.grad is not None and z.grad.abs().sum() > 0
    assert torch.equal(head.mu.detach(), before)


def test_detach_text_option_blocks_gradient_into_z():
    head = DiagnosticPrototypeHead(num_prototypes=3, embed_dims=4, detach_text=True)
    z = torch.randn(5, 4, requires_grad=True)
    head.loss(z)['loss_rec'].backward()
    assert z.grad is None and head.mu.grad.abs().sum() > 0


def test_kmeans_init_finds_cluster_centres():
    rng = np.random.default_rng(0)
    centres = np.eye(8, dtype=np.float32)[:4]
    x = np.concatenate([c + 0.05 * rng.standard_normal((200, 8)).astype(np.float32)
                        for c in centres])
    head = DiagnosticPrototypeHead(num_prototypes=4, embed_dims=8, init='kmeans')
    assert head.needs_kmeans_init
    mu = head.init_from_embeddings(torch.from_numpy(x))
    assert not head.needs_kmeans_init
    cos = mu @ torch.from_numpy(centres).t()                # [K, 4]
    assert sorted(cos.argmax(1).tolist()) == [0, 1, 2, 3]  # one prototype per cluster
    assert cos.max(1).values.min().item() > 0.95
    with pytest.raises(ValueError, match='at least K'):
        DiagnosticPrototypeHead(num_prototypes=4, embed_dims=8,
                                init='kmeans').init_from_embeddings(torch.randn(3, 8))


# -------------------------------------------------------------------- LesionQueryNeck
def _neck(**kw):
    cfg = dict(in_dims=16, embed_dims=8, num_queries=5, num_heads=4)
    cfg.update(kw)
    return LesionQueryNeck(**cfg)


@pytest.mark.parametrize('competition', ['none', 'slot'])
def test_neck_attention_rows_sum_to_one_and_respect_padding(competition):
    torch.manual_seed(0)
    neck = _neck(attention_competition=competition, num_layers=2)
    x = torch.randn(2, 7, 16)
    pad = torch.zeros(2, 7, dtype=torch.bool)
    pad[1, 5:] = True
    out = neck(x, key_padding_mask=pad, return_attn=True)
    attn = out['attn']
    assert torch.allclose(attn.sum(-1), torch.ones(2, 5), atol=1e-5)
    assert (attn >= 0).all()
    assert attn[1, :, 5:].abs().max().item() == 0.0
    # the padded patches' content cannot change anything
    x2 = x.clone()
    x2[1, 5:] = 100 * torch.randn(2, 16)
    out2 = neck(x2, key_padding_mask=pad)
    assert torch.allclose(out['v'], out2['v'], atol=1e-5)


def test_slot_competition_normalises_over_queries_first():
    from lgdea.models.necks.lesion_query_neck import LesionAttention
    torch.manual_seed(0)
    att = LesionAttention(8, 1, slot_eps=0.0)
    x, ctx = torch.randn(1, 3, 8), torch.randn(1, 4, 8)
    _, w = att(x, ctx, competition='slot')
    logits = att.q_proj(x) @ att.k_proj(ctx).transpose(1, 2) / math.sqrt(8)   # [1, 3, 4]
    a = logits.softmax(dim=1)                               # over the 3 queries
    expected = a / a.sum(-1, keepdim=True)
    assert torch.allclose(w[:, 0], expected, atol=1e-6)
    _, w_none = att(x, ctx, competition='none')
    assert torch.allclose(w_none[:, 0], logits.softmax(-1), atol=1e-6)


@pytest.mark.parametrize('competition', ['none', 'slot'])
def test_query_residual_false_makes_lesions_image_only(competition):
    torch.manual_seed(0)
    flat = torch.randn(1, 1, 16).repeat(2, 9, 1)            # every patch identical
    with_res = _neck(query_residual=True, query_init_std=1.0, attention_competition=competition)
    no_res = _neck(query_residual=False, query_init_std=1.0, attention_competition=competition)
    no_res.load_state_dict(with_res.state_dict())
    v_res = with_res(flat)['v'][0]
    v_img = no_res(flat)['v'][0]
    # without the query residual every lesion is built from the (identical) patch values
    assert (v_img - v_img[:1]).abs().max().item() < 1e-5
    # with it the queries themselves still separate the lesions
    assert (v_res - v_res[:1]).abs().max().item() > 1e-2


def test_neck_projection_h_i_and_prototype_distributions():
    torch.manual_seed(0)
    neck = _neck()
    head = DiagnosticPrototypeHead(num_prototypes=3, embed_dims=8, tau_p=0.5)
    out = neck(torch.randn(2, 6, 16))
    assert set(out) == {'v', 'phi', 'H_I'}
    phi = F.normalize(neck.phi(out['v']), dim=-1)
    assert torch.allclose(out['phi'], phi, atol=1e-6)
    assert torch.allclose(out['H_I'], F.normalize(phi.mean(1), dim=-1), atol=1e-6)
    dist = head.image_distribution(out['phi'])                 # Eq. 6-7 owned by the head
    q = torch.softmax(phi @ head.mu.detach().t() / 0.5, dim=-1)
    assert torch.allclose(dist['Q_I'], q, atol=1e-6)
    assert torch.allclose(dist['log_Q_I'], q.log(), atol=1e-5)
    assert torch.allclose(dist['Qbar_I'], q.mean(1), atol=1e-6)
    assert torch.allclose(dist['log_Qbar_I'], q.mean(1).log(), atol=1e-5)


def test_neck_gradients_reach_queries_and_patches():
    torch.manual_seed(0)
    neck = _neck()
    x = torch.randn(2, 6, 16, requires_grad=True)
    out = neck(x)
    (out['H_I'] @ torch.randn(8)).sum().backward()
    assert neck.queries.grad.abs().sum() > 0
    assert x.grad.abs().sum() > 0
    assert neck.phi.weight.grad.abs().sum() > 0


def test_neck_rejects_bad_input():
    neck = _neck()
    with pytest.raises(ValueError, match='in_dims'):
        neck(torch.randn(2, 6, 12))
    with pytest.raises(ValueError, match='every patch masked'):
        neck(torch.randn(1, 3, 16), key_padding_mask=torch.ones(1, 3, dtype=torch.bool))


# ---------------------------------------------------------------- EvidencePropagation
H_I3 = np.array([[1.0, 0.0], [0.8, 0.6], [0.0, 1.0]])
H_R3 = np.array([[1.0, 0.2], [0.6, 0.8], [-0.2, 1.0]])


def test_propagation_matches_hand_computation_3x3():
    y = np.zeros((3, 3))
    y[0, 0] = 1.0                                           # one seed link
    s_i, s_t = np_graph(H_I3, 0.1), np_graph(H_R3, 0.1)
    p = y.copy()
    for _ in range(2):
        p = s_i @ p @ s_t + y
    m = p.sum(1)
    keep = m >= 1e-3 * m.max()
    t_i2t = p / m[:, None]
    mt = p.sum(0)
    t_t2i = p.T / mt[:, None]

    prop = EvidencePropagation(steps=2, tau_g=0.1)
    out = _prop(torch.tensor(H_I3, dtype=torch.float32), torch.tensor(H_R3, dtype=torch.float32),
                torch.tensor(y, dtype=torch.float32), steps=2, tau_g=0.1)
    assert np.allclose(out['P'].numpy(), p, atol=1e-5)
    assert out['mask_i'].numpy().tolist() == keep.tolist()
    assert np.allclose(out['targets_i2t'].numpy()[keep], t_i2t[keep], atol=1e-5)
    assert np.allclose(out['targets_t2i'].numpy(), t_t2i, atol=1e-5)
    assert np.allclose(out['mass_i'].numpy(), m, atol=1e-5)
    # no self loops and row-stochastic graphs
    g = prop.build_graph(torch.tensor(H_I3, dtype=torch.float32))
    assert torch.all(torch.diagonal(g) == 0)
    assert torch.allclose(g.sum(1), torch.ones(3), atol=1e-6)
    assert np.allclose(g.numpy(), s_i, atol=1e-6)


def test_propagation_off_gives_paired_rows_only():
    y = torch.zeros(3, 3)
    y[0, 0] = 1.0
    out = _prop(torch.tensor(H_I3).float(), torch.tensor(H_R3).float(), y, propagate=False)
    assert not out['propagated']
    assert torch.equal(out['P'], y)
    assert out['mask_i'].tolist() == [True, False, False]
    assert out['mask_t'].tolist() == [True, False, False]
    assert torch.equal(out['targets_i2t'][0], torch.tensor([1.0, 0, 0]))
    assert out['diagnostics']['prop_masked_i'].item() == 2
    assert out['diagnostics']['prop_masked_t'].item() == 2


def test_empty_and_tiny_rows_are_masked_and_counted():
    # topk=1: images 1 and 2 are each other's only neighbour, so no seed mass ever reaches them
    h_i = torch.tensor([[1.0, 0.0], [0.0, 1.0], [0.1, 1.0]])
    h_r = torch.tensor([[1.0, 0.0], [0.0, 1.0], [0.1, 1.0]])
    y = torch.zeros(3, 3)
    y[0, 0] = 1.0
    out = _prop(h_i, h_r, y, steps=2, topk=1)
    assert out['mass_i'][1:].abs().max().item() == 0.0
    assert out['mask_i'].tolist() == [True, False, False]
    assert out['diagnostics']['prop_masked_i'].item() == 2
    assert out['targets_i2t'][1:].abs().max().item() == 0.0
    # dense graph, but images 1, 2 point away from the seed: mass ~e^-20 > 0 yet < min_mass
    h_i2 = torch.tensor([[1.0, 0.0], [-1.0, 0.0], [-1.0, 0.01]])
    out2 = _prop(h_i2, h_r, y, steps=2)
    assert (out2['mass_i'][1:] > 0).all() and (out2['mass_i'][1:] < 1e-3).all()
    assert out2['mask_i'].tolist() == [True, False, False]
    # no seed at all: every row masked, nothing is NaN
    out3 = _prop(h_i, h_r, torch.zeros(3, 3), steps=2)
    assert not out3['mask_i'].any() and torch.isfinite(out3['targets_i2t']).all()


def test_single_item_batch_has_empty_graph_and_keeps_seed():
    out = _prop(torch.randn(1, 4), torch.randn(1, 4), torch.ones(1, 1),
                at_full_pairing='propagate')
    assert out['propagated']
    assert torch.equal(out['P'], torch.ones(1, 1))         # S = 0 (no self loop): P = Y
    assert out['mask_i'].tolist() == [True] and torch.isfinite(out['targets_t2i']).all()


def test_topk_graph_keeps_k_neighbours_without_self():
    torch.manual_seed(0)
    g = EvidencePropagation(topk=2).build_graph(torch.randn(6, 4))
    assert ((g > 0).sum(1) == 2).all()
    assert torch.all(torch.diagonal(g) == 0)
    assert torch.allclose(g.sum(1), torch.ones(6), atol=1e-6)


def test_mass_row_weights():
    y = torch.zeros(3, 3)
    y[0, 0] = 1.0
    out = _prop(torch.tensor(H_I3).float(), torch.tensor(H_R3).float(), y, steps=2,
                row_weight='mass')
    keep = out['mask_i']
    w, m = out['weights_i'], out['mass_i']
    assert torch.allclose(w[keep].mean(), torch.tensor(1.0))
    assert torch.allclose(w[keep] / w[keep][0], m[keep] / m[keep][0], atol=1e-5)


@pytest.mark.parametrize('close_report,expected_acc', [(1, 1.0), (2, 0.0)])
def test_hidden_pair_accuracy(close_report, expected_acc):
    # image 0 paired (study a); image 1 unpaired, partner report 1 (study b) withheld but in batch
    h_i = torch.tensor([[1.0, 0.0], [0.95, 0.3], [-1.0, 0.2]])
    h_r = torch.tensor([[0.0, 1.0], [1.0, 0.0], [-1.0, 0.0]])
    h_r[close_report] = torch.tensor([0.2, 1.0])          # the report nearest to the seed report
    y = torch.zeros(3, 3)
    y[0, 0] = 1.0
    prop = EvidencePropagation(steps=2)
    image_paired, report_paired = torch.tensor([True, False, False]), y.sum(0) > 0
    out = prop(h_i, h_r, y, image_paired, report_paired, image_study_ids=['a', 'b', 'c'],
               report_study_ids=['a', 'b', 'd'])
    d = out['diagnostics']
    assert d['hidden_pair_count'].item() == 1
    # independent check: argmax of the hand-propagated row of image 1
    s_i, s_t = np_graph(h_i.numpy().astype(float), 0.1), np_graph(h_r.numpy().astype(float), 0.1)
    p = y.numpy().astype(float)
    for _ in range(2):
        p = s_i @ p @ s_t + y.numpy()
    assert float(p[1].argmax() == 1) == expected_acc
    assert d['hidden_pair_acc'].item() == expected_acc
    # int64 study keys work the same way
    out_k = prop(h_i, h_r, y, image_paired, report_paired,
                 image_study_ids=torch.tensor([1, 2, 3]), report_study_ids=torch.tensor([1, 2, 4]))
    assert out_k['diagnostics']['hidden_pair_acc'].item() == expected_acc


def test_full_pairing_hard_targets_and_propagate_option():
    h_i, h_r, y = torch.tensor(H_I3).float(), torch.tensor(H_R3).float(), torch.eye(3)
    hard = _prop(h_i, h_r, y)                               # every item paired: P = Y
    assert not hard['propagated'] and torch.equal(hard['P'], y)
    soft = _prop(h_i, h_r, y, at_full_pairing='propagate')
    assert soft['propagated'] and not torch.equal(soft['P'], y)
    with pytest.raises(ValueError, match='steps'):
        EvidencePropagation(steps=0)


def test_propagation_carries_no_gradient():
    h_i = torch.tensor(H_I3, dtype=torch.float32, requires_grad=True)
    h_r = torch.tensor(H_R3, dtype=torch.float32, requires_grad=True)
    out = _prop(h_i, h_r, torch.eye(3), at_full_pairing='propagate')
    for key in ('P', 'targets_i2t', 'targets_t2i', 'weights_i'):
        assert not out[key].requires_grad


# ------------------------------------------------------------------ per-term loss modules
def test_paired_kl_by_hand_and_teacher_detached():
    qbar_r = torch.tensor([[0.7, 0.2, 0.1], [0.1, 0.1, 0.8]], requires_grad=True)
    logits = torch.randn(3, 3, requires_grad=True)
    qbar_i = logits.softmax(-1)
    # images 0 and 1 share report 0; image 2 has no paired report (excluded)
    y = torch.tensor([[1.0, 0.0], [1.0, 0.0], [0.0, 0.0]])
    out = PairedEvidenceLoss(loss_weight=2.0)(qbar_r, logits.log_softmax(-1), y)
    t = qbar_r.detach()[0].numpy()
    qi = qbar_i.detach().numpy()
    expected = np.mean([np.sum(t * np.log(t / qi[i])) for i in (0, 1)])
    assert out['p_kl'].item() == pytest.approx(expected, rel=1e-5)
    assert out['loss_p'].item() == pytest.approx(2 * expected, rel=1e-5)
    assert out['num_paired_images'].item() == 2
    out['loss_p'].backward()
    assert qbar_r.grad is None                              # teacher side gets nothing
    assert logits.grad[:2].abs().sum() > 0 and logits.grad[2].abs().sum() == 0


def test_kl_terms_zero_when_distributions_match():
    q = torch.tensor([0.5, 0.3, 0.2])
    v = torch.randn(2, 4, 6)
    q_i = q.repeat(2, 4, 1)
    out_p = PairedEvidenceLoss()(q[None], q.repeat(2, 1).log(), torch.ones(2, 1))
    out_u = LesionConsistencyLoss()(q_i, q_i.log(), v)
    assert abs(out_p['loss_p'].item()) < 1e-6
    assert abs(out_u['loss_u'].item()) < 1e-6


def test_no_nan_without_paired_samples():
    torch.manual_seed(0)
    head = DiagnosticPrototypeHead(num_prototypes=4, embed_dims=8)
    neck = _neck(num_queries=3)
    z = F.normalize(torch.randn(3, 1, 8), dim=-1).requires_grad_()     # one phrase per report
    mask = torch.ones(3, 1, dtype=torch.bool)
    img = neck(torch.randn(3, 5, 16))
    dist = head.image_distribution(img['phi'])
    h_r = F.normalize(z.mean(1), dim=-1)
    y = torch.zeros(3, 3)
    out = head.loss(z, mask)
    out.update(PairedEvidenceLoss()(head.report_distribution(z, mask), dist['log_Qbar_I'], y))
    out.update(LesionConsistencyLoss()(dist['Q_I'], dist['log_Q_I'], img['v']))
    out.update(EvidenceAlignmentLoss()(img['H_I'], h_r, _prop(img['H_I'], h_r, y)))
    for key, val in out.items():
        assert torch.isfinite(val).all(), key
    assert out['loss_p'].item() == 0.0 and out['loss_align'].item() == 0.0
    total = sum(v for k, v in out.items() if k.startswith('loss'))
    total.backward()
    assert torch.isfinite(neck.queries.grad).all() and torch.isfinite(z.grad).all()


@pytest.mark.parametrize('chunk', [1, 7, 13, 40, 1000])
def test_chunked_lu_equals_dense_reference(chunk):
    torch.manual_seed(0)
    b, l, k_proto = 5, 8, 6                                 # N_L = 40
    v = torch.randn(b, l, 12)
    logits = torch.randn(b, l, k_proto, requires_grad=True)
    q = logits.softmax(-1)
    out = LesionConsistencyLoss(chunk_size=chunk)(q, F.log_softmax(logits, -1), v)
    (g_chunk, ) = torch.autograd.grad(out['loss_u'], logits)

    ref = dense_lu(v.reshape(b * l, -1), logits.softmax(-1).reshape(b * l, -1), 5, 0.1)
    (g_ref, ) = torch.autograd.grad(ref, logits)
    assert out['loss_u'].item() == pytest.approx(ref.item(), rel=1e-5)
    assert torch.allclose(g_chunk, g_ref, atol=1e-6)

    # the stop-gradient matters: without it the gradient differs
    vn = F.normalize(v.reshape(b * l, -1), dim=-1)
    sim = vn @ vn.t()
    sim.fill_diagonal_(float('-inf'))
    vals, idx = sim.topk(5, dim=1)
    w = (vals / 0.1).softmax(1)
    qf = logits.reshape(b * l, -1).softmax(-1)
    no_sg = (w[..., None] * (qf[:, None] * (qf[:, None].log() - qf[idx].log()))).sum() / (b * l)
    (g_no_sg, ) = torch.autograd.grad(no_sg, logits)
    assert no_sg.item() == pytest.approx(ref.item(), rel=1e-5)
    assert not torch.allclose(g_no_sg, g_ref, atol=1e-4)


def test_lu_over_gathered_candidates_equals_dense_reference_on_the_union():
    """A rank's slice with the gathered batch as candidates = the rows of the dense Eq. 10."""
    torch.manual_seed(0)
    b, l, k_proto = 6, 3, 4
    v = torch.randn(b, l, 5)
    logits = torch.randn(b, l, k_proto)
    q, log_q = logits.softmax(-1), logits.log_softmax(-1)
    full = LesionConsistencyLoss(knn_k=3)
    ref = full(q, log_q, v)['u_kl']
    halves = [full(q[s:s + 3], log_q[s:s + 3], v[s:s + 3], v, log_q, image_offset=s)['u_kl']
              for s in (0, 3)]
    assert ((halves[0] + halves[1]) / 2).item() == pytest.approx(ref.item(), rel=1e-5)


def test_lu_weights_and_neighbours_carry_no_gradient_to_v():
    v = torch.randn(3, 4, 6, requires_grad=True)
    logits = torch.randn(3, 4, 5, requires_grad=True)
    out = LesionConsistencyLoss()(logits.softmax(-1), logits.log_softmax(-1), v)
    out['loss_u'].backward()
    assert v.grad is None and logits.grad.abs().sum() > 0


def test_exclude_same_image_and_collapse_diagnostics():
    torch.manual_seed(0)
    b, l = 4, 6
    # lesions of one image are near-identical: every nearest neighbour is from the same image
    v = torch.randn(b, 1, 10).repeat(1, l, 1) + 1e-3 * torch.randn(b, l, 10)
    q = torch.randn(b, l, 3).softmax(-1)
    default = LesionConsistencyLoss(chunk_size=5)(q, q.log(), v)
    assert default['same_image_nn_frac'].item() == 1.0
    diag = lesion_diagnostics(v, q)
    assert diag['lesion_cos_within'].item() > 0.99
    ex = LesionConsistencyLoss(exclude_same_image=True, chunk_size=5)
    out = ex(q, q.log(), v)
    assert out['same_image_nn_frac'].item() == 0.0
    image_index = torch.arange(b).repeat_interleave(l)
    flat = v.reshape(b * l, -1)
    idx, _ = lesion_knn(flat, flat, 5, 0.1, 7, 0, image_index, True)
    assert (image_index[idx] != image_index[:, None]).all()
    ref = dense_lu(flat, q.reshape(b * l, -1), 5, 0.1, image_index, True)
    assert out['loss_u'].item() == pytest.approx(ref.item(), rel=1e-5)
    # entropy diagnostic by hand
    ent = -(q * q.log()).sum(-1).mean()
    assert diag['lesion_q_entropy'].item() == pytest.approx(ent.item(), rel=1e-5)
    # spread lesions are not flagged as collapsed
    spread = lesion_diagnostics(torch.eye(6)[None].repeat(2, 1, 1), q[:2])
    assert spread['lesion_cos_within'].item() == pytest.approx(0.0, abs=1e-6)
    # a single image with exclusion has no candidate: 0, not NaN
    single = ex(q[:1], q[:1].log(), v[:1])
    assert single['loss_u'].item() == 0.0 and 'same_image_nn_frac' not in single


def test_align_with_identity_targets_equals_clip_cross_entropy():
    torch.manual_seed(0)
    h_i = F.normalize(torch.randn(4, 8), dim=-1).requires_grad_()
    h_r = F.normalize(torch.randn(4, 8), dim=-1)
    y = torch.eye(4)
    targets = EvidencePropagation()(h_i, h_r, y, y.sum(1) > 0, y.sum(0) > 0, propagate=False)
    out = EvidenceAlignmentLoss()(h_i, h_r, targets)
    logits = h_i @ h_r.t() / 0.07
    ce_i = F.cross_entropy(logits, torch.arange(4))
    ce_t = F.cross_entropy(logits.t(), torch.arange(4))
    assert out['align_r_from_i'].item() == pytest.approx(ce_i.item(), rel=1e-5)
    assert out['align_i_from_r'].item() == pytest.approx(ce_t.item(), rel=1e-5)
    assert out['loss_align'].item() == pytest.approx((ce_i + ce_t).item(), rel=1e-5)   # Eq. 11
    mean_red = EvidenceAlignmentLoss(direction_reduction='mean')(h_i, h_r, targets)
    assert mean_red['loss_align'].item() == pytest.approx((ce_i + ce_t).item() / 2, rel=1e-5)
    # Eq. 1 written once: the same numbers from the shared symmetric InfoNCE
    eq1 = ContrastiveLoss(direction_reduction='sum')(h_i, h_r, torch.tensor(math.log(1 / 0.07)),
                                                     y)
    assert eq1['loss'].item() == pytest.approx((ce_i + ce_t).item(), rel=1e-5)
    with pytest.raises(ValueError, match='direction_reduction'):
        EvidenceAlignmentLoss(direction_reduction='max')


def test_align_soft_targets_masked_rows_and_mass_weights():
    torch.manual_seed(0)
    h_i = F.normalize(torch.randn(3, 4), dim=-1)
    h_r = F.normalize(torch.randn(3, 4), dim=-1)
    t = torch.tensor([[0.5, 0.5, 0.0], [0.0, 0.0, 0.0], [0.2, 0.3, 0.5]])
    targets = dict(targets_i2t=t, mask_i=torch.tensor([True, False, True]),
                   weights_i=torch.tensor([0.5, 0.0, 1.5]),
                   targets_t2i=torch.eye(3), mask_t=torch.tensor([True, True, True]),
                   weights_t=None)
    out = EvidenceAlignmentLoss()(h_i, h_r, targets)
    logp = (h_i @ h_r.t() / 0.07).log_softmax(1)
    ce = -(t * logp).sum(1)
    expected = (0.5 * ce[0] + 1.5 * ce[2]) / 2.0
    assert out['align_r_from_i'].item() == pytest.approx(expected.item(), rel=1e-5)


def test_align_gradient_not_through_targets():
    torch.manual_seed(0)
    h_i = F.normalize(torch.randn(4, 8), dim=-1).requires_grad_()
    h_r = F.normalize(torch.randn(4, 8), dim=-1).requires_grad_()
    y = torch.zeros(4, 4)
    y[0, 0] = y[1, 1] = 1
    targets = _prop(h_i, h_r, y, steps=2)
    assert targets['propagated'] and not targets['targets_i2t'].requires_grad
    out = EvidenceAlignmentLoss()(h_i, h_r, targets)
    g = torch.autograd.grad(out['loss_align'], h_i)[0]
    # the same loss with the targets as constants gives the same gradient
    const = {k: (v.clone() if torch.is_tensor(v) else v) for k, v in targets.items()}
    g2 = torch.autograd.grad(EvidenceAlignmentLoss()(h_i, h_r, const)['loss_align'], h_i)[0]
    assert torch.allclose(g, g2)


def test_learnable_logit_scale_gets_gradient_and_is_clamped():
    loss = EvidenceAlignmentLoss(learnable_logit_scale=True, max_logit_scale=10.0)
    h = F.normalize(torch.randn(3, 4), dim=-1)
    targets = _prop(h, h, torch.eye(3))
    out = loss(h, h, targets)
    assert out['align_logit_scale'].item() == pytest.approx(10.0)   # 1 / 0.07 clamped to 10
    with torch.no_grad():
        loss.logit_scale.fill_(math.log(5.0))
    loss(h, h, targets)['loss_align'].backward()
    assert loss.logit_scale.grad is not None and loss.logit_scale.grad.abs() > 0
    assert isinstance(EvidenceAlignmentLoss().logit_scale, torch.Tensor)
    assert 'logit_scale' not in dict(EvidenceAlignmentLoss().named_parameters())


def test_loss_weights_only_scale_and_key_convention():
    torch.manual_seed(0)
    head = DiagnosticPrototypeHead(num_prototypes=4, embed_dims=8)
    z = F.normalize(torch.randn(2, 2, 8), dim=-1)
    mask = torch.ones(2, 2, dtype=torch.bool)
    v = torch.randn(2, 3, 6)
    logits = torch.randn(2, 3, 4)
    q, log_q = logits.softmax(-1), logits.log_softmax(-1)
    log_qbar = torch.logsumexp(log_q, 1) - math.log(3)
    g_i = F.normalize(torch.randn(2, 8), dim=-1)
    g_r = F.normalize(torch.randn(2, 8), dim=-1)
    qbar_r = head.report_distribution(z, mask)
    targets = _prop(g_i, g_r, torch.eye(2))
    p = head.assign(z[mask])

    def run(w):
        return dict(rec=PrototypeReconstructionLoss(loss_weight=w)(z[mask], p, head.mu),
                    p=PairedEvidenceLoss(loss_weight=w)(qbar_r, log_qbar, torch.eye(2)),
                    u=LesionConsistencyLoss(loss_weight=w)(q, log_q, v),
                    align=EvidenceAlignmentLoss(loss_weight=w)(g_i, g_r, targets),
                    g=ContrastiveLoss(direction_reduction='sum', loss_weight=w)(
                        g_i, g_r, torch.tensor(math.log(1 / 0.07)), torch.eye(2)))

    base, heavy = run(1.0), run(2.5)
    for term, key in (('rec', 'loss_rec'), ('p', 'loss_p'), ('u', 'loss_u'),
                      ('align', 'loss_align'), ('g', 'loss')):
        assert base[term][key].item() > 0
        assert heavy[term][key].item() == pytest.approx(2.5 * base[term][key].item(), rel=1e-5)
        # every other output is an unweighted diagnostic: no other key starts with "loss"
        assert [k for k in heavy[term] if k.startswith('loss')] == [key]
    assert heavy['u']['u_kl'].item() == pytest.approx(base['u']['loss_u'].item(), rel=1e-5)
    assert heavy['p']['p_kl'].item() == pytest.approx(base['p']['loss_p'].item(), rel=1e-5)
    # L_g = Eq. 1 on paired rows, both directions summed
    logit = g_i @ g_r.t() / 0.07
    eq1 = F.cross_entropy(logit, torch.arange(2)) + F.cross_entropy(logit.t(), torch.arange(2))
    assert base['g']['loss'].item() == pytest.approx(eq1.item(), rel=1e-5)
