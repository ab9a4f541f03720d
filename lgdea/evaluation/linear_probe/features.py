"""Feature extraction and caching of the linear probe.

The frozen model's ``extract_image(images)['probe']`` [B, C] is computed once per image of a
task (the union of its train / val / test subsets, deduplicated by ``img_path``; nested
training fractions share their images with the 100 % set), kept in memory as one
:class:`FeatureTable` and optionally saved as ``<cache_dir>/<task>_<key>.npz``
(``img_paths`` [N] str, ``features`` [N, C] float32). ``key`` hashes the checkpoint
(path, size, modification time; without a checkpoint file: the weights), the model config,
the image pipeline and the task's dataset configs, so a rerun with the same inputs reuses the
file and any change recomputes.
"""
import hashlib
import json
import os
import os.path as osp
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np
import torch
from mmengine.logging import print_log
from torch.utils.data import DataLoader, Dataset

__all__ = ['FeatureTable', 'PipelineItems', 'probe_collate', 'preprocess_images',
           'extract_probe_features', 'model_fingerprint', 'feature_cache_key',
           'load_feature_file', 'save_feature_file', 'build_feature_table']


class PipelineItems(Dataset):
    """``(dataset, index)`` pairs run through each dataset's own pipeline.

    ``item i -> dict(index=i, inputs=Tensor[C, H, W], target=targets[i] or absent)``. Unlike
    ``BaseDataset.__getitem__`` it never re-fetches another index when the pipeline drops an
    item (that would misalign features and labels): it raises instead.

    Args:
        items: ``(dataset, index)`` pairs.
        targets: optional [N] or [N, K] array of training targets, one per item.
    """

    def __init__(self, items: Sequence[Tuple[object, int]],
                 targets: Optional[np.ndarray] = None):
        self.items = list(items)
        self.targets = targets
        if targets is not None and len(targets) != len(self.items):
            raise ValueError(f'PipelineItems: {len(targets)} targets for {len(self.items)} items')

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, i: int) -> dict:
        dataset, idx = self.items[i]
        out = dataset.prepare_data(idx)
        if out is None or out.get('inputs') is None:
            path = dataset.get_data_info(idx).get('img_path')
            raise RuntimeError(f'linear probe: the pipeline of {type(dataset).__name__} gave no '
                               f'image for {path}; the probe pipeline must load and pack the '
                               'image (LoadCXRImage ... PackVLInputs).')
        item = dict(index=i, inputs=out['inputs'])
        if self.targets is not None:
            item['target'] = torch.as_tensor(self.targets[i])
        return item


def probe_collate(batch: Sequence[dict]) -> dict:
    """Stack :class:`PipelineItems` items: ``dict(index [B], inputs [B, C, H, W],
    targets [B] / [B, K] when present)``."""
    shapes = {tuple(b['inputs'].shape) for b in batch}
    if len(shapes) > 1:
        raise ValueError(f'linear probe: images of one batch differ in shape {sorted(shapes)}; '
                         'end the probe pipeline with a fixed-size ResizeCXR / PadToSquareCXR.')
    out = dict(index=torch.as_tensor([b['index'] for b in batch]),
               inputs=torch.stack([b['inputs'] for b in batch]))
    if 'target' in batch[0]:
        out['targets'] = torch.stack([b['target'] for b in batch])
    return out


def preprocess_images(model, inputs: torch.Tensor, training: bool = False) -> torch.Tensor:
    """Raw image batch -> normalised images on the model's device, through the model's own
    data preprocessor (``VLDataPreprocessor``: float, channel repeat, normalisation)."""
    data = model.data_preprocessor(dict(inputs=inputs, data_samples=None, reports=None),
                                   training)
    images = data.get('images') if isinstance(data, dict) else None
    if images is None:
        raise TypeError(f'linear probe: the data preprocessor of {type(model).__name__} '
                        f'returned {type(data).__name__} without `images`; the probe needs the '
                        'VLDataPreprocessor interface (docs/architecture.md, section 3).')
    return images


