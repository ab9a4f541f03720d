from .encoders import *  # noqa: F401,F403
from .heads import *  # noqa: F401,F403
from .losses import *  # noqa: F401,F403
from .mgca import MGCA
from .utils import *  # noqa: F401,F403

__all__ = ['MGCA']
