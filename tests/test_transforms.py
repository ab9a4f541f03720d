"""Image loading, geometric transforms with geometry records, invert_map, packing, collation
and the data preprocessor."""
import os

import numpy as np
import pytest
import torch
from mmengine.dataset import Compose
from PIL import Image
from scipy.ndimage import gaussian_filter

from lgdea.datasets.collate import vl_collate
from lgdea.datasets.transforms import (CenterCropCXR, CorruptImageError, LoadCXRImage,
                                       PackVLInputs, PadToSquareCXR, RandomCropCXR, ResizeCXR,
                                       corrupt_image_stats, invert_map, reset_corrupt_images)
from lgdea.evaluation.functional import boxes_mask, contrast_to_noise_ratio
from lgdea.models.data_preprocessor import VLDataPreprocessor
from lgdea.registry import DATASETS

from conftest import InMemoryRecords  # noqa: F401  (registers the dataset)


# ------------------------------------------------------------------------------ loading
def _save_png(path, arr, mode=None):
    Image.fromarray(arr, mode=mode).save(path) if mode else Image.fromarray(arr).save(path)
    return str(path)


def test_load_png_8bit_16bit_and_rgb(tmp_path):
    a8 = (np.arange(20 * 30) % 256).astype(np.uint8).reshape(20, 30)
    out = LoadCXRImage()(dict(img_path=_save_png(tmp_path / 'a.png', a8)))
    assert out['img'].dtype == np.uint8 and out['img'].shape == (20, 30)
    np.testing.assert_array_equal(out['img'], a8)  # 8-bit kept as is
    assert out['ori_shape'] == (20, 30) and out['img_shape'] == (20, 30)
    assert out['geometry'] == []

    # 16-bit PNG using 12 bits: min-max scaled to 0..255
    a16 = np.linspace(100, 4000, 20 * 30).reshape(20, 30).astype(np.uint16)
    p16 = str(tmp_path / 'b.png')
    Image.fromarray(a16).save(p16)
    assert Image.open(p16).mode.startswith('I')
    img = LoadCXRImage()(dict(img_path=p16))['img']
    assert img.dtype == np.uint8 and img.min() == 0 and img.max() == 255
    expected = np.round((a16.astype(float) - 100) / 3900 * 255)
    assert np.abs(img.astype(float) - expected).max() <= 1

    rgb = np.zeros((10, 12, 3), np.uint8)
    rgb[..., 1] = 200
    p = str(tmp_path / 'c.jpg')
    Image.fromarray(rgb).save(p, quality=100)
    out = LoadCXRImage(channels=3)(dict(img_path=p))
    assert out['img'].shape == (10, 12, 3)
    np.testing.assert_array_equal(out['img'][..., 0], out['img'][..., 2])
    # gray of pure green 200 is 0.587 * 200 ~ 117
    assert abs(float(out['img'].mean()) - 117) < 3


def _write_dicom(path, arr, photometric, **extra):
    from pydicom.dataset import Dataset, FileMetaDataset
    from pydicom.uid import ExplicitVRLittleEndian, SecondaryCaptureImageStorage, generate_uid
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = SecondaryCaptureImageStorage
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = Dataset()
    ds.file_meta = meta
    ds.SOPClassUID = meta.MediaStorageSOPClassUID
    ds.SOPInstanceUID = meta.MediaStorageSOPInstanceUID
    ds.Rows, ds.Columns = arr.shape
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = photometric
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 12, 11, 0
    for k, v in extra.items():
        setattr(ds, k, v)
    ds.PixelData = arr.astype(np.uint16).tobytes()
    ds.save_as(str(path), enforce_file_format=True)
    return str(path)


def test_dicom_monochrome1_inverted_and_windowed(tmp_path):
    ramp = np.tile(np.linspace(0, 4000, 16).astype(np.uint16), (8, 1))  # left dark -> right
    m2 = LoadCXRImage()(dict(img_path=_write_dicom(tmp_path / 'm2.dcm', ramp, 'MONOCHROME2')))
    m1 = LoadCXRImage()(dict(img_path=_write_dicom(tmp_path / 'm1.dcm', ramp, 'MONOCHROME1')))
    assert m2['img'].dtype == np.uint8 and m2['img'].shape == (8, 16)
    assert m2['img'][0, 0] == 0 and m2['img'][0, -1] == 255
    np.testing.assert_array_equal(m1['img'], 255 - m2['img'])
    assert m1['img'][0, 0] == 255  # MONOCHROME1: low values are white
    # a DICOM without the .dcm suffix is recognised by its DICM magic
    os.rename(tmp_path / 'm2.dcm', tmp_path / 'noext')
    np.testing.assert_array_equal(
        LoadCXRImage()(dict(img_path=str(tmp_path / 'noext')))['img'], m2['img'])
    # a VOI window [1000, 3000] saturates the values outside it
    win = LoadCXRImage()(dict(img_path=_write_dicom(
        tmp_path / 'w.dcm', ramp, 'MONOCHROME2', WindowCenter=2000, WindowWidth=2000)))['img']
    row = win[0]
    assert np.all(row[ramp[0] <= 1000] == 0) and np.all(row[ramp[0] >= 3000] == 255)
    assert 0 < row[ramp[0] == ramp[0][8]][0] < 255


