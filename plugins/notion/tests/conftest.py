"""Test configuration: the PulsePlan plugin author kit's fixtures, and a harness that drives the
Notion plugin's hooks against the kit's fake Notion over real loopback HTTP, recording every
request the plugin sends (headers and bodies stay in memory, never in output).

A stand-alone plugin repository would write ``pytest_plugins = ["pulseplan.testing"]`` here.
Inside the PulsePlan tree this conftest is not top-level, and pytest refuses ``pytest_plugins``
in a non-top-level conftest when the whole suite runs, so the fixtures are imported instead.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from collections.abc import Callable
from dataclasses import dataclass
from dataclasses import field
from typing import Any
from urllib.parse import parse_qsl
from urllib.parse import urlsplit

import httpx
import pulseplan_notion
import pytest

from pulseplan import ProviderContext
from pulseplan import TokenSet
from pulseplan.provider_config import resolve
from pulseplan.standard import StandardOAuth2
from pulseplan.testing.fake_provider import FakeProvider
from pulseplan.testing.fixtures import fake_provider
from pulseplan.testing.fixtures import pulseplan_vault

__all__ = ["fake_provider", "notion", "pulseplan_vault"]

#: Never contacted: the harness reads the code from the callback URL.
REDIRECT_URI = "http://127.0.0.1:9/api/v1/oauth/notion/callback"


def query(url: str) -> dict[str, str]:
    return dict(parse_qsl(urlsplit(url).query, keep_blank_values=True))


@dataclass
class NotionHarness:
    """A started fake Notion, the plugin's context pointed at it, and the requests sent."""

    fake: FakeProvider
    ctx: ProviderContext
    sent: list[httpx.Request] = field(default_factory=list)

    def authorization_url(self) -> str:
        # Notion declares no hook of its own here: the host's standard one builds it.
        return self.ctx.standard.authorization_url(
            state="state-1", redirect_uri=REDIRECT_URI, scopes=(), code_verifier=None
        )

    async def connect(self) -> TokenSet:
        """Consent at the fake and exchange the code through the plugin's ``authorize``."""
        callback = self.fake.consent(self.authorization_url())
        return await pulseplan_notion.authorize(
            self.ctx, query(callback)["code"], REDIRECT_URI, None
        )

    def last(self, path_end: str) -> httpx.Request:
        return [r for r in self.sent if r.url.path.endswith(path_end)][-1]


@pytest.fixture
async def notion(
    fake_provider: Callable[..., FakeProvider],
) -> AsyncIterator[Callable[..., NotionHarness]]:
    """``notion(NOTION_VERSION="2022-06-28", rotation="none")``: settings as keywords in
    capitals, fake options in lower case."""
    clients: list[httpx.AsyncClient] = []

    def make(**options: Any) -> NotionHarness:
        env = {k: v for k, v in options.items() if k.isupper()}
        fake = fake_provider("notion", **{k: v for k, v in options.items() if not k.isupper()})
        sent: list[httpx.Request] = []

        async def record(request: httpx.Request) -> None:
            sent.append(request)

        http = httpx.AsyncClient(timeout=5.0, event_hooks={"request": [record]})
        clients.append(http)
        spec = pulseplan_notion.SPEC
        settings = resolve(spec, {**fake.env("notion"), **env}, production=False)
        assert settings.configured, settings.problems
        ctx = ProviderContext(spec, settings, http, StandardOAuth2(spec, settings, http))
        return NotionHarness(fake, ctx, sent)

    yield make
    for client in clients:
        await client.aclose()
