"""Registries of lgdea.

Every registry is a child of the matching mmpretrain registry (itself a child of mmengine's),
so a config with ``default_scope='lgdea'`` builds lgdea components first and still reaches
``mmpretrain.*`` and ``mmengine`` ones (``type='mmpretrain.VisionTransformer'`` works too).
``locations`` tells mmengine which modules to import so that the components register
themselves lazily.
"""
from mmpretrain.registry import DATA_SAMPLERS as MMPRE_DATA_SAMPLERS
from mmpretrain.registry import DATASETS as MMPRE_DATASETS
from mmengine.registry import FUNCTIONS as MMENGINE_FUNCTIONS
from mmengine.registry import Registry
from mmpretrain.registry import EVALUATORS as MMPRE_EVALUATORS
from mmpretrain.registry import HOOKS as MMPRE_HOOKS
from mmpretrain.registry import LOG_PROCESSORS as MMPRE_LOG_PROCESSORS
from mmpretrain.registry import LOOPS as MMPRE_LOOPS
from mmpretrain.registry import METRICS as MMPRE_METRICS
from mmpretrain.registry import MODEL_WRAPPERS as MMPRE_MODEL_WRAPPERS
from mmpretrain.registry import MODELS as MMPRE_MODELS
from mmpretrain.registry import OPTIM_WRAPPER_CONSTRUCTORS as MMPRE_OPTIM_WRAPPER_CONSTRUCTORS
from mmpretrain.registry import OPTIM_WRAPPERS as MMPRE_OPTIM_WRAPPERS
from mmpretrain.registry import OPTIMIZERS as MMPRE_OPTIMIZERS
from mmpretrain.registry import PARAM_SCHEDULERS as MMPRE_PARAM_SCHEDULERS
from mmpretrain.registry import RUNNERS as MMPRE_RUNNERS
from mmpretrain.registry import TRANSFORMS as MMPRE_TRANSFORMS
from mmpretrain.registry import VISBACKENDS as MMPRE_VISBACKENDS
from mmpretrain.registry import VISUALIZERS as MMPRE_VISUALIZERS
from mmpretrain.registry import WEIGHT_INITIALIZERS as MMPRE_WEIGHT_INITIALIZERS

__all__ = [
    'RUNNERS', 'LOOPS', 'HOOKS', 'LOG_PROCESSORS', 'OPTIMIZERS', 'OPTIM_WRAPPERS',
    'OPTIM_WRAPPER_CONSTRUCTORS', 'PARAM_SCHEDULERS', 'DATASETS', 'DATA_SAMPLERS',
    'TRANSFORMS', 'FUNCTIONS', 'MODELS', 'MODEL_WRAPPERS', 'WEIGHT_INITIALIZERS', 'TOKENIZER',
    'METRICS', 'EVALUATORS', 'VISUALIZERS', 'VISBACKENDS', 'EVIDENCE_EXTRACTORS'
]

_ENGINE = ['lgdea.engine']
_DATA = ['lgdea.datasets']
_MODELS = ['lgdea.models']
_EVAL = ['lgdea.evaluation']

RUNNERS = Registry('runner', parent=MMPRE_RUNNERS, locations=_ENGINE)
LOOPS = Registry('loop', parent=MMPRE_LOOPS, locations=_ENGINE)
HOOKS = Registry('hook', parent=MMPRE_HOOKS, locations=_ENGINE)
LOG_PROCESSORS = Registry('log processor', parent=MMPRE_LOG_PROCESSORS, locations=_ENGINE)
OPTIMIZERS = Registry('optimizer', parent=MMPRE_OPTIMIZERS, locations=_ENGINE)
OPTIM_WRAPPERS = Registry('optim wrapper', parent=MMPRE_OPTIM_WRAPPERS, locations=_ENGINE)
OPTIM_WRAPPER_CONSTRUCTORS = Registry(
    'optimizer wrapper constructor', parent=MMPRE_OPTIM_WRAPPER_CONSTRUCTORS, locations=_ENGINE)
PARAM_SCHEDULERS = Registry('parameter scheduler', parent=MMPRE_PARAM_SCHEDULERS, locations=_ENGINE)
MODEL_WRAPPERS = Registry('model_wrapper', parent=MMPRE_MODEL_WRAPPERS, locations=_ENGINE)

DATASETS = Registry('dataset', parent=MMPRE_DATASETS, locations=_DATA)
DATA_SAMPLERS = Registry('data sampler', parent=MMPRE_DATA_SAMPLERS, locations=_DATA)
TRANSFORMS = Registry('transform', parent=MMPRE_TRANSFORMS, locations=_DATA)
FUNCTIONS = Registry('function', parent=MMENGINE_FUNCTIONS, locations=_DATA)

MODELS = Registry('model', parent=MMPRE_MODELS, locations=_MODELS)
WEIGHT_INITIALIZERS = Registry('weight initializer', parent=MMPRE_WEIGHT_INITIALIZERS, locations=_MODELS)
#: Builders of HF tokenizers (mmpretrain's TOKENIZER is empty under the pinned stack).
TOKENIZER = Registry('tokenizer', locations=['lgdea.models.encoders'])

METRICS = Registry('metric', parent=MMPRE_METRICS, locations=_EVAL)
EVALUATORS = Registry('evaluator', parent=MMPRE_EVALUATORS, locations=_EVAL)

VISUALIZERS = Registry('visualizer', parent=MMPRE_VISUALIZERS, locations=['lgdea.visualization'])
VISBACKENDS = Registry('vis_backend', parent=MMPRE_VISBACKENDS, locations=['lgdea.visualization'])

#: Evidence extractors (Eq. 2): report text -> evidence phrases.
EVIDENCE_EXTRACTORS = Registry('evidence extractor', locations=['lgdea.evidence'])
