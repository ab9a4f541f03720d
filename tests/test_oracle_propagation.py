"""The oracle propagation of the benchmark, and that no training input uses a withheld link."""
import pytest
import torch

from lgdea.models.heads import EvidencePropagation, OracleClassPropagation

from test_lgdea_model import _batch, _lgdea, _loss


def test_oracle_links_against_hand_count():
    img_labels = torch.tensor([1, 1, 2, -1])
    rep_labels = torch.tensor([1, 1, 1, 2])
    img_paired = torch.tensor([True, False, False, False])
    rep_paired = torch.tensor([True, True, False, False])
    o = OracleClassPropagation.oracle_links(img_labels, rep_labels, img_paired, rep_paired)
    # image 0 (paired): only the unpaired report 2 shares its set (report 1 is paired-paired)
    # image 1: reports 0, 1, 2; image 2: report 3; image 3: unknown label, no link
    expected = torch.tensor([[0, 0, 1, 0],
                             [1 / 3, 1 / 3, 1 / 3, 0],
                             [0, 0, 0, 1],
                             [0, 0, 0, 0]])
    assert torch.allclose(o, expected)


def test_oracle_targets_follow_phase_and_full_pairing():
    prop = OracleClassPropagation(row_weight='none')
    h = torch.nn.functional.normalize(torch.randn(4, 8), dim=-1)
    y = torch.diag(torch.tensor([1.0, 1.0, 0.0, 0.0]))    # seed links of the paired studies
    paired = torch.tensor([True, True, False, False])
    labels = torch.tensor([0, 1, 0, 1])
    out = prop(h, h, y, paired, paired, propagate=True, image_labels=labels,
               report_labels=labels)
    # unpaired image 2 (label 0): reports 0 and 2 share its set -> 1/2 each
    assert torch.allclose(out['targets_i2t'][2], torch.tensor([0.5, 0.0, 0.5, 0.0]))
    # paired image 0: its partner (Y) plus the unpaired report 2 of its set
    assert torch.allclose(out['targets_i2t'][0], torch.tensor([0.5, 0.0, 0.5, 0.0]))
    off = prop(h, h, y, paired, paired, propagate=False, image_labels=labels,
               report_labels=labels)
    assert torch.equal(off['P'], y) and not off['propagated']
    full = torch.ones(4, dtype=torch.bool)
    assert torch.equal(prop(h, h, y, full, full, image_labels=labels,
                            report_labels=labels)['P'], y)
    with pytest.raises(ValueError, match='finding labels'):
        prop(h, h, y, paired, paired)
    with pytest.raises(ValueError, match='builds no evidence graph'):
        OracleClassPropagation(tau_g=0.5)


def _labelled(samples, reports, labels):
    for s, r, c in zip(samples, reports, labels):
        score = torch.tensor([float(c == k) for k in range(3)])
        s.set_gt_score(score)
        r.set_gt_score(score)


def test_lgdea_with_oracle_reads_labels_and_needs_them():
    model = _lgdea(propagation=dict(type='OracleClassPropagation'))
    images, samples, reports = _batch()
    with pytest.raises(ValueError, match='needs finding labels'):
        _loss(model, images, samples, reports)
    _labelled(samples, reports, [0, 1, 2, 0, 0, 1, 2, 0])
    out = _loss(model, images, samples, reports)
    assert out['propagated'].item() == 1.0
    # oracle targets are class-perfect for the unpaired images
    assert out['target_class_precision'].item() == pytest.approx(1.0)
    # and so are the unpaired reports' targets over images, next to their chance
    assert out['report_target_class_precision'].item() == pytest.approx(1.0)
    assert 0 < out['report_target_class_chance'].item() < 1
    assert torch.isfinite(out['loss_align'])


