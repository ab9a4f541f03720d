import json
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from lgdea.datasets import LimitedPairingDataset, PropagationSampler
from lgdea.models.utils import build_pair_targets, study_key

from conftest import InMemoryRecords, make_study_records


def _dataset(n=40, ratio=0.25, seed=0, **kw):
    recs = make_study_records(n)
    return LimitedPairingDataset(dataset=InMemoryRecords(recs), pair_ratio=ratio, pair_seed=seed,
                                 **kw), recs


def test_pools_partition_and_partner_never_visible():
    ds, recs = _dataset()
    assert ds.counts['paired_studies'] == 10  # 25% of 40
    # every source image appears exactly once
    assert ds.num_images == len(recs)
    paired = set(ds.paired_studies)
    for it in ds.images:
        assert it['paired'] == (it['study_id'] in paired)
    for it in ds.reports:
        assert it['paired'] == (it['study_id'] in paired)
    # an unpaired image's own report is in the report pool but never marked as its pair
    img_keys = torch.tensor([study_key(i['study_id']) for i in ds.images])
    img_p = torch.tensor([i['paired'] for i in ds.images])
    rep_keys = torch.tensor([study_key(r['study_id']) for r in ds.reports])
    rep_p = torch.tensor([r['paired'] for r in ds.reports])
    y = build_pair_targets(img_keys, img_p, rep_keys, rep_p)
    assert y[~img_p].sum() == 0
    assert (y[img_p].sum(1) == 1).all()


def test_split_reproducible_and_seed_dependent(tmp_path):
    a, _ = _dataset(seed=3)
    b, _ = _dataset(seed=3)
    c, _ = _dataset(seed=4)
    assert a.paired_studies == b.paired_studies
    assert a.paired_studies != c.paired_studies
    a.dump_split(str(tmp_path / 'split.json'))
    info = json.loads((tmp_path / 'split.json').read_text())
    assert info['pair_seed'] == 3 and info['paired_studies'] == a.paired_studies


def test_full_pairing_and_paired_only_mode():
    ds, recs = _dataset(ratio=1.0)
    assert ds.counts['unpaired_images'] == 0 and ds.counts['unpaired_reports'] == 0
    po, _ = _dataset(ratio=0.25, include_unpaired=False)
    assert all(it['kind'] == 'pair' and it['paired'] for it in po.data_list)
    assert len(po) == po.counts['paired_images']
    assert all(it['report'].startswith('report of study') for it in po.data_list)


def test_study_without_report_keeps_images_unpaired():
    recs = make_study_records(10)
    for r in recs:
        if r['study_id'] == 's0':
            r['report'] = '   '
    ds = LimitedPairingDataset(dataset=InMemoryRecords(recs), pair_ratio=1.0)
    assert ds.counts['studies_without_report'] == 1
    s0 = [it for it in ds.images if it['study_id'] == 's0']
    assert s0 and not any(it['paired'] for it in s0)
    assert 's0' not in ds.report_index


def test_exclusion_and_disjoint(tmp_path):
    ex = tmp_path / 'exclude.txt'
    ex.write_text('p0\np1\n')
    ds, recs = _dataset(exclude_subjects_file=str(ex))
    assert ds.counts['excluded_records'] == sum(r['subject_id'] in ('p0', 'p1') for r in recs)
    assert not any(it['subject_id'] in ('p0', 'p1') for it in ds.images + ds.reports)
    dj, _ = _dataset(disjoint_unpaired=True)
    un_img = {i['study_id'] for i in dj.images if not i['paired']}
    un_rep = {r['study_id'] for r in dj.reports if not r['paired']}
    assert un_img and un_rep and not un_img & un_rep
    with pytest.raises(FileNotFoundError, match='exclude_subjects_file'):
        _dataset(exclude_subjects_file=str(tmp_path / 'missing.txt'))


def _sampler(ds, bs, epoch=0, **kw):
    return PropagationSampler(SimpleNamespace(dataset=ds, seed=7, epoch=epoch), batch_size=bs,
                              **kw)


