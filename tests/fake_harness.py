"""The host's :class:`StandardOAuth2` wired to a :class:`FakeProvider`, for the fake's tests.

Each profile gets the ProviderSpec a plugin for that provider would declare, resolved through
``provider_config.resolve`` from ``fake.env(...)``, exactly as the host does it.
"""

from __future__ import annotations

import contextlib
import secrets
import ssl
from collections.abc import AsyncIterator
from collections.abc import Awaitable
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl
from urllib.parse import urlsplit

import httpx

from pulseplan.provider import ProviderSpec
from pulseplan.provider import TokenSet
from pulseplan.provider_config import resolve
from pulseplan.standard import StandardOAuth2
from pulseplan.testing.fake_provider import Account
from pulseplan.testing.fake_provider import FakeProvider
from tests.plugin_kit import spec

#: Never contacted: the test reads the callback URL instead of following it.
REDIRECT_URI = "http://127.0.0.1:9/callback"
NOTION_VERSION = "2025-09-03"
PROFILES = ("standard", "google", "microsoft", "canvas", "notion")
#: Loading the CA bundle costs ~40 ms per client; the fake is plain http anyway.
TLS = ssl.create_default_context()

SPEC_OVERRIDES: dict[str, dict[str, Any]] = {
    "standard": {"default_scopes": ("openid", "email", "read")},
    "google": {
        "default_scopes": ("openid", "email", "https://www.googleapis.com/auth/calendar.events"),
        "extra_authorize_params": {"access_type": "offline", "include_granted_scopes": "true"},
    },
    "microsoft": {
        "default_scopes": ("openid", "email", "offline_access", "User.Read", "Calendars.Read"),
        "extra_authorize_params": {"response_mode": "query"},
        "revoke_url": None,
        "supports_revoke": False,
    },
    "canvas": {"default_scopes": (), "pkce": False},
    "notion": {
        "default_scopes": (),
        "pkce": False,
        "client_auth": "client_secret_basic",
        "token_request_format": "json",
        "extra_authorize_params": {"owner": "user"},
    },
}


def query(url: str) -> dict[str, str]:
    """The query parameters of a callback URL."""
    return dict(parse_qsl(urlsplit(url).query, keep_blank_values=True))


@dataclass
class Harness:
    """A running fake, the spec and settings a plugin would have, and StandardOAuth2."""

    fake: FakeProvider
    spec: ProviderSpec
    std: StandardOAuth2
    http: httpx.AsyncClient

    def authorization_url(
        self,
        *,
        state: str = "state-1",
        pkce: bool | None = None,
        verifier: str | None = None,
        extra: dict[str, str] | None = None,
    ) -> tuple[str, str | None]:
        """(url, verifier); PKCE follows the spec unless ``pkce`` says otherwise."""
        use_pkce = self.spec.pkce if pkce is None else pkce
        if use_pkce and verifier is None:
            verifier = secrets.token_urlsafe(48)
        url = self.std.authorization_url(
            state=state,
            redirect_uri=REDIRECT_URI,
            scopes=self.std.settings.scopes,
            code_verifier=verifier if use_pkce else None,
            extra_params=extra,
        )
        return url, verifier if use_pkce else None

    def code(self, **consent: Any) -> tuple[str, str | None]:
        """Consent through the fake; return (code, verifier)."""
        url, verifier = self.authorization_url()
        return query(self.fake.consent(url, **consent))["code"], verifier

    async def connect(self, *, account: Account | None = None) -> TokenSet:
        code, verifier = self.code(account=account)
        return await self.std.exchange_code(
            code=code,
            redirect_uri=REDIRECT_URI,
            code_verifier=verifier,
            requested=self.std.settings.scopes,
        )


Make = Callable[..., Awaitable[Harness]]


@contextlib.asynccontextmanager
async def harnesses() -> AsyncIterator[Make]:
    """Build harnesses on demand; everything stops at exit, and the fakes must not have
    raised internally."""
    fakes: list[FakeProvider] = []
    async with contextlib.AsyncExitStack() as stack:

        async def make(
            profile: str = "standard",
            *,
            http_timeout: float = 5.0,
            spec_overrides: dict[str, Any] | None = None,
            **fake_kwargs: Any,
        ) -> Harness:
            fake = stack.enter_context(FakeProvider(profile, **fake_kwargs))  # type: ignore[arg-type]
            fakes.append(fake)
            headers = {"Notion-Version": NOTION_VERSION} if profile == "notion" else {}
            http = await stack.enter_async_context(
                httpx.AsyncClient(headers=headers, timeout=http_timeout, verify=TLS)
            )
            provider_spec = spec(profile, **{**SPEC_OVERRIDES[profile], **(spec_overrides or {})})
            settings = resolve(provider_spec, fake.env(profile), production=False)
            assert settings.problems == ()
            return Harness(fake, provider_spec, StandardOAuth2(provider_spec, settings, http), http)

        yield make
    for fake in fakes:
        assert fake.internal_errors == []
