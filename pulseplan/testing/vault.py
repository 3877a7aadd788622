"""An in-process PulsePlan wired to fake providers over real loopback HTTP, for end-to-end tests.

Each provider is pointed at a :class:`~pulseplan.testing.fake_provider.FakeProvider` through the
``{NAME}_*_URL`` overrides, exactly as an operator would. The provider plugins are either the
installed ones (entry points, the default for plugin authors) or objects passed in ``plugins``.

::

    async with running_vault(tmp_path, providers={"google": FakeProvider("google")}) as vault:
        row = await vault.connect(new_user(), "google")
        body = await (await vault.tokens(row.user_id)).get_json()
"""

from __future__ import annotations

import base64
import secrets
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from dataclasses import field
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs
from urllib.parse import urlsplit

from quart import Quart

from pulseplan import ConnectionEvent
from pulseplan import hookimpl
from pulseplan.app import create_app
from pulseplan.plugins import PluginHost
from pulseplan.provider import ProviderSpec
from pulseplan.runtime import Runtime
from pulseplan.settings import Settings
from pulseplan.storage.models import Connection
from pulseplan.testing.fake_provider import FakeProvider
from pulseplan.testing.users import user_token

PUBLIC = "http://pulseplan.test"
RETURN = "https://app.example/connected"

#: Strong, random-looking secrets for tests (never use outside tests).
TEST_SECRETS = {
    "TOKEN_ENCRYPTION_KEY": base64.urlsafe_b64encode(secrets.token_bytes(32)).decode(),
    "SECRET_KEY": "test-secret-key-" + secrets.token_urlsafe(24),
    "SUPABASE_JWT_SECRET": "test-jwt-secret-" + secrets.token_urlsafe(24),
}


class StandardTestProvider:
    """A provider plugin that only describes itself, so every hook is the host's standard
    OAuth 2.0 implementation. Its endpoints come from the ``{NAME}_*_URL`` overrides."""

    def __init__(self, name: str, *, pkce: bool = True):
        self.name = name
        self.pkce = pkce

    @hookimpl
    def describe_provider(self) -> ProviderSpec:
        base = "https://idp.invalid"
        return ProviderSpec(
            name=self.name,
            display_name=self.name.title(),
            authorize_url=f"{base}/authorize",
            token_url=f"{base}/token",
            revoke_url=f"{base}/revoke",
            userinfo_url=f"{base}/userinfo",
            default_scopes=("read",),
            pkce=self.pkce,
        )


class EventLog:
    """A cross-cutting plugin recording every connection event."""

    def __init__(self) -> None:
        self.events: list[ConnectionEvent] = []

    @hookimpl
    def connection_event(self, event: ConnectionEvent) -> None:
        self.events.append(event)

    def names(self, provider: str | None = None) -> list[str]:
        return [e.name for e in self.events if provider is None or e.provider == provider]