def test_sampler_composition_and_determinism():
    ds, _ = _dataset(n=60, ratio=0.2)
    s = _sampler(ds, 8)
    batches = list(s)
    assert len(batches) == len(s)
    n_img = ds.num_images
    unpaired_seen = []
    for b in batches:
        imgs = [i for i in b if i < n_img]
        reps = [i - n_img for i in b if i >= n_img]
        assert len(imgs) == 8 and len(reps) == 8
        paired_imgs = [i for i in imgs if ds.images[i]['paired']]
        assert len(paired_imgs) == 4  # B // 2
        # each paired image's report is in the batch
        for i in paired_imgs:
            assert ds.report_index[ds.images[i]['study_id']] in reps
        assert sum(ds.reports[j]['paired'] for j in reps) == 4
        unpaired_seen += [i for i in imgs if not ds.images[i]['paired']]
    # every unpaired image drawn at least once per epoch
    assert set(unpaired_seen) == set(ds.unpaired_image_ids)
    assert list(_sampler(ds, 8)) == batches
    assert list(_sampler(ds, 8, epoch=1)) != batches


def test_sampler_rank_shards_disjoint(monkeypatch):
    import lgdea.datasets.samplers.propagation_sampler as mod
    ds, _ = _dataset(n=60, ratio=0.2)
    monkeypatch.setattr(mod, 'get_world_size', lambda: 2)
    shards = []
    for rank in range(2):
        monkeypatch.setattr(mod, 'get_rank', lambda r=rank: r)
        shards.append(list(_sampler(ds, 4)))
    monkeypatch.setattr(mod, 'get_world_size', lambda: 1)
    monkeypatch.setattr(mod, 'get_rank', lambda: 0)
    single = list(_sampler(ds, 8))
    n_img = ds.num_images
    for b0, b1, g in zip(shards[0], shards[1], single):
        assert not set(b0) & set(b1)
        assert sorted(b0 + b1) == sorted(g)
        for shard in (b0, b1):  # both halves of each pair on one rank
            reps = {i - n_img for i in shard if i >= n_img}
            for i in shard:
                if i < n_img and ds.images[i]['paired']:
                    assert ds.report_index[ds.images[i]['study_id']] in reps


def test_sampler_proportional_and_errors():
    ds, _ = _dataset(n=60, ratio=0.2)
    s = _sampler(ds, 16, paired_mode='proportional', min_paired=2)
    expected = max(2, round(16 * len(ds.paired_studies) / ds.num_images))
    assert s.n_paired == expected
    with pytest.raises(ValueError, match='n_paired'):
        _sampler(ds, 4, n_paired=9)
    po, _ = _dataset(include_unpaired=False)
    with pytest.raises((TypeError, ValueError)):
        _sampler(po, 4)


# ------------------------------------------------------------------ skipped images
def _image_dataset(tmp_path, ratio=0.25, n=24, bad=()):
    """Studies with real PNG files; the paths in ``bad`` are written corrupt."""
    from PIL import Image
    recs = make_study_records(n, img_root=str(tmp_path))
    for r in recs:
        if r['img_path'] in bad:
            with open(r['img_path'], 'wb') as f:
                f.write(b'\x89PNG broken')
        else:
            Image.fromarray(np.full((8, 8), 7, np.uint8)).save(r['img_path'])
    pipeline = [dict(type='LoadCXRImage', on_error='skip'), dict(type='PadToSquareCXR', size=8),
                dict(type='PackVLInputs')]
    return LimitedPairingDataset(dataset=InMemoryRecords(recs), pair_ratio=ratio,
                                 pipeline=pipeline), recs


def _collated(ds, batch):
    from lgdea.datasets import vl_collate
    return vl_collate([ds[i] for i in batch])


def _targets(out):
    from lgdea.models.utils.pairing import paired_flags, study_keys
    s, r = out['data_samples'], out['reports']
    return build_pair_targets(study_keys(s), paired_flags(s), study_keys(r), paired_flags(r))


def _pick_bad(tmp_path):
    """A paired study with two images, a paired study with one, an unpaired image."""
    ds, recs = _image_dataset(tmp_path)
    two = next(s for s, ids in ds.paired_image_index.items() if len(ids) == 2)
    one = next(s for s, ids in ds.paired_image_index.items() if len(ids) == 1)
    bad_two = ds.images[ds.paired_image_index[two][0]]['img_path']
    bad_one = ds.images[ds.paired_image_index[one][0]]['img_path']
    bad_un = ds.images[ds.unpaired_image_ids[0]]['img_path']
    return two, one, (bad_two, bad_one, bad_un)


