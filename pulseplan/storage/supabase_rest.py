"""The Supabase REST backend: the storage interface over PostgREST, for deployments that have
only ``SUPABASE_URL`` and ``SUPABASE_SERVICE_KEY`` (the seed's configuration, no database
password). Selected by ``DATABASE_URL=supabase://`` (docs/supabase-rest.md).

Same semantics as the SQLite and PostgreSQL backends (``tests/storage_contract.py``), over the
same schema (``migrations/postgres``), one PostgREST request per operation:

* the version fence is ``PATCH ?id=eq.<id>&version=eq.<n>`` with ``Prefer:
  return=representation``, setting ``version`` to ``n + 1``: PostgreSQL re-checks the filter
  after waiting for a concurrent writer's row lock, so of concurrent writers exactly one gets
  a row back and the rest get none (lost);
* the upsert, the sweeper's claim (``FOR UPDATE SKIP LOCKED``), the lock take and the status
  counts are SQL functions from ``0002_rest_functions.sql`` called with ``/rpc``
  (``SECURITY INVOKER``: they run as the caller's role, under row-level security);
* deletes that must return what they removed use ``DELETE`` with ``return=representation``.

Who sees what: user-scoped methods (``get_connection``, ``list_connections``,
``upsert_connection``, ``delete_connection``, ``list_audit``) forward the JWT the auth guard
bound for the current request (:mod:`pulseplan.storage.forwarded_jwt`), so PostgREST runs them
as role ``authenticated`` and row-level security (``auth.uid() = user_id``) hides every other
user's rows even when asked for another user's id. With no JWT bound (background refresh, the
OAuth callback, agents, the CLI) and for every other method, the service key is used (role
``service_role``, which bypasses RLS on Supabase).

The schema cannot be changed over PostgREST: :meth:`SupabaseRestStorage.migrate` only reports
what is pending; apply migrations with ``pulseplan migrate`` and a ``postgresql://`` URL.
"""

from __future__ import annotations

from datetime import datetime
from datetime import timedelta
from typing import Any

import httpx
import jwt
from loguru import logger

from pulseplan.errors import ConfigurationError
from pulseplan.settings import Settings
from pulseplan.storage import migrations
from pulseplan.storage.base import Storage
from pulseplan.storage.forwarded_jwt import forwarded_user_jwt
from pulseplan.storage.models import STATUSES
from pulseplan.storage.models import UPDATABLE
from pulseplan.storage.models import Connection
from pulseplan.storage.models import NewConnection
from pulseplan.storage.models import utcnow
from pulseplan.storage.postgres import IDENTIFIER
from pulseplan.storage.postgres import TIME_COLUMNS
from pulseplan.storage.postgres_records import as_uuid
from pulseplan.storage.postgres_records import user_uuid
from pulseplan.storage.supabase_rest_client import MISSING_TABLE
from pulseplan.storage.supabase_rest_client import RestClient
from pulseplan.storage.supabase_rest_client import RestError
from pulseplan.storage.supabase_rest_client import Scope
from pulseplan.storage.supabase_rest_records import RestRecordTables
from pulseplan.storage.supabase_rest_records import maybe_parse_time
from pulseplan.storage.supabase_rest_records import maybe_wire_time
from pulseplan.storage.supabase_rest_records import parse_time
from pulseplan.storage.supabase_rest_records import wire_time

#: The selector: ``DATABASE_URL=supabase://`` means "``SUPABASE_URL`` over REST".
SCHEME = "supabase://"
COLUMNS = (
    "id,user_id,provider,access_token,refresh_token,expires_at,scopes,email,created_at,"
    "updated_at,status,status_reason,metadata,version,last_refreshed_at,next_refresh_at,"
    "refresh_failures"
)
MIGRATIONS_TABLE = "pulseplan_migrations"