def test_missing_and_corrupt_images_name_the_file(tmp_path):
    with pytest.raises(FileNotFoundError, match='nope.png'):
        LoadCXRImage()(dict(img_path=str(tmp_path / 'nope.png')))
    bad = tmp_path / 'broken.png'
    bad.write_bytes(b'\x89PNG\r\n\x1a\n' + b'garbage' * 10)
    with pytest.raises(CorruptImageError, match='broken.png'):
        LoadCXRImage()(dict(img_path=str(bad)))
    # a truncated JPEG fails at load time too
    good = np.random.randint(0, 255, (64, 64), dtype=np.uint8)
    p = tmp_path / 'trunc.jpg'
    Image.fromarray(good).save(p)
    p.write_bytes(p.read_bytes()[:200])
    with pytest.raises(CorruptImageError, match='trunc.jpg'):
        LoadCXRImage()(dict(img_path=str(p)))


def test_skip_counts_corrupt_images_and_dataset_refetches(tmp_path):
    bad = tmp_path / 'bad.png'
    bad.write_bytes(b'not an image')
    good = _save_png(tmp_path / 'good.png', np.full((8, 8), 7, np.uint8))
    reset_corrupt_images()
    load = LoadCXRImage(on_error='skip')
    assert load(dict(img_path=str(bad))) is None
    assert load(dict(img_path=str(tmp_path / 'missing.png'))) is None
    count, first = corrupt_image_stats()
    assert count == 2
    assert first[0]['img_path'].endswith('bad.png') and first[1]['img_path'].endswith(
        'missing.png')
    reset_corrupt_images()
    assert corrupt_image_stats()[0] == 0

    # in training mode, mmengine's BaseDataset fetches another index; also from a worker
    ds = DATASETS.build(dict(type='InMemoryRecords',
                             records=[dict(img_path=str(bad)), dict(img_path=good)],
                             pipeline=[dict(type='LoadCXRImage', on_error='skip'),
                                       dict(type='PackVLInputs')]))
    loader = torch.utils.data.DataLoader(ds, batch_size=1, num_workers=1, collate_fn=vl_collate)
    batches = list(loader)
    assert all(b['data_samples'][0].img_path == good for b in batches)
    count, first = corrupt_image_stats()
    assert count >= 1 and first[0]['img_path'] == str(bad)
    reset_corrupt_images()


def test_report_items_pass_through_loading_and_geometry():
    pipe = Compose([LoadCXRImage(), ResizeCXR(8), PadToSquareCXR(8), PackVLInputs()])
    out = pipe(dict(kind='report', report='no acute findings', study_id='s1', paired=True))
    assert out['inputs'] is None and out['kind'] == 'report'
    assert out['data_samples'].text == 'no acute findings' and out['data_samples'].paired


# ------------------------------------------------------------------- geometry records
def test_geometric_transforms_record_geometry_and_keep_boxes():
    boxes = np.array([[10, 20, 30, 40]], np.float32)
    img = np.arange(300 * 180, dtype=np.float32).reshape(300, 180)
    r = ResizeCXR(scale=(224, 224))(dict(img=img, boxes=boxes.copy(), ori_shape=(300, 180)))
    assert r['img'].shape == (224, 224) and r['img_shape'] == (224, 224)
    assert r['geometry'] == [dict(type='resize', in_shape=(300, 180), out_shape=(224, 224),
                                  scale=(224 / 300, 224 / 180))]
    np.testing.assert_array_equal(r['boxes'], boxes)

    r = PadToSquareCXR(size=224)(dict(img=img.copy(), ori_shape=(300, 180)))
    assert r['img'].shape == (224, 224)
    rs, pad = r['geometry']
    assert rs['out_shape'] == (224, 134)  # 180 * 224 / 300 = 134.4
    assert pad == dict(type='pad', in_shape=(224, 134), out_shape=(224, 224), left=45, top=0,
                       right=45, bottom=0, pad_value=0)
    assert np.all(r['img'][:, :45] == 0) and np.all(r['img'][:, -45:] == 0)

    r = PadToSquareCXR()(dict(img=np.ones((5, 3), np.uint8)))
    assert r['img'].shape == (5, 5) and [g['type'] for g in r['geometry']] == ['pad']

    np.random.seed(3)
    r = RandomCropCXR(size=(100, 50))(dict(img=img.copy()))
    g = r['geometry'][0]
    assert g['type'] == 'crop' and r['img'].shape == (100, 50)
    np.testing.assert_array_equal(r['img'], img[g['y0']:g['y0'] + 100, g['x0']:g['x0'] + 50])
    r = CenterCropCXR(size=100)(dict(img=img.copy()))
    assert (r['geometry'][0]['y0'], r['geometry'][0]['x0']) == (100, 40)
    with pytest.raises(ValueError, match='larger than the image'):
        RandomCropCXR(size=400)(dict(img=img.copy(), img_path='x.png'))


