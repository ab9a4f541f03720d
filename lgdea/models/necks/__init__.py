
from .lesion_query_neck import LesionQueryNeck

__all__ = ['LesionQueryNeck']
