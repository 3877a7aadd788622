"""The limiter without HTTP: exactness, sliding windows, memory bounds, failure modes, subjects,
client addresses behind proxies, and the Lua script's command set."""

from __future__ import annotations

import asyncio
import re
from collections.abc import Callable

import pytest

from pulseplan.errors import ConfigurationError
from pulseplan.settings import Settings
from pulseplan.web.ratelimit import BackendUnavailable
from pulseplan.web.ratelimit import GroupPolicy
from pulseplan.web.ratelimit import Limit
from pulseplan.web.ratelimit import MemoryBackend
from pulseplan.web.ratelimit import RateLimiter
from pulseplan.web.ratelimit import RateLimiterUnavailable
from pulseplan.web.ratelimit import TrustedProxies
from pulseplan.web.ratelimit import Window
from pulseplan.web.ratelimit.client_ip import parse_networks
from pulseplan.web.ratelimit.policy import policies_from_settings
from pulseplan.web.ratelimit.redis_backend import SLIDING_WINDOW_LOG

SECRET = b"test-ratelimit-secret"


class Clock:
    """Injected wall clock: tests move time, nobody sleeps."""

    def __init__(self, now: float = 1_700_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def limiter(
    *specs: tuple[str, str], clock: Clock | None = None, mode: str = "open", **kwargs: object
) -> RateLimiter:
    policies = {
        name: GroupPolicy(name, Limit.parse(spec), mode)  # type: ignore[arg-type]
        for name, spec in specs
    }
    return RateLimiter(policies, secret=SECRET, clock=clock or Clock(), **kwargs)  # type: ignore[arg-type]


class DownBackend:
    """A shared backend that never answers (Redis unreachable)."""

    name = "redis"

    def __init__(self) -> None:
        self.calls = 0

    async def hit(self, key: str, limit: Limit, now_ms: int, *, record: bool = True) -> Window:
        self.calls += 1
        raise BackendUnavailable("ConnectionError")

    async def aclose(self) -> None:
        return None


# --------------------------------------------------------------------------- limits and policies


def test_limit_parsing() -> None:
    assert Limit.parse("120/60") == Limit(120, 60)
    assert Limit.parse("120/60").window_ms == 60_000
    for bad in ("120", "0/60", "5/0", "a/b", "-1/5", "5/60/1"):
        with pytest.raises(ValueError, match="rate limit"):
            Limit.parse(bad)


def test_policies_from_settings_defaults_and_overrides(
    make_settings: Callable[..., Settings],
) -> None:
    defaults = policies_from_settings(make_settings())
    assert {name: str(p.limit) for name, p in defaults.items()} == {
        "tokens": "120/60",
        "oauth_start": "20/60",
        "oauth_callback": "60/60",
        "agent": "600/60",
        "auth_failures": "60/300",
        "default": "300/60",
    }
    assert {n for n, p in defaults.items() if p.failure_mode == "closed"} == {"oauth_callback"}

    everything_closed = policies_from_settings(
        make_settings(
            RATE_LIMIT_FAILURE_MODE="closed",
            RATE_LIMIT_FAILURE_MODE_TOKENS="open",
            RATE_LIMIT_TOKENS="5/10",
        )
    )
    assert everything_closed["tokens"] == GroupPolicy("tokens", Limit(5, 10), "open")
    assert everything_closed["agent"].failure_mode == "closed"
    assert everything_closed["default"].failure_mode == "closed"


def test_malformed_limit_settings_are_refused(make_settings: Callable[..., Settings]) -> None:
    with pytest.raises(ValueError, match="rate_limit_tokens"):
        make_settings(RATE_LIMIT_TOKENS="lots")
    with pytest.raises(ValueError, match="rate_limit_failure_mode"):
        make_settings(RATE_LIMIT_FAILURE_MODE="sometimes")


# --------------------------------------------------------------------------- exactness


async def test_in_process_limiter_is_exact_under_concurrency() -> None:
    rl = limiter(("tokens", "50/60"))
    decisions = await asyncio.gather(*(rl.hit("tokens", "user:a") for _ in range(200)))
    assert sum(d.allowed for d in decisions) == 50
    assert rl.stats[("tokens", "allowed")] == 50
    assert rl.stats[("tokens", "rejected")] == 150


async def test_requests_in_the_same_millisecond_all_count() -> None:
    rl = limiter(("tokens", "10/60"))  # the clock never moves
    decisions = [await rl.hit("tokens", "user:a") for _ in range(11)]
    assert [d.remaining for d in decisions[:10]] == list(range(9, -1, -1))
    assert not decisions[10].allowed


# --------------------------------------------------------------------------- the window slides


async def test_window_slides_no_boundary_burst() -> None:
    """50 requests at t=59s and 50 at t=61s: a fixed 60s window would allow all 100."""
    clock = Clock(1_700_000_000.0)  # a multiple of 60: t=0 is a fixed-window boundary
    rl = limiter(("tokens", "50/60"), clock=clock)
    clock.now += 59
    first = [await rl.hit("tokens", "user:a") for _ in range(50)]
    clock.now += 2  # t=61: a new fixed window would have begun at t=60
    second = [await rl.hit("tokens", "user:a") for _ in range(50)]
    assert all(d.allowed for d in first)
    assert not any(d.allowed for d in second)
    assert second[0].retry_after == 58  # the t=59 burst leaves the window at t=119
    clock.now += 58  # t=119: exactly one window after the first burst
    assert (await rl.hit("tokens", "user:a")).allowed


async def test_rejected_requests_are_not_counted() -> None:
    clock = Clock()
    rl = limiter(("tokens", "3/10"), clock=clock)
    for _ in range(3):
        await rl.hit("tokens", "user:a")
    clock.now += 5
    for _ in range(20):  # hammering while refused does not extend the lock-out
        assert not (await rl.hit("tokens", "user:a")).allowed
    clock.now += 5
    assert (await rl.hit("tokens", "user:a")).allowed


async def test_decision_headers_and_reset() -> None:
    clock = Clock()
    rl = limiter(("tokens", "2/60"), clock=clock)
    first = await rl.hit("tokens", "user:a")
    assert first.headers() == {
        "X-RateLimit-Limit": "2",
        "X-RateLimit-Remaining": "1",
        "X-RateLimit-Reset": "60",
    }
    clock.now += 10.5
    await rl.hit("tokens", "user:a")
    refused = await rl.hit("tokens", "user:a")
    assert refused.headers() == {
        "X-RateLimit-Limit": "2",
        "X-RateLimit-Remaining": "0",
        "X-RateLimit-Reset": "50",
        "Retry-After": "50",
    }


async def test_peek_counts_nothing() -> None:
    rl = limiter(("auth_failures", "2/60"))
    for _ in range(5):
        assert (await rl.peek("auth_failures", "ip:1")).allowed
    await rl.hit("auth_failures", "ip:1")
    await rl.hit("auth_failures", "ip:1")
    assert not (await rl.peek("auth_failures", "ip:1")).allowed


async def test_groups_and_subjects_are_independent() -> None:
    rl = limiter(("tokens", "1/60"), ("agent", "1/60"))
    assert (await rl.hit("tokens", "user:a")).allowed
    assert not (await rl.hit("tokens", "user:a")).allowed
    assert (await rl.hit("tokens", "user:b")).allowed
    assert (await rl.hit("agent", "user:a")).allowed


def test_keys_hash_the_subject() -> None:
    rl = limiter(("tokens", "1/60"), prefix="pulseplan:rl:")
    key = rl.key("tokens", "ip:203.0.113.9")
    assert re.fullmatch(r"pulseplan:rl:tokens:[0-9a-f]{32}", key)
    assert "203.0.113.9" not in key
    assert key != rl.key("tokens", "ip:203.0.113.10")
    other_secret = RateLimiter(rl.policies, secret=b"another secret", prefix="pulseplan:rl:")
    assert other_secret.key("tokens", "ip:203.0.113.9") != key


# --------------------------------------------------------------------------- memory bounds


async def test_memory_backend_forgets_idle_subjects() -> None:
    clock = Clock()
    backend = MemoryBackend()
    rl = limiter(("default", "5/60"), clock=clock, backend=backend)
    for n in range(100):
        await rl.hit("default", f"ip:{n}")
    assert len(backend) == 100
    clock.now += 61
    await rl.hit("default", "ip:newcomer")
    assert len(backend) == 1
    assert backend.entries == 1


async def test_memory_backend_is_bounded() -> None:
    backend = MemoryBackend(max_entries=50)
    rl = limiter(("default", "10/60"), backend=backend)
    for n in range(40):
        for _ in range(3):
            await rl.hit("default", f"ip:{n}")
    assert backend.entries <= 50
    assert backend.evicted > 0
    # The least recently counted subjects go first; the most recent keep their history.
    assert (await rl.hit("default", "ip:39")).remaining == 6
    assert (await rl.hit("default", "ip:0")).remaining == 9


# --------------------------------------------------------------------------- backend down


async def test_open_groups_fall_back_to_per_process_limits(logs: list[str]) -> None:
    down = DownBackend()
    rl = limiter(("tokens", "2/60"), backend=down, mode="open")
    decisions = [await rl.hit("tokens", "user:a") for _ in range(3)]
    assert [d.allowed for d in decisions] == [True, True, False]
    assert {d.backend for d in decisions} == {"memory-fallback"}
    assert rl.stats[("tokens", "failed_open")] == 3
    warnings = [line for line in logs if "rate limiter backend redis unavailable" in line]
    assert len(warnings) == 1  # the log line is itself rate limited
    assert "group tokens fails open" in warnings[0]


async def test_closed_groups_refuse_while_the_backend_is_down(logs: list[str]) -> None:
    rl = limiter(("oauth_callback", "100/60"), backend=DownBackend(), mode="closed")
    for _ in range(3):
        with pytest.raises(RateLimiterUnavailable):
            await rl.hit("oauth_callback", "ip:1")
    assert rl.stats[("oauth_callback", "failed_closed")] == 3
    assert sum("group oauth_callback fails closed" in line for line in logs) == 1


async def test_each_group_reports_its_own_outage(logs: list[str]) -> None:
    # An open group logging first must not hide that another group now refuses requests.
    policies = {
        "tokens": GroupPolicy("tokens", Limit.parse("100/60"), "open"),
        "oauth_callback": GroupPolicy("oauth_callback", Limit.parse("100/60"), "closed"),
    }
    rl = RateLimiter(policies, secret=SECRET, clock=Clock(), backend=DownBackend())
    for _ in range(2):
        await rl.hit("tokens", "user:a")
        with pytest.raises(RateLimiterUnavailable):
            await rl.hit("oauth_callback", "ip:1")
    lines = [line for line in logs if "rate limiter backend redis unavailable" in line]
    assert sum("group tokens fails open" in line for line in lines) == 1
    assert sum("group oauth_callback fails closed" in line for line in lines) == 1


# --------------------------------------------------------------------------- client address


def test_forwarded_for_is_ignored_from_untrusted_peers() -> None:
    proxies = TrustedProxies(parse_networks(["10.0.0.0/8"]))
    assert proxies.client("203.0.113.5", ["198.51.100.1"]) == "203.0.113.5"


def test_forwarded_for_from_a_trusted_proxy_takes_the_right_most_untrusted_hop() -> None:
    proxies = TrustedProxies(parse_networks(["10.0.0.0/8", "127.0.0.1"]))
    # The client made up the first entry; our proxies appended the rest.
    header = ["6.6.6.6, 198.51.100.7", "10.1.2.3"]
    assert proxies.client("127.0.0.1", header) == "198.51.100.7"
    assert proxies.client("10.0.0.1", []) == "10.0.0.1"
    assert proxies.client("10.0.0.1", ["not-an-ip, 10.9.9.9"]) == "10.9.9.9"
    assert proxies.client("10.0.0.1", ["[2001:db8::1]:443"]) == "2001:db8::/64"


def test_addresses_are_normalized() -> None:
    proxies = TrustedProxies()
    assert proxies.client("2001:db8:1:2:aaaa::1") == proxies.client("2001:db8:1:2:bbbb::9")
    assert proxies.client("::ffff:192.0.2.1") == "192.0.2.1"
    assert proxies.client(None) == "unknown"
    assert proxies.client("<local>") == "unknown"


def test_trusted_proxies_must_be_addresses() -> None:
    with pytest.raises(ConfigurationError, match="TRUSTED_PROXIES"):
        parse_networks(["10.0.0.0/8", "proxy.internal"])


# --------------------------------------------------------------------------- the Lua script


def test_lua_script_uses_only_declared_keys_and_a_small_command_set() -> None:
    """Upstash compatibility (security-checklist C5.9): every key via KEYS, few commands."""
    commands = set(re.findall(r"redis\.call\('([A-Z]+)'", SLIDING_WINDOW_LOG))
    assert commands == {"ZREMRANGEBYSCORE", "ZCARD", "ZADD", "ZRANGE", "PEXPIRE"}
    for call in re.findall(r"redis\.call\('[A-Z]+', (\w+)", SLIDING_WINDOW_LOG):
        assert call == "key"
    assert "local key = KEYS[1]" in SLIDING_WINDOW_LOG
    assert "TIME" not in SLIDING_WINDOW_LOG  # time comes from ARGV
