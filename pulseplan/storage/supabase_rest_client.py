"""The HTTP side of the Supabase REST backend: one PostgREST client, the two credentials, and
the mapping of every failure to a :class:`~pulseplan.storage.base.StorageError` with no secret.

Client choice: ``postgrest.AsyncPostgrestClient``, the PostgREST client that supabase-py itself
uses (same 2.34 release, installed with it), rather than ``supabase.acreate_client``. The full
client would also build auth, storage, realtime and functions clients we never call, and its way
to act as a user (``client.postgrest.auth(jwt)``) rewrites headers *shared* by every request in
flight, so two concurrent requests of different users could swap credentials. Here the client
holds no credential at all; each request gets its own headers (:meth:`RestClient.bind`):

* ``user`` scope with a forwarded JWT: ``Authorization: Bearer <user JWT>``, ``apikey:
  <SUPABASE_ANON_KEY, or the service key when no anon key is configured>``: PostgREST runs the
  statement as role ``authenticated`` with the user's claims, under row-level security;
* otherwise (``service`` scope, or ``user`` scope with no JWT bound): the service key in both
  headers, role ``service_role`` (BYPASSRLS) on Supabase.

The HTTP client is ours too: timeouts on every request, no redirects (a redirect would carry
the ``apikey`` header to wherever it points: httpx drops ``Authorization`` on a cross-origin
redirect, not ``apikey``), no postgrest-py retries (they sleep up to 30 s; a failed request
becomes a 503 the caller may retry), HTTP/1.1.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
from dataclasses import dataclass
from dataclasses import field
from typing import Any
from typing import Literal
from urllib.parse import urlsplit

import httpx
from postgrest import AsyncPostgrestClient
from postgrest import AsyncRequestBuilder
from postgrest import AsyncRPCFilterRequestBuilder
from postgrest.base_request_builder import RequestConfig

from pulseplan.errors import ConfigurationError
from pulseplan.storage.base import StorageError
from pulseplan.storage.forwarded_jwt import forwarded_user_jwt

Scope = Literal["service", "user"]

#: PostgREST's codes for "the schema cache has no such table / function".
MISSING_TABLE = frozenset({"PGRST205", "42P01"})
MISSING_FUNCTION = frozenset({"PGRST202", "42883"})
#: PostgREST cannot reach or load the database (PGRST000-PGRST003).
_DATABASE_DOWN = frozenset({"PGRST000", "PGRST001", "PGRST002", "PGRST003"})
REST_PATH = "/rest/v1"
_CONSTRAINT = re.compile(r'constraint "([A-Za-z0-9_]{1,63})"')


class RestError(StorageError):
    """A request failed. ``str()`` is a fixed description plus PostgREST's error code, never
    the body PostgREST or a proxy sent (bodies can echo values, keys or internal names).

    :param code: PostgREST's ``code`` (a SQLSTATE, ``PGRST...``, or an HTTP status).
    :param constraint: the constraint a ``23505`` violated (an identifier, not data).
    """

    def __init__(self, message: str, *, code: str | None = None, constraint: str | None = None):
        super().__init__(message)
        self.code = code
        self.constraint = constraint


def _error_body(response: httpx.Response) -> dict[str, Any]:
    """PostgREST's JSON error object, or ``{}`` (a proxy's HTML page, an empty body)."""
    try:
        body = json.loads(response.content)
    except ValueError:
        return {}
    return body if isinstance(body, dict) else {}


def rest_error(status: int, body: dict[str, Any]) -> RestError:
    """The :class:`RestError` for an error answer: HTTP ``status`` and PostgREST's JSON
    ``body`` (``{}`` when there was none). Only the ``code`` and the status are kept."""
    raw = body.get("code")
    code = raw if isinstance(raw, str) and raw else str(status)
    if code == "42501":
        text = "Supabase refused the statement (42501: row-level security or grants)"
    elif code.startswith("PGRST3") or status == 401 or (status == 403 and code.isdigit()):
        # PostgREST's JWT errors, and the API gateway's "Invalid API key" (no code).
        text = f"Supabase REST refused the credentials ({code})"
    elif code in MISSING_TABLE:
        text = f"Supabase schema is missing ({code}); apply PulsePlan's migrations"
    elif code in MISSING_FUNCTION:
        text = f"Supabase REST function missing ({code}); apply migration 0002_rest_functions"
    elif code in _DATABASE_DOWN or (status >= 500 and code.isdigit()):
        text = f"Supabase database unavailable ({code})"
    else:
        text = f"Supabase REST request failed ({code}, HTTP {status})"
    message = body.get("message")
    found = _CONSTRAINT.search(message) if code == "23505" and isinstance(message, str) else None
    return RestError(text, code=code, constraint=found.group(1) if found else None)


def _decoded(response: httpx.Response) -> Any:
    """A success answer's JSON (``[]`` for an empty body, as after ``return=minimal``)."""
    if not response.content:
        return []
    try:
        return json.loads(response.content)
    except ValueError:
        return None  # not JSON: the caller's shape check reports it


def network_error(exc: httpx.HTTPError) -> RestError:
    """The :class:`RestError` for a transport failure (the exception text is not kept: it can
    name the host)."""
    if isinstance(exc, httpx.TimeoutException):
        return RestError("Supabase REST did not answer in time")
    return RestError(f"Supabase REST unavailable ({type(exc).__name__})")


def rest_base_url(supabase_url: str) -> str:
    """``{SUPABASE_URL}/rest/v1``; refuses a URL that is not a plain http(s) origin."""
    parts = urlsplit(supabase_url.strip())
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ConfigurationError(["SUPABASE_URL must be an http(s):// URL"])
    if parts.username or parts.password or parts.query or parts.fragment:
        raise ConfigurationError(["SUPABASE_URL must not carry credentials, a query or fragment"])
    return f"{parts.scheme}://{parts.netloc}{parts.path.rstrip('/')}{REST_PATH}"


