# ruff: noqa: S608 - SQL is built only from identifiers checked against IDENT and the catalog
# (quoted), types read from the catalog, and operators from fixed tables; values are bound.
"""A PostgREST test double: real HTTP on 127.0.0.1, backed by the real local PostgreSQL.

No real PostgREST server runs here (it cannot: no binary, no Docker; see
../shared/reference/environment.md §5). This double speaks the subset of PostgREST's API that
:class:`~pulseplan.storage.supabase_rest.SupabaseRestStorage` sends, and answers the way
PostgREST 12 documents it, by running SQL on a scratch database (``tests/pg_fixtures.py``):

* ``GET /rest/v1/<table>``: ``select`` (``*`` or column names), filters ``eq neq gt gte lt lte
  is``, ``order`` (``col.asc|desc[.nullsfirst|nullslast]``), ``limit``, ``offset``;
* ``POST /rest/v1/<table>``: insert one object or an array through
  ``json_populate_recordset`` (PostgREST's own technique), columns from the JSON keys;
* ``PATCH`` / ``DELETE /rest/v1/<table>?<filters>``: one ``UPDATE`` / ``DELETE`` statement;
* ``Prefer: return=representation|minimal`` on writes (rows come back as ``json_agg`` output,
  as PostgREST formats them);
* ``POST /rest/v1/rpc/<function>``: named arguments from the JSON body, typed from the
  catalog; a set-returning function answers an array, a scalar one a JSON value;
* errors as PostgREST's JSON ``{code, message, details, hint}`` with its HTTP status mapping
  (SQLSTATE ``23505`` -> 409, ``42501`` -> 403, missing table ``PGRST205`` -> 404, ...).

Authentication and RLS as on Supabase: the ``apikey`` header must be the anon or service key
(the API gateway's check), the ``Authorization`` bearer JWT is verified (HS256 with the
project's JWT secret; ``PGRST301``/``PGRST303`` otherwise), and each request runs in one
transaction with ``role`` set to the JWT's ``role`` claim (``authenticated``, ``service_role``
or ``anon``) and ``request.jwt.claims`` set to its claims, exactly the two settings PostgREST
makes, so ``auth.uid()`` and the migration's policies and grants decide what a request sees.

Anything else (other operators, ``on_conflict``, ``count``, embedding, ``Accept`` variants)
answers ``501`` with ``code: DOUBLE501``, so a backend change that uses more of PostgREST fails
loudly here instead of passing against a guess. Not modelled: the schema cache (the catalog is
read on every request, so no reload is ever needed), ``db-max-rows``, pre-request functions,
HTTP/2, the gateway's rate limits.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import socket
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from dataclasses import field
from typing import Any

import asyncpg
import jwt
from hypercorn.asyncio import serve
from hypercorn.config import Config
from quart import Quart
from quart import Response
from quart import request

REST = "/rest/v1"
ROLES = frozenset({"anon", "authenticated", "service_role"})
IDENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,62}$")
OPERATORS = {"eq": "=", "neq": "<>", "gt": ">", "gte": ">=", "lt": "<", "lte": "<="}
IS_VALUES = {"null": "NULL", "true": "TRUE", "false": "FALSE"}
RESERVED = frozenset({"select", "order", "limit", "offset"})
#: ``?columns="a","b"``: which JSON keys an insert takes (postgrest-py sends it for arrays).
COLUMNS_PARAM = "columns"

_COLUMNS_SQL = """
SELECT a.attname, format_type(a.atttypid, a.atttypmod)
FROM pg_attribute a
WHERE a.attrelid = to_regclass(format('public.%I', $1::text)) AND a.attnum > 0
  AND NOT a.attisdropped
ORDER BY a.attnum
"""
_FUNCTIONS_SQL = """
SELECT p.proretset, p.proargnames, p.proargmodes::text[] AS proargmodes,
       array(SELECT format_type(t, NULL) FROM unnest(p.proargtypes) AS t) AS argtypes
FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
WHERE n.nspname = 'public' AND p.proname = $1
"""


def supabase_key(secret: str, role: str) -> str:
    """A legacy-style Supabase API key: an HS256 JWT with ``role`` (``anon``/``service_role``)."""
    now = int(time.time())
    claims = {"iss": "supabase", "ref": "double", "role": role, "iat": now, "exp": now + 3600}
    return jwt.encode(claims, secret, algorithm="HS256")


def user_jwt(secret: str, user_id: str, **claims: Any) -> str:
    """A user access token as Supabase Auth issues it (HS256)."""
    now = int(time.time())
    payload = {
        "sub": user_id,
        "role": "authenticated",
        "aud": "authenticated",
        "iat": now,
        "exp": now + 3600,
        **claims,
    }
    return jwt.encode(payload, secret, algorithm="HS256")


class Refusal(Exception):
    """An error answer: PostgREST's JSON body with an HTTP status."""

    def __init__(self, status: int, code: str, message: str, details: str | None = None):
        super().__init__(message)
        self.status = status
        self.body = {"code": code, "message": message, "details": details, "hint": None}


def _status_for(sqlstate: str, role: str) -> int:
    """PostgREST's SQLSTATE -> HTTP status table (docs: "Errors", the subset that matters)."""
    if sqlstate == "42501":
        return 401 if role == "anon" else 403
    exact = {"23503": 409, "23505": 409, "25006": 405, "42883": 404, "42P01": 404, "P0001": 400}
    if sqlstate in exact:
        return exact[sqlstate]
    prefix = {"08": 503, "53": 503, "54": 413, "28": 403, "0L": 403, "0P": 403}
    if sqlstate[:2] in prefix:
        return prefix[sqlstate[:2]]
    if sqlstate[:2] in {"09", "25", "2D", "38", "39", "3B", "40", "55", "57", "58", "F0", "XX"}:
        return 500
    return 400


def _ident(name: str) -> str:
    if not IDENT.match(name):
        raise Refusal(400, "PGRST100", f"bad identifier {name!r}")
    return '"' + name + '"'


@dataclass(frozen=True)
class Seen:
    """One request the double answered: who it ran as."""

    method: str
    path: str
    role: str | None
    sub: str | None
    status: int
    #: Which key came as ``apikey``: ``"anon"``, ``"service"`` or ``None`` (neither).
    apikey: str | None = None


@dataclass
class Injected:
    """A canned raw answer for the next request (faults: 5xx pages, odd bodies)."""

    status: int
    body: bytes
    content_type: str = "application/json"


