"""tools/preprocess_images.py: resizing, sizes.csv, corrupt files, resumability."""
import csv
import importlib.util
import os
import os.path as osp
import sys

import numpy as np
import pytest
from PIL import Image

from lgdea.datasets import MIMICCXRDataset
from test_datasets_mimic_cxr import make_mimic_fixture

_spec = importlib.util.spec_from_file_location(
    'preprocess_images', osp.join(osp.dirname(osp.dirname(osp.abspath(__file__))), 'tools',
                                  'preprocess_images.py'))
pre = importlib.util.module_from_spec(_spec)
sys.modules[_spec.name] = pre  # picklable functions (worker processes)
_spec.loader.exec_module(pre)


def make_tree(root):
    rng = np.random.default_rng(0)
    os.makedirs(osp.join(root, 'a', 'b'))
    Image.fromarray(rng.integers(0, 255, (30, 40), dtype=np.uint8)).save(osp.join(root, 'a', 'wide.jpg'))
    Image.fromarray(rng.integers(0, 255, (50, 20), dtype=np.uint8)).save(osp.join(root, 'a', 'b', 'tall.png'))
    Image.fromarray(rng.integers(0, 255, (8, 10), dtype=np.uint8)).save(osp.join(root, 'small.png'))
    Image.fromarray(rng.integers(0, 60000, (24, 32), dtype=np.uint16)).save(osp.join(root, 'deep16.png'))
    with open(osp.join(root, 'a', 'broken.jpg'), 'wb') as f:
        f.write(b'\xff\xd8\xff\xe0 not really a jpeg')
    with open(osp.join(root, 'notes.csv'), 'w') as f:
        f.write('not an image\n')


def read_sizes(dst):
    with open(osp.join(dst, 'sizes.csv'), newline='') as f:
        return {r['path']: r for r in csv.DictReader(f)}


def test_resize_sizes_and_corrupt(tmp_path):
    src, dst = str(tmp_path / 'src'), str(tmp_path / 'dst')
    make_tree(src)
    counts = pre.preprocess_tree(src, dst, max_size=16, progress=False)
    assert counts['total'] == 5 and counts['resized'] == 3 and counts['copied'] == 1
    assert counts['corrupt'] == 1 and counts['corrupt_files'][0][0] == 'a/broken.jpg'
    sizes = read_sizes(dst)
    assert set(sizes) == {'a/wide.jpg', 'a/b/tall.png', 'small.png', 'deep16.png'}
    assert (sizes['a/wide.jpg']['width'], sizes['a/wide.jpg']['height']) == ('40', '30')
    assert (sizes['a/wide.jpg']['new_width'], sizes['a/wide.jpg']['new_height']) == ('16', '12')
    with Image.open(osp.join(dst, 'a', 'wide.jpg')) as im:
        assert im.size == (16, 12) and im.mode == 'L' and im.format == 'JPEG'
    with Image.open(osp.join(dst, 'a', 'b', 'tall.png')) as im:
        assert im.size == (6, 16)  # 20 * 16 / 50 = 6.4 -> 6
    with Image.open(osp.join(dst, 'deep16.png')) as im:
        assert im.size == (16, 12) and im.mode.startswith('I')
    # small images are copied byte for byte
    with open(osp.join(src, 'small.png'), 'rb') as a, open(osp.join(dst, 'small.png'), 'rb') as b:
        assert a.read() == b.read()
    assert not osp.exists(osp.join(dst, 'a', 'broken.jpg'))
    assert 'a/broken.jpg' in open(osp.join(dst, 'corrupt.txt')).read()
    assert not [n for n in os.listdir(osp.join(dst, 'a')) if '.tmp' in n]


def test_resumable(tmp_path):
    src, dst = str(tmp_path / 'src'), str(tmp_path / 'dst')
    make_tree(src)
    pre.preprocess_tree(src, dst, max_size=16, progress=False)
    wide = osp.join(dst, 'a', 'wide.jpg')
    os.utime(wide, (1, 1))
    again = pre.preprocess_tree(src, dst, max_size=16, progress=False)
    assert again['skipped'] == 4 and again['resized'] == 0 and again['copied'] == 0
    assert again['corrupt'] == 1  # retried, still corrupt, still not fatal
    assert os.stat(wide).st_mtime == 1  # not rewritten
    # an output that disappeared is redone and sizes.csv keeps one row per image
    os.remove(osp.join(dst, 'a', 'b', 'tall.png'))
    third = pre.preprocess_tree(src, dst, max_size=16, progress=False)
    assert third['skipped'] == 3 and third['resized'] == 1
    with open(osp.join(dst, 'sizes.csv')) as f:
        assert len(f.read().strip().splitlines()) == 1 + 4
    # a new source image is picked up
    Image.fromarray(np.zeros((40, 40), np.uint8)).save(osp.join(src, 'new.png'))
    fourth = pre.preprocess_tree(src, dst, max_size=16, progress=False)
    assert fourth['resized'] == 1 and fourth['skipped'] == 4
    assert read_sizes(dst)['new.png']['new_width'] == '16'


def test_workers_and_cli(tmp_path, capsys):
    src = str(tmp_path / 'src')
    make_tree(src)
    code = pre.main([src, str(tmp_path / 'p'), '--max-size', '16', '--workers', '2',
                     '--no-progress'])
    assert code == 0
    assert read_sizes(str(tmp_path / 'p')) .keys() == {'a/wide.jpg', 'a/b/tall.png', 'small.png',
                                                       'deep16.png'}
    assert '1 corrupt image(s)' in capsys.readouterr().err
    assert pre.main([src, str(tmp_path / 'q'), '--max-size', '16', '--strict',
                     '--no-progress']) == 1
    with pytest.raises(ValueError, match='must differ'):
        pre.preprocess_tree(src, src)


def test_mimic_dataset_reads_preprocessed_tree(tmp_path):
    root = make_mimic_fixture(tmp_path / 'mimic', image_size=(40, 30))
    out = str(tmp_path / 'mimic512')
    pre.preprocess_tree(root, out, max_size=16, progress=False)
    ds = MIMICCXRDataset(data_root=root, preprocessed_root=out, check_files=True)
    for i in range(len(ds)):
        rec = ds.get_data_info(i)
        assert rec['img_path'].startswith(out)
        assert rec['ori_shape'] == (30, 40)
        with Image.open(rec['img_path']) as im:
            assert im.size == (16, 12)
