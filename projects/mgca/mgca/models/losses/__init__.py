from .prototype_alignment_loss import PrototypeAlignmentLoss
from .token_alignment_loss import TokenAlignmentLoss, weighted_self_matching_ce

__all__ = ['PrototypeAlignmentLoss', 'TokenAlignmentLoss', 'weighted_self_matching_ce']
