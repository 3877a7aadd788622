"""Canvas LMS provider for PulsePlan (one Canvas instance per deployment)."""

from __future__ import annotations

from pulseplan import ProviderSpec
from pulseplan import SettingSpec
from pulseplan import hookimpl
from pulseplan.provider_config import check_url

SPEC = ProviderSpec(
    name="canvas",
    display_name="Canvas LMS",
    authorize_url="{base_url}/login/oauth2/auth",
    token_url="{base_url}/login/oauth2/token",
    revoke_url="{base_url}/login/oauth2/token",
    userinfo_url="{base_url}/api/v1/users/self",
    default_scopes=(),
    client_auth="client_secret_post",
    pkce=False,
    settings=(
        SettingSpec(
            name="base_url",
            env="CANVAS_BASE_URL",
            description="the Canvas instance, e.g. https://school.instructure.com",
            required=True,
            validate=lambda value, production: check_url(value, production=production),
        ),
    ),
    docs_url="https://developerdocs.instructure.com/services/canvas/oauth2/file.oauth",
)


@hookimpl
def describe_provider() -> ProviderSpec:
    return SPEC
