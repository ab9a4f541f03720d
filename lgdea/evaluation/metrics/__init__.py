from .base import BaseVLMetric, feats_to_device, model_device, stack_image_feats
from .grounding_cnr import GroundingCNR
from .paired_val_loss import PairedValLoss
from .retrieval import RetrievalPrecisionAtK
from .zero_shot import ZeroShotAccuracy

__all__ = ['BaseVLMetric', 'stack_image_feats', 'feats_to_device', 'model_device',
           'ZeroShotAccuracy', 'RetrievalPrecisionAtK', 'GroundingCNR',
           'PairedValLoss']
