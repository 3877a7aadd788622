"""One test per hook of :mod:`pulseplan.hookspecs`, each through :class:`PluginHost` with a
plugin that implements the hook for a quirk and delegates the rest to ``provider.standard``,
against the fake provider over loopback. (``tests/test_plugin_contract_docs.py`` checks that
every hookspec has its ``test_hook_<name>`` here.)"""

from __future__ import annotations

from collections.abc import AsyncIterator
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs
from urllib.parse import urlsplit

import httpx
import pytest

from pulseplan import ConnectionEvent
from pulseplan import ProviderContext
from pulseplan import ProviderError
from pulseplan import ProviderSpec
from pulseplan import Revocation
from pulseplan import SettingSpec
from pulseplan import TokenSet
from pulseplan import Validation
from pulseplan import hookimpl
from pulseplan.errors import PluginError
from pulseplan.plugins import PluginHost
from pulseplan.settings import Settings
from pulseplan.testing.fake_provider import FakeProvider
from pulseplan.testing.vault import StandardTestProvider
from pulseplan.testing.vault import new_user
from pulseplan.testing.vault import running_vault
from tests.plugin_kit import DeclarativeProvider
from tests.plugin_kit import spec

REDIRECT = "http://127.0.0.1:9/api/v1/oauth/acme/callback"  # never contacted
VERIFIER = "v" * 64

Make = Callable[..., tuple[PluginHost, FakeProvider]]


@pytest.fixture
async def http() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(timeout=5.0) as client:
        yield client


@pytest.fixture
def host_with(
    make_settings: Callable[..., Settings],
    fake_provider: Callable[..., FakeProvider],
    http: httpx.AsyncClient,
) -> Make:
    """``host_with(plugin)``: a bound host whose provider ``acme`` is ``plugin``, pointed at a
    started fake ``standard`` provider."""

    def make(plugin: object, **env: str) -> tuple[PluginHost, FakeProvider]:
        fake = fake_provider("standard")
        settings = make_settings(**fake.env("acme"), **env)
        host = PluginHost(settings, load_entrypoints=False, extra_plugins=[("acme", plugin)])
        host.bind_http(http)
        return host, fake

    return make


async def connect(host: PluginHost, fake: FakeProvider) -> TokenSet:
    """Authorization URL, consent at the fake, code exchange, all through the host."""
    url = await host.authorization_url(
        "acme",
        state="st",
        redirect_uri=REDIRECT,
        scopes=("read",),
        code_verifier=VERIFIER,
        needs_refresh_token=True,
    )
    code = parse_qs(urlsplit(fake.consent(url)).query)["code"][0]
    return await host.authorize("acme", code=code, redirect_uri=REDIRECT, code_verifier=VERIFIER)


def test_hook_describe_provider(make_settings: Callable[..., Settings]) -> None:
    class Regional:
        @hookimpl
        def describe_provider(self) -> ProviderSpec:
            return spec(
                "regional",
                authorize_url="https://{region}.idp.example/authorize",
                token_url="https://{region}.idp.example/token",
                settings=(
                    SettingSpec("region", "REGIONAL_REGION", default="eu", validate=checked),
                ),
            )

    def checked(value: str, production: bool) -> str:
        if value not in ("eu", "us"):
            raise ValueError("must be eu or us")
        return value

    env = {"REGIONAL_CLIENT_ID": "id", "REGIONAL_CLIENT_SECRET": "secret"}
    host = PluginHost(
        make_settings(**env, REGIONAL_REGION="us"),
        load_entrypoints=False,
        extra_plugins=[("regional", Regional())],
    )
    settings = host.info("regional").settings
    assert settings is not None
    assert settings.configured
    assert settings.token_url == "https://us.idp.example/token"
    assert settings.extra == {"region": "us"}
    bad = PluginHost(
        make_settings(**env, REGIONAL_REGION="mars"),
        load_entrypoints=False,
        extra_plugins=[("regional", Regional())],
    )
    assert bad.info("regional").settings.problems == ("REGIONAL_REGION: must be eu or us",)  # type: ignore[union-attr]

    class Confused:
        @hookimpl
        def describe_provider(self) -> object:
            return {"name": "confused"}

    with pytest.raises(PluginError, match="must return a ProviderSpec"):
        PluginHost(
            make_settings(), load_entrypoints=False, extra_plugins=[("confused", Confused())]
        )


async def test_hook_authorization_url(host_with: Make) -> None:
    class ConsentWhenNeeded(DeclarativeProvider):
        @hookimpl
        def authorization_url(
            self,
            provider: ProviderContext,
            state: str,
            redirect_uri: str,
            scopes: tuple[str, ...],
            code_verifier: str | None,
            needs_refresh_token: bool,
        ) -> str:
            extra = {"prompt": "consent"} if needs_refresh_token else {}
            return provider.standard.authorization_url(
                state=state,
                redirect_uri=redirect_uri,
                scopes=scopes,
                code_verifier=code_verifier,
                extra_params=extra,
            )

    host, fake = host_with(ConsentWhenNeeded("acme"))
    urls = {
        needs: await host.authorization_url(
            "acme",
            state="st",
            redirect_uri=REDIRECT,
            scopes=("read",),
            code_verifier=VERIFIER,
            needs_refresh_token=needs,
        )
        for needs in (True, False)
    }
    assert parse_qs(urlsplit(urls[True]).query)["prompt"] == ["consent"]
    assert "prompt" not in parse_qs(urlsplit(urls[False]).query)
    assert urls[True].startswith(fake.endpoints["authorize_url"] + "?")  # type: ignore[operator]
    assert "code" in parse_qs(urlsplit(fake.consent(urls[True])).query)


