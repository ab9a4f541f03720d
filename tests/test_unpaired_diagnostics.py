"""Partner-rank statistics of UnpairedDiagnosticsHook (hand counts, ties)."""
import pytest
import torch

from lgdea.engine.hooks.unpaired_diagnostics_hook import partner_rank_stats


def test_partner_rank_with_ties_and_class_hits():
    scores = torch.tensor([[0.9, 0.5, 0.5, 0.1],      # partner 0: rank 1
                           [0.2, 0.7, 0.7, 0.7],      # partner 1, tied with 2 and 3: rank 2
                           [0.9, 0.8, 0.1, 0.3]])     # partner 2: 3 above -> rank 4
    partner = torch.tensor([0, 1, 2])
    s = partner_rank_stats(scores, partner, image_labels=[1, 2, 1],
                           report_labels=[1, 2, 2, -1], topk=2)
    assert s['partner_rank_median'] == pytest.approx(2.0)
    assert s['partner_rank_mean'] == pytest.approx((1 + 2 + 4) / 3)
    # recall@2: image 0 certain; image 1: 2 of 3 tie positions in the top 2; image 2: none
    assert s['partner_recall@2'] == pytest.approx((1 + 2 / 3 + 0) / 3)
    assert s['partner_rank_chance'] == pytest.approx(2.5)
    assert s['partner_recall@2_chance'] == pytest.approx(0.5)
    # class hits in the top 2: image 0 -> reports 0 and (1 or 2, both label 2): 1/2;
    # image 1 (label 2) -> two of reports 1-3 (tie, topk order): at least one label 2;
    # image 2 (label 1) -> reports 0, 1: 1/2
    hit = s['partner_class_hit@2']
    assert 1 / 3 <= hit <= 2 / 3
    # chance: label frequency among the 3 labelled reports: 1/3, 2/3, 1/3
    assert s['partner_class_hit@2_chance'] == pytest.approx((1 / 3 + 2 / 3 + 1 / 3) / 3)


def test_perfect_and_random_scores():
    n = 50
    s = partner_rank_stats(torch.eye(n), torch.arange(n), topk=10)
    assert s['partner_rank_median'] == 1 and s['partner_recall@10'] == 1
    const = partner_rank_stats(torch.zeros(4, n), torch.arange(4), topk=10)
    # every report tied: mid rank (n + 1) / 2 and recall = chance
    assert const['partner_rank_median'] == pytest.approx(const['partner_rank_chance'])
    assert const['partner_recall@10'] == pytest.approx(const['partner_recall@10_chance'])
