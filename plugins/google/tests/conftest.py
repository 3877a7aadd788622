"""Test configuration: the PulsePlan plugin author kit's fixtures, and a harness that drives the
Google plugin's hooks through a real plugin manager against the kit's fake Google over loopback.

A stand-alone plugin repository would write ``pytest_plugins = ["pulseplan.testing"]`` here.
Inside the PulsePlan tree this conftest is not top-level, and pytest refuses ``pytest_plugins``
in a non-top-level conftest when the whole suite runs, so the fixtures are imported instead.
"""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator
from collections.abc import Awaitable
from collections.abc import Callable
from dataclasses import dataclass
from dataclasses import field
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs
from urllib.parse import urlsplit

import httpx
import pulseplan_google
import pytest

from pulseplan import TokenSet
from pulseplan.plugins import PluginHost
from pulseplan.settings import Settings
from pulseplan.testing.fake_provider import FakeProvider
from pulseplan.testing.fixtures import fake_provider
from pulseplan.testing.fixtures import pulseplan_vault
from pulseplan.testing.vault import TEST_SECRETS

__all__ = ["fake_provider", "google", "pulseplan_vault"]

NAME = "google"
#: Never contacted: the harness reads the callback URL instead of following it.
REDIRECT = "http://127.0.0.1:9/callback"


@dataclass
class GoogleHarness:
    """The plugin as the host runs it (pluggy dispatch, standard client, shared HTTP client)."""

    fake: FakeProvider
    host: PluginHost
    #: Every URL the plugin asked the HTTP client for, to prove no token ends up in one.
    urls: list[str] = field(default_factory=list)

    @property
    def scopes(self) -> tuple[str, ...]:
        settings = self.host.info(NAME).settings
        assert settings is not None
        return settings.scopes

    async def authorization_url(
        self,
        *,
        needs_refresh_token: bool = True,
        scopes: tuple[str, ...] | None = None,
        state: str = "state-1",
        verifier: str | None = "v" * 64,
    ) -> str:
        return await self.host.authorization_url(
            NAME,
            state=state,
            redirect_uri=REDIRECT,
            scopes=self.scopes if scopes is None else scopes,
            code_verifier=verifier,
            needs_refresh_token=needs_refresh_token,
        )

    async def connect(
        self, *, needs_refresh_token: bool = True, scopes: tuple[str, ...] | None = None
    ) -> TokenSet:
        """Authorization URL, consent at the fake, code exchange: the tokens the host gets."""
        state, verifier = secrets.token_urlsafe(16), secrets.token_urlsafe(48)
        url = await self.authorization_url(
            needs_refresh_token=needs_refresh_token, scopes=scopes, state=state, verifier=verifier
        )
        query = parse_qs(urlsplit(self.fake.consent(url)).query)
        assert query["state"] == [state]
        return await self.host.authorize(
            NAME, code=query["code"][0], redirect_uri=REDIRECT, code_verifier=verifier
        )

    async def refresh(self, refresh_token: str, scopes: tuple[str, ...] = ()) -> TokenSet:
        return await self.host.refresh(
            NAME, refresh_token=refresh_token, scopes=scopes, metadata={}
        )

    async def validate(self, access_token: str) -> Any:
        return await self.host.validate(NAME, access_token=access_token, metadata={})

    async def revoke(self, access_token: str | None, refresh_token: str | None) -> Any:
        return await self.host.revoke(
            NAME, access_token=access_token, refresh_token=refresh_token, metadata={}
        )


def google_settings(tmp_path: Path, env: dict[str, str]) -> Settings:
    merged = {
        **TEST_SECRETS,
        "DATABASE_URL": f"sqlite:///{tmp_path / 'unused.db'}",
        "PULSEPLAN_DATA_DIR": str(tmp_path / "data"),
        **env,
    }
    return Settings.load(merged, env_file=None, generate_dev_secrets=False)


@pytest.fixture
async def google(
    tmp_path: Path, fake_provider: Callable[..., FakeProvider]
) -> AsyncIterator[Callable[..., Awaitable[GoogleHarness]]]:
    """``await google(**env)`` -> a :class:`GoogleHarness` on a started fake Google; pass
    ``fake=`` to reuse one, other keywords become settings."""
    async with httpx.AsyncClient(timeout=10) as http:
        harnesses: list[GoogleHarness] = []

        async def record(request: httpx.Request) -> None:
            for harness in harnesses:
                harness.urls.append(str(request.url))

        http.event_hooks["request"] = [record]

        async def make(fake: FakeProvider | None = None, **env: str) -> GoogleHarness:
            fake = fake or fake_provider("google")
            settings = google_settings(tmp_path, {**fake.env(NAME), **env})
            host = PluginHost(
                settings, load_entrypoints=False, extra_plugins=[(NAME, pulseplan_google)]
            )
            info = host.info(NAME)
            assert info.settings is not None
            assert info.configured, info.settings.problems
            host.bind_http(http)
            harness = GoogleHarness(fake, host)
            harnesses.append(harness)
            return harness

        yield make
