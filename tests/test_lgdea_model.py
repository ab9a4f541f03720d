"""The LGDEA model end to end, its phase hook and the EvidenceTokenizer transform."""
import os.path as osp

import pytest
import torch
from mmpretrain.structures import DataSample

from lgdea.registry import MODELS, TRANSFORMS

from conftest import tiny_bert, tiny_tokenizer, tiny_vit

PHRASES = ['small left pleural effusion', 'mild cardiomegaly', 'right basilar atelectasis',
           'no acute cardiopulmonary abnormality', 'left upper lobe consolidation']


def _lgdea(**kw):
    cfg = dict(type='LGDEA', image_encoder=tiny_vit(), text_encoder=tiny_bert(),
               tokenizer=tiny_tokenizer(),
               neck=dict(type='LesionQueryNeck', num_queries=4, num_heads=2),
               head=dict(type='DiagnosticPrototypeHead', num_prototypes=6),
               propagation=dict(type='EvidencePropagation', steps=2), embed_dims=16)
    cfg.update(kw)
    model = MODELS.build(cfg)
    model.init_weights()
    return model


def _batch(n_paired=4, n_unpaired=4):
    """n_paired pairs + n_unpaired unpaired images and reports (the unpaired image i's withheld
    partner is unpaired report i)."""
    images = torch.zeros(n_paired + n_unpaired, 1, 32, 32, dtype=torch.uint8)
    samples, reports = [], []
    for i in range(n_paired + n_unpaired):
        images[i, 0, :4 * (i + 1), :4 * (i + 1)] = 255
        paired = i < n_paired
        img = DataSample(metainfo=dict(study_id=f's{i}', paired=paired))
        rep = DataSample(metainfo=dict(study_id=f's{i}', paired=paired))
        rep.text = f'report {i}'
        rep.evidence = [PHRASES[i % len(PHRASES)]] + ([PHRASES[(i + 2) % 5]] if i % 2 else [])
        samples.append(img)
        reports.append(rep)
    return images, samples, reports


def _loss(model, images, samples, reports):
    data = model.data_preprocessor(dict(inputs=images, data_samples=samples, reports=reports),
                                   True)
    return model(**data, mode='loss')


def test_short_training_run_total_loss_goes_down():
    torch.manual_seed(0)
    model = _lgdea()
    images, samples, reports = _batch()
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=2e-3)
    totals = []
    for _ in range(30):
        out = _loss(model, images, samples, reports)
        total = sum(v for k, v in out.items() if 'loss' in k)
        assert torch.isfinite(total)
        opt.zero_grad()
        total.backward()
        opt.step()
        totals.append(total.item())
    for key in ('loss_rec', 'loss_p', 'loss_u', 'loss_align', 'hidden_pair_acc',
                'lesion_cos_within', 'proto_perplexity'):
        assert key in out, key
    assert sum(totals[-5:]) / 5 < 0.8 * totals[0]
    assert model.head.mu.norm(dim=-1).mean() > 0.3  # prototypes do not collapse to zero


def test_no_paired_item_and_single_phrase_reports_give_finite_loss():
    model = _lgdea()
    images, samples, reports = _batch(n_paired=0, n_unpaired=4)
    for r in reports:
        r.evidence = r.evidence[:1]
    out = _loss(model, images, samples, reports)
    assert all(torch.isfinite(v) for v in out.values())
    assert out['loss_p'].item() == 0.0


def test_phase_terms_and_hard_targets_at_full_pairing():
    model = _lgdea()
    images, samples, reports = _batch(n_paired=4, n_unpaired=0)
    out = _loss(model, images, samples, reports)
    assert out['propagated'].item() == 0.0  # fully paired batch -> P = Y ('hard')
    model.set_phase(['rec', 'align'], propagate=True)
    images, samples, reports = _batch()
    out = _loss(model, images, samples, reports)
    assert 'loss_p' not in out and 'loss_u' not in out
    assert out['propagated'].item() == 1.0
    model.set_phase(['rec', 'align'], propagate=False)
    assert _loss(model, images, samples, reports)['propagated'].item() == 0.0
    with pytest.raises(ValueError, match='unknown terms'):
        model.set_phase(['rec', 'allign'], propagate=False)
    with pytest.raises(ValueError, match='global_loss'):
        model.set_phase(['rec', 'g'], propagate=False)


