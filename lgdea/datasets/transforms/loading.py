"""Loading of chest X-ray images (JPEG / PNG 8- or 16-bit / DICOM) as grayscale uint8 arrays."""
import os
from typing import List, Optional, Tuple

import numpy as np
from mmcv.transforms import BaseTransform
from mmengine.logging import print_log

from lgdea.registry import TRANSFORMS
from lgdea.utils.event_log import EventLog
from .geometry import resize_record

__all__ = ['LoadCXRImage', 'CorruptImageError', 'corrupt_image_stats', 'reset_corrupt_images',
           'read_cxr_image']

DICOM_SUFFIXES = ('.dcm', '.dicom', '.dic')


class CorruptImageError(OSError):
    """An image file exists but cannot be decoded."""


# Process-wide record of skipped (corrupt / missing) images: one line per skipped file,
# appended by the DataLoader workers; :class:`CorruptImageReportHook` reads and resets it once
# per epoch (lgdea/utils/event_log.py).
_CORRUPT_LOG = EventLog('lgdea_corrupt_images')


def _corrupt_log_path() -> str:
    """Path of this process's skipped-image record (created on first use)."""
    return _CORRUPT_LOG.path()


def _record_corrupt_image(log_path: str, img_path: str, reason: str) -> None:
    EventLog.append(log_path, img_path=str(img_path), reason=str(reason))


def corrupt_image_stats(max_paths: int = 5,
                        log_path: Optional[str] = None) -> Tuple[int, List[dict]]:
    """Number of images skipped since the last reset and the first ``max_paths`` of them.

    Returns:
        ``(count, [dict(img_path=..., reason=...), ...])``.
    """
    count, first, _ = _CORRUPT_LOG.stats(max_items=max_paths, path=log_path)
    return count, first


def reset_corrupt_images(log_path: Optional[str] = None) -> None:
    """Empty the skipped-image record."""
    _CORRUPT_LOG.reset(log_path)


# --------------------------------------------------------------------------------------------
# Decoding
# --------------------------------------------------------------------------------------------
def _minmax_to_uint8(arr: np.ndarray) -> np.ndarray:
    """Linear map of ``[min, max]`` to ``[0, 255]`` (a constant image becomes 0)."""
    arr = arr.astype(np.float64)
    lo, hi = float(np.min(arr)), float(np.max(arr))
    if not np.isfinite(lo) or not np.isfinite(hi):
        raise ValueError('the pixel data contain NaN or inf')
    if hi <= lo:
        return np.zeros(arr.shape, dtype=np.uint8)
    return np.round((arr - lo) / (hi - lo) * 255.0).astype(np.uint8)


def _is_dicom(path: str) -> bool:
    if path.lower().endswith(DICOM_SUFFIXES):
        return True
    try:
        with open(path, 'rb') as f:
            head = f.read(132)
        return len(head) == 132 and head[128:132] == b'DICM'
    except OSError:
        return False


def _read_dicom(path: str, voi_lut: bool = True) -> np.ndarray:
    """DICOM -> uint8 grayscale: modality LUT / rescale, VOI LUT / windowing, MONOCHROME1
    inverted, then ``[min, max] -> [0, 255]``."""
    try:
        import pydicom
    except ImportError as e:  # pragma: no cover - pydicom is a dependency of the CI env
        raise ImportError(f'reading the DICOM file "{path}" needs pydicom: pip install '
                          'pydicom (or convert the images to PNG).') from e
    try:
        from pydicom.pixels import apply_modality_lut, apply_voi_lut
    except ImportError:  # pydicom < 3
        from pydicom.pixel_data_handlers.util import apply_modality_lut, apply_voi_lut
    ds = pydicom.dcmread(path)
    arr = ds.pixel_array
    if arr.ndim != 2:
        raise ValueError(f'expected a single-frame grayscale DICOM, got pixel data of shape '
                         f'{arr.shape}')
    arr = apply_modality_lut(arr, ds)
    if voi_lut:
        arr = apply_voi_lut(arr, ds)
    out = _minmax_to_uint8(np.asarray(arr, dtype=np.float64))
    if str(getattr(ds, 'PhotometricInterpretation', 'MONOCHROME2')).upper() == 'MONOCHROME1':
        out = 255 - out  # MONOCHROME1: low values are white
    return out


def _read_raster(path: str) -> np.ndarray:
    """JPEG / PNG (8 or 16 bit) / other PIL formats -> uint8 grayscale.

    8-bit images are kept as they are; 16-bit and float images are min-max scaled to 0..255
    (many 16-bit CXR PNGs use 12 of the 16 bits, so a fixed ``/257`` would be dark).
    """
    from PIL import Image
    with Image.open(path) as im:
        im.load()  # decode now: truncated files raise here, not later
        if im.mode == 'L':
            return np.array(im, dtype=np.uint8)
        if im.mode.startswith('I') or im.mode == 'F':
            return _minmax_to_uint8(np.array(im))
        return np.array(im.convert('L'), dtype=np.uint8)


