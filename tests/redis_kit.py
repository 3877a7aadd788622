"""Helpers for the Redis tests: clients under a unique key prefix on the shared local Redis,
key tracking (every test deletes exactly the keys it created; never FLUSHALL), a closed port for
"Redis is down", and a loopback proxy (``tests.tcp_proxy``) that cuts and restores the way to it.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import uuid
from collections.abc import AsyncIterator
from typing import Any

from redis.asyncio import Redis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff

from pulseplan.broker.refresh import RefreshCoordinator
from pulseplan.cache.client import RedisClient
from pulseplan.cache.client import RedisUnavailable
from pulseplan.cache.flows import RedisFlowStore
from pulseplan.cache.locks import LayeredLocks
from pulseplan.cache.rows import CachedStorage
from tests.conftest import service_unavailable
from tests.tcp_proxy import TcpProxy
from tests.vault import Vault

HOST = "127.0.0.1"
PORT = 6379
REDIS_URL = f"redis://{HOST}:{PORT}/0"


class TrackedClient(RedisClient):
    """A :class:`RedisClient` that records every key it names, for TTL checks and cleanup."""

    def __init__(self, url: str, **kwargs: object):
        super().__init__(url, **kwargs)  # type: ignore[arg-type]
        self.named: set[str] = set()

    def key(self, *parts: str) -> str:
        name = super().key(*parts)
        self.named.add(name)
        return name


class AppliedThenFailed(TrackedClient):
    """Redis applies the command, then the reply is lost (a timeout after the write)."""

    async def run(self, op: Any) -> Any:
        await super().run(op)
        self._failed(TimeoutError())
        raise RedisUnavailable("TimeoutError")


def unique_prefix() -> str:
    return f"pulseplan:test-{uuid.uuid4().hex[:12]}:"


def closed_port() -> int:
    """A loopback port nothing listens on (bound, then released)."""
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        port: int = sock.getsockname()[1]
    return port


def down_client(**kwargs: object) -> TrackedClient:
    """A client for a Redis that refuses connections."""
    return TrackedClient(f"redis://{HOST}:{closed_port()}/0", **kwargs)


def raw_redis() -> Redis:
    """A plain redis-py client for inspecting what the code under test wrote."""
    # No retries: redis-py's default backs off for seconds before admitting Redis is not there.
    return Redis(
        host=HOST,
        port=PORT,
        socket_timeout=2,
        socket_connect_timeout=2,
        retry=Retry(NoBackoff(), 0),
    )


async def require_redis() -> None:
    """Skip (or fail under CI) when the local Redis is not there."""
    redis = raw_redis()
    try:
        await redis.ping()
    except Exception as exc:
        service_unavailable("Redis", exc)
    finally:
        await redis.aclose()


async def ttl_violations(names: set[str]) -> dict[str, int]:
    """Keys among ``names`` that exist without a TTL (PTTL -1)."""
    redis = raw_redis()
    try:
        found = {name: await redis.pttl(name) for name in sorted(names)}
    finally:
        await redis.aclose()
    return {name: ttl for name, ttl in found.items() if ttl == -1}


async def delete_keys(names: set[str]) -> None:
    if not names:
        return
    redis = raw_redis()
    try:
        await redis.delete(*names)
    finally:
        await redis.aclose()


@contextlib.asynccontextmanager
async def live_client(url: str = REDIS_URL, **kwargs: object) -> AsyncIterator[TrackedClient]:
    """A client on the local Redis under a fresh prefix; afterwards asserts that every key it
    named has a TTL, then deletes those keys."""
    await require_redis()
    kwargs.setdefault("prefix", unique_prefix())
    client = TrackedClient(url, **kwargs)
    try:
        await client.ping()
    except RedisUnavailable as exc:
        service_unavailable("Redis", exc)
    try:
        yield client
    finally:
        await client.close()
        violations = await ttl_violations(client.named)
        await delete_keys(client.named)
        assert violations == {}, f"keys without a TTL: {sorted(violations)}"


def proxy_url(relay: TcpProxy) -> str:
    return f"redis://{HOST}:{relay.port}/0"


@contextlib.asynccontextmanager
async def proxy() -> AsyncIterator[TcpProxy]:
    """A loopback proxy to the local Redis: ``stop()`` cuts the way to Redis for whoever
    connects through it (like a Redis outage), ``start()`` restores it on the same port."""
    await require_redis()
    relay = TcpProxy(HOST, PORT)
    await relay.start()
    try:
        yield relay
    finally:
        await relay.stop()


# --------------------------------------------------------------------------- apps


def layer(vault: Vault) -> tuple[CachedStorage, LayeredLocks, RedisFlowStore]:
    storage = vault.runtime.storage
    assert isinstance(storage, CachedStorage)
    refresher = vault.runtime.broker.refresher
    assert isinstance(refresher, RefreshCoordinator)
    assert isinstance(refresher.locks, LayeredLocks)
    flows = vault.runtime.flows.flow_store
    assert isinstance(flows, RedisFlowStore)
    return storage, refresher.locks, flows


async def ready(vault: Vault) -> tuple[int, dict[str, Any]]:
    response = await vault.client.get("/api/v1/health/ready")
    return response.status_code, await response.get_json()


async def one_refresh_under_concurrency(vault: Vault, user: str) -> None:
    """50 concurrent fetches inside the skew: exactly one refresh, everyone gets its result."""
    fake = vault.fakes["acme"]
    before = fake.count("refresh")
    row = await vault.connect(user)
    await vault.expire_soon(row)
    responses = await asyncio.gather(*(vault.tokens(user) for _ in range(50)))
    assert {r.status_code for r in responses} == {200}
    tokens = {(await r.get_json())["acme"]["access_token"] for r in responses}
    assert fake.count("refresh") == before + 1
    assert len(tokens) == 1
    assert fake.is_live(tokens.pop())
    stored = await vault.runtime.storage.get_connection_by_id(row.id)
    assert stored is not None
    assert vault.stored_refresh_token(stored) == fake.latest_refresh_token()
