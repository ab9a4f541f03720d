# mmpretrain's visualizers register on import; the lgdea child registry reaches them through
# its parent once they are registered (configs use ``UniversalVisualizer``).
import mmpretrain.visualization  # noqa: F401
