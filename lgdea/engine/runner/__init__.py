
from .vl_loops import (VLMultiTestLoop, VLMultiValLoop, VLTestLoop, VLValLoop,  # noqa: F401
                       bind_model_to_metrics, dump_test_results, to_jsonable)
