"""RSNAPneumoniaDataset on a tiny DICOM fixture and on the shipped stage-2 label table."""
import os
import os.path as osp

import numpy as np
import pydicom
import pytest
from PIL import Image
from pydicom.dataset import FileDataset, FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian, SecondaryCaptureImageStorage, generate_uid

from conftest import SHARED_DATA
from lgdea.datasets import RSNAPneumoniaDataset
from lgdea.datasets.rsna import read_rsna_labels
from lgdea.registry import TRANSFORMS

RSNA_LABELS = osp.join(SHARED_DATA, 'box_tables', 'rsna_pneumonia_stage_2_train_labels.csv.gz')

PATIENTS = {  # patientId -> (Target, boxes, photometric)
    'aaaa-0001': (0, [], 'MONOCHROME2'),
    'bbbb-0002': (1, [(10, 12, 20, 30), (40, 5, 10, 10)], 'MONOCHROME1'),
    'cccc-0003': (1, [(1.5, 2.5, 3, 4)], 'MONOCHROME2'),
}


def write_dicom(path, pixels, photometric, patient_id):
    """A minimal 8-bit single-frame DICOM file written with pydicom."""
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = SecondaryCaptureImageStorage
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = FileDataset(path, {}, file_meta=meta, preamble=b'\0' * 128)
    ds.SOPClassUID = meta.MediaStorageSOPClassUID
    ds.SOPInstanceUID = meta.MediaStorageSOPInstanceUID
    ds.PatientID = patient_id
    ds.Modality = 'CR'
    ds.ViewPosition = 'PA'
    ds.Rows, ds.Columns = pixels.shape
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = photometric
    ds.BitsAllocated = 8
    ds.BitsStored = 8
    ds.HighBit = 7
    ds.PixelRepresentation = 0
    ds.PixelData = pixels.astype(np.uint8).tobytes()
    ds.save_as(path, enforce_file_format=True)


def make_rsna_fixture(root, suffix='.dcm'):
    os.makedirs(osp.join(root, 'stage_2_train_images'), exist_ok=True)
    lines = ['patientId,x,y,width,height,Target']
    pixels = np.tile(np.arange(0, 160, 10, dtype=np.uint8), (12, 1))  # dark left, bright right
    for pid, (target, boxes, photometric) in PATIENTS.items():
        if boxes:
            lines += [f'{pid},{x},{y},{w},{h},{target}' for x, y, w, h in boxes]
        else:
            lines.append(f'{pid},,,,,{target}')
        path = osp.join(root, 'stage_2_train_images', pid + suffix)
        if suffix == '.dcm':
            write_dicom(path, pixels, photometric, pid)
        else:
            Image.fromarray(pixels).save(path)
    with open(osp.join(root, 'stage_2_train_labels.csv'), 'w') as f:
        f.write('\n'.join(lines) + '\n')
    return str(root)


def test_records_labels_boxes(tmp_path):
    root = make_rsna_fixture(str(tmp_path))
    ds = RSNAPneumoniaDataset(data_root=root, check_files=True)
    recs = {ds.get_data_info(i)['study_id']: ds.get_data_info(i) for i in range(len(ds))}
    assert sorted(recs) == sorted(PATIENTS)
    neg, pos = recs['aaaa-0001'], recs['bbbb-0002']
    assert set(pos) == {'img_path', 'study_id', 'subject_id', 'gt_label', 'boxes', 'sample_idx'}
    assert neg['gt_label'] == 0 and neg['boxes'].shape == (0, 4)
    assert pos['gt_label'] == 1 and pos['boxes'].dtype == np.float32
    np.testing.assert_array_equal(pos['boxes'], [[10, 12, 20, 30], [40, 5, 10, 10]])
    np.testing.assert_allclose(recs['cccc-0003']['boxes'], [[1.5, 2.5, 3, 4]])
    assert pos['img_path'].endswith('stage_2_train_images/bbbb-0002.dcm')
    assert ds.metainfo['classes'] == ('Normal', 'Pneumonia')
    # the fixture DICOMs are valid and carry both photometric interpretations
    assert pydicom.dcmread(pos['img_path']).PhotometricInterpretation == 'MONOCHROME1'
    assert pydicom.dcmread(neg['img_path']).PhotometricInterpretation == 'MONOCHROME2'


