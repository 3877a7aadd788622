"""The JWKS cache against a real JWKS endpoint on loopback: which keys it keeps, how often it
fetches (never more than once per interval, whatever the traffic), and outages."""

from __future__ import annotations

import asyncio
import json
import secrets
import socket
from collections.abc import AsyncIterator
from collections.abc import Iterator
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric import ec
from jwt.algorithms import ECAlgorithm

from pulseplan.auth.errors import AuthError
from pulseplan.auth.jwks import JwksCache
from pulseplan.auth.jwks import parse_key
from tests.auth_fakes import FakeClock
from tests.auth_fakes import JwksServer
from tests.auth_fakes import public_jwk
from tests.auth_fakes import signing_keys

TTL = 600.0
INTERVAL = 60.0


@pytest.fixture
def server() -> Iterator[JwksServer]:
    jwks = JwksServer(signing_keys().jwks())
    yield jwks
    jwks.stop()


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
async def cache(server: JwksServer, clock: FakeClock) -> AsyncIterator[JwksCache]:
    jwks = JwksCache(server.url, ttl=TTL, min_refetch=INTERVAL, timeout=5.0, clock=clock)
    yield jwks
    await jwks.aclose()


async def rejected(cache: JwksCache, kid: str, alg: str = "ES256") -> AuthError:
    with pytest.raises(AuthError) as info:
        await cache.get_key(kid, alg)
    return info.value


def random_kid() -> str:
    return secrets.token_hex(8)


# --------------------------------------------------------------------------- which keys


async def test_only_p256_and_strong_rsa_keys_are_kept(cache: JwksCache) -> None:
    assert await cache.refresh()
    # Dropped: RSA-1024, EC P-384, the oct key, and the EC key published with its private part.
    assert cache.kids == {"ec-1", "rsa-1"}
    assert (await cache.get_key("ec-1", "ES256")).alg == "ES256"
    assert (await cache.get_key("rsa-1", "RS256")).alg == "RS256"


@pytest.mark.parametrize(
    "change",
    [
        {"use": "enc"},
        {"key_ops": ["encrypt"]},
        {"key_ops": "verify"},
        {"alg": "RS256"},
        {"alg": "HS256"},
        {"crv": "P-384"},
        {"kid": ""},
        {"kid": 7},
        {"x": "AAAA"},
    ],
)
def test_unfit_jwk_entries_are_ignored(change: dict[str, Any]) -> None:
    good = public_jwk(signing_keys().ec, "ec-1")
    assert parse_key(good) is not None
    assert parse_key({**good, **change}) is None


def test_a_jwk_with_private_parts_is_refused() -> None:
    private = json.loads(ECAlgorithm.to_jwk(ec.generate_private_key(ec.SECP256R1())))
    assert parse_key({**private, "kid": "leaked"}) is None


async def test_key_of_another_type_than_the_alg_is_refused(cache: JwksCache) -> None:
    assert (await rejected(cache, "ec-1", "RS256")).code == "unknown_key"
    assert (await rejected(cache, "rsa-1", "ES256")).code == "unknown_key"
    assert (await rejected(cache, "sym-1", "ES256")).code == "unknown_key"


# --------------------------------------------------------------------------- how often


async def test_fresh_keys_are_served_from_the_cache(cache: JwksCache, server: JwksServer) -> None:
    for _ in range(5):
        await cache.get_key("ec-1", "ES256")
        await cache.get_key("rsa-1", "RS256")
    assert server.hits == 1


async def test_unknown_kid_flood_fetches_at_most_once_per_interval(
    cache: JwksCache, server: JwksServer, clock: FakeClock
) -> None:
    for _ in range(200):
        assert (await rejected(cache, random_kid())).code == "unknown_key"
    assert server.hits == 1
    clock.advance(INTERVAL - 1)
    for _ in range(200):
        await rejected(cache, random_kid())
    assert server.hits == 1
    clock.advance(1)
    for _ in range(200):
        await rejected(cache, random_kid())
    assert server.hits == 2
    # The flood did not evict or break the real keys.
    await cache.get_key("ec-1", "ES256")
    assert server.hits == 2


async def test_concurrent_callers_share_one_fetch(cache: JwksCache, server: JwksServer) -> None:
    lookups = [cache.get_key(random_kid(), "ES256") for _ in range(200)]
    lookups += [cache.get_key("ec-1", "ES256") for _ in range(20)]
    results = await asyncio.gather(*lookups, return_exceptions=True)
    assert server.hits == 1
    assert sum(isinstance(r, AuthError) and r.code == "unknown_key" for r in results) == 200
    assert sum(not isinstance(r, BaseException) for r in results) == 20


