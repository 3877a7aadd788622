"""Test configuration: the PulsePlan plugin author kit's fixtures, and a harness that drives the
Canvas plugin's hooks against the kit's fake Canvas over real loopback HTTP.

A stand-alone plugin repository would write ``pytest_plugins = ["pulseplan.testing"]`` here.
Inside the PulsePlan tree this conftest is not top-level, and pytest refuses ``pytest_plugins``
in a non-top-level conftest when the whole suite runs, so the fixtures are imported instead.
"""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl
from urllib.parse import urlsplit

import httpx
import pulseplan_canvas
import pytest

from pulseplan import ProviderContext
from pulseplan import TokenSet
from pulseplan.provider_config import resolve
from pulseplan.standard import StandardOAuth2
from pulseplan.testing.fake_provider import FakeProvider
from pulseplan.testing.fixtures import fake_provider
from pulseplan.testing.fixtures import pulseplan_vault

__all__ = ["canvas", "fake_provider", "http", "pulseplan_vault"]

#: Never contacted: the harness reads the code from the callback URL.
REDIRECT_URI = "http://127.0.0.1:9/api/v1/oauth/canvas/callback"


def query(url: str) -> dict[str, str]:
    return dict(parse_qsl(urlsplit(url).query, keep_blank_values=True))


def context(
    env: dict[str, str], http: httpx.AsyncClient, *, production: bool = False
) -> ProviderContext:
    """The context the host would build for the Canvas plugin from ``env``."""
    spec = pulseplan_canvas.SPEC
    settings = resolve(spec, env, production=production)
    assert settings.configured, settings.problems
    return ProviderContext(spec, settings, http, StandardOAuth2(spec, settings, http), production)


@dataclass
class CanvasHarness:
    """A started fake Canvas and the plugin's context pointed at it."""

    fake: FakeProvider
    ctx: ProviderContext

    def authorization_url(self, verifier: str | None = None) -> str:
        return pulseplan_canvas.authorization_url(
            self.ctx, "state-1", REDIRECT_URI, self.ctx.settings.scopes, verifier
        )

    async def connect(self) -> TokenSet:
        """Consent at the fake and exchange the code through the plugin's ``authorize``."""
        verifier = secrets.token_urlsafe(48)
        callback = self.fake.consent(self.authorization_url(verifier))
        return await pulseplan_canvas.authorize(
            self.ctx, query(callback)["code"], REDIRECT_URI, verifier
        )

    def metadata(self, **changes: Any) -> dict[str, Any]:
        return {"base_url": self.fake.base_url, **changes}


@pytest.fixture
async def http() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(timeout=5.0) as client:
        yield client


@pytest.fixture
def canvas(
    fake_provider: Callable[..., FakeProvider], http: httpx.AsyncClient
) -> Callable[..., CanvasHarness]:
    """``canvas(CANVAS_PKCE="true", require_pkce=True)``: settings as keywords in capitals,
    fake options in lower case."""

    def make(**options: Any) -> CanvasHarness:
        env = {k: v for k, v in options.items() if k.isupper()}
        fake = fake_provider("canvas", **{k: v for k, v in options.items() if not k.isupper()})
        return CanvasHarness(fake, context({**fake.env("canvas"), **env}, http))

    return make
