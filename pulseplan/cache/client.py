"""One pooled ``redis.asyncio`` client per app, with a small circuit breaker.

Rules every user of this module keeps (the seed broke each of them, seed-system.md §5):

* every key is built with :meth:`RedisClient.key`, so it lives under ``REDIS_KEY_PREFIX``
  (``pulseplan:`` by default) and can be found without a ``KEYS`` scan;
* every key is written with a TTL (``SET ... PX``, ``PEXPIRE`` in the same transaction or script);
* no ``KEYS`` or ``SCAN`` anywhere (a test greps this package);
* the URL is never logged: it carries the password. Logs and health details name only
  :attr:`RedisClient.location` (scheme, host, port, database).

Redis is an optimisation here, never the source of truth, so a failure must not fail a request.
:meth:`RedisClient.run` turns every Redis error into :class:`RedisUnavailable`, which callers
answer by using the database instead. The first failure of an outage is logged once and counted;
for ``REDIS_RETRY_INTERVAL`` seconds after a failure calls fail fast without touching the network
(a hung Redis must not add its timeout to every request), then the next call tries again. The
health check pings regardless, so recovery is noticed without a restart.
"""

from __future__ import annotations

import ssl
import time
from collections.abc import Awaitable
from collections.abc import Callable
from collections.abc import Sequence
from typing import Any
from typing import TypeVar
from urllib.parse import urlsplit

from loguru import logger
from redis.asyncio import BlockingConnectionPool
from redis.asyncio import Redis
from redis.asyncio.connection import parse_url
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.commands.core import AsyncScript
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisError

from pulseplan.errors import ConfigurationError
from pulseplan.settings import Settings

T = TypeVar("T")

#: What "Redis did not work" looks like: protocol and server errors, sockets, timeouts.
REDIS_ERRORS: tuple[type[BaseException], ...] = (RedisError, OSError, TimeoutError)
SCHEMES = ("redis", "rediss", "unix")
DEFAULT_PREFIX = "pulseplan:"


class RedisUnavailable(Exception):
    """Redis could not serve this call; the caller falls back to the database.

    The message names the error type only: redis-py messages carry host names, never the
    password, but nothing here needs more than the type.
    """


def location(url: str) -> str:
    """``scheme://host:port/db`` of a Redis URL: safe to log (no user name, no password)."""
    try:
        parts = urlsplit(url)
        if parts.scheme == "unix":
            return f"unix://{parts.path}"
        host = parts.hostname or "localhost"
        port = parts.port or 6379
    except ValueError:
        return "redis (unparsable URL)"
    db = parts.path.strip("/") or "0"
    return f"{parts.scheme}://{host}:{port}/{db}"


def connection_kwargs(url: str) -> dict[str, Any]:
    """Parse ``REDIS_URL`` for the pool, refusing anything that weakens TLS.

    ``rediss://`` (Upstash and other hosted Redis) always verifies the server certificate and
    host name; query options that turn either off are refused instead of silently obeyed.

    :raises ConfigurationError: unsupported scheme, unparsable URL or disabled verification.
        The message never contains the URL.
    """
    scheme = url.split("://", 1)[0] if "://" in url else ""
    if scheme not in SCHEMES:
        raise ConfigurationError(
            [f"REDIS_URL must start with redis://, rediss:// or unix:// (got {scheme or 'none'!r})"]
        )
    try:
        kwargs: dict[str, Any] = dict(parse_url(url))
    except ValueError:
        raise ConfigurationError(["REDIS_URL could not be parsed"]) from None
    if scheme == "rediss":
        reqs = kwargs.get("ssl_cert_reqs", "required")
        if reqs not in ("required", ssl.CERT_REQUIRED) or kwargs.get("ssl_check_hostname") is False:
            raise ConfigurationError(
                ["REDIS_URL must not disable TLS certificate or host name verification"]
            )
        kwargs["ssl_cert_reqs"] = "required"
        kwargs["ssl_check_hostname"] = True
    return kwargs


