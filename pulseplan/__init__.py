"""PulsePlan: a self-hostable OAuth token vault and provider-integration framework.

Plugin authors import everything they need from here::

    from pulseplan import hookimpl, ProviderSpec, TokenSet, ReconnectRequired
"""

from importlib.metadata import PackageNotFoundError
from importlib.metadata import version as _version

try:
    __version__ = _version("pulseplan")
except PackageNotFoundError:  # pragma: no cover - running from a source tree without install
    __version__ = "0.0.0"

from pulseplan.errors import ProviderError
from pulseplan.errors import ProviderMisconfigured
from pulseplan.errors import ProviderUnavailable
from pulseplan.errors import ReconnectRequired
from pulseplan.hookspecs import hookimpl
from pulseplan.provider import ConnectionEvent
from pulseplan.provider import ProviderContext
from pulseplan.provider import ProviderSettings
from pulseplan.provider import ProviderSpec
from pulseplan.provider import Revocation
from pulseplan.provider import SettingSpec
from pulseplan.provider import TokenSet
from pulseplan.provider import Validation
from pulseplan.provider_config import check_url
from pulseplan.standard import StandardOAuth2
from pulseplan.standard import classify
from pulseplan.standard import json_object
from pulseplan.standard import parse_error_body
from pulseplan.standard import retry_after_seconds

__all__ = [
    "ConnectionEvent",
    "ProviderContext",
    "ProviderError",
    "ProviderMisconfigured",
    "ProviderSettings",
    "ProviderSpec",
    "ProviderUnavailable",
    "ReconnectRequired",
    "Revocation",
    "SettingSpec",
    "StandardOAuth2",
    "TokenSet",
    "Validation",
    "__version__",
    "check_url",
    "classify",
    "hookimpl",
    "json_object",
    "parse_error_body",
    "retry_after_seconds",
]
