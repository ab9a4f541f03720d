
from .diagnostic_prototype_head import DiagnosticPrototypeHead
from .evidence_propagation import EvidencePropagation
from .oracle_class_propagation import OracleClassPropagation
from .pseudo_label_propagation import PseudoLabelPropagation

__all__ = ['DiagnosticPrototypeHead', 'EvidencePropagation', 'OracleClassPropagation',
           'PseudoLabelPropagation']
from .linear_probe_head import FinetuneClassifier, LinearProbeClassifier, probe_loss

__all__ += ['LinearProbeClassifier', 'FinetuneClassifier', 'probe_loss']