def test_skipped_image_is_replaced_within_its_pool_and_y_is_kept(tmp_path):
    from lgdea.datasets.limited_pairing import replacement_stats, reset_replacements
    two, one, bad = _pick_bad(tmp_path)
    ds, _ = _image_dataset(tmp_path, bad=bad)
    reset_replacements()
    n_img = ds.num_images
    by_path = {it['img_path']: i for i, it in enumerate(ds.images)}
    # the batch a sampler composes: 4 pairs (two bad paired images), 2 unpaired (one bad)
    pairs = [ds.paired_image_index[two][0], ds.paired_image_index[one][0]] + [
        ids[0] for s, ids in ds.paired_image_index.items() if s not in (two, one)][:2]
    unpaired = [by_path[bad[2]], ds.unpaired_image_ids[1]]
    batch = pairs + unpaired + [n_img + ds.report_index[ds.images[i]['study_id']]
                                for i in pairs] + [n_img + j for j in ds.unpaired_report_ids[:2]]
    out = _collated(ds, batch)
    imgs, reps = out['data_samples'], out['reports']
    # the study whose only image is broken leaves with its report; the others keep B_I == B_R
    assert len(imgs) == len(reps) == 5
    assert one not in {s.study_id for s in imgs} | {s.study_id for s in reps}
    # the broken image of the two-image study is replaced by the other image of that study
    two_imgs = [s for s in imgs if s.study_id == two]
    assert len(two_imgs) == 1 and two_imgs[0].img_path != bad[0] and two_imgs[0].paired
    # the broken unpaired image is replaced by an unpaired image, never by a report
    assert all(s.kind == 'image' for s in imgs) and all(s.kind == 'report' for s in reps)
    assert sum(not s.paired for s in imgs) == 2 and bad[2] not in {s.img_path for s in imgs}
    y = _targets(out)
    paired = torch.tensor([bool(s.paired) for s in imgs])
    assert (y[paired].sum(1) == 1).all() and y[~paired].sum() == 0
    assert y.sum(0).tolist().count(1.0) == 3  # every paired report keeps its one image
    replaced, dropped, events = replacement_stats()
    assert (replaced, dropped) == (2, 1)
    assert {e['study_id'] for e in events if e['outcome'] == 'dropped_pair'} == {one}
    reset_replacements()


def test_skipped_unpaired_image_is_only_ever_replaced_by_an_unpaired_image(tmp_path):
    """Many draws (seeded): a broken unpaired image never becomes a paired image (which would
    add a positive to ``Y``) nor a report; a broken paired image only by its own study's."""
    from lgdea.datasets.limited_pairing import replacement_stats, reset_replacements
    two, _, bad = _pick_bad(tmp_path)
    ds, _ = _image_dataset(tmp_path, bad=bad)
    by_path = {it['img_path']: i for i, it in enumerate(ds.images)}
    assert len(ds.paired_image_index) >= 5  # a pool mix-up would be drawn often
    reset_replacements()
    np.random.seed(0)
    for _ in range(40):
        item = ds[by_path[bad[2]]]
        assert item['data_samples'].kind == 'image' and not item['data_samples'].paired
        assert item['data_samples'].img_path != bad[2]
    np.random.seed(0)
    for _ in range(10):
        item = ds[by_path[bad[0]]]
        assert item['data_samples'].study_id == two and item['data_samples'].img_path != bad[0]
    replaced, dropped, _ = replacement_stats(max_items=0)
    assert (replaced, dropped) == (50, 0)
    reset_replacements()


def test_skipped_pair_item_replaced_by_a_pair_and_hook_reports(tmp_path):
    from lgdea.datasets.limited_pairing import replacement_stats, reset_replacements
    from lgdea.datasets.transforms import reset_corrupt_images
    from lgdea.engine.hooks import CorruptImageReportHook
    from mmengine.logging import MessageHub
    _, _, bad = _pick_bad(tmp_path)
    reset_corrupt_images()
    reset_replacements()
    po, _ = _image_dataset(tmp_path, bad=bad)
    po_pairs = LimitedPairingDataset(dataset=po.source, pair_ratio=0.25,
                                     include_unpaired=False, pipeline=po.pipeline.transforms)
    first_bad = next(i for i, it in enumerate(po_pairs.data_list) if it['img_path'] in bad)
    item = po_pairs[first_bad]
    assert item['data_samples'].kind == 'pair' and item['data_samples'].img_path not in bad
    assert replacement_stats()[0] >= 1
    hook = CorruptImageReportHook()
    runner = SimpleNamespace(epoch=0, message_hub=MessageHub.get_instance('lgdea_skip_test'))
    hook.after_train_epoch(runner)
    assert hook.last_count >= 1 and hook.last_replaced >= 1
    assert runner.message_hub.get_scalar('train/num_replaced_items').current() >= 1
    assert replacement_stats()[0] == 0  # reset after the report


