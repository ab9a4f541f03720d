from .frozen_cache import FrozenTextCache
from .precision import autocast_active, float32_forward, to_float32
from .pairing import (PairBatch, build_pair_targets, gather_pair_batch, paired_flags, study_key,
                      study_keys)

__all__ = ['FrozenTextCache', 'PairBatch', 'build_pair_targets', 'gather_pair_batch',
           'paired_flags', 'study_key', 'study_keys', 'autocast_active', 'float32_forward',
           'to_float32']