def test_monochrome1_through_the_loader(tmp_path):
    if 'LoadCXRImage' not in TRANSFORMS.module_dict:
        pytest.skip('LoadCXRImage is not registered yet')
    root = make_rsna_fixture(str(tmp_path))
    ds = RSNAPneumoniaDataset(data_root=root, pipeline=[dict(type='LoadCXRImage')])
    imgs = {ds.get_data_info(i)['study_id']: ds[i]['img'] for i in range(len(ds))}
    mono2, mono1 = imgs['aaaa-0001'], imgs['bbbb-0002']
    assert mono2.shape == mono1.shape == (12, 16)
    # same stored pixels: MONOCHROME2 dark on the left, MONOCHROME1 inverted
    assert mono2[0, 0] < mono2[0, -1]
    assert mono1[0, 0] > mono1[0, -1]


def test_png_conversion_and_split_file(tmp_path):
    root = make_rsna_fixture(str(tmp_path), suffix='.png')
    ids = tmp_path / 'rsna_test.csv'
    ids.write_text('# seed=0\npatientId,label\nbbbb-0002,Pneumonia\naaaa-0001,Normal\n')
    ds = RSNAPneumoniaDataset(data_root=root, img_suffix='png', split_file=str(ids),
                              check_files=True)
    assert sorted(ds.get_data_info(i)['study_id'] for i in range(len(ds))) == \
        ['aaaa-0001', 'bbbb-0002']
    bad = tmp_path / 'bad.csv'
    bad.write_text('patientId,label\nbbbb-0002,Normal\n')
    with pytest.raises(ValueError, match='disagrees'):
        RSNAPneumoniaDataset(data_root=root, img_suffix='.png', split_file=str(bad))
    with pytest.raises(FileNotFoundError, match='1 of 3 image files are missing'):
        os.remove(osp.join(root, 'stage_2_train_images', 'cccc-0003.png'))
        RSNAPneumoniaDataset(data_root=root, img_suffix='.png', check_files=True)


def test_bad_tables(tmp_path):
    root = tmp_path / 'r'
    root.mkdir()
    (root / 'stage_2_train_labels.csv').write_text('patientId,x,y,width,height,Target\n'
                                                   'a,,,,,0\na,1,2,3,4,1\n')
    with pytest.raises(ValueError, match="patient 'a' disagree"):
        RSNAPneumoniaDataset(data_root=str(root))
    (root / 'stage_2_train_labels.csv').write_text('patientId,x,y,w,h,Target\na,,,,,0\n')
    with pytest.raises(KeyError, match="'width'"):
        RSNAPneumoniaDataset(data_root=str(root))
    (root / 'stage_2_train_labels.csv').write_text('patientId,x,y,width,height,Target\na,,,,,2\n')
    with pytest.raises(ValueError, match='"Target" holds'):
        RSNAPneumoniaDataset(data_root=str(root))


@pytest.mark.skipif(not osp.isfile(RSNA_LABELS), reason='shared RSNA label table not present')
def test_real_stage2_label_table(tmp_path):
    import pandas as pd
    raw = pd.read_csv(RSNA_LABELS)
    assert len(raw) == 30227
    table = read_rsna_labels(RSNA_LABELS)
    assert len(table) == raw['patientId'].nunique() == 26684
    assert int(table['Target'].sum()) == raw.loc[raw.Target == 1, 'patientId'].nunique() == 6012
    assert sum(len(b) for b in table['boxes']) == int((raw.Target == 1).sum()) == 9555
    # the dataset reads the .csv.gz in place (images are not shipped)
    ds = RSNAPneumoniaDataset(data_root=str(tmp_path), ann_file=RSNA_LABELS)
    assert len(ds) == 26684
    assert sum(ds.get_data_info(i)['gt_label'] for i in range(0, len(ds), 1)) == 6012
