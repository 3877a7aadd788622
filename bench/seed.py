"""Benchmark data: a user with four warm connections (through the API), an agent, and thousands
of connections due for a refresh (through the storage layer, encrypted like the broker does).
"""

from __future__ import annotations

import asyncio
import base64
import secrets
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC
from datetime import datetime
from datetime import timedelta

import httpx

from pulseplan.auth.agents import agent_pepper
from pulseplan.auth.agents import create_agent
from pulseplan.broker.tokens import TokenCodec
from pulseplan.crypto import TokenCipher
from pulseplan.settings import Settings
from pulseplan.storage import make_storage
from pulseplan.storage.models import NewConnection
from pulseplan.testing.users import user_token

PROVIDERS = ("google", "microsoft", "canvas", "notion")
#: Far outside the refresh skew: the token endpoints must never call a provider while measured.
WARM_FOR = timedelta(hours=6)
#: Inside the refresh skew (300 s by default): due for the sweep.
DUE_IN = timedelta(seconds=60)
SEED_CONCURRENCY = 16


def bench_secrets() -> dict[str, str]:
    """Fresh random secrets for one run (never reused, never written anywhere)."""
    return {
        "TOKEN_ENCRYPTION_KEY": base64.urlsafe_b64encode(secrets.token_bytes(32)).decode(),
        "SECRET_KEY": "bench-secret-" + secrets.token_urlsafe(32),
        "SUPABASE_JWT_SECRET": "bench-jwt-secret-" + secrets.token_urlsafe(32),
    }


@dataclass(frozen=True)
class Caller:
    """Who the benchmark calls the token endpoints as (credentials stay out of ``repr``)."""

    user_id: str
    user_jwt: str
    agent_secret: str

    def __repr__(self) -> str:
        return f"Caller(user_id={self.user_id!r})"


async def seed_caller(base_url: str, settings: Settings) -> Caller:
    """A new user with a fresh connection to every provider (stored through the API, as an
    app would) and a new agent allowed to read them (created through the storage layer, as
    ``pulseplan agents create`` does)."""
    user_id = str(uuid.uuid4())
    jwt = user_token(settings, user_id, exp=int(datetime.now(UTC).timestamp()) + 6 * 3600)
    expires = (datetime.now(UTC) + WARM_FOR).isoformat()
    async with httpx.AsyncClient(base_url=base_url, timeout=30) as http:
        for provider in PROVIDERS:
            response = await http.post(
                f"/api/v1/tokens/connections/{provider}",
                headers={"Authorization": f"Bearer {jwt}"},
                json={
                    "access_token": f"bench-{provider}-access-{uuid.uuid4().hex}",
                    "refresh_token": f"bench-{provider}-refresh-{uuid.uuid4().hex}",
                    "expires_at": expires,
                    "scopes": ["read"],
                    "email": "bench@example.test",
                },
            )
            if response.status_code not in (200, 201):
                raise RuntimeError(f"seeding {provider} failed: HTTP {response.status_code}")
    storage = make_storage(settings)
    await storage.open()
    try:
        _, secret = await create_agent(
            storage, f"bench-{uuid.uuid4().hex[:8]}", None, agent_pepper(settings)
        )
    finally:
        await storage.close()
    return Caller(user_id=user_id, user_jwt=jwt, agent_secret=secret)


async def seed_due(settings: Settings, refresh_tokens: Sequence[str], scopes: Sequence[str]) -> int:
    """One Google connection per refresh token, each for its own user, expiring inside the
    refresh skew (so the sweep refreshes every one). Returns how many were stored."""
    codec = TokenCodec(TokenCipher.from_settings(settings))
    storage = make_storage(settings)
    await storage.open()
    gate = asyncio.Semaphore(SEED_CONCURRENCY)
    expires = datetime.now(UTC) + DUE_IN

    async def one(refresh_token: str) -> None:
        key = (str(uuid.uuid4()), "google")
        async with gate:
            await storage.upsert_connection(
                NewConnection(
                    user_id=key[0],
                    provider="google",
                    access_token=codec.encrypt(key, "access_token", "bench-stale-access"),
                    refresh_token=codec.encrypt(key, "refresh_token", refresh_token),
                    expires_at=expires,
                    scopes=tuple(scopes),
                    email="bench@example.test",
                )
            )

    try:
        await storage.migrate()
        await asyncio.gather(*(one(token) for token in refresh_tokens))
    finally:
        await storage.close()
    return len(refresh_tokens)