@pytest.mark.parametrize('propagation', ['EvidencePropagation', 'OracleClassPropagation'])
def test_no_training_input_depends_on_a_withheld_link(propagation):
    """The batch of ``_batch`` holds every unpaired image next to its withheld partner report.
    Giving the unpaired items fresh study ids (which breaks those links and nothing else)
    must leave every loss term bit-identical: the links are used for measurement only."""
    torch.manual_seed(0)
    model = _lgdea(propagation=dict(type=propagation), terms=('rec', 'p', 'u', 'align'))
    images, samples, reports = _batch()
    _labelled(samples, reports, [0, 1, 2, 0, 0, 1, 2, 0])
    torch.manual_seed(1)
    before = _loss(model, images, samples, reports)
    assert before['hidden_pair_count'].item() == 4          # the links are there to break
    _, samples2, reports2 = _batch()
    _labelled(samples2, reports2, [0, 1, 2, 0, 0, 1, 2, 0])
    for k, (s, r) in enumerate(zip(samples2, reports2)):
        if not s.paired:
            s.set_metainfo(dict(study_id=f'image-only-{k}'))
            r.set_metainfo(dict(study_id=f'report-only-{k}'))
    torch.manual_seed(1)
    after = _loss(model, images, samples2, reports2)
    assert after['hidden_pair_count'].item() == 0
    losses = [k for k in before if k.startswith('loss_')]
    assert set(losses) == {'loss_rec', 'loss_p', 'loss_u', 'loss_align'}
    for k in losses:
        assert torch.equal(before[k], after[k]), k


def test_pseudo_label_links_keep_confident_unpaired_images_only():
    from lgdea.models.heads import PseudoLabelPropagation
    e = torch.eye(3)
    # reports 0 and 1 share an evidence set (identical H_R), report 2 differs
    h_r = torch.stack([e[0], e[0], e[1]])
    # image 0 paired; image 1 unpaired, close to set {0, 1}; image 2 unpaired, in between
    h_i = torch.nn.functional.normalize(torch.stack([e[0], e[0] + 0.05 * e[2], e[0] + e[1]]),
                                        dim=-1)
    paired = torch.tensor([True, False, False])
    rep_paired = torch.tensor([True, False, False])
    prop = PseudoLabelPropagation(tau_pl=0.05, threshold=0.9)
    o, conf, kept = prop.pseudo_links(h_i, h_r, paired)
    assert kept.tolist() == [False, True, False]
    assert torch.allclose(o[1], torch.tensor([0.5, 0.5, 0.0]), atol=1e-6)
    assert conf[2].item() == pytest.approx(2 / 3, abs=1e-3) and o[2].sum() == 0  # q uniform
    y = torch.zeros(3, 3)
    y[0, 0] = 1
    out = prop(h_i, h_r, y, paired, rep_paired)
    assert out['mask_i'].tolist() == [True, True, False]
    assert out['diagnostics']['pseudo_kept_frac'].item() == pytest.approx(0.5)
    assert torch.equal(prop(h_i, h_r, y, paired, rep_paired, propagate=False)['P'], y)



def test_report_evidence_links_join_unpaired_reports_to_the_paired_image_of_their_evidence():
    from lgdea.models.heads import PseudoLabelPropagation
    e = torch.eye(3)
    # reports: 0 paired (set a), 1 paired (set b), 2 unpaired (set a), 3 unpaired (set c)
    h_r = torch.stack([e[0], e[1], e[0], e[2]])
    h_i = torch.nn.functional.normalize(torch.randn(3, 3, generator=torch.Generator()
                                                    .manual_seed(0)), dim=-1)
    img_paired = torch.tensor([True, True, False])
    rep_paired = torch.tensor([True, True, False, False])
    y = torch.zeros(3, 4)
    y[0, 0] = y[1, 1] = 1.0
    prop = PseudoLabelPropagation(threshold=1.0, report_links=True)   # no image pseudo-link
    assert torch.equal(prop.evidence_links(h_r, y, rep_paired),
                       torch.tensor([[0.0, 0, 1, 0], [0, 0, 0, 0], [0, 0, 0, 0]]))
    out = prop(h_i, h_r, y, img_paired, rep_paired)
    # report 2 now has a target (image 0); report 3 (no paired study with its evidence) has none
    assert out['mask_t'].tolist() == [True, True, True, False]
    assert torch.allclose(out['targets_t2i'][2], torch.tensor([1.0, 0.0, 0.0]))
    assert torch.allclose(out['targets_i2t'][0], torch.tensor([0.5, 0.0, 0.5, 0.0]))
    assert out['diagnostics']['report_linked_frac'].item() == pytest.approx(0.5)
    plain = PseudoLabelPropagation(threshold=1.0)(h_i, h_r, y, img_paired, rep_paired)
    assert plain['mask_t'].tolist() == [True, True, False, False]
    assert 'report_linked_frac' not in plain['diagnostics']