def _connection(row: dict[str, Any]) -> Connection:
    try:
        return Connection(
            id=str(row["id"]),
            user_id=str(row["user_id"]),
            provider=row["provider"],
            access_token=row["access_token"],
            refresh_token=row["refresh_token"],
            expires_at=maybe_parse_time(row["expires_at"]),
            scopes=tuple(row["scopes"] or ()),
            email=row["email"],
            status=row["status"],
            status_reason=row["status_reason"],
            metadata=dict(row["metadata"] or {}),
            version=int(row["version"]),
            created_at=parse_time(row["created_at"]),
            updated_at=parse_time(row["updated_at"]),
            last_refreshed_at=maybe_parse_time(row["last_refreshed_at"]),
            next_refresh_at=maybe_parse_time(row["next_refresh_at"]),
            refresh_failures=int(row["refresh_failures"]),
        )
    except (KeyError, TypeError, ValueError):
        # The message names no value: a row holds ciphertext.
        raise RestError("Supabase REST returned a malformed connection row") from None


def _wire(column: str, value: Any) -> Any:
    """An update value as JSON for PostgREST."""
    if column in TIME_COLUMNS:
        return maybe_wire_time(value)
    if column == "scopes":
        return list(value)
    if column == "metadata":
        return dict(value)
    return value


def check_service_key(key: str) -> None:
    """Refuse a key that is plainly not a service key (an anon or publishable key would make
    every background job fail with permission errors, far from the cause)."""
    if key.startswith("sb_publishable_"):
        raise ConfigurationError(["SUPABASE_SERVICE_KEY is a publishable key, not a secret key"])
    if key.count(".") != 2:
        return  # an opaque secret key (sb_secret_...): nothing to inspect
    try:
        claims = jwt.decode(key, options={"verify_signature": False})
    except jwt.PyJWTError:
        return  # not a JWT after all; Supabase will judge it
    role = claims.get("role") if isinstance(claims, dict) else None
    if role != "service_role":
        raise ConfigurationError(
            [f"SUPABASE_SERVICE_KEY has role {role!r}, not 'service_role' (anon key?)"]
        )


