from .propagation_sampler import PropagationSampler

__all__ = ['PropagationSampler']