def test_degraded_oracle_has_the_precision_it_is_asked_for():
    torch.manual_seed(0)
    n = 400
    labels = torch.randint(0, 6, (n,))
    paired = torch.arange(n) < 40
    y = torch.zeros(n, n)
    y[torch.arange(40), torch.arange(40)] = 1.0

    def precision(prop):
        o = prop.relations(None, None, y, paired, paired, labels, labels)[0] - y
        rows = o[~paired]
        same = (labels[~paired][:, None] == labels[None, :]).float()
        assert torch.allclose(rows.sum(dim=1), torch.ones(n - 40))   # every row keeps its mass
        return float((rows * same).sum(dim=1).mean())

    assert precision(OracleClassPropagation()) == pytest.approx(1.0)
    noisy = precision(OracleClassPropagation(label_noise=0.5, noise_seed=3))
    # an unpaired image's row carries its own decision only: about half the images keep their set
    assert 0.44 < noisy < 0.56
    assert precision(OracleClassPropagation(label_noise=0.5, noise_seed=3)) == noisy
    assert precision(OracleClassPropagation(label_noise=0.5, noise_seed=4)) != noisy
    # paired rows and paired-paired links are never touched
    prop = OracleClassPropagation(label_noise=0.9)
    p = prop.relations(None, None, y, paired, paired, labels, labels)[0]
    assert torch.equal(p[:40, :40], y[:40, :40] + OracleClassPropagation.oracle_links(
        labels, labels, paired, paired)[:40, :40])
    with pytest.raises(ValueError, match='label_noise'):
        OracleClassPropagation(label_noise=1.0)


def test_one_sided_oracle_links():
    img_labels = torch.tensor([1, 2, 1, 2])
    rep_labels = torch.tensor([1, 2, 1, 2])
    img_paired = torch.tensor([True, True, False, False])
    rep_paired = torch.tensor([True, True, False, False])
    y = torch.zeros(4, 4)
    y[0, 0] = y[1, 1] = 1.0
    full = OracleClassPropagation().relations(None, None, y, img_paired, rep_paired,
                                              img_labels, rep_labels)[0] - y
    images = OracleClassPropagation(links='unpaired_images').relations(
        None, None, y, img_paired, rep_paired, img_labels, rep_labels)[0] - y
    reports = OracleClassPropagation(links='unpaired_reports').relations(
        None, None, y, img_paired, rep_paired, img_labels, rep_labels)[0] - y
    assert torch.equal(images[:2], torch.zeros(2, 4)) and torch.equal(images[2:], full[2:])
    assert torch.equal(reports[2:], torch.zeros(2, 4))
    # paired image 0 (set 1) -> unpaired report 2; paired image 1 (set 2) -> unpaired report 3
    assert torch.equal(reports[:2], torch.tensor([[0.0, 0, 1, 0], [0, 0, 0, 1]]))
    with pytest.raises(ValueError, match='links'):
        OracleClassPropagation(links='images')


def test_report_links_below_identity_go_to_the_nearest_paired_report_only():
    from lgdea.models.heads import PseudoLabelPropagation
    # paired reports 0, 1; unpaired report 2 is near 0 (cos 0.8) and farther from 1 (0.6)
    h_r = torch.tensor([[1.0, 0.0, 0.0], [0.6, 0.8, 0.0], [0.8, 0.0, 0.6]])
    rep_paired = torch.tensor([True, True, False])
    y = torch.zeros(2, 3)
    y[0, 0] = y[1, 1] = 1.0
    exact = PseudoLabelPropagation(report_links=True).evidence_links(h_r, y, rep_paired)
    assert torch.equal(exact, torch.zeros(2, 3))                  # no identical evidence
    near = PseudoLabelPropagation(report_links=True, report_link_cos=0.7)
    assert torch.equal(near.evidence_links(h_r, y, rep_paired),
                       torch.tensor([[0.0, 0, 1], [0, 0, 0]]))
    assert torch.equal(PseudoLabelPropagation(report_links=True, report_link_cos=0.9)
                       .evidence_links(h_r, y, rep_paired), torch.zeros(2, 3))
    with pytest.raises(ValueError, match='report_link_cos'):
        PseudoLabelPropagation(report_link_cos=1.5)
