"""The Supabase REST backend against the PostgREST double (tests/postgrest_double.py): real
HTTP on loopback, real PostgreSQL behind it with the migrations applied and RLS enforced. No
real PostgREST server runs in these tests (none can run here; docs/supabase-rest.md).

The storage contract runs twice: with the service key only (background-job view), and with a
user JWT forwarded for every user-scoped call (the API's view, under row-level security).
"""

from __future__ import annotations

import logging
import socket
import uuid
from collections.abc import AsyncIterator
from collections.abc import Callable
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC
from datetime import datetime
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from pulseplan.errors import ConfigurationError
from pulseplan.settings import Settings
from pulseplan.storage import make_storage
from pulseplan.storage.base import StorageError
from pulseplan.storage.forwarded_jwt import forward_user_jwt
from pulseplan.storage.forwarded_jwt import forwarded_user_jwt
from pulseplan.storage.models import Connection
from pulseplan.storage.models import NewConnection
from pulseplan.storage.supabase_rest import SupabaseRestStorage
from pulseplan.testing.fake_provider import FakeProvider
from pulseplan.testing.vault import running_vault
from tests.pg_fixtures import ScratchDatabase
from tests.pg_fixtures import open_storage
from tests.pg_fixtures import pg_database_fixture  # noqa: F401
from tests.pg_fixtures import scratch_database
from tests.postgrest_double import Injected
from tests.postgrest_double import PostgrestDouble
from tests.postgrest_double import supabase_key
from tests.postgrest_double import user_jwt
from tests.storage_contract import StorageContract
from tests.storage_contract import audit
from tests.storage_contract import new
from tests.storage_uuid_users import UuidUsers

JWT_SECRET = "double-jwt-secret-" + uuid.uuid4().hex
USER_SCOPED = ("get_connection", "list_connections", "upsert_connection", "delete_connection")


@pytest.fixture
async def double(pg_database: ScratchDatabase) -> AsyncIterator[PostgrestDouble]:
    """The double on the session's scratch database, migrated (0001 and 0002) and emptied."""
    migrated = await open_storage(pg_database.url)
    await migrated.close()
    async with PostgrestDouble(pg_database.url, jwt_secret=JWT_SECRET).running() as running:
        yield running


@pytest.fixture
async def rest(double: PostgrestDouble) -> AsyncIterator[SupabaseRestStorage]:
    storage = SupabaseRestStorage(double.url, double.service_key, anon_key=double.anon_key)
    await storage.open()
    yield storage
    await storage.close()


class JwtPerUser(UuidUsers):
    """Forwards a fresh JWT of the user for every user-scoped call, as the auth guard does
    for a request: the contract then runs under row-level security."""

    async def get_connection(self, user_id: str, provider: str) -> Connection | None:
        with forward_user_jwt(*self._jwt(user_id)):
            return await super().get_connection(user_id, provider)

    async def list_connections(self, user_id: str) -> list[Connection]:
        with forward_user_jwt(*self._jwt(user_id)):
            return await super().list_connections(user_id)

    async def upsert_connection(self, new: NewConnection) -> tuple[Connection, bool]:
        with forward_user_jwt(*self._jwt(new.user_id)):
            return await super().upsert_connection(new)

    async def delete_connection(self, user_id: str, provider: str) -> Connection | None:
        with forward_user_jwt(*self._jwt(user_id)):
            return await super().delete_connection(user_id, provider)

    async def list_audit(self, user_id: str, **kwargs: Any) -> list[Any]:
        with forward_user_jwt(*self._jwt(user_id)):
            return await super().list_audit(user_id, **kwargs)

    def _jwt(self, name: str) -> tuple[str, str]:
        uid = self.uid(name)
        return uid, user_jwt(JWT_SECRET, uid)


@pytest.mark.postgres
class TestSupabaseRestServiceKey(StorageContract):
    @pytest.fixture
    async def storage(self, rest: SupabaseRestStorage) -> UuidUsers:
        return UuidUsers(rest)

    async def test_every_request_used_the_service_key(
        self, storage: UuidUsers, double: PostgrestDouble
    ) -> None:
        await storage.upsert_connection(new("u1"))
        await storage.list_connections("u1")
        assert double.seen
        assert {(s.role, s.apikey) for s in double.seen} == {("service_role", "service")}


@pytest.mark.postgres
class TestSupabaseRestUserJwt(StorageContract):
    @pytest.fixture
    async def storage(self, rest: SupabaseRestStorage) -> JwtPerUser:
        return JwtPerUser(rest)

    async def test_user_calls_ran_as_the_user(
        self, storage: JwtPerUser, double: PostgrestDouble
    ) -> None:
        await storage.upsert_connection(new("u1"))
        await storage.list_connections("u1")
        await storage.delete_connection("u1", "google")
        uid = storage.uid("u1")
        assert [(s.path, s.role, s.sub, s.apikey) for s in double.seen] == [
            ("rpc/pulseplan_upsert_connection", "authenticated", uid, "anon"),
            ("calendar_connections", "authenticated", uid, "anon"),
            ("calendar_connections", "authenticated", uid, "anon"),
        ]