class _StripRestQueries(logging.Filter):
    """Drops the query string from httpx's ``HTTP Request: GET <url>`` lines for PostgREST
    URLs: PostgREST filters carry user ids, connection ids and agent secret hashes, which
    belong in no log line (PulsePlan hashes user ids in logs). The line itself stays."""

    def filter(self, record: logging.LogRecord) -> bool:
        args = record.args
        if isinstance(args, tuple) and len(args) >= 2:
            url = args[1]
            if isinstance(url, httpx.URL) and f"{REST_PATH}/" in url.path:
                record.args = (args[0], url.copy_with(query=None), *args[2:])
        return True


#: httpx logs every request at INFO on this logger.
_HTTPX_LOGGER = logging.getLogger("httpx")
_STRIP = _StripRestQueries()


@dataclass(frozen=True)
class _Keys:
    service: str = field(repr=False)
    anon: str | None = field(repr=False, default=None)


class RestClient:
    """A PostgREST client for one Supabase project. Safe for concurrent use."""

    def __init__(
        self,
        supabase_url: str,
        service_key: str,
        *,
        anon_key: str | None = None,
        timeout: float = 10.0,
        ping_timeout: float = 1.0,
        http_client: httpx.AsyncClient | None = None,
    ):
        if not service_key:
            raise ConfigurationError(["SUPABASE_SERVICE_KEY must be set for the REST backend"])
        self.base_url = rest_base_url(supabase_url)
        self.timeout = timeout
        self.ping_timeout = ping_timeout
        self._keys = _Keys(service_key, anon_key or None)
        self._given_http = http_client
        self._http: httpx.AsyncClient | None = None
        self._rest: AsyncPostgrestClient | None = None

    def __repr__(self) -> str:  # never a key
        return f"RestClient(timeout={self.timeout:g})"

    async def open(self) -> None:
        """Create the HTTP client (connections are made on demand). Idempotent."""
        if self._rest is not None:
            return
        if _STRIP not in _HTTPX_LOGGER.filters:
            _HTTPX_LOGGER.addFilter(_STRIP)
        self._http = self._given_http or httpx.AsyncClient(
            base_url=self.base_url,
            timeout=httpx.Timeout(self.timeout),
            follow_redirects=False,
            limits=httpx.Limits(max_connections=50, max_keepalive_connections=20),
        )
        self._rest = AsyncPostgrestClient(
            self.base_url, http_client=self._http, retry_enabled=False
        )

    async def close(self) -> None:
        http, self._http, self._rest = self._http, None, None
        if http is not None and self._given_http is None:
            await http.aclose()

    @property
    def rest(self) -> AsyncPostgrestClient:
        if self._rest is None:
            raise StorageError("storage is not open")
        return self._rest

    # ------------------------------------------------------------------ requests

    def table(self, name: str) -> AsyncRequestBuilder:
        """A request builder for table ``name`` (``select``, ``insert``, ``update``...)."""
        return self.rest.from_(name)

    def rpc(self, function: str, params: dict[str, Any]) -> AsyncRPCFilterRequestBuilder:
        """``POST /rpc/<function>`` with ``params`` as the JSON body."""
        return self.rest.rpc(function, params)

    def bind(self, builder: Any, scope: Scope) -> Literal["user", "service"]:
        """Put the credentials for ``scope`` on this one request; return which were used."""
        headers = builder.request.headers
        forwarded = forwarded_user_jwt() if scope == "user" else None
        if forwarded is not None:
            headers["apikey"] = self._keys.anon or self._keys.service
            headers["Authorization"] = f"Bearer {forwarded.token}"
            return "user"
        headers["apikey"] = self._keys.service
        headers["Authorization"] = f"Bearer {self._keys.service}"
        return "service"

    async def rows(
        self, builder: Any, scope: Scope = "service", *, within: float | None = None
    ) -> list[dict[str, Any]]:
        """Run a table request (or a set-returning RPC) and return its rows."""
        data = await self.run(builder, scope, within=within)
        if isinstance(data, dict):  # a function returning one composite value
            return [data]
        if not isinstance(data, list):
            raise RestError("Supabase REST answered with an unexpected body")
        return [row for row in data if isinstance(row, dict)]

    async def run(
        self, builder: Any, scope: Scope = "service", *, within: float | None = None
    ) -> Any:
        """Run a request with ``scope``'s credentials and return the decoded body.

        :raises RestError: network failure, time-out or an error answer. Raised outside the
            ``except`` block so the httpx exception (whose request holds the headers) is
            neither its cause nor its context.
        """
        self.bind(builder, scope)
        request: RequestConfig[httpx.AsyncClient] = builder.request
        failure: RestError
        try:
            async with asyncio.timeout(within or self.timeout):
                # postgrest-py builds the request; the answer is read here, where the HTTP
                # status is still known (its APIError drops it) and nothing is retried.
                response: httpx.Response = await request.send(httpx.Headers())
        except httpx.HTTPError as exc:
            failure = network_error(exc)
        except TimeoutError:
            failure = RestError("Supabase REST did not answer in time")
        else:
            if response.is_success:
                return _decoded(response)
            failure = rest_error(response.status_code, _error_body(response))
        raise failure


__all__ = [
    "MISSING_FUNCTION",
    "MISSING_TABLE",
    "RestClient",
    "RestError",
    "Scope",
    "network_error",
    "rest_base_url",
    "rest_error",
]