def test_invert_map_identity_crop_nan_and_patch_grid():
    img = np.random.rand(40, 30)
    r = Compose([ResizeCXR((80, 60)), CenterCropCXR((40, 60))])(dict(img=img))
    back = invert_map(r['img'], r['geometry'], (40, 30))
    assert back.shape == (40, 30)
    # the centre crop kept rows 20..59 of the 80-row image = rows 10..29 of the original
    assert np.all(np.isnan(back[:9])) and np.all(np.isnan(back[31:]))
    assert np.all(np.isfinite(back[11:29]))

    # a constant map on a 2x2 grid comes back constant, and padding is cut away
    r = PadToSquareCXR(size=16)(dict(img=np.zeros((32, 16))))
    back = invert_map(np.full((2, 2), 3.0), r['geometry'], (32, 16))
    assert back.shape == (32, 16) and np.allclose(back, 3.0)
    # no geometry: the map is just resized to ori_shape
    assert invert_map(np.ones((2, 2)), [], (5, 7)).shape == (5, 7)
    with pytest.raises(ValueError, match='ori_shape'):
        invert_map(np.ones((4, 4)), r['geometry'], (30, 16))


def test_offline_resized_file_starts_the_chain_at_the_annotation_frame(tmp_path):
    p = _save_png(tmp_path / 'small.png', np.zeros((50, 40), np.uint8))
    out = LoadCXRImage()(dict(img_path=p, ori_shape=(500, 400)))
    assert out['ori_shape'] == (500, 400) and out['img_shape'] == (50, 40)
    assert out['geometry'][0]['type'] == 'resize' and out['geometry'][0]['offline']
    out = ResizeCXR(20)(out)
    assert invert_map(np.zeros((4, 4)), out['geometry'], out['ori_shape']).shape == (500, 400)


def _painted_map(h=300, w=180, box=(50, 120, 70, 90)):
    """A smooth background with a (softly edged) bright box: the map IS the image."""
    yy, xx = np.mgrid[0:h, 0:w]
    x, y, bw, bh = box
    paint = np.zeros((h, w))
    paint[y:y + bh, x:x + bw] = 1.0
    return (0.5 * yy / h + 0.3 * xx / w + gaussian_filter(paint, 3.0)).astype(np.float32)


@pytest.mark.parametrize('interpolation', ['auto', 'nearest'])
@pytest.mark.parametrize('pipeline', ['resize', 'pad', 'resize+pad'])
def test_cnr_round_trip_through_test_transforms(pipeline, interpolation):
    transforms = dict(
        resize=[ResizeCXR(scale=(224, 224), interpolation=interpolation)],
        pad=[PadToSquareCXR(size=224, interpolation=interpolation)],
        **{'resize+pad': [ResizeCXR(scale=(256, 256), interpolation=interpolation),
                          PadToSquareCXR(size=224, interpolation=interpolation)]})[pipeline]
    h, w, box = 300, 180, np.array([[50, 120, 70, 90]], np.float32)
    m = _painted_map(h, w, tuple(box[0].astype(int)))
    inside = boxes_mask(box, (h, w))
    cnr_direct = contrast_to_noise_ratio(m, inside)
    assert np.isfinite(cnr_direct) and cnr_direct > 1

    r = Compose(transforms)(dict(img=m.copy(), ori_shape=(h, w), boxes=box.copy()))
    assert r['img'].shape == (224, 224)
    np.testing.assert_array_equal(r['boxes'], box)
    back = invert_map(r['img'], r['geometry'], r['ori_shape'])
    assert back.shape == (h, w) and np.isfinite(back).all()
    cnr_back = contrast_to_noise_ratio(back, inside)
    assert abs(cnr_back - cnr_direct) / cnr_direct < 1e-2

    # the check can fail: inverting with the other pipeline's geometry (forgetting the
    # padding, or assuming one) shifts the map off the box
    has_pad = any(g['type'] == 'pad' for g in r['geometry'])
    other = ResizeCXR(scale=(224, 224)) if has_pad else PadToSquareCXR(size=224)
    wrong = other(dict(img=m.copy()))['geometry']
    cnr_wrong = contrast_to_noise_ratio(invert_map(r['img'], wrong, (h, w)), inside)
    assert abs(cnr_wrong - cnr_direct) / cnr_direct > 0.05


