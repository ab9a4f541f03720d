from .contrastive_loss import ContrastiveLoss, soft_cross_entropy

__all__ = ['ContrastiveLoss', 'soft_cross_entropy']
from .lgdea_loss import LGDEALoss, kl_divergence, lesion_knn

__all__ += ['LGDEALoss', 'kl_divergence', 'lesion_knn']
