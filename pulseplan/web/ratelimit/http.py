"""Quart integration: which group a request belongs to, who its subject is, 429s and headers.

Design, kept to one hook: a ``before_request`` handler limits every request before its view
runs. For a route secured by :func:`~pulseplan.auth.guard.require_user` or
:func:`~pulseplan.auth.guard.require_agent` (read from the security scheme those decorators
record for OpenAPI) the handler authenticates the caller itself, through the same guard
functions: the guard remembers the verified principal for the request, so the view does not
verify twice, and the subject is always a *verified* identity (JWT ``sub`` or agent id), never
something read from an unverified token. In order:

1. the client IP's ``auth_failures`` window is peeked: an address that failed authentication
   too often gets 429 without its credential being looked at (token guessing is throttled);
2. the caller is authenticated; a 401 counts one failure for the IP and is re-raised;
3. the verified subject is counted in the route's group.

Unsecured routes (the OAuth callback, providers, docs, unknown paths) count the client IP.
Health probes, ``/metrics`` and static files are exempt. New routes can choose with
:func:`limit_group` / :func:`exempt`.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any
from typing import Final
from typing import TypeVar

from quart import Quart
from quart import Response
from quart import current_app
from quart import g
from quart import request
from quart_schema.openapi import QUART_SCHEMA_SECURITY_ATTRIBUTE

from pulseplan.auth.errors import AuthError
from pulseplan.auth.guard import authenticate_agent_request
from pulseplan.auth.guard import authenticate_user
from pulseplan.cache.client import RedisClient
from pulseplan.cache.client import RedisUnavailable
from pulseplan.errors import ServiceUnavailable
from pulseplan.errors import TooManyRequests
from pulseplan.runtime import CheckResult
from pulseplan.runtime import Runtime
from pulseplan.web.ratelimit.client_ip import TrustedProxies
from pulseplan.web.ratelimit.client_ip import parse_networks
from pulseplan.web.ratelimit.limiter import Decision
from pulseplan.web.ratelimit.limiter import RateLimiter
from pulseplan.web.ratelimit.limiter import RateLimiterUnavailable
from pulseplan.web.ratelimit.policy import AGENT
from pulseplan.web.ratelimit.policy import AUTH_FAILURES
from pulseplan.web.ratelimit.policy import DEFAULT
from pulseplan.web.ratelimit.policy import GROUPS
from pulseplan.web.ratelimit.policy import OAUTH_CALLBACK
from pulseplan.web.ratelimit.policy import OAUTH_START
from pulseplan.web.ratelimit.policy import TOKENS
from pulseplan.web.ratelimit.policy import policies_from_settings
from pulseplan.web.ratelimit.redis_backend import RedisBackend

EXTENSION: Final = "pulseplan.ratelimit"
PROXIES_EXTENSION: Final = "pulseplan.proxies"
GROUP_ATTRIBUTE: Final = "_pulseplan_rate_limit_group"
_EXEMPT: Final = "exempt"
_DECISION: Final = "pulseplan_rate_limit"

ENDPOINT_GROUPS: Final = {"oauth.callback": OAUTH_CALLBACK}
BLUEPRINT_GROUPS: Final[dict[str, str | None]] = {
    "tokens": TOKENS,
    "oauth": OAUTH_START,
    "agent": AGENT,
    "health": None,
}
EXEMPT_PATHS: Final = frozenset({"/health", "/metrics"})
EXEMPT_PREFIXES: Final = ("/api/v1/health/", "/static/")

F = TypeVar("F", bound=Callable[..., Any])


def limit_group(name: str) -> Callable[[F], F]:
    """Route decorator: count this route in group ``name`` (one of :data:`GROUPS`)."""
    if name not in GROUPS:
        raise ValueError(f"unknown rate limit group {name!r}")

    def decorator(func: F) -> F:
        setattr(func, GROUP_ATTRIBUTE, name)
        return func

    return decorator


def exempt(func: F) -> F:
    """Route decorator: never rate limit this route (probes, metrics scrapes)."""
    setattr(func, GROUP_ATTRIBUTE, _EXEMPT)
    return func


def init_app(app: Quart) -> None:
    """Install the limiter when ``settings.rate_limiting`` (``ENABLE_RATE_LIMITING``) is on.

    :raises ConfigurationError: ``TRUSTED_PROXIES`` holds something that is not an address.
    """
    runtime: Runtime = app.extensions["pulseplan"]
    settings = runtime.settings
    # Always installed: other layers (logs) may want the client address too.
    app.extensions[PROXIES_EXTENSION] = TrustedProxies(parse_networks(settings.trusted_proxies))
    if not settings.rate_limiting:
        return
    limiter = build_limiter(runtime)
    app.extensions[EXTENSION] = limiter
    app.before_request(_limit)
    app.after_request(_add_headers)
    app.after_serving(limiter.aclose)


def build_limiter(runtime: Runtime, *, clock: Callable[[], float] = time.time) -> RateLimiter:
    """A limiter for ``runtime``'s settings: Redis when ``REDIS_URL`` is set, else in-process."""
    settings = runtime.settings
    # Every worker derives the same subject-hash key; dev setups without SECRET_KEY still work.
    secret = (settings.secret("secret_key") or "pulseplan-ratelimit").encode()
    policies = policies_from_settings(settings)
    if settings.redis_url is None:
        return RateLimiter(policies, secret=secret, clock=clock)
    # The cache layer's client (runtime.redis) when it exists: one pool per worker, not two.
    shared = runtime.redis
    client = shared if isinstance(shared, RedisClient) else RedisClient.from_settings(settings)
    backend = RedisBackend(client, owned=client is not shared)
    if client is not shared:
        runtime.add_check("rate_limiter", _redis_check(client), critical=False)
    return RateLimiter(policies, backend, secret=secret, prefix=client.key("rl", ""), clock=clock)