async def test_hook_authorize(host_with: Make) -> None:
    class AccountId(DeclarativeProvider):
        @hookimpl
        async def authorize(
            self,
            provider: ProviderContext,
            code: str,
            redirect_uri: str,
            code_verifier: str | None,
        ) -> TokenSet:
            tokens = await provider.standard.exchange_code(
                code=code, redirect_uri=redirect_uri, code_verifier=code_verifier
            )
            info = await provider.standard.userinfo(tokens.access_token)
            tokens.metadata["account_id"] = info["sub"]
            return tokens

    host, fake = host_with(AccountId("acme"))
    tokens = await connect(host, fake)
    assert tokens.metadata == {"account_id": fake.default_account.user_id}
    assert tokens.email == fake.default_account.email
    assert fake.is_live(tokens.access_token)
    assert [c.pkce for c in fake.calls("token")] == [True]


async def test_hook_refresh(host_with: Make) -> None:
    seen: list[dict[str, Any]] = []

    class Recording(DeclarativeProvider):
        @hookimpl
        async def refresh(
            self,
            provider: ProviderContext,
            refresh_token: str,
            scopes: tuple[str, ...],
            metadata: dict[str, Any],
        ) -> TokenSet:
            seen.append(metadata)
            tokens = await provider.standard.refresh(refresh_token=refresh_token, scopes=scopes)
            tokens.metadata["region"] = metadata["region"]
            return tokens

    host, fake = host_with(Recording("acme"))
    first = await connect(host, fake)
    assert first.refresh_token is not None
    fresh = await host.refresh(
        "acme", refresh_token=first.refresh_token, scopes=("read",), metadata={"region": "eu"}
    )
    assert seen == [{"region": "eu"}]
    assert fresh.metadata == {"region": "eu"}
    assert fake.is_live(fresh.access_token)
    assert fresh.refresh_token == fake.latest_refresh_token()  # the standard profile rotates
    assert fake.count("refresh", ok=True) == 1


async def test_hook_validate(host_with: Make) -> None:
    class Tolerant(DeclarativeProvider):
        @hookimpl
        async def validate(self, provider: ProviderContext, access_token: str) -> Validation:
            try:
                info = await provider.standard.userinfo(access_token)
            except ProviderError as exc:
                return Validation(valid=False, detail=f"identity check failed ({exc.error})")
            return Validation(valid=True, email=info.get("email"))

    host, fake = host_with(Tolerant("acme"))
    tokens = await connect(host, fake)
    result = await host.validate("acme", access_token=tokens.access_token, metadata={})
    assert result == Validation(valid=True, email=fake.default_account.email)
    fake.expire_access_token(tokens.access_token)
    result = await host.validate("acme", access_token=tokens.access_token, metadata={})
    assert result.valid is False
    assert result.detail == "identity check failed (invalid_token)"


async def test_hook_revoke(host_with: Make) -> None:
    class AccessOnly(DeclarativeProvider):
        """Revokes the access token even when a refresh token is stored."""

        @hookimpl
        async def revoke(
            self, provider: ProviderContext, access_token: str | None, refresh_token: str | None
        ) -> Revocation:
            return await provider.standard.revoke(access_token=access_token, refresh_token=None)

    host, fake = host_with(AccessOnly("acme"))
    tokens = await connect(host, fake)
    result = await host.revoke(
        "acme",
        access_token=tokens.access_token,
        refresh_token=tokens.refresh_token,
        metadata={},
    )
    assert result == Revocation(revoked=True)
    assert fake.count("revoke", ok=True) == 1
    assert not fake.is_live(tokens.access_token)
    assert tokens.refresh_token is not None
    assert fake.is_live(tokens.refresh_token)


async def test_hook_connection_event(tmp_path: Path) -> None:
    received: list[dict[str, Any]] = []

    class Audit:
        @hookimpl
        async def connection_event(self, event: ConnectionEvent) -> None:
            received.append(event.as_dict())

    async with running_vault(
        tmp_path,
        providers={"acme": FakeProvider("standard")},
        plugins=[("acme", StandardTestProvider("acme")), ("audit", Audit())],
    ) as vault:
        user = new_user()
        row = await vault.connect(user)
        assert (await vault.disconnect(user)).status_code == 200
        await vault.runtime.events.drain()
    assert [e["event"] for e in received] == ["connected", "disconnected"]
    assert {(e["user_id"], e["provider"], e["connection_id"]) for e in received} == {
        (user, "acme", row.id)
    }
    assert "fake_" not in str(received)  # identifiers only, never tokens
