from .pairing_split_hook import PairingSplitHook  # noqa: F401
from .corrupt_image_hook import CorruptImageReportHook  # noqa: F401
from .lgdea_phase_hook import LGDEAPhaseHook  # noqa: F401
from .prototype_init_hook import PrototypeInitHook  # noqa: F401
from .throughput_hook import ThroughputHook  # noqa: F401
from .unpaired_diagnostics_hook import UnpairedDiagnosticsHook  # noqa: F401
from .non_finite_guard_hook import NonFiniteGuardHook  # noqa: F401
