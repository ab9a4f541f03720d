from .contrastive_loss import ContrastiveLoss, soft_cross_entropy

__all__ = ['ContrastiveLoss', 'soft_cross_entropy']