def test_evidence_required_and_identical_phrases_encoded_once(monkeypatch):
    model = _lgdea()
    images, samples, reports = _batch()
    seen = []
    orig = model.encode_phrases
    monkeypatch.setattr(model, 'encode_phrases',
                        lambda p, modules=None: (seen.append(list(p)), orig(p, modules))[1])
    _loss(model, images, samples, reports)
    assert len(seen) == 1 and len(seen[0]) == len(set(seen[0])) == 5
    del reports[0].evidence
    with pytest.raises(KeyError, match='evidence'):
        _loss(model, images, samples, reports)


def test_inference_interface_and_lesion_grounding():
    model = _lgdea().eval()
    images, samples, reports = _batch(2, 0)
    x = model.data_preprocessor(dict(inputs=images, data_samples=samples), False)['images']
    with torch.no_grad():
        img = model.extract_image(x)
        phr = model.extract_text(['left effusion', 'cardiomegaly'], kind='phrase')
        rep = model.extract_text(['r0', 'r1'], kind='report',
                                 evidence=[r.evidence for r in reports])
        gmap = model.grounding_map(img, phr)
    assert model.similarity(img, rep).shape == (2, 2)
    assert torch.allclose(img['embed'], model.neck(model.image_encoder(x)['local'])['H_I'])
    assert gmap.shape == (2, 4, 4)
    # a convex combination of attention maps: non-negative, sums to 1 over the grid
    assert (gmap >= 0).all() and torch.allclose(gmap.sum((1, 2)), torch.ones(2), atol=1e-5)
    with pytest.raises(ValueError, match='evidence'):
        model.extract_text(['r0'], kind='report')


def test_wo_rec_ablation_uses_global_report_embedding():
    model = _lgdea(report_repr='global', terms=['p', 'u', 'align'],
                   head=dict(type='DiagnosticPrototypeHead', num_prototypes=6, freeze=True))
    images, samples, reports = _batch()
    out = _loss(model, images, samples, reports)
    assert 'loss_rec' not in out and torch.isfinite(out['loss_align'])
    model.set_phase(['rec', 'align'], propagate=True)
    with pytest.raises(ValueError, match='no evidence phrases for L_rec'):
        _loss(model, images, samples, reports)


def test_cls_embedding_is_the_aligned_image_evidence():
    model = _lgdea(image_embed='cls')
    images, samples, reports = _batch()
    out = _loss(model, images, samples, reports)
    out['loss_align'].backward()
    # the alignment trains the global projection; retrieval uses the same embedding
    assert model.global_image_proj.weight.grad.abs().sum() > 0
    data = model.data_preprocessor(dict(inputs=images, data_samples=samples, reports=reports),
                                   False)
    with torch.no_grad():
        feats = model.image_encoder(data['images'])
        expect = torch.nn.functional.normalize(model.global_image_proj(feats['global']), dim=-1)
        assert torch.allclose(model.extract_image(data['images'])['embed'], expect)
    model = _lgdea(image_embed='cls', global_loss=dict(type='ContrastiveLoss'),
                   terms=['rec', 'p', 'u', 'align', 'g'])
    assert torch.isfinite(_loss(model, images, samples, reports)['loss_g'])


