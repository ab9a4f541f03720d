
from .formatting import PackVLInputs, image_to_tensor
from .geometry import invert_map, resize_nan_aware
from .loading import (CorruptImageError, LoadCXRImage, corrupt_image_stats, read_cxr_image,
                      reset_corrupt_images)
from .processing import CenterCropCXR, PadToSquareCXR, RandomCropCXR, ResizeCXR, resize_image
from .evidence import EvidenceTokenizer
