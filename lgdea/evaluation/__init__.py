from .functional import (aggregate_prompt_scores, argmax_first, boxes_mask,
                         contrast_to_noise_ratio, macro_f1, retrieval_precision_at_k,
                         zscore_columns)
from .metrics import *  # noqa: F401,F403
from . import linear_probe  # noqa: F401,E402

__all__ = ['boxes_mask', 'contrast_to_noise_ratio', 'zscore_columns', 'aggregate_prompt_scores',
           'argmax_first', 'macro_f1', 'retrieval_precision_at_k', 'ZeroShotAccuracy',
           'RetrievalPrecisionAtK', 'GroundingCNR', 'BaseVLMetric']