@dataclass
class Vault:
    app: Quart
    settings: Settings
    fakes: dict[str, FakeProvider]
    events: EventLog
    users: dict[str, str] = field(default_factory=dict)

    @property
    def runtime(self) -> Runtime:
        runtime: Runtime = self.app.extensions["pulseplan"]
        return runtime

    @property
    def client(self) -> Any:
        return self.app.test_client()

    def headers(self, user_id: str) -> dict[str, str]:
        if user_id not in self.users:
            self.users[user_id] = user_token(self.settings, user_id)
        return {"Authorization": f"Bearer {self.users[user_id]}"}

    async def authorize(self, user_id: str, provider: str = "acme", **query: str) -> Any:
        return await self.client.get(
            f"/api/v1/oauth/{provider}/authorize",
            headers=self.headers(user_id),
            query_string=query,
        )

    async def callback(self, url: str) -> Any:
        parts = urlsplit(url)
        assert f"{parts.scheme}://{parts.netloc}" == PUBLIC, "redirect URI must be exact"
        return await self.client.get(f"{parts.path}?{parts.query}")

    async def connect(self, user_id: str, provider: str = "acme", **consent: Any) -> Connection:
        """Run the whole browser flow and return the stored row."""
        started = await self.authorize(user_id, provider)
        assert started.status_code == 200, await started.get_data(as_text=True)
        url = (await started.get_json())["authorization_url"]
        response = await self.callback(self.fakes[provider].consent(url, **consent))
        location = response.headers.get("Location", "")
        assert response.status_code == 303, await response.get_data(as_text=True)
        assert parse_qs(urlsplit(location).query)["status"] == ["connected"], location
        row = await self.runtime.storage.get_connection(user_id, provider)
        assert row is not None
        return row

    async def tokens(self, user_id: str) -> Any:
        return await self.client.get("/api/v1/tokens/tokens", headers=self.headers(user_id))

    async def disconnect(self, user_id: str, provider: str = "acme") -> Any:
        return await self.client.delete(
            f"/api/v1/tokens/connections/{provider}", headers=self.headers(user_id)
        )

    async def expire_soon(self, row: Connection, seconds: float = 60) -> Connection:
        """Move the stored expiry inside the refresh skew ("time passes")."""
        from datetime import UTC
        from datetime import datetime
        from datetime import timedelta

        current = await self.runtime.storage.get_connection_by_id(row.id)
        assert current is not None
        updated = await self.runtime.storage.update_connection(
            row.id, current.version, expires_at=datetime.now(UTC) + timedelta(seconds=seconds)
        )
        assert updated is not None
        return updated

    def stored_refresh_token(self, row: Connection) -> str:
        """The plaintext refresh token of a stored row (for assertions against the fake)."""
        assert row.refresh_token is not None
        return self.runtime.cipher.decrypt(
            row.refresh_token, user_id=row.user_id, provider=row.provider, field="refresh_token"
        )

    def stored_access_token(self, row: Connection) -> str:
        """The plaintext access token of a stored row (for assertions against the fake)."""
        return self.runtime.cipher.decrypt(
            row.access_token, user_id=row.user_id, provider=row.provider, field="access_token"
        )


def new_user() -> str:
    return str(uuid.uuid4())


@asynccontextmanager
async def running_vault(
    tmp_path: Path,
    *,
    providers: dict[str, FakeProvider],
    plugins: list[tuple[str, object]] | None = None,
    **env: str,
) -> AsyncIterator[Vault]:
    """Start ``providers`` (name -> unstarted fake), then an app wired to them.

    :param plugins: provider plugins to register as ``(name, plugin)``; ``None`` registers a
        :class:`StandardTestProvider` for each provider. Pass ``[]`` to use the *installed*
        plugins (entry points), limited to ``providers`` by ``PULSEPLAN_PROVIDERS``.
    :param env: extra settings (``OAUTH_REQUIRE_CONFIRMATION="true"``...).
    """
    for fake in providers.values():
        fake.start()
    try:
        merged = {
            **TEST_SECRETS,
            "DATABASE_URL": f"sqlite:///{tmp_path / 'vault.db'}",
            "PULSEPLAN_DATA_DIR": str(tmp_path / "data"),
            "PUBLIC_BASE_URL": PUBLIC,
            "ALLOWED_RETURN_URLS": RETURN,
            "BACKGROUND_REFRESH": "false",
            **{k: v for name, fake in providers.items() for k, v in fake.env(name).items()},
            **env,
        }
        events = EventLog()
        if plugins == []:
            merged.setdefault("PULSEPLAN_PROVIDERS", ",".join(providers))
            settings = Settings.load(merged, env_file=None, generate_dev_secrets=False)
            host = PluginHost(settings, extra_plugins=[("events", events)])
        else:
            settings = Settings.load(merged, env_file=None, generate_dev_secrets=False)
            registered = plugins or [(name, StandardTestProvider(name)) for name in providers]
            host = PluginHost(
                settings, load_entrypoints=False, extra_plugins=[*registered, ("events", events)]
            )
        app = create_app(settings, plugins=host)
        async with app.test_app():
            vault = Vault(app, settings, providers, events)
            yield vault
            await vault.runtime.events.drain()
    finally:
        for fake in providers.values():
            fake.stop()
