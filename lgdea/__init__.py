"""lgdea: medical vision-language pretraining under limited pairing (OpenMMLab style)."""
from .version import __version__  # noqa: F401
