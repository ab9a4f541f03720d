from .autocast_optim_wrapper import AutocastOptimWrapper  # noqa: F401
from .skip_non_finite_optim_wrapper import (SkipNonFiniteOptimWrapper,  # noqa: F401
                                            TooManySkippedStepsError)