def test_evidence_tokenizer_caps_and_looks_up(tmp_path):
    t = TRANSFORMS.build(dict(type='EvidenceTokenizer', max_phrases=2))
    out = t(dict(report='x', study_id='s', evidence=PHRASES[:3]))
    assert out['evidence'] == PHRASES[:2] and out['evidence_dropped'] == 1
    assert 'evidence_ids' not in out  # the model tokenises the phrases itself
    # cache look-up with the offline rule extractor (extracts in memory when missing)
    t = TRANSFORMS.build(dict(type='EvidenceTokenizer', evidence=dict(
        extractor=dict(type='rule'), cache_dir=str(tmp_path))))
    out = t(dict(report='FINDINGS: There is a small left pleural effusion. No pneumothorax.',
                 study_id='s'))
    assert any('effusion' in p for p in out['evidence'])
    assert not any('pneumothorax' in p for p in out['evidence'])
    assert t(dict(kind='image', img_path='a.png')) == dict(kind='image', img_path='a.png')


def test_phase_hook_applies_phases_and_records_them():
    from types import SimpleNamespace
    from lgdea.engine.hooks import LGDEAPhaseHook
    model = _lgdea()
    opt = torch.optim.SGD(model.parameters(), lr=1.0)
    logs, warnings = [], []
    runner = SimpleNamespace(
        model=model, max_iters=6, iter=0, epoch=0,
        optim_wrapper=SimpleNamespace(optimizer=opt),
        cfg=dict(optim_wrapper=dict(optimizer=dict(lr=1.0))),
        logger=SimpleNamespace(info=logs.append, warning=warnings.append))
    runner.cfg = __import__('mmengine').Config(runner.cfg)
    hook = LGDEAPhaseHook(by_epoch=False, phases=[
        dict(iters=2, terms=['rec', 'align'], propagation=False, lr=0.5),
        dict(iters=4, terms=['rec', 'p', 'u', 'align'], propagation=True, lr=0.1)])
    hook.before_train(runner)
    # optimizer lr 1.0 is used by no phase: the override is said, naming the key to change
    assert len(warnings) == 1 and 'optim_wrapper.optimizer.lr=1 is never used' in warnings[0]
    assert 'lgdea_phases.0.lr' in warnings[0]
    seen = []
    for it in range(6):
        runner.iter = it
        hook.before_train_iter(runner, it)
        seen.append((sorted(model.terms), model.propagate, opt.param_groups[0]['lr']))
    assert seen[0] == (['align', 'rec'], False, 0.5) and seen[1] == seen[0]
    assert seen[2] == (['align', 'p', 'rec', 'u'], True, pytest.approx(0.1))
    assert len(logs) == 2
    ckpt = {}
    runner.iter = 3
    hook.before_save_checkpoint(runner, ckpt)
    assert ckpt['meta']['lgdea_phase'] == dict(phase=2, iter_in_phase=1)
    with pytest.raises(ValueError, match='phases last'):
        runner.max_iters = 7
        hook.before_train(runner)


ABLATIONS = {'wo_p': 'p', 'wo_u': 'u', 'wo_rec': 'rec', 'wo_align': 'propagation'}


def _grads(model, loss):
    params = [p for p in model.parameters() if p.requires_grad]
    grads = torch.autograd.grad(loss, params, allow_unused=True)
    return [torch.zeros_like(p) if g is None else g for p, g in zip(params, grads)]


