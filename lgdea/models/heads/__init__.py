
from .diagnostic_prototype_head import DiagnosticPrototypeHead
from .evidence_propagation import EvidencePropagation

__all__ = ['DiagnosticPrototypeHead', 'EvidencePropagation']
