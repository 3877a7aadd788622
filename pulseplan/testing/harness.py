"""Drive one provider plugin's hooks the way the host does (pluggy dispatch, the standard
client, the shared HTTP client) against a :class:`FakeProvider`, without an app around it.

Use the ``plugin_harness`` fixture::

    async def test_refresh(plugin_harness):
        h = await plugin_harness("acme", my_plugin_module)
        tokens = await h.connect()
        assert (await h.refresh(tokens.refresh_token)).access_token != tokens.access_token
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from dataclasses import field
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs
from urllib.parse import urlsplit

from pulseplan.plugins import PluginHost
from pulseplan.provider import Revocation
from pulseplan.provider import TokenSet
from pulseplan.provider import Validation
from pulseplan.settings import Settings
from pulseplan.testing.fake_provider import FakeProvider
from pulseplan.testing.vault import TEST_SECRETS

#: Never contacted: the harness reads the callback URL instead of following it.
REDIRECT = "http://127.0.0.1:9/callback"


def harness_settings(tmp_path: Path, env: dict[str, str]) -> Settings:
    """Hermetic settings for a plugin under test (test secrets, a throwaway data dir)."""
    merged = {
        **TEST_SECRETS,
        "DATABASE_URL": f"sqlite:///{tmp_path / 'unused.db'}",
        "PULSEPLAN_DATA_DIR": str(tmp_path / "data"),
        **env,
    }
    return Settings.load(merged, env_file=None, generate_dev_secrets=False)


@dataclass
class PluginHarness:
    """One plugin as the host runs it. ``urls`` lists every URL the plugin requested, so a test
    can prove that no token ever ends up in one."""

    name: str
    fake: FakeProvider
    host: PluginHost
    urls: list[str] = field(default_factory=list)

    @property
    def scopes(self) -> tuple[str, ...]:
        settings = self.host.info(self.name).settings
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
            self.name,
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
            self.name, code=query["code"][0], redirect_uri=REDIRECT, code_verifier=verifier
        )

    async def refresh(self, refresh_token: str, scopes: tuple[str, ...] = ()) -> TokenSet:
        return await self.host.refresh(
            self.name, refresh_token=refresh_token, scopes=scopes, metadata={}
        )

    async def validate(self, access_token: str) -> Validation:
        return await self.host.validate(self.name, access_token=access_token, metadata={})

    async def revoke(
        self,
        access_token: str | None,
        refresh_token: str | None,
        metadata: dict[str, Any] | None = None,
    ) -> Revocation:
        return await self.host.revoke(
            self.name,
            access_token=access_token,
            refresh_token=refresh_token,
            metadata=metadata or {},
        )