class FeatureTable:
    """Probe features of a task's images: ``features`` [N, C] float32 and ``img_paths`` [N]."""

    def __init__(self, img_paths: Sequence[str], features: np.ndarray):
        features = np.asarray(features, dtype=np.float32)
        if features.ndim != 2 or len(features) != len(img_paths):
            raise ValueError(f'FeatureTable: {len(img_paths)} paths but features of shape '
                             f'{features.shape}')
        self.img_paths = [str(p) for p in img_paths]
        self.features = features
        self.row = {p: i for i, p in enumerate(self.img_paths)}

    def __len__(self) -> int:
        return len(self.img_paths)

    @property
    def dims(self) -> int:
        return int(self.features.shape[1])

    def missing(self, img_paths: Sequence[str]) -> List[str]:
        """The paths (first occurrence order) without a feature."""
        seen, out = set(), []
        for p in img_paths:
            if p not in self.row and p not in seen:
                seen.add(p)
                out.append(p)
        return out

    def take(self, img_paths: Sequence[str]) -> np.ndarray:
        """Features [len(img_paths), C] in the given order."""
        missing = self.missing(img_paths)
        if missing:
            raise KeyError(f'FeatureTable: no feature for {len(missing)} images, e.g. '
                           f'{missing[:3]}')
        return self.features[[self.row[p] for p in img_paths]]

    def merged(self, other: 'FeatureTable') -> 'FeatureTable':
        """Union (rows of ``other`` win for shared paths)."""
        if len(self) and len(other) and self.dims != other.dims:
            raise ValueError(f'FeatureTable: cannot merge features of {self.dims} and '
                             f'{other.dims} channels')
        keep = [i for i, p in enumerate(self.img_paths) if p not in other.row]
        paths = [self.img_paths[i] for i in keep] + other.img_paths
        if not len(self):
            return FeatureTable(other.img_paths, other.features)
        feats = np.concatenate([self.features[keep], other.features], axis=0)
        return FeatureTable(paths, feats)


@torch.no_grad()
def extract_probe_features(model, items: Sequence[Tuple[object, int]], batch_size: int = 128,
                           num_workers: int = 0, desc: str = 'linear probe features',
                           show_progress: bool = True) -> np.ndarray:
    """``model.extract_image(images)['probe']`` of each ``(dataset, index)`` item.

    Args:
        model: a :class:`lgdea.models.BaseVLPModel` (unwrapped); put in eval mode for the
            call and restored afterwards.
        items: ``(dataset, index)`` pairs.
        batch_size, num_workers: of the DataLoader.
        desc: progress-bar label.
        show_progress: tqdm bar.

    Returns:
        float32 [len(items), C].
    """
    if not items:
        raise ValueError('extract_probe_features: no images')
    loader = DataLoader(PipelineItems(items), batch_size=batch_size, shuffle=False,
                        num_workers=num_workers, collate_fn=probe_collate,
                        persistent_workers=False)
    was_training = model.training
    model.eval()
    out: Optional[np.ndarray] = None
    try:
        from tqdm import tqdm
        bar = tqdm(total=len(items), desc=desc, unit='img', disable=not show_progress,
                   dynamic_ncols=True)
        for batch in loader:
            images = preprocess_images(model, batch['inputs'])
            feats = model.extract_image(images)
            probe = feats.get('probe') if isinstance(feats, dict) else None
            if probe is None:
                raise KeyError(f'{type(model).__name__}.extract_image() returned no `probe`; '
                               'every method must return its linear-probe feature [B, C] '
                               '(docs/architecture.md, section 4).')
            if probe.dim() != 2 or probe.shape[0] != len(batch['index']):
                raise ValueError(f'{type(model).__name__}: `probe` must be [B, C], got '
                                 f'{tuple(probe.shape)} for a batch of {len(batch["index"])}')
            probe = probe.detach().float().cpu().numpy()
            if out is None:
                out = np.zeros((len(items), probe.shape[1]), dtype=np.float32)
            out[batch['index'].numpy()] = probe
            bar.update(len(probe))
        bar.close()
    finally:
        model.train(was_training)
    return out


