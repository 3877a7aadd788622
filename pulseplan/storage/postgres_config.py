"""Options of the PostgreSQL backend, read from ``DATABASE_URL`` query parameters.

The URL is the one setting every platform already hands over (Supabase shows it ready to copy),
so PulsePlan's own options ride along in it as ``pulseplan_*`` query parameters and are removed
before asyncpg sees the URL (asyncpg would send unknown parameters to the server as settings):

``pulseplan_pooler=auto|transaction|session``
    ``transaction`` for a transaction-mode pooler (Supabase Supavisor port 6543, PgBouncer
    ``pool_mode=transaction``): asyncpg's prepared-statement cache is turned off, because such a
    pooler hands each transaction to any server connection. ``auto`` (default) picks
    ``transaction`` for port 6543 or ``pgbouncer=true`` (Prisma's flag), ``session`` otherwise.
``pulseplan_rls=auto|on|off``
    Run user-scoped queries as role ``authenticated`` with the user's JWT claims (see
    ``docs/postgres.md``). ``auto``: on when the database has the Supabase pieces, off with a
    warning otherwise; ``on``: refuse to serve user data without them. Unset, it is ``on`` in
    production and for a Supabase host (fail closed where RLS is promised), ``auto`` otherwise.
``pulseplan_pool_min_size`` / ``pulseplan_pool_max_size`` (default 0 / 10)
``pulseplan_connect_timeout`` (seconds, default 3; libpq's ``connect_timeout`` is honoured too)
``pulseplan_command_timeout`` (seconds, default 10)

Error messages name the parameter, never the URL (it holds the password).
"""

from __future__ import annotations

from dataclasses import dataclass
from dataclasses import field
from typing import Literal
from typing import cast
from typing import get_args
from urllib.parse import parse_qsl
from urllib.parse import urlencode
from urllib.parse import urlsplit
from urllib.parse import urlunsplit

from pulseplan.errors import ConfigurationError

PoolerMode = Literal["auto", "transaction", "session"]
RlsMode = Literal["auto", "on", "off"]

#: Supabase Supavisor's transaction-mode port.
SUPAVISOR_TRANSACTION_PORT = 6543
PREFIX = "pulseplan_"
POOLERS: tuple[str, ...] = get_args(PoolerMode)
RLS_MODES: tuple[str, ...] = get_args(RlsMode)
KNOWN = frozenset(
    PREFIX + name
    for name in (
        "pooler",
        "rls",
        "pool_min_size",
        "pool_max_size",
        "connect_timeout",
        "command_timeout",
    )
)


@dataclass(frozen=True)
class PostgresOptions:
    """Resolved options. ``dsn`` is what asyncpg gets (our parameters stripped)."""

    dsn: str = field(repr=False)
    pooler: Literal["transaction", "session"] = "session"
    rls: RlsMode = "auto"
    min_size: int = 0
    max_size: int = 10
    connect_timeout: float = 3.0
    command_timeout: float = 10.0
    #: Readiness must answer within a second when PostgreSQL is down.
    ping_timeout: float = 1.0

    @property
    def statement_cache_size(self) -> int:
        """asyncpg's prepared-statement cache: off behind a transaction-mode pooler."""
        return 0 if self.pooler == "transaction" else 100


def _number(name: str, raw: str, *, low: float, high: float) -> float:
    try:
        value = float(raw)
    except ValueError:
        raise ConfigurationError([f"DATABASE_URL parameter {name} must be a number"]) from None
    if not low <= value <= high:
        raise ConfigurationError([f"DATABASE_URL parameter {name} must be in [{low:g}, {high:g}]"])
    return value


def _choice(name: str, raw: str, allowed: tuple[str, ...]) -> str:
    value = raw.strip().lower()
    if value not in allowed:
        raise ConfigurationError(
            [f"DATABASE_URL parameter {name} must be one of: {', '.join(allowed)}"]
        )
    return value


def _port(netloc: str) -> int | None:
    try:
        return urlsplit(f"//{netloc}").port
    except ValueError:  # several hosts ("h1:5432,h2:5432") or a bad port: no guess
        return None


def _supabase_host(netloc: str) -> bool:
    host = (urlsplit(f"//{netloc}").hostname or "").lower()
    return host.endswith((".supabase.co", ".supabase.com"))


def parse_options(
    url: str,
    *,
    production: bool = False,
    pooler: PoolerMode | None = None,
    rls: RlsMode | None = None,
    min_size: int | None = None,
    max_size: int | None = None,
    connect_timeout: float | None = None,
    command_timeout: float | None = None,
) -> PostgresOptions:
    """Split ``url`` into asyncpg's DSN and our options; keyword arguments win over the URL.

    ``production`` only changes the default of ``pulseplan_rls`` (see the module docstring).
    """
    parts = urlsplit(url)
    if parts.scheme not in ("postgresql", "postgres"):
        raise ConfigurationError(["DATABASE_URL must start with postgresql:// or postgres://"])
    ours: dict[str, str] = {}
    kept: list[tuple[str, str]] = []
    for key, value in parse_qsl(parts.query, keep_blank_values=True):
        if key.startswith(PREFIX) or key in ("pgbouncer", "connect_timeout"):
            ours[key] = value
        else:
            kept.append((key, value))
    unknown = sorted(k for k in ours if k.startswith(PREFIX) and k not in KNOWN)
    if unknown:
        raise ConfigurationError([f"unknown DATABASE_URL parameter(s): {', '.join(unknown)}"])
    # Rebuild only when something was taken out, so the URL otherwise reaches asyncpg verbatim.
    dsn = urlunsplit(parts._replace(query=urlencode(kept))) if ours else url

    def number(name: str, given: float | None, default: str, low: float, high: float) -> float:
        if given is not None:
            return given
        return _number(PREFIX + name, ours.get(PREFIX + name, default), low=low, high=high)

    mode = pooler or cast(
        PoolerMode, _choice(PREFIX + "pooler", ours.get(PREFIX + "pooler", "auto"), POOLERS)
    )
    if mode == "auto":
        bouncer = ours.get("pgbouncer", "").lower() in ("1", "true", "yes")
        transaction = bouncer or _port(parts.netloc) == SUPAVISOR_TRANSACTION_PORT
        mode = "transaction" if transaction else "session"
    # Unset, RLS is required where it is promised: in production (DESIGN.md §6: on Postgres a
    # user reaches only their rows by RLS too) and on Supabase, which always has the pieces.
    # Plain PostgreSQL in production must opt out explicitly with pulseplan_rls=off.
    implicit = "on" if production or _supabase_host(parts.netloc) else "auto"
    scoping = rls or cast(
        RlsMode, _choice(PREFIX + "rls", ours.get(PREFIX + "rls", implicit), RLS_MODES)
    )
    low_size = int(number("pool_min_size", min_size, "0", 0, 100))
    high_size = int(number("pool_max_size", max_size, "10", 1, 200))
    if low_size > high_size:
        raise ConfigurationError(["DATABASE_URL pool min size is larger than its max size"])
    libpq_connect = ours.get("connect_timeout", "3")
    return PostgresOptions(
        dsn=dsn,
        pooler="transaction" if mode == "transaction" else "session",
        rls=scoping,
        min_size=low_size,
        max_size=high_size,
        connect_timeout=number("connect_timeout", connect_timeout, libpq_connect, 0.1, 120),
        command_timeout=number("command_timeout", command_timeout, "10", 0.1, 3600),
    )
