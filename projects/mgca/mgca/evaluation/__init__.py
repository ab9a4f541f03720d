from .paired_val_loss import PairedValLoss

__all__ = ['PairedValLoss']
