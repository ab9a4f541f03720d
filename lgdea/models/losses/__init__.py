from .contrastive_loss import ContrastiveLoss, soft_cross_entropy, symmetric_infonce
from .evidence_alignment_loss import EvidenceAlignmentLoss, weighted_soft_cross_entropy
from .lesion_consistency_loss import LesionConsistencyLoss, lesion_diagnostics, lesion_knn
from .paired_evidence_loss import PairedEvidenceLoss, kl_divergence
from .prototype_reconstruction_loss import PrototypeReconstructionLoss

__all__ = ['ContrastiveLoss', 'EvidenceAlignmentLoss', 'LesionConsistencyLoss',
           'PairedEvidenceLoss', 'PrototypeReconstructionLoss', 'kl_divergence',
           'lesion_diagnostics', 'lesion_knn', 'soft_cross_entropy', 'symmetric_infonce',
           'weighted_soft_cross_entropy']