class SupabaseRestStorage(RestRecordTables, Storage):
    """:class:`Storage` over Supabase's PostgREST API (``{supabase_url}/rest/v1``).

    :param anon_key: sent as ``apikey`` with forwarded user JWTs (default: the service key).
    :param timeout: seconds per request; :meth:`ping` uses ``ping_timeout``.
    :param http_client: an ``httpx.AsyncClient`` to use instead of our own (tests, proxies).
    """

    name = "supabase-rest"

    def __init__(
        self,
        supabase_url: str,
        service_key: str,
        *,
        anon_key: str | None = None,
        connections_table: str = "calendar_connections",
        timeout: float = 10.0,
        ping_timeout: float = 1.0,
        http_client: httpx.AsyncClient | None = None,
    ):
        if not IDENTIFIER.match(connections_table):
            raise ValueError("connections table must be a plain SQL identifier")
        check_service_key(service_key)
        self.table = connections_table
        self.client = RestClient(
            supabase_url,
            service_key,
            anon_key=anon_key,
            timeout=timeout,
            ping_timeout=ping_timeout,
            http_client=http_client,
        )
        self._anon = bool(anon_key)

    def __repr__(self) -> str:  # never a key, never the URL
        return f"SupabaseRestStorage(table={self.table!r})"

    @property
    def detail(self) -> str:
        """One line for health checks."""
        apikey = "anon key" if self._anon else "service key"
        return f"supabase-rest (PostgREST; user requests forward the user's JWT, apikey: {apikey})"

    # ------------------------------------------------------------------ lifecycle

    async def open(self) -> None:
        await self.client.open()

    async def close(self) -> None:
        await self.client.close()

    async def ping(self) -> None:
        await self.client.run(
            self.client.table(MIGRATIONS_TABLE).select("name").limit(1),
            within=self.client.ping_timeout,
        )

    async def _applied(self) -> set[str]:
        try:
            rows = await self.client.rows(self.client.table(MIGRATIONS_TABLE).select("name"))
        except RestError as exc:
            if exc.code in MISSING_TABLE:
                return set()
            raise
        return {str(r.get("name")) for r in rows}

    async def pending_migrations(self) -> list[str]:
        applied = await self._applied()
        return [name for name, _ in migrations.load("postgres", self.table) if name not in applied]

    async def migrate(self) -> list[str]:
        """Nothing to do returns ``[]``; pending migrations are a :class:`ConfigurationError`:
        PostgREST cannot run DDL."""
        pending = await self.pending_migrations()
        if pending:
            raise ConfigurationError(
                [
                    f"pending migrations: {', '.join(pending)}. The Supabase REST backend cannot "
                    "change the schema: run `pulseplan migrate` once with "
                    "DATABASE_URL=postgresql://... (the project's connection string), or run "
                    "pulseplan/storage/migrations/postgres/*.sql in the SQL editor (see "
                    "docs/supabase-rest.md)"
                ]
            )
        return []

    # ------------------------------------------------------------------ connections

    def _user_scope(self, user_id: str) -> Scope:
        forwarded = forwarded_user_jwt()
        if forwarded is not None and forwarded.user_id != user_id:
            # Not an error: RLS answers for the JWT's user, so the call finds nothing. It does
            # point at a caller bug, so say so (ids stay out of the log line).
            logger.warning("user-scoped storage call for another user than the request's JWT")
        return "user"

    async def get_connection(self, user_id: str, provider: str) -> Connection | None:
        uid = as_uuid(user_id)
        if uid is None:
            return None
        query = (
            self.client.table(self.table)
            .select(COLUMNS)
            .eq("user_id", str(uid))
            .eq("provider", provider)
        )
        rows = await self.client.rows(query, self._user_scope(str(uid)))
        return _connection(rows[0]) if rows else None

    async def get_connection_by_id(self, connection_id: str) -> Connection | None:
        cid = as_uuid(connection_id)
        if cid is None:
            return None
        rows = await self.client.rows(
            self.client.table(self.table).select(COLUMNS).eq("id", str(cid))
        )
        return _connection(rows[0]) if rows else None

    async def list_connections(self, user_id: str) -> list[Connection]:
        uid = as_uuid(user_id)
        if uid is None:
            return []
        query = (
            self.client.table(self.table).select(COLUMNS).eq("user_id", str(uid)).order("provider")
        )
        return [_connection(r) for r in await self.client.rows(query, self._user_scope(str(uid)))]

    async def upsert_connection(self, new: NewConnection) -> tuple[Connection, bool]:
        uid = str(user_uuid(new.user_id))
        call = self.client.rpc(
            "pulseplan_upsert_connection",
            {
                "p_user_id": uid,
                "p_provider": new.provider,
                "p_access_token": new.access_token,
                "p_refresh_token": new.refresh_token,
                "p_expires_at": maybe_wire_time(new.expires_at),
                "p_scopes": list(new.scopes),
                "p_email": new.email,
                "p_metadata": dict(new.metadata),
                "p_now": wire_time(utcnow()),
            },
        )
        rows = await self.client.rows(call, self._user_scope(uid))
        if not rows:
            raise RestError("Supabase REST did not return the stored connection")
        stored = _connection(rows[0])
        return stored, stored.version == 1

    async def update_connection(
        self, connection_id: str, expected_version: int, **changes: Any
    ) -> Connection | None:
        unknown = set(changes) - UPDATABLE
        if unknown:
            raise ValueError(f"not updatable: {sorted(unknown)}")
        if "status" in changes and changes["status"] not in STATUSES:
            raise ValueError(f"unknown status: {changes['status']!r}")
        cid = as_uuid(connection_id)
        if cid is None:
            return None
        body = {column: _wire(column, value) for column, value in changes.items()}
        # The filter pins the version read, so `expected + 1` is `version + 1` for the one
        # writer that still matches after any concurrent writer commits.
        body["updated_at"] = wire_time(utcnow())
        body["version"] = expected_version + 1
        rows = await self.client.rows(
            self.client.table(self.table)
            .update(body)
            .eq("id", str(cid))
            .eq("version", expected_version)
        )
        return _connection(rows[0]) if rows else None

    async def delete_connection(self, user_id: str, provider: str) -> Connection | None:
        uid = as_uuid(user_id)
        if uid is None:
            return None
        query = (
            self.client.table(self.table).delete().eq("user_id", str(uid)).eq("provider", provider)
        )
        rows = await self.client.rows(query, self._user_scope(str(uid)))
        return _connection(rows[0]) if rows else None

    async def claim_due_connections(
        self,
        *,
        now: datetime,
        horizon: datetime,
        limit: int,
        owner: str,
        lease_seconds: float,
    ) -> list[Connection]:
        rows = await self.client.rows(
            self.client.rpc(
                "pulseplan_claim_due_connections",
                {
                    "p_owner": owner,
                    "p_claim_until": wire_time(now + timedelta(seconds=lease_seconds)),
                    "p_horizon": wire_time(horizon),
                    "p_now": wire_time(now),
                    "p_limit": limit,
                },
            )
        )
        claimed = [_connection(r) for r in rows]
        return sorted(claimed, key=lambda c: (c.expires_at or now, c.id))

    async def release_claim(self, connection_id: str, owner: str) -> None:
        cid = as_uuid(connection_id)
        if cid is None:
            return
        await self.client.run(
            self.client.table(self.table)
            .update({"claim_owner": None, "claim_until": None})
            .eq("id", str(cid))
            .eq("claim_owner", owner)
        )

    async def connections_page(self, after_id: str | None, limit: int) -> list[Connection]:
        query = self.client.table(self.table).select(COLUMNS)
        if after_id is not None:
            after = as_uuid(after_id)
            if after is None:
                raise ValueError("after_id must be a connection id (UUID)")
            query = query.gt("id", str(after))
        rows = await self.client.rows(query.order("id").limit(limit))
        return [_connection(r) for r in rows]

    async def count_connections_by_status(self) -> dict[str, int]:
        rows = await self.client.rows(self.client.rpc("pulseplan_connection_counts", {}))
        try:
            return {str(r["status"]): int(r["n"]) for r in rows}
        except (KeyError, TypeError, ValueError):
            raise RestError("Supabase REST returned malformed counts") from None


