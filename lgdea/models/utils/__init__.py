from .pairing import build_pair_targets, paired_flags, study_key, study_keys

__all__ = ['build_pair_targets', 'paired_flags', 'study_key', 'study_keys']