# ----------------------------------------------------------------------------- packing
def test_pack_vl_inputs_kinds_and_fields():
    img = np.full((6, 4), 9, np.uint8)
    score = np.array([1, np.nan, 0], np.float32)
    rec = dict(img=img, img_path='/x/a.png', study_id='s1', subject_id='p1', report='text a',
               view='PA', gt_label=2, gt_score=score, boxes=np.array([[1, 2, 3, 4]]),
               phrase='left effusion', category='Effusion', ori_shape=(60, 40),
               evidence=['effusion'], geometry=[dict(type='resize')], sample_idx=5)
    out = PackVLInputs()(dict(rec))
    assert out['kind'] == 'pair' and out['inputs'].shape == (1, 6, 4)
    assert out['inputs'].dtype == torch.uint8
    ds = out['data_samples']
    assert ds.text == 'text a' and ds.study_id == 's1' and ds.subject_id == 'p1'
    assert ds.view == 'PA' and ds.phrase == 'left effusion' and ds.category == 'Effusion'
    assert ds.ori_shape == (60, 40) and ds.evidence == ['effusion'] and ds.sample_idx == 5
    assert ds.geometry == [dict(type='resize')] and ds.paired is True and ds.kind == 'pair'
    assert ds.gt_label.tolist() == [2]
    assert torch.isnan(ds.gt_score[1]) and ds.gt_score[0] == 1
    assert ds.boxes.dtype == np.float32 and ds.boxes.shape == (1, 4)

    out = PackVLInputs()(dict(img=img, study_id='s2'))
    assert out['kind'] == 'image' and out['data_samples'].paired is False
    out = PackVLInputs()(dict(report='only text', study_id='s3'))
    assert out['kind'] == 'report' and out['inputs'] is None
    out = PackVLInputs()(dict(img=img, report='t', kind='image', paired=True))
    assert out['kind'] == 'image' and out['data_samples'].paired is True
    with pytest.raises(ValueError, match='needs report text'):
        PackVLInputs()(dict(img=img, kind='pair', img_path='/x/b.png'))
    with pytest.raises(ValueError, match='neither'):
        PackVLInputs()(dict(study_id='s4', report='  '))


def _item(kind, i, hw=(4, 4)):
    rec = dict(study_id=f's{i}', kind=kind)
    if kind != 'report':
        rec['img'] = np.full(hw, i, np.uint8)
    if kind != 'image':
        rec['report'] = f'report {i}'
    return PackVLInputs()(rec)


def test_vl_collate_mixed_kinds():
    items = [_item('pair', 0), _item('image', 1), _item('report', 2), _item('pair', 3),
             _item('report', 4)]
    batch = vl_collate(items)
    assert batch['inputs'].shape == (3, 1, 4, 4)
    assert [int(t[0, 0, 0]) for t in batch['inputs']] == [0, 1, 3]
    assert [s.study_id for s in batch['data_samples']] == ['s0', 's1', 's3']
    assert [s.study_id for s in batch['reports']] == ['s0', 's2', 's3', 's4']
    assert batch['data_samples'][0] is batch['reports'][0]  # a pair is one sample
    only_reports = vl_collate([_item('report', 0), _item('report', 1)])
    assert only_reports['inputs'] is None and len(only_reports['reports']) == 2
    with pytest.raises(ValueError, match='differ in shape'):
        vl_collate([_item('image', 0), _item('image', 1, hw=(5, 4))])


def test_data_preprocessor_normalises_repeats_and_keeps_pairs():
    batch = vl_collate([_item('pair', 0), _item('image', 255), _item('report', 2)])
    out = VLDataPreprocessor()(batch)
    assert out['images'].dtype == torch.float32 and out['images'].shape == (2, 1, 4, 4)
    assert torch.allclose(out['images'][0], torch.full((1, 4, 4), -1.0))
    assert torch.allclose(out['images'][1], torch.full((1, 4, 4), 1.0))
    assert out['data_samples'][0] is out['reports'][0]
    rgb = VLDataPreprocessor(mean=[0, 10, 20], std=[1, 2, 4], channels=3)(batch)['images']
    assert rgb.shape == (2, 3, 4, 4)
    assert torch.allclose(rgb[1, :, 0, 0], torch.tensor([255., 245 / 2, 235 / 4]))
    none = VLDataPreprocessor()(vl_collate([_item('report', 1)]))
    assert none['images'] is None and len(none['reports']) == 1
    with pytest.raises(ValueError):
        VLDataPreprocessor(std=0)
