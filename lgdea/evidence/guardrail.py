"""Data-use guardrail for LLM extraction of credentialed reports.

MIMIC-CXR, CheXpert and MS-CXR are credentialed data: their data-use agreements forbid sending
report text to third-party services. When a dataset is flagged credentialed and the extractor's
endpoint is not on loopback (127.0.0.0/8, ::1, localhost), extraction refuses unless
``allow_remote=True``, and warns even then. In-process models (transformers) and local servers
(Ollama, vLLM on localhost) are the documented route.
"""
import ipaddress
import logging
import warnings
from typing import Optional
from urllib.parse import urlsplit

logger = logging.getLogger(__name__)

#: Substrings of dataset names/paths treated as credentialed when no explicit flag is given.
CREDENTIALED_NAME_HINTS = ('mimic', 'chexpert', 'ms_cxr', 'ms-cxr', 'mscxr')


class DataUseError(RuntimeError):
    """Raised when credentialed report text would leave this machine."""


class RemoteEndpointWarning(UserWarning):
    """Warned when credentialed report text is sent to a remote endpoint on purpose."""


def endpoint_host(url: str) -> str:
    """Host part of ``url`` (``'http://127.0.0.1:8000/v1'`` -> ``'127.0.0.1'``)."""
    if '://' not in url:
        url = 'http://' + url
    host = urlsplit(url).hostname
    if not host:
        raise ValueError(f'cannot read a host from the endpoint URL {url!r}')
    return host


def is_loopback(url: Optional[str]) -> bool:
    """True for None (in-process) and URLs whose host is localhost, 127.0.0.0/8 or ::1.

    Host names other than ``localhost`` are not resolved: they count as remote.
    """
    if url is None:
        return True
    host = endpoint_host(url).strip('[]').lower()
    if host == 'localhost' or host.endswith('.localhost'):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def is_credentialed_name(name: str) -> bool:
    """True when a dataset type / path names a credentialed collection."""
    name = str(name).lower()
    return any(hint in name for hint in CREDENTIALED_NAME_HINTS)


def check_data_use(endpoint: Optional[str], credentialed: bool, allow_remote: bool = False) -> None:
    """Refuse (``DataUseError``) credentialed text to a non-loopback endpoint.

    Args:
        endpoint: where the text is sent; None = in-process.
        credentialed: the reports come from a credentialed dataset.
        allow_remote: send anyway (warns with :class:`RemoteEndpointWarning`).
    """
    if not credentialed or is_loopback(endpoint):
        return
    host = endpoint_host(endpoint)
    if not allow_remote:
        raise DataUseError(
            f'refusing to send credentialed reports (MIMIC-CXR / CheXpert / MS-CXR) to the '
            f'non-loopback endpoint host {host!r}: their data-use agreements forbid sharing the '
            f'text with third-party services. Run a local model instead (Ollama or vLLM on '
            f'127.0.0.1, or --backend hf), or pass allow_remote=True (--allow-remote) only if '
            f'your agreement covers this endpoint.')
    msg = (f'sending credentialed report text to the remote endpoint host {host!r} because '
           f'allow_remote=True; make sure your data-use agreement permits it')
    logger.warning(msg)
    warnings.warn(msg, RemoteEndpointWarning, stacklevel=3)
