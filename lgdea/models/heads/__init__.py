
from .diagnostic_prototype_head import DiagnosticPrototypeHead
from .evidence_propagation import EvidencePropagation

__all__ = ['DiagnosticPrototypeHead', 'EvidencePropagation']
from .linear_probe_head import FinetuneClassifier, LinearProbeClassifier, probe_loss

__all__ += ['LinearProbeClassifier', 'FinetuneClassifier', 'probe_loss']
