from .limited_pairing import LimitedPairingDataset
from .samplers import PropagationSampler
from .base_cxr import BaseCXRDataset  # noqa: F401,E402
from .chexpert import CheXpertDataset  # noqa: F401,E402
from .covid import COVIDRadiographyDataset  # noqa: F401,E402
from .generic import GenericVLDataset  # noqa: F401,E402
from .iu_xray import IUXrayDataset  # noqa: F401,E402
from .mimic_cxr import MIMICCXRDataset  # noqa: F401,E402
from .ms_cxr import MSCXRDataset  # noqa: F401,E402
from .nih import NIHChestXray14Dataset  # noqa: F401,E402
from .rsna import RSNAPneumoniaDataset  # noqa: F401,E402
from .collate import vl_collate
from .transforms import *  # noqa: F401,F403
from .synthetic_cxr import SyntheticCXRDataset  # noqa: F401,E402
