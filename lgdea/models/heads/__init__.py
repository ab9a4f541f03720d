
from .diagnostic_prototype_head import DiagnosticPrototypeHead
from .evidence_propagation import EvidencePropagation
from .oracle_class_propagation import OracleClassPropagation

__all__ = ['DiagnosticPrototypeHead', 'EvidencePropagation', 'OracleClassPropagation']
from .linear_probe_head import FinetuneClassifier, LinearProbeClassifier, probe_loss

__all__ += ['LinearProbeClassifier', 'FinetuneClassifier', 'probe_loss']
