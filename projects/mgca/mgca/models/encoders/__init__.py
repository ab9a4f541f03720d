from .cnn_local_global_encoder import CNNLocalGlobalEncoder

__all__ = ['CNNLocalGlobalEncoder']