def rest_storage_from_settings(settings: Settings) -> SupabaseRestStorage:
    """The backend for ``DATABASE_URL=supabase://`` (``make_storage`` calls this).

    :raises ConfigurationError: the URL says more than ``supabase://``, or ``SUPABASE_URL`` /
        ``SUPABASE_SERVICE_KEY`` is missing or unusable.
    """
    url = settings.secret("database_url") or ""
    if url.rstrip("/") not in ("supabase:", SCHEME.rstrip("/")):
        raise ConfigurationError(
            ["DATABASE_URL=supabase:// takes nothing more; the project is SUPABASE_URL"]
        )
    problems = []
    if not settings.supabase_url:
        problems.append("DATABASE_URL=supabase:// needs SUPABASE_URL")
    service_key = settings.secret("supabase_service_key")
    if not service_key:
        problems.append("DATABASE_URL=supabase:// needs SUPABASE_SERVICE_KEY")
    if problems or not settings.supabase_url or not service_key:
        raise ConfigurationError(problems)
    return SupabaseRestStorage(
        settings.supabase_url,
        service_key,
        anon_key=settings.secret("supabase_anon_key"),
        connections_table=settings.connections_table,
        timeout=settings.supabase_rest_timeout,
    )


__all__ = ["SCHEME", "SupabaseRestStorage", "check_service_key", "rest_storage_from_settings"]
