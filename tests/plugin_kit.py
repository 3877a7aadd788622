"""Small in-process provider plugins for host tests."""

from __future__ import annotations

from datetime import UTC
from datetime import datetime
from datetime import timedelta
from typing import Any

from pulseplan import ProviderContext
from pulseplan import ProviderSpec
from pulseplan import TokenSet
from pulseplan import hookimpl


def spec(name: str, base: str = "https://idp.invalid", **overrides: Any) -> ProviderSpec:
    values: dict[str, Any] = {
        "name": name,
        "display_name": name.title(),
        "authorize_url": f"{base}/{name}/authorize",
        "token_url": f"{base}/{name}/token",
        "revoke_url": f"{base}/{name}/revoke",
        "userinfo_url": f"{base}/{name}/userinfo",
        "default_scopes": ("read",),
        **overrides,
    }
    return ProviderSpec(**values)


def provider_env(*names: str) -> dict[str, str]:
    env: dict[str, str] = {}
    for name in names:
        env[f"{name.upper()}_CLIENT_ID"] = f"{name}-client"
        env[f"{name.upper()}_CLIENT_SECRET"] = f"{name}-client-secret-value"
    return env


class AsyncProvider:
    """Implements refresh asynchronously and records every call it receives."""

    def __init__(self, name: str):
        self.name = name
        self.calls: list[str] = []

    @hookimpl
    def describe_provider(self) -> ProviderSpec:
        return spec(self.name)

    @hookimpl
    async def refresh(self, provider: ProviderContext, refresh_token: str) -> TokenSet:
        self.calls.append(f"refresh:{provider.name}")
        return TokenSet(
            access_token=f"{self.name}-access",
            expires_at=datetime.now(UTC) + timedelta(hours=1),
        )


class SyncProvider(AsyncProvider):
    """Same, with a plain function: the host must accept non-coroutine results too."""

    @hookimpl
    def refresh(self, provider: ProviderContext, refresh_token: str) -> TokenSet:  # type: ignore[override]
        self.calls.append(f"refresh:{provider.name}")
        return TokenSet(access_token=f"{self.name}-access")


class DeclarativeProvider:
    """Describes itself only: every lifecycle hook falls back to the standard implementation."""

    def __init__(self, name: str, **overrides: Any):
        self.name = name
        self.overrides = overrides

    @hookimpl
    def describe_provider(self) -> ProviderSpec:
        return spec(self.name, **self.overrides)