def read_cxr_image(path: str, dicom_voi_lut: bool = True) -> np.ndarray:
    """Read one image file as a (H, W) uint8 grayscale array.

    Raises:
        FileNotFoundError: the file does not exist.
        CorruptImageError: the file exists but cannot be decoded (the message names it).
    """
    if not os.path.isfile(path):
        raise FileNotFoundError(f'image file not found: "{path}" (check data_root / img_path '
                                'of the dataset records).')
    try:
        if _is_dicom(path):
            img = _read_dicom(path, voi_lut=dicom_voi_lut)
        else:
            img = _read_raster(path)
    except ImportError:
        raise
    except Exception as e:  # PIL raises OSError / SyntaxError / ValueError on corrupt data
        raise CorruptImageError(f'cannot decode image "{path}": {type(e).__name__}: {e}. '
                                'Re-export or remove the file, or use '
                                "LoadCXRImage(on_error='skip') to skip such files in "
                                'training.') from e
    if img.ndim != 2 or img.size == 0:
        raise CorruptImageError(f'image "{path}" decoded to shape {img.shape}, expected a '
                                'non-empty 2-D grayscale image.')
    return img


@TRANSFORMS.register_module()
class LoadCXRImage(BaseTransform):
    """Load a chest X-ray as a grayscale uint8 array.

    **Required keys:** ``img_path`` (items without an image, ``kind='report'`` or no
    ``img_path``, pass through unchanged).

    **Added keys:** ``img`` [H, W] (``channels=1``) or [H, W, 3] (``channels=3``) uint8,
    ``img_shape`` (H, W), ``ori_shape`` (H, W), ``geometry`` (list, reset).

    ``ori_shape`` is the frame of the record's boxes: kept from the record when the dataset
    gives it (MS-CXR ``image_height, image_width``), else the loaded shape. When the file on
    disk is a resized copy of that frame (pre-resized images), a ``resize`` record with
    ``offline=True`` starts the geometry chain so that :func:`invert_map` maps back to the
    annotation frame.

    Args:
        channels: 1 (grayscale) or 3 (the gray channel repeated; can also happen later in
            :class:`VLDataPreprocessor`).
        to_rgb: alias of ``channels=3``.
        on_error: ``'raise'`` (a clear error naming the file) or ``'skip'`` (return None, so
            mmengine's ``BaseDataset`` fetches another index in training, and record the file
            for :class:`CorruptImageReportHook`).
        dicom_voi_lut: apply the DICOM VOI LUT / window.
    """

    def __init__(self, channels: int = 1, to_rgb: bool = False, on_error: str = 'raise',
                 dicom_voi_lut: bool = True):
        if to_rgb:
            channels = 3
        if channels not in (1, 3):
            raise ValueError(f'channels must be 1 or 3, got {channels}')
        if on_error not in ('raise', 'skip'):
            raise ValueError(f"on_error must be 'raise' or 'skip', got {on_error!r}")
        self.channels = channels
        self.on_error = on_error
        self.dicom_voi_lut = dicom_voi_lut
        # created in the building process, carried into DataLoader workers
        self._corrupt_log = _corrupt_log_path() if on_error == 'skip' else None

    def transform(self, results: dict) -> Optional[dict]:
        path = results.get('img_path')
        if results.get('kind') == 'report' or path is None:
            return results
        try:
            img = read_cxr_image(str(path), dicom_voi_lut=self.dicom_voi_lut)
        except (FileNotFoundError, CorruptImageError) as e:
            if self.on_error == 'raise':
                raise
            if self._corrupt_log is None or not os.path.exists(self._corrupt_log):
                self._corrupt_log = _corrupt_log_path()
            _record_corrupt_image(self._corrupt_log, path, str(e))
            print_log(f'LoadCXRImage: skipped {e}', logger='current', level=10)  # DEBUG
            return None

        loaded = tuple(img.shape[:2])
        results['geometry'] = []
        if results.get('ori_shape') is not None:
            ori = tuple(int(s) for s in tuple(results['ori_shape'])[:2])
            if ori != loaded:
                _check_aspect(path, ori, loaded)
                results['geometry'].append(resize_record(ori, loaded, offline=True))
            results['ori_shape'] = ori
        else:
            results['ori_shape'] = loaded
        if self.channels == 3:
            img = np.repeat(img[..., None], 3, axis=-1)
        results['img'] = img
        results['img_shape'] = loaded
        return results

    def __repr__(self) -> str:
        return (f'{self.__class__.__name__}(channels={self.channels}, '
                f"on_error='{self.on_error}', dicom_voi_lut={self.dicom_voi_lut})")


_ASPECT_WARNED = False


def _check_aspect(path, ori, loaded, tol: float = 0.02) -> None:
    """Warn (once per process) when a pre-resized file does not keep the annotation aspect:
    it was cropped or padded offline and the boxes cannot be mapped exactly."""
    global _ASPECT_WARNED
    r_ori, r_loaded = ori[1] / ori[0], loaded[1] / loaded[0]
    if abs(r_loaded / r_ori - 1.0) > tol and not _ASPECT_WARNED:
        _ASPECT_WARNED = True
        print_log(f'LoadCXRImage: "{path}" is {loaded} but its record says ori_shape={ori} '
                  f'(aspect {r_loaded:.3f} vs {r_ori:.3f}); it is treated as an offline '
                  'resize, which is wrong if the file was cropped or padded.',
                  logger='current', level=30)
