"""MGCA baseline plugin for lgdea (Wang et al., NeurIPS 2022; docs/baselines.md section 2).

Importing this package registers its components into the lgdea registries:

- MODELS: ``MGCA``, ``MGCAGlobalEmbedding``, ``MGCALocalEmbedding``, ``TokenAlignmentLoss``,
  ``PrototypeAlignmentLoss``, ``CNNLocalGlobalEncoder``
- HOOKS: ``MGCAPrototypeFreezeHook``
- checkpoint conversion: the ``'mgca'`` key map of ``tools/convert_official_ckpt.py``

Configs load it with ``custom_imports = dict(imports=['lgdea', 'projects.mgca.mgca'])``.
"""
from .hooks import *  # noqa: F401,F403
from .models import *  # noqa: F401,F403
from . import ckpt_keys  # noqa: F401,E402
from .ckpt_keys import CKPT_CONVERTERS, convert_official_mgca, convert_timm_vit  # noqa: F401,E402