def _redis_check(client: RedisClient) -> Callable[[], Any]:
    async def check() -> CheckResult:
        try:
            await client.ping()
        except RedisUnavailable as exc:
            return CheckResult("degraded", f"{client.location}: {exc}; limits are per process")
        return CheckResult("ok", client.location)

    return check


def current_limiter(app: Quart | None = None) -> RateLimiter | None:
    """The app's limiter, or ``None`` when rate limiting is off."""
    limiter: RateLimiter | None = (app or current_app).extensions.get(EXTENSION)
    return limiter


def client_address() -> str:
    """The current request's client address (see :mod:`.client_ip`)."""
    proxies: TrustedProxies = current_app.extensions.get(PROXIES_EXTENSION) or TrustedProxies()
    peer = request.scope.get("client")
    return proxies.client(peer[0] if peer else None, request.headers.getlist("X-Forwarded-For"))


def request_group() -> str | None:
    """The group of the current request, ``None`` when it is exempt."""
    path = request.path
    if path in EXEMPT_PATHS or path.startswith(EXEMPT_PREFIXES) or request.endpoint == "static":
        return None
    if request.method == "OPTIONS":
        return DEFAULT
    view = current_app.view_functions.get(request.endpoint or "")
    chosen = getattr(view, GROUP_ATTRIBUTE, None)
    if chosen is not None:
        return None if chosen == _EXEMPT else str(chosen)
    if request.endpoint in ENDPOINT_GROUPS:
        return ENDPOINT_GROUPS[request.endpoint]
    return BLUEPRINT_GROUPS.get(request.blueprint or "", DEFAULT)


def _security(view: object) -> str | None:
    """``"user"`` or ``"agent"`` for routes behind the auth guard, else ``None``."""
    for requirement in getattr(view, QUART_SCHEMA_SECURITY_ATTRIBUTE, None) or ():
        for name in requirement:
            if name in ("user", "agent"):
                return str(name)
    return None


async def _limit() -> None:
    limiter = current_limiter()
    group = request_group()
    if limiter is None or group is None:
        return
    ip = "ip:" + client_address()
    view = current_app.view_functions.get(request.endpoint or "")
    scheme = None if request.method == "OPTIONS" else _security(view)
    try:
        if scheme is None:
            _enforce(await limiter.hit(group, ip))
            return
        _enforce(await limiter.peek(AUTH_FAILURES, ip))
        try:
            if scheme == "user":
                subject = "user:" + (await authenticate_user()).id
            else:
                subject = "agent:" + (await authenticate_agent_request()).id
        except AuthError as exc:
            if exc.status == 401:
                _remember(await limiter.hit(AUTH_FAILURES, ip))
            raise
        _enforce(await limiter.hit(group, subject))
    except RateLimiterUnavailable as exc:
        raise ServiceUnavailable(
            "rate limiting is temporarily unavailable; retry shortly",
            code="rate_limiter_unavailable",
            headers={"Retry-After": str(exc.retry_after)},
        ) from None


def _enforce(decision: Decision) -> None:
    _remember(decision)
    if not decision.allowed:
        raise TooManyRequests(
            f"too many requests; retry in {decision.retry_after} seconds",
            headers=decision.headers(),
        )


def _remember(decision: Decision) -> None:
    # Keyed by the request object, like the auth guard: ``g`` can outlive one request.
    setattr(g, _DECISION, (request._get_current_object(), decision))  # type: ignore[attr-defined]


def remembered_decision() -> Decision | None:
    """The limiter's decision for the current request, if it was limited."""
    entry = g.get(_DECISION)
    if entry is None or entry[0] is not request._get_current_object():  # type: ignore[attr-defined]
        return None
    decision: Decision = entry[1]
    return decision


async def _add_headers(response: Response) -> Response:
    decision = remembered_decision()
    if decision is not None:
        response.headers.update(decision.headers())
    return response
