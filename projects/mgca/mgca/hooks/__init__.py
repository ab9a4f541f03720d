from .prototype_freeze_hook import MGCAPrototypeFreezeHook

__all__ = ['MGCAPrototypeFreezeHook']