# ------------------------------------------------------------------ pools and ids
def test_sampler_refuses_a_batch_larger_than_its_pools():
    ds, _ = _dataset(n=60, ratio=0.2)
    P, U, R = len(ds.paired_studies), len(ds.unpaired_image_ids), len(ds.unpaired_report_ids)
    assert P == 12 and min(U, R) >= 13
    with pytest.raises(ValueError, match=rf'pools hold {P} paired studies, {U} unpaired images '
                                         rf'and {R} unpaired reports.*largest batch_size is 25'):
        _sampler(ds, 64)
    _sampler(ds, 25)  # the largest that fits: 12 paired studies + 13 unpaired
    with pytest.raises(ValueError, match='largest batch_size is 25'):
        _sampler(ds, 26)
    # opted in: the batch repeats items, with a warning
    rs, _ = _dataset(n=60, ratio=0.2, resample_small_pools=True)
    s = _sampler(rs, 64)
    batch = next(iter(s))
    assert len(batch) == 128 and len(set(batch)) < len(batch)


def test_sampler_batches_never_repeat_an_item():
    ds, _ = _dataset(n=60, ratio=0.2)
    n_img = ds.num_images
    for epoch in range(6):
        for b in _sampler(ds, 16, epoch=epoch, n_paired=8):  # 12 paired studies: wraps mid-batch
            assert len(set(b)) == len(b)
            studies = [ds.images[i]['study_id'] for i in b if i < n_img and ds.images[i]['paired']]
            assert len(set(studies)) == len(studies) == 8


def test_paired_only_batch_larger_than_pool(tmp_path):
    from lgdea.engine.hooks.pairing_split_hook import PairingSplitHook
    po, _ = _dataset(n=40, ratio=0.25, include_unpaired=False)
    n = len(po)
    runner = SimpleNamespace(
        train_dataloader=SimpleNamespace(dataset=po, batch_sampler=None, batch_size=n + 1),
        world_size=1, rank=0, work_dir=str(tmp_path),
        logger=SimpleNamespace(info=lambda *a: None, warning=lambda *a: None))
    with pytest.raises(ValueError, match=rf'paired pool: {n} image-report pairs of 10 paired '
                                         rf'studies.*largest batch_size is {n} per rank'):
        PairingSplitHook().before_train(runner)
    runner.train_dataloader.batch_size = n
    PairingSplitHook().before_train(runner)
    ok, _ = _dataset(n=40, ratio=0.25, include_unpaired=False, resample_small_pools=True)
    ok.check_batch_size(10 * n)


def test_duplicate_rows_counted_and_conflicting_reports_refused():
    recs = make_study_records(10)
    recs.append(dict(recs[0]))                 # an exact duplicate row
    recs.append(dict(recs[2], img_path='/nonexistent/other.png',
                     report='a different report'))  # same study, another report
    with pytest.raises(ValueError, match=rf"study_id '{recs[2]['study_id']}' two different "
                                         r"reports.*conflicting_reports='keep_first'"):
        LimitedPairingDataset(dataset=InMemoryRecords(recs), pair_ratio=1.0)
    ds = LimitedPairingDataset(dataset=InMemoryRecords(recs), pair_ratio=1.0,
                               conflicting_reports='keep_first')
    assert ds.counts['duplicate_rows'] == 1 and ds.counts['conflicting_reports'] == 1
    # the duplicate is kept once; the conflicting record's image stays, its report does not
    assert [it['img_path'] for it in ds.images].count(recs[0]['img_path']) == 1
    assert ds.num_images == len(recs) - 1
    assert ds.reports[ds.report_index[recs[2]['study_id']]]['report'] == recs[2]['report']
    # whitespace alone is no conflict
    same = recs[:-2] + [dict(recs[2], img_path='/nonexistent/x.png',
                             report=recs[2]['report'] + '  ')]
    assert LimitedPairingDataset(dataset=InMemoryRecords(same)).counts['conflicting_reports'] == 0


def test_conflicting_report_error_names_the_file(tmp_path):
    from lgdea.datasets import GenericVLDataset
    (tmp_path / 'ann.csv').write_text('image,report,study_id\n'
                                      'a.png,Clear lungs.,s1\n'
                                      'b.png,Left effusion.,s1\n'
                                      'c.png,No change.,s2\n')
    src = GenericVLDataset(data_root=str(tmp_path), ann_file='ann.csv')
    with pytest.raises(ValueError, match=r'ann\.csv.*study_id .s1. two different reports'):
        LimitedPairingDataset(dataset=src, pair_ratio=1.0)