@pytest.mark.parametrize('name', sorted(ABLATIONS))
def test_ablation_configs_remove_one_term_and_nothing_else(name):
    """Each ablation config = the paper phase table minus one term (or minus propagation); on a
    tiny model the removed term is absent from the logged losses, contributes no gradient, and
    every other term is unchanged."""
    from mmengine import Config
    root = osp.join(osp.dirname(__file__), '..', 'configs')
    base = Config.fromfile(osp.join(root, 'lgdea_vitb_p5.py'))
    abl = Config.fromfile(osp.join(root, 'lgdea_ablations', f'lgdea_vitb_p5_{name}.py'))
    removed = ABLATIONS[name]
    assert len(abl.lgdea_phases) == len(base.lgdea_phases)
    for ph_b, ph_a in zip(base.lgdea_phases, abl.lgdea_phases):
        if removed == 'propagation':
            assert ph_a == dict(ph_b, propagation=False)
        else:
            assert ph_a == dict(ph_b, terms=[t for t in ph_b['terms'] if t != removed])
    hook = [h for h in abl.custom_hooks if h['type'] == 'LGDEAPhaseHook']
    assert hook and hook[0]['phases'] == 'lgdea_phases'
    assert abl.model.get('report_repr', 'evidence') == ('global' if name == 'wo_rec'
                                                         else 'evidence')

    full_phase, abl_phase = base.lgdea_phases[-1], abl.lgdea_phases[-1]
    torch.manual_seed(0)
    model = _lgdea(report_repr=abl.model.get('report_repr', 'evidence'))
    batch = _batch()

    def run(phase):
        terms = [t for t in phase['terms'] if not (name == 'wo_rec' and t == 'rec')]
        model.set_phase(terms, phase['propagation'])
        torch.manual_seed(1)
        return _loss(model, *batch)

    out_full, out_abl = run(full_phase), run(abl_phase)
    key = {'p': 'loss_p', 'u': 'loss_u', 'rec': 'loss_rec', 'propagation': None}[removed]
    if key is None:      # wo_align: same terms, P = Y instead of the propagated targets
        assert out_full['propagated'].item() == 1.0 and out_abl['propagated'].item() == 0.0
        assert out_full['loss_align'].item() != pytest.approx(out_abl['loss_align'].item())
        same = [k for k in out_full if k.startswith('loss') and k != 'loss_align']
    else:
        if name != 'wo_rec':
            assert key in out_full
        assert key not in out_abl
        same = [k for k in out_abl if k.startswith('loss')]
        assert set(same) == {k for k in out_full if k.startswith('loss')} - {key}
    for k in same:
        assert out_abl[k].item() == pytest.approx(out_full[k].item(), rel=1e-6), k
    if key is not None and name != 'wo_rec':
        # the removed term contributes zero gradient: grad(ablation) = grad(full) - grad(term)
        g_full = _grads(model, sum(out_full[k] for k in out_full if k.startswith('loss')))
        out_full = run(full_phase)
        g_term = _grads(model, out_full[key])
        out_abl = run(abl_phase)
        g_abl = _grads(model, sum(out_abl[k] for k in out_abl if k.startswith('loss')))
        assert max(g.abs().max().item() for g in g_term) > 1e-3
        # float32 rounding follows the largest gradients in the model, not each entry: a tolerance
        # of 1e-5 x the largest full-loss gradient admits rounding but not a left-over term (whose
        # gradient the first assertion shows to be non-zero)
        scale = max(g.abs().max().item() for g in g_full)
        for ga, gf, gt in zip(g_abl, g_full, g_term):
            assert torch.allclose(ga, gf - gt, rtol=1e-5, atol=1e-5 * scale)