@dataclass
class PostgrestDouble:
    """The double for one scratch database. ``url`` plays ``SUPABASE_URL``."""

    database_url: str
    jwt_secret: str
    anon_key: str = ""
    service_key: str = ""
    seen: list[Seen] = field(default_factory=list)
    injected: list[Injected] = field(default_factory=list)
    #: When set, requests wait for it before answering (a hung server; set it to release).
    hold: asyncio.Event | None = None
    port: int = 0

    def __post_init__(self) -> None:
        self.anon_key = self.anon_key or supabase_key(self.jwt_secret, "anon")
        self.service_key = self.service_key or supabase_key(self.jwt_secret, "service_role")
        self._pool: asyncpg.Pool | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def roles(self) -> list[tuple[str, str | None, str | None]]:
        """``(path, role, sub)`` of every request so far."""
        return [(s.path, s.role, s.sub) for s in self.seen]

    # ------------------------------------------------------------------ HTTP

    def app(self) -> Quart:
        app = Quart("postgrest_double")

        @app.route(f"{REST}/<path:path>", methods=["GET", "POST", "PATCH", "DELETE"])
        async def handle(path: str) -> Response:
            if self.hold is not None:
                await self.hold.wait()
            apikey = {self.anon_key: "anon", self.service_key: "service"}.get(
                request.headers.get("apikey", "")
            )
            if self.injected:
                canned = self.injected.pop(0)
                self.seen.append(Seen(request.method, path, None, None, canned.status, apikey))
                return Response(canned.body, canned.status, content_type=canned.content_type)
            role: str | None = None
            sub: str | None = None
            try:
                claims = self._authenticate()
                role, sub = claims["role"], claims.get("sub")
                status, body = await self._execute(path, claims)
            except Refusal as refusal:
                status, body = refusal.status, json.dumps(refusal.body)
            self.seen.append(Seen(request.method, path, role, sub, status, apikey))
            return Response(body, status, content_type="application/json; charset=utf-8")

        return app

    def _authenticate(self) -> dict[str, Any]:
        if request.headers.get("apikey") not in (self.anon_key, self.service_key):
            # Supabase's API gateway answers before PostgREST, with no `code`.
            refusal = Refusal(401, "", "Invalid API key")
            refusal.body = {"message": "Invalid API key", "hint": "Double check your API key."}
            raise refusal
        scheme, _, token = request.headers.get("Authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not token:
            return {"role": "anon"}
        try:
            claims: dict[str, Any] = jwt.decode(
                token, self.jwt_secret, algorithms=["HS256"], options={"verify_aud": False}
            )
        except jwt.ExpiredSignatureError:
            raise Refusal(401, "PGRST303", "JWT expired") from None
        except jwt.PyJWTError:
            raise Refusal(401, "PGRST301", "JWT could not be decoded") from None
        if claims.get("role") not in ROLES:
            raise Refusal(401, "PGRST301", "JWT role is not a database role here")
        return claims

    async def _execute(self, path: str, claims: dict[str, Any]) -> tuple[int, str]:
        assert self._pool is not None
        raw = await request.get_data(as_text=True)
        try:
            payload = json.loads(raw) if raw else None
        except ValueError:
            raise Refusal(400, "PGRST102", "Empty or invalid json") from None
        prefer = {
            part.strip() for value in request.headers.getlist("Prefer") for part in value.split(",")
        }
        unsupported = {p for p in prefer if not p.startswith("return=")}
        if unsupported:
            raise Refusal(501, "DOUBLE501", f"Prefer not modelled: {sorted(unsupported)}")
        representation = "return=representation" in prefer
        try:
            async with self._pool.acquire() as conn, conn.transaction():
                await conn.execute(
                    "SELECT set_config('role', $1, true), "
                    "set_config('request.jwt.claims', $2, true)",
                    claims["role"],
                    json.dumps(claims),
                )
                if path.startswith("rpc/"):
                    return await self._rpc(conn, path[4:], payload)
                return await self._table(conn, path, payload, representation)
        except asyncpg.PostgresError as exc:
            sqlstate = exc.sqlstate or "XX000"
            raise Refusal(
                _status_for(sqlstate, claims["role"]),
                sqlstate,
                str(getattr(exc, "message", exc)),
                getattr(exc, "detail", None),
            ) from None
        except (OSError, asyncpg.InterfaceError) as exc:
            raise Refusal(503, "PGRST001", f"database connection error: {exc}") from None

    # ------------------------------------------------------------------ tables

    async def _table(
        self, conn: asyncpg.Connection, table: str, payload: Any, representation: bool
    ) -> tuple[int, str]:
        if not IDENT.match(table):
            raise Refusal(404, "PGRST205", f"Could not find the table 'public.{table}'")
        columns = {r[0]: r[1] for r in await conn.fetch(_COLUMNS_SQL, table)}
        if not columns:
            raise Refusal(404, "PGRST205", f"Could not find the table 'public.{table}'")
        target = f"public.{_ident(table)}"
        params: list[Any] = []
        where = self._filters(columns, params)
        method = request.method
        if method == "GET":
            sql = f"SELECT {self._select(columns)} FROM {target} AS pgrst_t"
            sql += (f" WHERE {where}" if where else "") + self._order_limit(columns)
            return 200, await self._json_rows(conn, sql, params)
        if self._has_read_params():
            raise Refusal(501, "DOUBLE501", "select/order/limit on writes is not modelled")
        if method == "POST":
            if where:
                raise Refusal(400, "PGRST100", "filters on insert")
            rows = payload if isinstance(payload, list) else [payload]
            if not rows or not all(isinstance(r, dict) for r in rows):
                raise Refusal(400, "PGRST102", "insert body must be an object or an array")
            names = sorted({key for row in rows for key in row})
            if (listed := request.args.get(COLUMNS_PARAM)) is not None:
                names = [name.strip().strip('"') for name in listed.split(",")]
            self._known(columns, names)
            cols = ", ".join(_ident(n) for n in names)
            params.append(json.dumps(rows))
            sql = (
                f"INSERT INTO {target} AS pgrst_t ({cols}) SELECT {cols} FROM "
                f"json_populate_recordset(NULL::{target}, ${len(params)}::json)"
            )
            status = 201
        elif method == "PATCH":
            if not isinstance(payload, dict) or not payload:
                raise Refusal(400, "PGRST102", "update body must be a non-empty object")
            self._known(columns, list(payload))
            params.append(json.dumps(payload))
            sets = ", ".join(f"{_ident(n)} = pgrst_body.{_ident(n)}" for n in payload)
            sql = (
                f"UPDATE {target} AS pgrst_t SET {sets} FROM (SELECT * FROM "
                f"json_populate_record(NULL::{target}, ${len(params)}::json)) AS pgrst_body"
                + (f" WHERE {where}" if where else "")
            )
            status = 200
        else:  # DELETE
            sql = f"DELETE FROM {target} AS pgrst_t" + (f" WHERE {where}" if where else "")
            status = 200
        if not representation:
            # No RETURNING: like PostgREST, a minimal write needs no SELECT privilege.
            await conn.execute(sql, *params)
            return (201 if status == 201 else 204), ""
        return status, await self._json_rows(
            conn, sql + " RETURNING pgrst_t.*", params, writing=True
        )

    @staticmethod
    async def _json_rows(
        conn: asyncpg.Connection, sql: str, params: list[Any], *, writing: bool = False
    ) -> str:
        # PostgREST's own shape: coalesce(json_agg(row), '[]') over the statement.
        wrapped = (
            f"WITH pgrst_source AS ({sql}) SELECT coalesce(json_agg(pgrst_source), '[]')::text "
            "FROM pgrst_source"
            if writing
            else f"SELECT coalesce(json_agg(pgrst_source), '[]')::text FROM ({sql}) AS pgrst_source"
        )
        body: str = await conn.fetchval(wrapped, *params)
        return body

    @staticmethod
    def _known(columns: dict[str, str], names: list[str]) -> None:
        for name in names:
            if name not in columns:
                raise Refusal(400, "PGRST204", f"Could not find the '{name}' column")

    @staticmethod
    def _has_read_params() -> bool:
        return any(key in RESERVED for key in request.args)

    def _filters(self, columns: dict[str, str], params: list[Any]) -> str:
        clauses = []
        for key, value in request.args.items(multi=True):
            if key in RESERVED or (key == COLUMNS_PARAM and request.method == "POST"):
                continue
            self._known(columns, [key])
            operator, _, operand = value.partition(".")
            column = f"pgrst_t.{_ident(key)}"
            if operator == "is":
                if operand not in IS_VALUES:
                    raise Refusal(400, "PGRST100", f"bad is value {operand!r}")
                clauses.append(f"{column} IS {IS_VALUES[operand]}")
            elif operator in OPERATORS:
                params.append(operand)
                # Untyped literal, typed by the column (what PostgREST's prepared query does).
                clauses.append(
                    f"{column} {OPERATORS[operator]} ${len(params)}::text::{columns[key]}"
                )
            else:
                raise Refusal(501, "DOUBLE501", f"operator {operator!r} is not modelled")
        return " AND ".join(clauses)

    def _select(self, columns: dict[str, str]) -> str:
        wanted = request.args.get("select", "*")
        if wanted == "*":
            return "pgrst_t.*"
        names = [name.strip() for name in wanted.split(",")]
        self._known(columns, names)
        return ", ".join(f"pgrst_t.{_ident(n)}" for n in names)

    def _order_limit(self, columns: dict[str, str]) -> str:
        sql = ""
        if order := request.args.get("order"):
            terms = []
            for term in order.split(","):
                name, *modifiers = term.split(".")
                self._known(columns, [name])
                direction = {"asc": "ASC", "desc": "DESC"}
                nulls = {"nullsfirst": "NULLS FIRST", "nullslast": "NULLS LAST"}
                words = []
                for modifier in modifiers:
                    word = direction.get(modifier) or nulls.get(modifier)
                    if word is None:
                        raise Refusal(400, "PGRST100", f"bad order modifier {modifier!r}")
                    words.append(word)
                terms.append(" ".join([f"pgrst_t.{_ident(name)}", *words]))
            sql += " ORDER BY " + ", ".join(terms)
        for key in ("limit", "offset"):
            if (raw := request.args.get(key)) is not None:
                if not raw.isdigit():
                    raise Refusal(400, "PGRST100", f"bad {key}")
                sql += f" {key.upper()} {int(raw)}"
        return sql

    # ------------------------------------------------------------------ functions

    async def _rpc(self, conn: asyncpg.Connection, name: str, payload: Any) -> tuple[int, str]:
        if request.method != "POST" or request.args:
            raise Refusal(501, "DOUBLE501", "only POST /rpc without query parameters")
        args = payload if isinstance(payload, dict) else {}
        for candidate in await conn.fetch(_FUNCTIONS_SQL, name) if IDENT.match(name) else []:
            names = candidate["proargnames"] or []
            modes = candidate["proargmodes"] or ["i"] * len(candidate["argtypes"])
            inputs = [n for n, m in zip(names, modes, strict=False) if m in ("i", "b", "v")]
            if set(inputs) == set(args):
                return 200, await self._call(conn, name, candidate, inputs, args)
        raise Refusal(
            404,
            "PGRST202",
            f"Could not find the function public.{name}({', '.join(sorted(args))})",
        )

    @staticmethod
    async def _call(
        conn: asyncpg.Connection,
        name: str,
        function: asyncpg.Record,
        inputs: list[str],
        args: dict[str, Any],
    ) -> str:
        target = f"public.{_ident(name)}"
        typed = ", ".join(
            f"{_ident(n)} {t}" for n, t in zip(inputs, function["argtypes"], strict=True)
        )
        named = ", ".join(f"{_ident(n)} := pgrst_args.{_ident(n)}" for n in inputs)
        source = f"json_to_record($1::json) AS pgrst_args({typed})" if inputs else "(SELECT 1)"
        source += "" if inputs else " AS pgrst_args"
        if function["proretset"]:
            sql = (
                f"SELECT coalesce(json_agg(pgrst_call), '[]')::text FROM {source}, "
                f"LATERAL {target}({named}) AS pgrst_call"
            )
        else:
            sql = f"SELECT to_json({target}({named}))::text FROM {source}"
        body: str = await conn.fetchval(sql, *([json.dumps(args)] if inputs else []))
        return body

    # ------------------------------------------------------------------ lifecycle

    @asynccontextmanager
    async def running(self) -> AsyncIterator[PostgrestDouble]:
        """Serve on an ephemeral loopback port until the block ends."""
        self._pool = await asyncpg.create_pool(self.database_url, min_size=0, max_size=20)
        listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        listener.bind(("127.0.0.1", 0))
        listener.listen(128)  # queued until Hypercorn accepts: no start-up wait needed
        self.port = listener.getsockname()[1]
        config = Config()
        config.bind = [f"fd://{os.dup(listener.fileno())}"]
        listener.close()
        config.accesslog = None
        config.errorlog = None
        config.graceful_timeout = 1
        stop = asyncio.Event()
        server = asyncio.create_task(serve(self.app(), config, shutdown_trigger=stop.wait))
        try:
            yield self
        finally:
            if self.hold is not None:
                self.hold.set()
            stop.set()
            await server
            await self._pool.close()
            self._pool = None
