"""Class-level target precision of propagation (measurement only)."""
import pytest
import torch
from mmpretrain.structures import DataSample

from lgdea.models.heads.evidence_propagation import EvidencePropagation
from lgdea.models.utils.finding_labels import finding_keys


def test_finding_keys_encode_label_sets_and_mark_missing():
    a, b, c = DataSample(), DataSample(), DataSample()
    a.set_gt_score(torch.tensor([1., 0., 1.]))
    b.set_gt_score(torch.tensor([0., 0., 0.]))
    assert finding_keys([a, b, c]).tolist() == [5, 0, -1]
    assert finding_keys([c]) is None


def test_class_target_precision_against_hand_count():
    # images 0 (paired), 1, 2 (unpaired, kept), 3 (unpaired, masked); reports 0..3
    targets = torch.tensor([[1.0, 0.0, 0.0, 0.0],
                            [0.5, 0.5, 0.0, 0.0],
                            [0.0, 0.25, 0.75, 0.0],
                            [0.0, 0.0, 0.0, 0.0]])
    mask = torch.tensor([True, True, True, False])
    paired = torch.tensor([True, False, False, False])
    img_labels = torch.tensor([1, 1, 2, 2])
    rep_labels = torch.tensor([1, 3, 2, -1])           # report 3 has no label
    d = EvidencePropagation.class_target_precision(targets, mask, paired, img_labels,
                                                   rep_labels)
    # image 1: mass on label-1 reports = 0.5; image 2: 0.75 -> mean 0.625
    assert d['target_class_precision'].item() == pytest.approx(0.625)
    # chance: 1 of 3 labelled reports matches for each -> 1/3
    assert d['target_class_chance'].item() == pytest.approx(1 / 3)
    assert d['target_class_rows'].item() == 2
    assert EvidencePropagation.class_target_precision(
        targets, mask, torch.ones(4, dtype=torch.bool), img_labels, rep_labels) == {}