async def test_keys_are_refetched_after_the_ttl(
    cache: JwksCache, server: JwksServer, clock: FakeClock
) -> None:
    await cache.get_key("ec-1", "ES256")
    clock.advance(TTL - 1)
    await cache.get_key("ec-1", "ES256")
    assert server.hits == 1
    clock.advance(1)
    await cache.get_key("ec-1", "ES256")
    assert server.hits == 2


async def test_rotation_new_key_found_within_an_interval_and_old_key_dropped_after_ttl(
    cache: JwksCache, server: JwksServer, clock: FakeClock
) -> None:
    await cache.get_key("ec-1", "ES256")
    new_key = ec.generate_private_key(ec.SECP256R1())
    server.document = {"keys": [public_jwk(new_key, "ec-2")]}
    assert (await rejected(cache, "ec-2")).code == "unknown_key"  # fetched just now
    clock.advance(INTERVAL)
    assert (await cache.get_key("ec-2", "ES256")).kid == "ec-2"
    # ec-1 was revoked; it stays usable only while the fetched set is fresh... which it is
    # not any more once the refetch has replaced it.
    assert (await rejected(cache, "ec-1")).code == "unknown_key"


async def test_refresh_is_an_immediate_purge(cache: JwksCache, server: JwksServer) -> None:
    await cache.get_key("ec-1", "ES256")
    server.document = {"keys": [public_jwk(signing_keys().rsa, "rsa-1")]}
    assert await cache.refresh()
    assert cache.kids == {"rsa-1"}
    assert server.hits == 2


# --------------------------------------------------------------------------- outages


async def test_warm_cache_survives_an_outage(
    cache: JwksCache, server: JwksServer, clock: FakeClock
) -> None:
    await cache.get_key("ec-1", "ES256")
    server.stop()
    clock.advance(TTL + 100)
    assert (await cache.get_key("ec-1", "ES256")).kid == "ec-1"
    assert cache.attempts == 2  # it did try, and kept the keys when that failed
    clock.advance(INTERVAL - 1)
    await cache.get_key("ec-1", "ES256")
    assert cache.attempts == 2  # failures are rate limited too
    clock.advance(1)
    await cache.get_key("ec-1", "ES256")
    assert cache.attempts == 3


async def test_cold_cache_outage_is_503_and_rate_limited(
    cache: JwksCache, server: JwksServer, clock: FakeClock
) -> None:
    server.stop()
    error = await rejected(cache, "ec-1")
    assert (error.code, error.status) == ("keys_unavailable", 503)
    assert error.headers == {"Retry-After": "60"}
    assert "WWW-Authenticate" not in error.headers
    clock.advance(10)
    assert (await rejected(cache, "ec-1")).headers == {"Retry-After": "50"}
    assert cache.attempts == 1


@pytest.mark.parametrize(
    ("status", "document"),
    [
        (500, {"keys": []}),
        (404, {"keys": []}),
        (302, b""),
        (200, b"<html>not json</html>"),
        (200, b"[1, 2]"),
        (200, {"keys": "nope"}),
        (200, b"{" * 100_000),
        (200, b'{"keys": [], "pad": "' + b"x" * 300_000 + b'"}'),
    ],
)
async def test_a_bad_answer_keeps_the_old_keys(
    cache: JwksCache, server: JwksServer, clock: FakeClock, status: int, document: Any
) -> None:
    await cache.get_key("ec-1", "ES256")
    server.status, server.document = status, document
    clock.advance(TTL)
    assert (await cache.get_key("ec-1", "ES256")).kid == "ec-1"
    assert (server.hits, cache.attempts) == (2, 2)


async def test_a_bad_answer_on_a_cold_cache_is_503(cache: JwksCache, server: JwksServer) -> None:
    server.status = 500
    assert (await rejected(cache, "ec-1")).code == "keys_unavailable"


async def test_a_silent_server_costs_at_most_the_timeout(clock: FakeClock) -> None:
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(8)  # accepts connections (kernel backlog), never answers
        port = listener.getsockname()[1]
        cache = JwksCache(f"http://127.0.0.1:{port}/jwks.json", timeout=0.2, clock=clock)
        try:
            assert (await rejected(cache, "ec-1")).code == "keys_unavailable"
        finally:
            await cache.aclose()