def test_prototype_init_hook_runs_kmeans_on_training_evidence():
    from types import SimpleNamespace

    from mmengine.logging import MMLogger

    from lgdea.registry import HOOKS
    pytest.importorskip('faiss')
    torch.manual_seed(0)
    model = _lgdea(head=dict(type='DiagnosticPrototypeHead', num_prototypes=3, init='kmeans'))
    images, samples, reports = _batch()
    with pytest.raises(RuntimeError, match='PrototypeInitHook'):
        _loss(model, images, samples, reports)
    dataset = SimpleNamespace(reports=[dict(evidence=[PHRASES[i % 3]]) for i in range(9)]
                              + [dict(evidence=[])])
    runner = SimpleNamespace(model=model, train_dataloader=SimpleNamespace(dataset=dataset),
                             logger=MMLogger.get_instance('test_prototype_init_hook'))
    before = model.head.mu.detach().clone()
    hook = HOOKS.build(dict(type='PrototypeInitHook', num_reports=50))
    hook.before_train(runner)
    assert not model.head.needs_kmeans_init and not torch.allclose(model.head.mu, before)
    # the hook clusters the evidence embeddings of the training reports' distinct phrases
    model.eval()
    with torch.no_grad():
        z = model.encode_phrases(sorted(PHRASES[:3]))
    model.train()
    ref = MODELS.build(dict(type='DiagnosticPrototypeHead', num_prototypes=3, embed_dims=16,
                            init='kmeans'))
    ref.init_from_embeddings(z)
    assert torch.allclose(model.head.mu, ref.mu, atol=1e-5)
    assert torch.allclose(model.head.mu.norm(dim=1), torch.ones(3), atol=1e-5)
    assert torch.isfinite(sum(v for k, v in _loss(model, images, samples, reports).items()
                              if k.startswith('loss')))
    mu = model.head.mu.detach().clone()
    hook.before_train(runner)                              # a resumed run keeps its prototypes
    assert torch.equal(model.head.mu, mu)
    with pytest.raises(ValueError, match='evidence'):
        hook.before_train(SimpleNamespace(
            model=_lgdea(head=dict(type='DiagnosticPrototypeHead', num_prototypes=3,
                                   init='kmeans')),
            train_dataloader=SimpleNamespace(dataset=SimpleNamespace(reports=[dict()])),
            logger=runner.logger))


@pytest.mark.parametrize('image_embed', ['H_I', 'cls'])
def test_relation_mean_teacher_builds_relations_from_the_averaged_model(image_embed):
    torch.manual_seed(0)
    prop = dict(type='PseudoLabelPropagation', threshold=0.0)
    model = _lgdea(image_embed=image_embed, propagation=prop, relation_ema=0.9)
    images, samples, reports = _batch()
    torch.manual_seed(0)
    plain = _lgdea(image_embed=image_embed, propagation=prop)
    plain.load_state_dict(model.state_dict(), strict=False)
    model.eval(), plain.eval()      # no dropout: the teacher always runs in eval mode
    # the first step copies the student: relations, hence every loss, equal the plain model's
    out, ref = _loss(model, images, samples, reports), _loss(plain, images, samples, reports)
    for key in ('loss_align', 'loss_rec', 'pseudo_kept_frac'):
        assert torch.allclose(out[key], ref[key]), key
    assert int(model.relation_teacher_updates) == 1
    assert not any(p.requires_grad for p in model.relation_teacher.parameters())
    assert 'text_encoder' not in model.relation_teacher or any(
        p.requires_grad for p in model.text_encoder.parameters())
    # one optimizer step moves the student; the next update is m * old + (1 - m) * new
    old = {k: v.clone() for k, v in model.relation_teacher.state_dict().items()}
    opt = torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=0.5)
    sum(v for k, v in out.items() if 'loss' in k).backward()
    opt.step()
    seen = {}
    real = model.propagation.forward

    def spy(H_I, H_R, *args, **kw):
        seen.update(H_I=H_I, H_R=H_R)
        return real(H_I, H_R, *args, **kw)

    model.propagation.forward = spy
    _loss(model, images, samples, reports)
    for name, module in model.relation_teacher.items():
        for key, p_s in getattr(model, name).state_dict().items():
            p_t = module.state_dict()[key]
            assert torch.allclose(p_t, 0.9 * old[f'{name}.{key}'] + 0.1 * p_s, atol=1e-6), key
    data = model.data_preprocessor(dict(inputs=images, data_samples=samples, reports=reports),
                                   True)
    h_i, h_r = model.relation_embeddings(data['images'], data['reports'])
    assert torch.allclose(seen['H_I'], h_i) and torch.allclose(seen['H_R'], h_r)
    with torch.no_grad():
        student_h_i = model.extract_image(data['images'])['embed']
    assert not torch.allclose(seen['H_I'], student_h_i, atol=1e-4)  # not the current model's
    # the teacher is state: saved and restored with the checkpoint
    assert 'relation_teacher_updates' in model.state_dict()
    with pytest.raises(ValueError, match='relation_ema'):
        _lgdea(relation_ema=1.0)
