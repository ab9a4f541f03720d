from .percentile_clip import masked_quantile, percentile_clip
from .sinkhorn import sinkhorn_knopp
from .vit_attention import ViTCLSAttentionRecorder, cls_attention_from_qkv
from .word_aggregation import aggregate_subwords, continuation_lookup

__all__ = ['masked_quantile', 'percentile_clip', 'sinkhorn_knopp', 'ViTCLSAttentionRecorder',
           'cls_attention_from_qkv', 'aggregate_subwords', 'continuation_lookup']
