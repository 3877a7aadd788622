"""One user, one provider, one fake: the steps the conformance suite drives through the host.

Every step goes through PulsePlan's HTTP API or its :class:`~pulseplan.plugins.PluginHost`,
so what is checked is the plugin *as the host uses it*, not the plugin's functions on their own.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs
from urllib.parse import urlsplit

from pulseplan.plugins import PluginHost
from pulseplan.provider import ProviderSpec
from pulseplan.runtime import Runtime
from pulseplan.storage.models import Connection
from pulseplan.testing.fake_profile_base import Profile
from pulseplan.testing.fake_profiles import profile_class
from pulseplan.testing.fake_provider import FakeProvider
from pulseplan.testing.vault import PUBLIC
from pulseplan.testing.vault import Vault

#: Every token and code the fake issues starts with this, so a leak is a plain substring.
CANARY = "ppconformance"


def query(url: str) -> dict[str, list[str]]:
    return parse_qs(urlsplit(url).query, keep_blank_values=True)


def flatten(value: object) -> list[str]:
    """Every scalar inside nested dicts and lists, as strings."""
    if isinstance(value, dict):
        return [s for v in value.values() for s in flatten(v)]
    if isinstance(value, list | tuple):
        return [s for v in value for s in flatten(v)]
    return [] if value is None else [str(value)]


@dataclass
class Harness:
    """A running PulsePlan with the plugin under test wired to a started fake provider."""

    vault: Vault
    fake: FakeProvider
    provider: str
    user: str

    # ------------------------------------------------------------------ views

    @property
    def runtime(self) -> Runtime:
        return self.vault.runtime

    @property
    def host(self) -> PluginHost:
        return self.runtime.plugins

    @property
    def spec(self) -> ProviderSpec:
        return self.host.spec(self.provider)

    @property
    def profile(self) -> type[Profile]:
        """The fake's profile class (what the provider does on the wire)."""
        return profile_class(self.fake.profile)

    @property
    def redirect_uri(self) -> str:
        return f"{PUBLIC}/api/v1/oauth/{self.provider}/callback"

    def headers(self) -> dict[str, str]:
        return self.vault.headers(self.user)

    async def row(self) -> Connection | None:
        return await self.runtime.storage.get_connection(self.user, self.provider)

    async def stored(self) -> Connection:
        row = await self.row()
        assert row is not None, f"no {self.provider} connection is stored"
        return row

    def plaintext(self, row: Connection, field: str) -> str | None:
        """Decrypt a stored token column (``access_token`` or ``refresh_token``)."""
        value: str | None = getattr(row, field)
        if value is None:
            return None
        return self.runtime.cipher.decrypt(
            value, user_id=row.user_id, provider=row.provider, field=field
        )

    def access_token(self, row: Connection) -> str:
        token = self.plaintext(row, "access_token")
        assert token is not None
        return token

    def refresh_token(self, row: Connection) -> str | None:
        return self.plaintext(row, "refresh_token")

    # ------------------------------------------------------------------ steps

    async def start(self) -> str:
        """``GET /api/v1/oauth/{provider}/authorize``: the authorization URL of a new flow."""
        response = await self.vault.authorize(self.user, self.provider)
        body = await response.get_data(as_text=True)
        assert response.status_code == 200, f"authorize answered {response.status_code}: {body}"
        url: str = (await response.get_json())["authorization_url"]
        return url

    async def callback(self, url: str) -> dict[str, list[str]]:
        """Deliver the provider's redirect to the host; return the app redirect's query."""
        response = await self.vault.callback(url)
        body = await response.get_data(as_text=True)
        assert response.status_code == 303, f"callback answered {response.status_code}: {body}"
        return query(response.headers["Location"])

    async def connect(self, **consent: Any) -> Connection:
        """The whole browser flow; the stored row."""
        return await self.vault.connect(self.user, self.provider, **consent)

    async def tokens(self) -> dict[str, Any]:
        """``GET /api/v1/tokens/tokens`` as JSON."""
        response = await self.vault.tokens(self.user)
        assert response.status_code == 200, await response.get_data(as_text=True)
        body: dict[str, Any] = await response.get_json()
        return body

    async def refresh_now(self) -> Any:
        """``POST /connections/{provider}/refresh``: refresh whatever the expiry."""
        return await self.vault.client.post(
            f"/api/v1/tokens/connections/{self.provider}/refresh", headers=self.headers()
        )

    async def validate_now(self) -> dict[str, Any]:
        """``POST /connections/{provider}/validate`` as JSON."""
        response = await self.vault.client.post(
            f"/api/v1/tokens/connections/{self.provider}/validate", headers=self.headers()
        )
        assert response.status_code == 200, await response.get_data(as_text=True)
        body: dict[str, Any] = await response.get_json()
        return body

    async def disconnect(self) -> dict[str, Any]:
        """``DELETE /connections/{provider}`` as JSON."""
        response = await self.vault.disconnect(self.user, self.provider)
        assert response.status_code == 200, await response.get_data(as_text=True)
        body: dict[str, Any] = await response.get_json()
        return body

    async def events(self) -> list[str]:
        """Connection event names delivered so far for this provider."""
        await self.runtime.events.drain()
        return self.vault.events.names(self.provider)