def model_fingerprint(model, checkpoint: Optional[str] = None) -> str:
    """Identity of the weights: ``path|size|mtime_ns`` of a checkpoint file, the URL of a
    remote one, else the sha1 of the state dict (every tensor's name, shape and bytes)."""
    if checkpoint:
        path = osp.abspath(osp.expanduser(checkpoint))
        if osp.isfile(path):
            st = os.stat(path)
            return f'file:{path}|{st.st_size}|{st.st_mtime_ns}'
        return f'ckpt:{checkpoint}'
    digest = hashlib.sha1()
    for name, tensor in sorted(model.state_dict().items()):
        digest.update(name.encode())
        t = tensor.detach().cpu().contiguous()
        digest.update(str((tuple(t.shape), str(t.dtype))).encode())
        digest.update(t.flatten().view(torch.uint8).numpy().tobytes() if t.numel() else b'')
    return f'weights:{digest.hexdigest()}'


def feature_cache_key(fingerprint: str, model_cfg, pipeline, datasets: Sequence) -> str:
    """sha1 (16 hex) of the fingerprint, model config, pipeline and dataset configs."""
    blob = json.dumps(dict(version=1, fingerprint=fingerprint, model=model_cfg,
                           pipeline=pipeline, datasets=list(datasets)),
                      sort_keys=True, default=str)
    return hashlib.sha1(blob.encode()).hexdigest()[:16]


def load_feature_file(path: str) -> Optional[FeatureTable]:
    """Read a cache file; None when absent or unreadable (logged)."""
    if not osp.isfile(path):
        return None
    try:
        with np.load(path, allow_pickle=False) as data:
            return FeatureTable([str(p) for p in data['img_paths']], data['features'])
    except Exception as exc:  # noqa: BLE001 - a broken cache file is recomputed
        print_log(f'linear probe: ignoring unreadable feature cache {path} ({exc})',
                  logger='current')
        return None


def save_feature_file(path: str, table: FeatureTable) -> None:
    """Write a cache file atomically (``img_paths``, ``features``)."""
    os.makedirs(osp.dirname(osp.abspath(path)), exist_ok=True)
    tmp = f'{path}.tmp{os.getpid()}'
    with open(tmp, 'wb') as f:
        np.savez(f, img_paths=np.asarray(table.img_paths, dtype=str), features=table.features)
    os.replace(tmp, path)


def build_feature_table(model, subsets: Dict[str, object], cache_file: Optional[str],
                        batch_size: int, num_workers: int, desc: str,
                        show_progress: bool = True) -> Tuple[FeatureTable, int]:
    """Features of every image of ``subsets`` (name -> :class:`~.tasks.SubsetData`), reading
    ``cache_file`` first and writing it back when something had to be computed.

    Returns:
        ``(table, number of images computed now)``.
    """
    table = (load_feature_file(cache_file) if cache_file else None) or FeatureTable([], np.zeros(
        (0, 0), np.float32))
    where: Dict[str, Tuple[object, int]] = {}
    order: List[str] = []
    for data in subsets.values():
        for i, path in enumerate(data.img_paths):
            if path not in where:
                where[path] = (data.dataset, i)
                order.append(path)
    missing = table.missing(order)
    if missing:
        feats = extract_probe_features(model, [where[p] for p in missing], batch_size,
                                       num_workers, desc=desc, show_progress=show_progress)
        table = table.merged(FeatureTable(missing, feats))
        if cache_file:
            save_feature_file(cache_file, table)
    return table, len(missing)
