"""What the Google plugin tells the host: endpoints, scopes, client authentication and the
one extra setting (``GOOGLE_TOKENINFO_URL``).

Facts from providers.md §1: the discovery document's endpoints, ``client_secret_post`` (what
Google's own libraries send), PKCE S256, and the authorization parameters that make Google
issue a refresh token.
"""

from __future__ import annotations

from urllib.parse import urlsplit
from urllib.parse import urlunsplit

from pulseplan import ProviderSettings
from pulseplan import ProviderSpec
from pulseplan import SettingSpec
from pulseplan.provider_config import check_url

NAME = "google"

#: Calendar events plus the identity scopes that put the email in the ID token.
DEFAULT_SCOPES = (
    "openid",
    "email",
    "https://www.googleapis.com/auth/calendar.events",
)

#: Sent on every authorization request (providers.md §1.2): a refresh token on first consent,
#: and incremental authorization so a second consent adds to the first instead of replacing it.
AUTHORIZE_PARAMS = {"access_type": "offline", "include_granted_scopes": "true"}
#: Only when a refresh token is needed: without it Google gives none on a repeat consent, and
#: every forced consent mints another refresh token toward the 100-per-client cap (§1.6).
CONSENT_PARAMS = {"prompt": "consent"}


def _check_tokeninfo_url(value: str, production: bool) -> str:
    return check_url(value, production=production)


TOKENINFO_SETTING = SettingSpec(
    name="tokeninfo_url",
    env="GOOGLE_TOKENINFO_URL",
    description=(
        "token validation endpoint (default: 'tokeninfo' next to the token endpoint, "
        "https://oauth2.googleapis.com/tokeninfo)"
    ),
    validate=_check_tokeninfo_url,
)

SPEC = ProviderSpec(
    name=NAME,
    display_name="Google",
    authorize_url="https://accounts.google.com/o/oauth2/v2/auth",
    token_url="https://oauth2.googleapis.com/token",
    revoke_url="https://oauth2.googleapis.com/revoke",
    userinfo_url="https://openidconnect.googleapis.com/v1/userinfo",
    default_scopes=DEFAULT_SCOPES,
    client_auth="client_secret_post",
    pkce=True,
    settings=(TOKENINFO_SETTING,),
    docs_url="https://developers.google.com/identity/protocols/oauth2/web-server",
)


def tokeninfo_url(settings: ProviderSettings) -> str | None:
    """The tokeninfo endpoint: ``GOOGLE_TOKENINFO_URL``, else the sibling of the token
    endpoint (``.../token`` -> ``.../tokeninfo``), else ``None`` (validate via userinfo).

    Deriving it from the token URL keeps a proxied or test deployment (``GOOGLE_TOKEN_URL``
    pointing elsewhere) from sending access tokens to the real Google by default.
    """
    explicit = settings.extra.get("tokeninfo_url")
    if explicit:
        return explicit
    if not settings.token_url:
        return None
    parts = urlsplit(settings.token_url)
    if not parts.path.endswith("/token") or parts.query or parts.fragment:
        return None
    return urlunsplit(parts._replace(path=parts.path + "info"))
