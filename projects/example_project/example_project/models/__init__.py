from .clip_with_uniformity import CLIPWithUniformityLoss
from .uniformity_loss import UniformityLoss

__all__ = ['CLIPWithUniformityLoss', 'UniformityLoss']
