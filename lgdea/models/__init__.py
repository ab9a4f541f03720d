from .base import BaseVLPModel
from .data_preprocessor import VLDataPreprocessor
from .clip import CLIPBaseline, build_projection, encode_phrase_sets
from .lgdea import LGDEA
from .encoders import *  # noqa: F401,F403
from .heads import *  # noqa: F401,F403
from .losses import *  # noqa: F401,F403
from .necks import *  # noqa: F401,F403
from .utils import build_pair_targets

__all__ = ['BaseVLPModel', 'CLIPBaseline', 'LGDEA', 'build_projection', 'encode_phrase_sets',
           'build_pair_targets']
