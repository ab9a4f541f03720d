from .frozen_cache import FrozenTextCache
from .pairing import build_pair_targets, paired_flags, study_key, study_keys

__all__ = ['FrozenTextCache', 'build_pair_targets', 'paired_flags', 'study_key', 'study_keys']
