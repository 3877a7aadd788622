"""The Redis backend against a real Redis: the Lua script, key hygiene, and exactness across two
real server processes sharing one Redis."""

from __future__ import annotations

import asyncio
import uuid
from collections import Counter
from collections.abc import AsyncIterator
from collections.abc import Callable
from contextlib import ExitStack
from pathlib import Path

import httpx
import pytest
from redis.asyncio import Redis

from pulseplan.cache.client import RedisClient
from pulseplan.cache.client import RedisUnavailable
from pulseplan.settings import Settings
from pulseplan.web.ratelimit import GroupPolicy
from pulseplan.web.ratelimit import Limit
from pulseplan.web.ratelimit import RateLimiter
from pulseplan.web.ratelimit import RateLimiterUnavailable
from pulseplan.web.ratelimit import RedisBackend
from tests.auth_fakes import user_token
from tests.conftest import BASE_ENV
from tests.conftest import service_unavailable
from tests.server import running_server

pytestmark = pytest.mark.redis

REDIS_URL = "redis://127.0.0.1:6379/0"


class Clock:
    def __init__(self, now: float = 1_700_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def prefix() -> str:
    """A key namespace of its own for every test (several test runs may share the server)."""
    return f"pulseplan:test-{uuid.uuid4().hex[:12]}:"


@pytest.fixture
async def raw(prefix: str) -> AsyncIterator[Redis]:
    """A plain client for inspecting and cleaning up the test's namespace."""
    redis = Redis.from_url(REDIS_URL, socket_connect_timeout=2, socket_timeout=2)
    try:
        await redis.ping()
    except Exception as exc:
        await redis.aclose()
        service_unavailable("Redis", exc)
    yield redis
    keys = [key async for key in redis.scan_iter(match=prefix + "*")]
    if keys:
        await redis.delete(*keys)
    await redis.aclose()


@pytest.fixture
async def client(raw: Redis, prefix: str) -> AsyncIterator[RedisClient]:
    redis_client = RedisClient(REDIS_URL, prefix=prefix)
    yield redis_client
    await redis_client.close()


def redis_limiter(client: RedisClient, spec: str, clock: Clock | None = None) -> RateLimiter:
    policies = {"tokens": GroupPolicy("tokens", Limit.parse(spec), "closed")}
    return RateLimiter(
        policies,
        RedisBackend(client),
        secret=b"test-secret",
        prefix=client.key("rl", ""),
        clock=clock or Clock(),
    )


async def test_exact_under_concurrency(client: RedisClient) -> None:
    limiter = redis_limiter(client, "50/60", Clock())
    decisions = await asyncio.gather(*(limiter.hit("tokens", "user:a") for _ in range(200)))
    assert sum(d.allowed for d in decisions) == 50
    assert {d.backend for d in decisions} == {"redis"}


async def test_same_millisecond_requests_all_count(client: RedisClient) -> None:
    limiter = redis_limiter(client, "100/60")  # the clock never moves
    for _ in range(10):
        await limiter.hit("tokens", "user:a")
    decision = await limiter.peek("tokens", "user:a")
    assert decision.remaining == 90


async def test_window_slides_without_boundary_burst(client: RedisClient) -> None:
    clock = Clock(1_700_000_000.0)
    limiter = redis_limiter(client, "50/60", clock)
    clock.now += 59
    first = [await limiter.hit("tokens", "user:a") for _ in range(50)]
    clock.now += 2
    second = [await limiter.hit("tokens", "user:a") for _ in range(50)]
    assert all(d.allowed for d in first)
    assert not any(d.allowed for d in second)
    assert second[-1].retry_after == 58
    clock.now += 58
    assert (await limiter.hit("tokens", "user:a")).allowed


async def test_rejected_requests_are_not_stored(client: RedisClient, raw: Redis) -> None:
    limiter = redis_limiter(client, "3/60")
    for _ in range(10):
        await limiter.hit("tokens", "user:a")
    assert await raw.zcard(limiter.key("tokens", "user:a")) == 3


async def test_keys_are_hashed_and_expire(client: RedisClient, raw: Redis, prefix: str) -> None:
    limiter = redis_limiter(client, "5/60", Clock())
    subjects = ["ip:203.0.113.77", "user:5f0c8a1e-3b6d-4c2a-9e7f-1a2b3c4d5e6f"]
    for subject in subjects:
        await limiter.hit("tokens", subject)
    keys = [key.decode() async for key in raw.scan_iter(match=prefix + "*")]
    assert len(keys) == 2
    for key in keys:
        assert key.startswith(prefix + "rl:tokens:")
        assert not any(s.split(":", 1)[1] in key for s in subjects)
        ttl = await raw.pttl(key)
        assert 0 < ttl <= 2 * 60_000 + 1000


async def test_script_cache_flush_is_survived(client: RedisClient, raw: Redis) -> None:
    limiter = redis_limiter(client, "5/60")
    await limiter.hit("tokens", "user:a")
    await raw.script_flush()  # what a Redis restart or failover looks like to EVALSHA
    decision = await limiter.hit("tokens", "user:a")
    assert decision.allowed
    assert decision.remaining == 3


async def test_unreachable_redis_raises_for_closed_groups() -> None:
    client = RedisClient("redis://127.0.0.1:1/0", connect_timeout=0.5)
    limiter = redis_limiter(client, "5/60")
    with pytest.raises(RateLimiterUnavailable):
        await limiter.hit("tokens", "user:a")
    with pytest.raises(RedisUnavailable):
        await client.ping()
    await client.close()


@pytest.mark.slow
async def test_exact_across_two_server_processes_sharing_redis(
    raw: Redis, prefix: str, tmp_path: Path, make_settings: Callable[..., Settings]
) -> None:
    limit, requests = 25, 100
    token = user_token(make_settings(), sub=str(uuid.uuid4()))
    servers = []
    with ExitStack() as stack:
        for n in range(2):
            env = {
                **BASE_ENV,
                "PULSEPLAN_DATA_DIR": str(tmp_path / f"data{n}"),
                "DATABASE_URL": f"sqlite:///{tmp_path / f'pulseplan{n}.db'}",
                "REDIS_URL": REDIS_URL,
                "REDIS_KEY_PREFIX": prefix,
                "ENABLE_RATE_LIMITING": "true",
                "RATE_LIMIT_TOKENS": f"{limit}/600",
                "BACKGROUND_REFRESH": "false",
            }
            servers.append(stack.enter_context(running_server(env, tmp_path)))
        async with httpx.AsyncClient(
            timeout=30, headers={"Authorization": f"Bearer {token}"}
        ) as http:
            responses = await asyncio.gather(
                *(
                    http.get(f"{servers[i % 2].base_url}/api/v1/tokens/connections/status")
                    for i in range(requests)
                )
            )
    # Exactly ``limit`` in total: with per-process counting each server would admit ``limit``.
    statuses = Counter(r.status_code for r in responses)
    assert statuses == {200: limit, 429: requests - limit}
    for response in responses:
        assert response.headers["X-RateLimit-Limit"] == str(limit)
        if response.status_code == 429:
            assert response.json()["code"] == "rate_limited"
            assert int(response.headers["Retry-After"]) >= 1
    keys = [key async for key in raw.scan_iter(match=prefix + "rl:*")]
    assert len(keys) >= 1