# --------------------------------------------------------------------------- RLS


@pytest.mark.postgres
async def test_a_users_jwt_never_reaches_another_users_rows(
    rest: SupabaseRestStorage,
    double: PostgrestDouble,
    logs: list[str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="httpx")
    alice, bob = str(uuid.uuid4()), str(uuid.uuid4())
    bobs, _ = await rest.upsert_connection(new(bob))  # no JWT bound: service key
    now = datetime.now(UTC)
    await rest.add_audit([audit(bob, now)])
    double.seen.clear()
    with forward_user_jwt(alice, user_jwt(JWT_SECRET, alice)):
        # The backend is asked for Bob's rows by id; RLS answers for Alice's JWT.
        assert await rest.get_connection(bob, "google") is None
        assert await rest.list_connections(bob) == []
        assert await rest.list_audit(bob) == []
        assert await rest.delete_connection(bob, "google") is None
        with pytest.raises(StorageError, match="42501"):
            await rest.upsert_connection(new(bob, access_token="ct-hijack"))
    assert {(s.role, s.sub) for s in double.seen} == {("authenticated", alice)}
    assert any("another user than the request's JWT" in line for line in logs)
    # httpx logs each request; the PostgREST query string (user ids) is cut from those lines.
    requests = [r.getMessage() for r in caplog.records if r.name == "httpx"]
    assert any("/rest/v1/calendar_connections" in line for line in requests)
    assert not any(bob in line or alice in line for line in requests)
    # Bob's row is untouched, and Bob's own JWT sees it.
    survivor = await rest.get_connection_by_id(bobs.id)
    assert survivor is not None
    assert survivor.access_token == bobs.access_token
    with forward_user_jwt(bob, user_jwt(JWT_SECRET, bob)):
        assert [c.id for c in await rest.list_connections(bob)] == [bobs.id]
        assert len(await rest.list_audit(bob)) == 1


@pytest.mark.postgres
async def test_service_key_for_background_and_service_only_calls(
    rest: SupabaseRestStorage, double: PostgrestDouble
) -> None:
    alice = str(uuid.uuid4())
    now = datetime.now(UTC)
    with forward_user_jwt(alice, user_jwt(JWT_SECRET, alice)):
        row, _ = await rest.upsert_connection(new(alice, expires_at=now + timedelta(minutes=1)))
        double.seen.clear()
        # Even inside a user's request these are service work, never the user's credential.
        assert await rest.get_connection_by_id(row.id) is not None
        assert await rest.update_connection(row.id, row.version, refresh_failures=1)
        await rest.add_audit([audit(alice, now)])
        await rest.put_flow("k", "p", now + timedelta(minutes=5))
        assert await rest.take_flow("k", now) == "p"
        assert await rest.acquire_lock("refresh:x", "A", 10, now)
        assert await rest.count_connections_by_status() == {"active": 1}
        claimed = await rest.claim_due_connections(
            now=now, horizon=now + timedelta(minutes=5), limit=5, owner="w", lease_seconds=30
        )
        assert [c.id for c in claimed] == [row.id]
    assert {(s.role, s.apikey) for s in double.seen} == {("service_role", "service")}
    # A background job (no JWT bound) uses the service key for user-scoped calls too.
    double.seen.clear()
    assert forwarded_user_jwt() is None
    assert [c.id for c in await rest.list_connections(alice)] == [row.id]
    assert [(s.role, s.apikey) for s in double.seen] == [("service_role", "service")]


@pytest.mark.postgres
async def test_without_an_anon_key_the_service_key_is_the_apikey(double: PostgrestDouble) -> None:
    storage = SupabaseRestStorage(double.url, double.service_key)
    await storage.open()
    try:
        alice = str(uuid.uuid4())
        with forward_user_jwt(alice, user_jwt(JWT_SECRET, alice)):
            assert await storage.list_connections(alice) == []
        assert [(s.role, s.apikey) for s in double.seen] == [("authenticated", "service")]
        assert "apikey: service key" in storage.detail
    finally:
        await storage.close()


@pytest.mark.postgres
async def test_the_double_enforces_rls_and_refuses_what_it_does_not_model(
    rest: SupabaseRestStorage, double: PostgrestDouble
) -> None:
    """Checks on the double itself: an unfiltered query with a user's JWT returns only that
    user's rows (the database decides, as behind real PostgREST), the service-only tables
    refuse a user, and PostgREST features the double does not model fail loudly."""
    alice, bob = str(uuid.uuid4()), str(uuid.uuid4())
    await rest.upsert_connection(new(alice))
    await rest.upsert_connection(new(bob))
    base = f"{double.url}/rest/v1"
    as_alice = {"apikey": double.anon_key, "Authorization": f"Bearer {user_jwt(JWT_SECRET, alice)}"}
    async with httpx.AsyncClient(timeout=5) as http:
        unfiltered = await http.get(f"{base}/calendar_connections?select=user_id", headers=as_alice)
        assert unfiltered.json() == [{"user_id": alice}]
        flows = await http.get(f"{base}/pulseplan_oauth_flows", headers=as_alice)
        assert (flows.status_code, flows.json()["code"]) == (403, "42501")
        counted = await http.get(
            f"{base}/calendar_connections", headers={**as_alice, "Prefer": "count=exact"}
        )
        negated = await http.get(f"{base}/calendar_connections?user_id=not.eq.x", headers=as_alice)
        assert [counted.status_code, negated.status_code] == [501, 501]


# --------------------------------------------------------------------------- failures


def _texts(exc: BaseException) -> list[str]:
    """Everything an exception would show: itself, its cause and context, str and repr."""
    texts = []
    seen: BaseException | None = exc
    while seen is not None:
        texts += [str(seen), repr(seen), str(seen.args)]
        seen = seen.__cause__ or seen.__context__
    return texts


@pytest.mark.postgres
async def test_no_secret_in_errors_reprs_or_logs(
    rest: SupabaseRestStorage, double: PostgrestDouble, logs: list[str]
) -> None:
    alice = str(uuid.uuid4())
    token = user_jwt(JWT_SECRET, alice)
    secrets = [double.service_key, double.anon_key, token, JWT_SECRET]
    shown = [repr(rest), repr(rest.client), rest.detail]
    leaky = f'{{"code":"XX000","message":"boom {double.service_key}","details":"{token}"}}'
    double.injected = [
        Injected(500, leaky.encode()),
        Injected(502, f"<html>bad gateway {double.anon_key}</html>".encode(), "text/html"),
        Injected(503, b'{"code":"PGRST001","message":"Database client error"}'),
    ]
    failures = []
    for _ in range(3):
        with forward_user_jwt(alice, token), pytest.raises(StorageError) as caught:
            await rest.list_connections(alice)
        failures.append(caught.value)
    assert [str(f) for f in failures] == [
        "Supabase REST request failed (XX000, HTTP 500)",
        "Supabase database unavailable (502)",
        "Supabase database unavailable (PGRST001)",
    ]
    # A JWT PostgREST refuses (signed by someone else) is named by code, not echoed.
    forged = user_jwt("another-secret-" + uuid.uuid4().hex, alice)
    with forward_user_jwt(alice, forged), pytest.raises(StorageError) as refused:
        await rest.list_connections(alice)
    assert str(refused.value) == "Supabase REST refused the credentials (PGRST301)"
    secrets.append(forged)
    for failure in [*failures, refused.value]:
        shown += _texts(failure)
    for text in [*shown, *logs]:
        for secret in secrets:
            assert secret not in text


@pytest.mark.postgres
async def test_network_failure_is_a_storage_error() -> None:
    with closed_port() as port:
        key = supabase_key(JWT_SECRET, "service_role")
        storage = SupabaseRestStorage(f"http://127.0.0.1:{port}", key)
        await storage.open()
        try:
            with pytest.raises(StorageError, match="unavailable") as caught:
                await storage.ping()
            with pytest.raises(StorageError):
                await storage.get_connection(str(uuid.uuid4()), "google")
            with pytest.raises(StorageError):
                await storage.update_connection(str(uuid.uuid4()), 1, access_token="x")
            for text in _texts(caught.value):
                assert key not in text
                assert str(port) not in text
        finally:
            await storage.close()


@pytest.mark.postgres
async def test_a_hung_server_times_out(double: PostgrestDouble) -> None:
    import asyncio

    double.hold = asyncio.Event()
    storage = SupabaseRestStorage(double.url, double.service_key, ping_timeout=0.2, timeout=0.2)
    await storage.open()
    try:
        with pytest.raises(StorageError, match="did not answer in time"):
            await storage.ping()
        with pytest.raises(StorageError, match="did not answer in time"):
            await storage.list_agents()
    finally:
        double.hold.set()
        await storage.close()


@pytest.mark.postgres
async def test_wrong_apikey_is_refused(double: PostgrestDouble) -> None:
    stranger = supabase_key("not-the-project-secret-" + uuid.uuid4().hex, "service_role")
    storage = SupabaseRestStorage(double.url, stranger)
    await storage.open()
    try:
        with pytest.raises(StorageError, match=r"refused the credentials \(401\)"):
            await storage.ping()
    finally:
        await storage.close()


# --------------------------------------------------------------------------- migrations


@pytest.mark.postgres
async def test_migrations_are_reported_not_applied() -> None:
    with scratch_database() as database:
        double = PostgrestDouble(database.url, jwt_secret=JWT_SECRET)
        async with double.running():
            storage = SupabaseRestStorage(double.url, double.service_key)
            await storage.open()
            try:
                assert await storage.pending_migrations() == [
                    "0001_initial",
                    "0002_rest_functions",
                ]
                with pytest.raises(ConfigurationError, match="pulseplan migrate"):
                    await storage.migrate()
                with pytest.raises(StorageError, match="schema is missing"):
                    await storage.list_agents()
                migrated = await open_storage(database.url)
                await migrated.close()
                assert await storage.pending_migrations() == []
                assert await storage.migrate() == []
            finally:
                await storage.close()


# --------------------------------------------------------------------------- selection


def test_selected_by_database_url(make_settings: Callable[..., Settings]) -> None:
    service = supabase_key(JWT_SECRET, "service_role")
    env = {
        "DATABASE_URL": "supabase://",
        "SUPABASE_URL": "https://ref.supabase.co",
        "SUPABASE_SERVICE_KEY": service,
    }
    storage = make_storage(make_settings(**env))
    assert isinstance(storage, SupabaseRestStorage)
    assert storage.client.base_url == "https://ref.supabase.co/rest/v1"
    assert service not in repr(storage)
    with pytest.raises(ConfigurationError, match="needs SUPABASE_SERVICE_KEY"):
        make_storage(make_settings(**{**env, "SUPABASE_SERVICE_KEY": ""}))
    with pytest.raises(ConfigurationError, match="needs SUPABASE_URL"):
        make_storage(make_settings(**{k: v for k, v in env.items() if k != "SUPABASE_URL"}))
    with pytest.raises(ConfigurationError, match="takes nothing more"):
        make_storage(make_settings(**{**env, "DATABASE_URL": "supabase://ref.supabase.co"}))
    anon = supabase_key(JWT_SECRET, "anon")
    with pytest.raises(ConfigurationError, match="role 'anon'") as caught:
        make_storage(make_settings(**{**env, "SUPABASE_SERVICE_KEY": anon}))
    assert anon not in str(caught.value)
    with pytest.raises(ConfigurationError, match="publishable"):
        make_storage(make_settings(**{**env, "SUPABASE_SERVICE_KEY": "sb_publishable_x"}))
    with pytest.raises(ConfigurationError, match="http"):
        make_storage(make_settings(**{**env, "SUPABASE_URL": "ref.supabase.co"}))


# --------------------------------------------------------------------------- through the app


@pytest.mark.postgres
async def test_the_api_forwards_the_callers_jwt(tmp_path: Path, double: PostgrestDouble) -> None:
    """The whole app on DATABASE_URL=supabase://: the guard binds the verified JWT, so the
    user's own requests run as that user; the OAuth callback (no user JWT) uses the service
    key; another user's JWT sees nothing."""
    alice, bob = str(uuid.uuid4()), str(uuid.uuid4())
    async with running_vault(
        tmp_path,
        providers={"acme": FakeProvider("standard")},
        DATABASE_URL="supabase://",
        SUPABASE_URL=double.url,
        SUPABASE_SERVICE_KEY=double.service_key,
        SUPABASE_ANON_KEY=double.anon_key,
        SUPABASE_JWT_SECRET=JWT_SECRET,
    ) as v:
        assert isinstance(v.runtime.storage, SupabaseRestStorage)
        row = await v.connect(alice, "acme")
        callback = [s for s in double.seen if s.path == "rpc/pulseplan_upsert_connection"]
        assert [(s.role, s.apikey) for s in callback] == [("service_role", "service")]
        double.seen.clear()
        listed = await v.client.get("/api/v1/tokens/connections", headers=v.headers(alice))
        assert [c["id"] for c in await listed.get_json()] == [row.id]
        assert ("calendar_connections", "authenticated", alice) in double.roles()
        double.seen.clear()
        others = await v.client.get("/api/v1/tokens/connections", headers=v.headers(bob))
        assert await others.get_json() == []
        assert {(s.role, s.sub) for s in double.seen} == {("authenticated", bob)}
        gone = await v.disconnect(alice)
        assert gone.status_code == 200
        assert forwarded_user_jwt() is None  # nothing leaks out of a request


@contextmanager
def closed_port() -> Iterator[int]:
    """A loopback port nothing listens on."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    yield port
