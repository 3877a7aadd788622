"""Quart integration: route decorators that authenticate the caller.

``init_app`` builds a :class:`~pulseplan.auth.verifier.JwtVerifier` from the runtime's settings
and keeps it at ``app.extensions["pulseplan.auth"]``. Routes then say who may call them::

    @blueprint.get("/api/v1/tokens/connections")
    @require_user
    async def connections() -> ...:
        user = current_user()

    @blueprint.get("/api/v1/agent/users/<user_id>/tokens/<provider>")
    @require_agent
    async def agent_token(user_id: str, provider: str) -> ...:
        current_agent().check_access(provider)

Credentials come only from ``Authorization: Bearer``; never from the query string (a URL ends
up in logs and browser history). Failures raise :class:`AuthError`, which the JSON error handler
turns into ``{"detail", "code", "request_id"}`` with ``WWW-Authenticate: Bearer``.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Awaitable
from collections.abc import Callable
from dataclasses import dataclass
from typing import Final
from typing import ParamSpec
from typing import TypeVar

from quart import Quart
from quart import current_app
from quart import g
from quart import request
from quart_schema import security_scheme

from pulseplan.auth.agents import AgentStore
from pulseplan.auth.agents import agent_pepper
from pulseplan.auth.agents import authenticate_agent
from pulseplan.auth.errors import AuthError
from pulseplan.auth.principals import Agent
from pulseplan.auth.principals import User
from pulseplan.auth.verifier import JwtVerifier
from pulseplan.runtime import Runtime
from pulseplan.storage.forwarded_jwt import forward_user_jwt

EXTENSION: Final = "pulseplan.auth"
#: Where the storage layer puts its :class:`AgentStore` implementation.
AGENTS_EXTENSION: Final = "pulseplan.agents"

P = ParamSpec("P")
R = TypeVar("R")
T = TypeVar("T")
_USER: Final = "pulseplan_user"
_AGENT: Final = "pulseplan_agent"
#: Exactly the characters ``str.isspace`` accepts, matched in C: a per-character generator
#: over a 1 KB JWT cost more than the rest of the header parsing, twice per request.
_SPACE: Final = re.compile(r"\s")


@dataclass
class AuthState:
    """Per-app authentication state, at ``app.extensions["pulseplan.auth"]``.

    :param agent_pepper: HMAC key for agent secrets; ``None`` when ``SECRET_KEY`` is unset.
    """

    verifier: JwtVerifier
    agent_pepper: bytes | None


def init_app(app: Quart) -> None:
    """Create the verifier from ``app.extensions["pulseplan"]`` settings; close it on shutdown.

    :raises ConfigurationError: the configured ``SUPABASE_JWT_SECRET`` is unsafe.
    """
    runtime: Runtime = app.extensions["pulseplan"]
    settings = runtime.settings
    state = AuthState(
        verifier=JwtVerifier.from_settings(settings),
        agent_pepper=agent_pepper(settings) if settings.secret("secret_key") else None,
    )
    app.extensions[EXTENSION] = state
    app.after_serving(state.verifier.aclose)


def auth_state(app: Quart | None = None) -> AuthState:
    """The :class:`AuthState` of ``app`` (default: the current app)."""
    state: AuthState = (app or current_app).extensions[EXTENSION]
    return state


def bearer_token() -> str:
    """The bearer credential of the current request.

    :raises AuthError: ``missing_token`` when there is no ``Authorization: Bearer`` header
        (the seed answered 403 here; RFC 6750 says 401), ``malformed_token`` when it is
        repeated or not a single token.
    """
    values = request.headers.getlist("Authorization")
    if not values:
        raise AuthError("missing_token")
    if len(values) > 1:
        raise AuthError("malformed_token")
    scheme, _, credential = values[0].strip().partition(" ")
    if scheme.lower() != "bearer":
        raise AuthError("missing_token")
    credential = credential.strip()
    if not credential or _SPACE.search(credential):
        raise AuthError("malformed_token")
    return credential


async def authenticate_user() -> User:
    """Verify the current request's bearer JWT once and remember the :class:`User`."""
    user = _remembered(_USER, User)
    if user is None:
        user = await auth_state().verifier.verify(bearer_token())
        _remember(_USER, user)
    return user


async def authenticate_agent_request() -> Agent:
    """Verify the current request's agent secret once and remember the :class:`Agent`.

    :raises AuthError: bad credential (401), or ``agents_unavailable`` (503) when no
        :class:`AgentStore` is wired or ``SECRET_KEY`` is unset.
    """
    agent = _remembered(_AGENT, Agent)
    if agent is None:
        secret = bearer_token()
        store: AgentStore | None = current_app.extensions.get(AGENTS_EXTENSION)
        pepper = auth_state().agent_pepper
        if store is None or pepper is None:
            raise AuthError("agents_unavailable")
        agent = await authenticate_agent(store, secret, pepper)
        _remember(_AGENT, agent)
    return agent


def current_user() -> User:
    """The user of a :func:`require_user` route."""
    user = _remembered(_USER, User)
    if user is None:
        raise RuntimeError("current_user() called outside a @require_user route")
    return user


def current_agent() -> Agent:
    """The agent of a :func:`require_agent` route."""
    agent = _remembered(_AGENT, Agent)
    if agent is None:
        raise RuntimeError("current_agent() called outside a @require_agent route")
    return agent


def _remember(name: str, principal: object) -> None:
    # Keyed by the request object: Quart reuses an already active app context (and so its
    # ``g``) for a request, and a principal must never carry over to another request.
    setattr(g, name, (request._get_current_object(), principal))  # type: ignore[attr-defined]


def _remembered(name: str, kind: type[T]) -> T | None:
    entry = g.get(name)
    if entry is None or entry[0] is not request._get_current_object():  # type: ignore[attr-defined]
        return None
    principal = entry[1]
    return principal if isinstance(principal, kind) else None


def require_user(func: Callable[P, Awaitable[R]]) -> Callable[P, Awaitable[R]]:
    """Route decorator: a valid Supabase user JWT is required (see :func:`current_user`)."""

    @functools.wraps(func)
    async def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        user = await authenticate_user()
        # The verified JWT rides along for storage that forwards it (Supabase REST: the user's
        # own queries then run under row-level security); unbound when the handler returns.
        with forward_user_jwt(user.id, bearer_token()):
            return await func(*args, **kwargs)

    return security_scheme([{"user": []}])(wrapper)


def require_agent(func: Callable[P, Awaitable[R]]) -> Callable[P, Awaitable[R]]:
    """Route decorator: a valid, unrevoked agent secret is required (see
    :func:`current_agent`; provider limits are checked by the route with
    :meth:`Agent.check_access`)."""

    @functools.wraps(func)
    async def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        await authenticate_agent_request()
        return await func(*args, **kwargs)

    return security_scheme([{"agent": []}])(wrapper)