class RedisClient:
    """The app's Redis: a lazily created pool, key naming, error accounting.

    Counters for the metrics layer: :attr:`errors` (failed calls), :attr:`outages` (transitions
    from up to down), :attr:`down` (currently failing), see :meth:`stats`.
    """

    def __init__(
        self,
        url: str,
        *,
        prefix: str = DEFAULT_PREFIX,
        socket_timeout: float = 1.0,
        connect_timeout: float = 1.0,
        max_connections: int = 50,
        retry_interval: float = 2.0,
    ):
        self._kwargs = connection_kwargs(url)
        self.location = location(url)
        self.prefix = prefix
        self.socket_timeout = socket_timeout
        self.connect_timeout = connect_timeout
        self.max_connections = max_connections
        self.retry_interval = retry_interval
        self.errors = 0
        self.outages = 0
        #: ``time.monotonic()`` of the last failed call, ``None`` before any failure.
        self.last_error_at: float | None = None
        self._down_since: float | None = None
        self._redis: Redis | None = None
        self._scripts: dict[str, AsyncScript] = {}
        self._closed = False

    @classmethod
    def from_settings(cls, settings: Settings) -> RedisClient:
        """The client ``REDIS_URL`` and the ``REDIS_*`` settings describe (not connected yet)."""
        url = settings.secret("redis_url")
        if not url:
            raise ConfigurationError(
                ["REDIS_URL is empty: unset it to run without Redis, or set a redis:// URL"]
            )
        return cls(
            url,
            prefix=settings.redis_key_prefix,
            socket_timeout=settings.redis_socket_timeout,
            connect_timeout=settings.redis_connect_timeout,
            max_connections=settings.redis_max_connections,
            retry_interval=settings.redis_retry_interval,
        )

    def __repr__(self) -> str:
        return f"RedisClient({self.location}, prefix={self.prefix!r})"

    # ------------------------------------------------------------------ keys

    def key(self, *parts: str) -> str:
        """A namespaced key: ``{prefix}{part}:{part}...``."""
        return self.prefix + ":".join(parts)

    # ------------------------------------------------------------------ the connection

    @property
    def redis(self) -> Redis:
        """The pooled client, created on first use (inside the serving event loop)."""
        if self._redis is None:
            pool = BlockingConnectionPool(
                **{
                    **self._kwargs,
                    "max_connections": self.max_connections,
                    # Waiting for a free pooled connection counts as "Redis is slow".
                    "timeout": self.connect_timeout,
                    "socket_timeout": self.socket_timeout,
                    "socket_connect_timeout": self.connect_timeout,
                    # One immediate retry on a dead pooled socket (Redis restarted); none on
                    # timeouts, so a hung Redis costs one socket timeout, not several.
                    "retry": Retry(NoBackoff(), 1, supported_errors=(RedisConnectionError,)),
                    "health_check_interval": 30,
                }
            )
            # from_pool: closing the client also closes (disconnects) the pool.
            self._redis = Redis.from_pool(pool)
        return self._redis

    @property
    def down(self) -> bool:
        """The last call failed and no call has succeeded since."""
        return self._down_since is not None

    @property
    def available(self) -> bool:
        """Worth trying now: up, or down for longer than the retry interval."""
        if self._closed:
            return False
        if self._down_since is None or self.last_error_at is None:
            return True
        return time.monotonic() - self.last_error_at >= self.retry_interval

    async def run(self, op: Callable[[Redis], Awaitable[T]]) -> T:
        """Run ``op`` against Redis, accounting for the outcome.

        :raises RedisUnavailable: closed, recently failing, or ``op`` failed.
        """
        if not self.available:
            raise RedisUnavailable("closed" if self._closed else "recently unreachable")
        return await self._attempt(op)

    async def script(self, source: str, keys: Sequence[str], args: Sequence[str | int]) -> Any:
        """Run a Lua script (EVALSHA, loading it again after a Redis restart's NOSCRIPT)."""

        async def call(redis: Redis) -> Any:
            script = self._scripts.get(source)
            if script is None:
                script = self._scripts[source] = redis.register_script(source)
            return await script(keys=list(keys), args=list(args), client=redis)

        return await self.run(call)

    async def ping(self) -> None:
        """Round trip, ignoring the breaker (the health check uses it to notice recovery).

        :raises RedisUnavailable: Redis did not answer.
        """
        if self._closed:
            raise RedisUnavailable("closed")

        async def ping(redis: Redis) -> None:
            await redis.ping()

        await self._attempt(ping)

    async def _attempt(self, op: Callable[[Redis], Awaitable[T]]) -> T:
        try:
            result = await op(self.redis)
        except REDIS_ERRORS as exc:
            self._failed(exc)
            raise RedisUnavailable(type(exc).__name__) from None
        self._succeeded()
        return result

    def _failed(self, exc: BaseException) -> None:
        now = time.monotonic()
        self.errors += 1
        self.last_error_at = now
        if self._down_since is None:
            self._down_since = now
            self.outages += 1
            logger.warning(
                "Redis at {} is unreachable ({}); serving from the database without cache, "
                "locks and OAuth flows use the database until it returns",
                self.location,
                type(exc).__name__,
            )

    def _succeeded(self) -> None:
        if self._down_since is not None:
            logger.info(
                "Redis at {} is reachable again after {:.1f}s",
                self.location,
                time.monotonic() - self._down_since,
            )
            self._down_since = None

    # ------------------------------------------------------------------ lifecycle

    async def open(self) -> None:
        """Check the connection at start-up; a Redis that is down only degrades the service."""
        self._closed = False
        try:
            await self.ping()
        except RedisUnavailable:
            return  # already logged once by _failed
        logger.info("Redis at {} connected (prefix {})", self.location, self.prefix)

    async def close(self) -> None:
        """Close the pool; later calls fail fast (and quietly) with :class:`RedisUnavailable`."""
        self._closed = True
        redis, self._redis = self._redis, None
        self._scripts.clear()
        if redis is not None:
            await redis.aclose()

    def stats(self) -> dict[str, float | int | bool]:
        """Counters for metrics: errors, outages, whether Redis is down now."""
        return {"errors": self.errors, "outages": self.outages, "down": self.down}
