from .global_embedding import MGCAGlobalEmbedding
from .local_embedding import MGCALocalEmbedding

__all__ = ['MGCAGlobalEmbedding', 'MGCALocalEmbedding']
