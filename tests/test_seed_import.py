"""``pulseplan import-seed``: seed-format rows (both master-key encodings, the V1 and N1 vectors,
HEAD's per-service rows, a plaintext row, corrupt and unreadable rows) are imported by the real
command from a SQLite file and from a PostgreSQL schema; the imported connections then serve
their tokens through ``GET /api/v1/tokens/tokens``; reruns change nothing; the command's output
never carries token material."""

from __future__ import annotations

import base64
import re
import secrets
import sqlite3
import subprocess
import uuid
from collections.abc import Sequence
from contextlib import closing
from datetime import UTC
from datetime import datetime
from pathlib import Path
from typing import Any

import asyncpg
import pytest

from pulseplan.app import create_app
from pulseplan.crypto import TokenCipher
from pulseplan.crypto import generate_key
from pulseplan.crypto import load_keyring
from pulseplan.crypto.config import KeyConfig
from pulseplan.errors import ConfigurationError
from pulseplan.seedimport import ImportReport
from pulseplan.seedimport import import_seed
from pulseplan.seedimport import open_source
from pulseplan.seedimport.rows import RowProblem
from pulseplan.seedimport.rows import normalize
from pulseplan.seedimport.rows import parse_scopes
from pulseplan.seedimport.rows import parse_time
from pulseplan.settings import Settings
from pulseplan.storage.models import Connection
from pulseplan.storage.models import NewConnection
from pulseplan.storage.sqlite import SQLiteStorage
from pulseplan.testing.users import user_token
from tests.conftest import BASE_ENV
from tests.crypto_seed import N1
from tests.crypto_seed import V1
from tests.crypto_seed import V1_KEY
from tests.crypto_seed import V1_PLAINTEXT
from tests.crypto_seed import V1_USER
from tests.crypto_seed import node_encrypt
from tests.crypto_seed import seed_encrypt
from tests.pg_fixtures import ScratchDatabase
from tests.pg_fixtures import pg_database_fixture  # noqa: F401
from tests.pg_fixtures import scratch_database
from tests.server import pulseplan

# 64 hex characters: valid base64 too, so the seed's two encodings derive different keys.
HEX_KEY = "00112233445566778899aabbccddeeff0123456789abcdeffedcba9876543210"
NEW_KEY = base64.urlsafe_b64encode(secrets.token_bytes(32)).decode()
FAR = "2099-01-01T00:00:00"  # naive, as the seed wrote expiries
#: Every plaintext token the fixtures encrypt (or store in plaintext).
PLAINTEXTS = (
    V1_PLAINTEXT, "ya29.A-calendar", "1//A-cal-refresh", "ya29.A-gmail", "1//A-gmail-refresh",
    "EwB-microsoft-B", "secret_plain_notion_C", "ya29.D", "1//D-refresh", "7~canvas-E", "ya29.F",
    "apple-F", "ya29.H-dead", "1//H-dead", "1//V1-refresh", "EwB-node-J", "M.R3-node-J",
    "ya29.A-node-old", "1//A-node-old", "1//v1-refresh", "1//v1", "ya29.older-gmail", "1//older",
    "ya29.K", "1//K", "EwB-L", "M.R3-L", "1//node-m",
)  # fmt: skip


def user(n: int) -> str:
    return str(uuid.UUID(int=n, version=4))


A, B, C, D, E, F_, H, J = (user(n) for n in (10, 11, 12, 13, 14, 15, 17, 19))

HEAD_DDL = """CREATE TABLE oauth_tokens (
  id TEXT PRIMARY KEY, user_id TEXT NOT NULL, provider TEXT NOT NULL,
  access_token TEXT NOT NULL, refresh_token TEXT NOT NULL, expires_at TEXT NOT NULL,
  scopes TEXT, created_at TEXT NOT NULL, email TEXT, updated_at TEXT,
  is_active TEXT NOT NULL DEFAULT 't', last_refreshed TEXT, service_type TEXT NOT NULL,
  provider_url TEXT)"""
NODE_DDL = """CREATE TABLE calendar_connections (
  id TEXT PRIMARY KEY, user_id TEXT NOT NULL, provider TEXT NOT NULL,
  access_token TEXT NOT NULL, refresh_token TEXT NOT NULL, expires_at TEXT, scopes TEXT,
  email TEXT, created_at TEXT NOT NULL)"""


def tampered(ciphertext: str) -> str:
    head, last = ciphertext[:-1], ciphertext[-1]
    return head + ("0" if last != "0" else "1")


def seed_rows() -> list[dict[str, Any]]:
    """The Python seed's rows, as HEAD's ``oauth_tokens`` holds them (text in SQLite)."""

    def enc(uid: str, token: str, encoding: str) -> str:
        return seed_encrypt(HEX_KEY, uid, token, encoding=encoding)

    def row(rid: str, uid: str, provider: str, service: str, **cols: Any) -> dict[str, Any]:
        base = {"id": rid, "user_id": uid, "provider": provider, "service_type": service}
        return {"expires_at": FAR, "created_at": "2025-09-01 08:00:00", **base, **cols}

    return [
        # HEAD's per-service rows for one user, written before and after the encoding change;
        # the gmail row is newer and wins. Its user id is upper-case (a text column).
        row("r01", A, "google", "calendar", access_token=enc(A, "ya29.A-calendar", "utf8"),
            refresh_token=enc(A, "1//A-cal-refresh", "utf8"), updated_at="2025-09-02T10:00:00",
            scopes="{openid,email,https://www.googleapis.com/auth/calendar}"),
        row("r02", A.upper(), "google", "gmail",
            access_token=enc(A.upper(), "ya29.A-gmail", "base64"),
            refresh_token=enc(A.upper(), "1//A-gmail-refresh", "base64"),
            updated_at="2025-11-10 12:00:00.5", email="a@example.test",
            scopes='["openid", "https://www.googleapis.com/auth/gmail.send"]'),
        # Sept-3's name for Microsoft; no refresh token (no offline_access) stored as "".
        row("r03", B, "outlook", "calendar", access_token=enc(B, "EwB-microsoft-B", "base64"),
            refresh_token="", scopes="openid Calendars.ReadWrite"),
        row("r04", C, "notion", "notion", access_token="secret_plain_notion_C",
            refresh_token=""),
        row("r05", D, "google", "calendar", access_token=tampered(enc(D, "ya29.D", "utf8")),
            refresh_token=enc(D, "1//D-refresh", "utf8")),
        # Canvas personal token in both columns, with its instance.
        row("r06", E, "canvas", "canvas", access_token=enc(E, "7~canvas-E", "base64"),
            refresh_token=enc(E, "7~canvas-E", "base64"),
            provider_url="https://school.instructure.com"),
        row("r07", "not-a-uuid", "google", "calendar",
            access_token=enc("not-a-uuid", "ya29.F", "utf8"), refresh_token=""),
        row("r08", F_, "apple", "calendar", access_token=enc(F_, "apple-F", "utf8"),
            refresh_token=""),
        row("r09", H, "google", "calendar", access_token=enc(H, "ya29.H-dead", "utf8"),
            refresh_token=enc(H, "1//H-dead", "utf8"), is_active="f"),
    ]  # fmt: skip


def node_rows() -> list[dict[str, Any]]:
    """The Node.js seed's rows (``calendar_connections``: no updated_at, no is_active)."""
    return [
        {"id": "n1", "user_id": V1_USER, "provider": "google", "access_token": N1,
         "refresh_token": node_encrypt(V1_KEY, "1//V1-refresh"), "expires_at": FAR,
         "scopes": "{https://www.googleapis.com/auth/calendar}", "created_at": "2025-06-01"},
        {"id": "n2", "user_id": J, "provider": "microsoft",
         "access_token": node_encrypt(V1_KEY, "EwB-node-J"),
         "refresh_token": node_encrypt(V1_KEY, "M.R3-node-J"), "expires_at": FAR,
         "created_at": "2025-06-02T00:00:00Z"},
        # Older than the oauth_tokens row imported for A: PulsePlan keeps the newer one.
        {"id": "n3", "user_id": A, "provider": "google",
         "access_token": node_encrypt(V1_KEY, "ya29.A-node-old"),
         "refresh_token": node_encrypt(V1_KEY, "1//A-node-old"), "expires_at": FAR,
         "created_at": "2025-06-03T00:00:00"},
    ]  # fmt: skip


def write_sqlite(path: Path, ddl: str, table: str, rows: Sequence[dict[str, Any]]) -> None:
    with closing(sqlite3.connect(path)) as db, db:
        db.execute(ddl)
        for row in rows:
            names = ", ".join(row)
            marks = ", ".join("?" for _ in row)
            db.execute(f"INSERT INTO {table} ({names}) VALUES ({marks})", list(row.values()))  # noqa: S608


def env_for(tmp_path: Path, **extra: str) -> dict[str, str]:
    """The CLI's environment: PulsePlan's key is v2, because the seed rows are v1."""
    env = {k: v for k, v in BASE_ENV.items() if k != "TOKEN_ENCRYPTION_KEY"}
    return {
        **env,
        "TOKEN_ENCRYPTION_KEYS": f"v2:{NEW_KEY}",
        "DATABASE_URL": f"sqlite:///{tmp_path / 'pulseplan.db'}",
        "PULSEPLAN_DATA_DIR": str(tmp_path / "data"),
        **extra,
    }


def counts(result: subprocess.CompletedProcess[str]) -> dict[str, int]:
    last = result.stdout.strip().splitlines()[-1]
    return {name: int(n) for name, n in re.findall(r"(\w+): (\d+)", last)}


def failures(result: subprocess.CompletedProcess[str]) -> dict[str, str]:
    found = re.findall(r"^failed: \w+ row (\S+): (.*)$", result.stderr, re.MULTILINE)
    return dict(found)


def assert_no_secrets(outputs: Sequence[subprocess.CompletedProcess[str]], rows: Any) -> None:
    """No plaintext token, stored ciphertext (or a part of one) or key in any output."""
    text = "".join(r.stdout + r.stderr for r in outputs)
    material = {HEX_KEY, V1_KEY, NEW_KEY, *PLAINTEXTS}
    for row in rows:
        for name in ("access_token", "refresh_token"):
            value = row.get(name) or ""
            material.add(value)
            material.update(part for part in value.split(":") if len(part) >= 16)
    leaked = sorted(len(m) for m in material if m and m in text)
    assert not leaked, f"token material of lengths {leaked} in the output"


def serving_settings(env: dict[str, str]) -> Settings:
    """The server's settings after the import: no seed keys at all (rows were rewrapped)."""
    kept = {k: v for k, v in env.items() if "SEED" not in k and k != "TOKEN_ENCRYPTION_NODE_KEY"}
    settings = Settings.load(kept, env_file=None, generate_dev_secrets=False)
    return settings.model_copy(update={"background_refresh": False})


async def served(env: dict[str, str], *users: str) -> dict[str, dict[str, Any]]:
    """``GET /api/v1/tokens/tokens`` for each user, through the real app."""
    settings = serving_settings(env)
    app = create_app(settings)
    bodies = {}
    async with app.test_app():
        client = app.test_client()
        for uid in users:
            auth = {"Authorization": f"Bearer {user_token(settings, uid)}"}
            response = await client.get("/api/v1/tokens/tokens", headers=auth)
            assert response.status_code == 200
            bodies[uid] = await response.get_json()
    return bodies


async def stored(env: dict[str, str]) -> list[Connection]:
    storage = SQLiteStorage(env["DATABASE_URL"].removeprefix("sqlite:///"))
    await storage.open()
    try:
        return await storage.connections_page(None, 1000)
    finally:
        await storage.close()


# --------------------------------------------------------------------------- SQLite source


async def test_import_from_sqlite_serves_tokens_reports_bad_rows_and_reruns_cleanly(
    tmp_path: Path,
) -> None:
    seed_db = tmp_path / "seed.db"
    write_sqlite(seed_db, HEAD_DDL, "oauth_tokens", seed_rows())
    write_sqlite(seed_db, NODE_DDL, "calendar_connections", node_rows())
    env = env_for(
        tmp_path,
        TOKEN_ENCRYPTION_SEED_KEY=HEX_KEY,
        TOKEN_ENCRYPTION_SEED_ENCODING="both",
        TOKEN_ENCRYPTION_NODE_KEY=V1_KEY,
    )

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return pulseplan("import-seed", "--from", str(seed_db), *args, env=env, cwd=tmp_path)

    outputs = [ambiguous := run()]
    assert ambiguous.returncode == 1
    assert "choose one with --table" in ambiguous.stderr

    outputs.append(dry := run("--table", "oauth_tokens", "--dry-run"))
    assert dry.returncode == 1, dry.stderr
    assert "dry run" in dry.stdout
    assert counts(dry)["created"] == 4
    with closing(sqlite3.connect(tmp_path / "pulseplan.db")) as db:
        tables = {r[0] for r in db.execute("SELECT name FROM sqlite_master")}
    assert "calendar_connections" not in tables  # not even PulsePlan's schema was created

    outputs.append(first := run("--table", "oauth_tokens"))
    assert first.returncode == 1, first.stderr
    assert counts(first) == {
        "rows": 9, "connections": 4, "created": 4, "updated": 0, "unchanged": 0, "kept": 0,
        "merged": 1, "needs_reauth": 1, "plaintext": 0, "skipped": 0, "failed": 4,
    }  # fmt: skip
    failed = failures(first)
    assert set(failed) == {"r04", "r05", "r07", "r08"}
    assert "--accept-plaintext" in failed["r04"]
    assert "tampered_ciphertext" in failed["r05"]
    assert "not a UUID" in failed["r07"]
    assert "unknown provider apple" in failed["r08"]
    assert "merged: google: kept row r02 (gmail); superseded row r01 (calendar)" in first.stdout
    assert "without a refresh token" in first.stdout

    rows = {(r.user_id, r.provider): r for r in await stored(env)}
    assert set(rows) == {(A, "google"), (B, "microsoft"), (E, "canvas"), (H, "google")}
    for row in rows.values():
        assert row.access_token.startswith("v2:")  # rewrapped under PulsePlan's primary key
    a_google = rows[(A, "google")]
    assert a_google.scopes == ("openid", "https://www.googleapis.com/auth/gmail.send")
    assert a_google.email == "a@example.test"
    assert a_google.metadata["seed_import"]["row_id"] == "r02"
    assert rows[(B, "microsoft")].refresh_token is None
    assert rows[(E, "canvas")].refresh_token is None
    assert rows[(E, "canvas")].metadata["base_url"] == "https://school.instructure.com"
    assert rows[(H, "google")].status == "needs_reauth"
    versions = {key: row.version for key, row in rows.items()}

    outputs.append(again := run("--table", "oauth_tokens"))
    assert again.returncode == 1
    assert (counts(again)["unchanged"], counts(again)["created"]) == (4, 0)
    assert {(r.user_id, r.provider): r.version for r in await stored(env)} == versions

    outputs.append(plain := run("--table", "oauth_tokens", "--accept-plaintext"))
    assert (counts(plain)["created"], counts(plain)["plaintext"]) == (1, 1)
    assert set(failures(plain)) == {"r05", "r07", "r08"}

    outputs.append(node := run("--table", "calendar_connections", "--skip-provider", "microsoft"))
    assert node.returncode == 0, node.stderr
    assert (counts(node)["created"], counts(node)["kept"], counts(node)["skipped"]) == (1, 1, 1)
    outputs.append(node_all := run("--table", "calendar_connections"))
    assert node_all.returncode == 0, node_all.stderr
    assert (counts(node_all)["created"], counts(node_all)["unchanged"]) == (1, 1)

    assert_no_secrets(outputs, seed_rows() + node_rows())

    bodies = await served(env, A, B, C, E, H, V1_USER, J)
    assert bodies[A]["google"]["access_token"] == "ya29.A-gmail"
    assert bodies[B]["microsoft"]["access_token"] == "EwB-microsoft-B"
    assert bodies[C]["notion"]["access_token"] == "secret_plain_notion_C"
    assert bodies[E]["canvas"]["access_token"] == "7~canvas-E"
    assert bodies[V1_USER]["google"]["access_token"] == V1_PLAINTEXT  # the N1 vector
    assert bodies[J]["microsoft"]["access_token"] == "EwB-node-J"
    assert bodies[H]["google"] is None
    assert bodies[H]["errors"]["google"]["code"] == "needs_reauth"
    for body in bodies.values():
        assert "refresh_token" not in str(body)


async def test_import_detects_the_seed_table_next_to_pulseplans_own(tmp_path: Path) -> None:
    # docs/migrating.md section 3: PulsePlan migrated into the seed's own database, then section
    # 4 imports without --table. PulsePlan's calendar_connections (found by name, told apart by
    # its columns) is not a second candidate: detection picks the seed's oauth_tokens.
    env = env_for(
        tmp_path, TOKEN_ENCRYPTION_SEED_KEY=HEX_KEY, TOKEN_ENCRYPTION_SEED_ENCODING="both"
    )
    shared = tmp_path / "pulseplan.db"  # env_for's DATABASE_URL: the seed lives there too
    migrated = pulseplan("migrate", env=env, cwd=tmp_path)
    assert migrated.returncode == 0, migrated.stderr
    write_sqlite(shared, HEAD_DDL, "oauth_tokens", seed_rows())

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return pulseplan("import-seed", "--from", str(shared), *args, env=env, cwd=tmp_path)

    outputs = [dry := run("--dry-run")]
    assert "choose one" not in dry.stderr
    assert dry.returncode == 1, dry.stderr  # the seed's four unreadable rows, nothing else
    assert "seed import from oauth_tokens" in dry.stdout
    assert (counts(dry)["created"], counts(dry)["failed"]) == (4, 4)
    assert await stored(env) == []

    outputs.append(first := run())
    assert first.returncode == 1, first.stderr
    assert (counts(first)["created"], counts(first)["rows"]) == (4, 9)
    assert set(failures(first)) == {"r04", "r05", "r07", "r08"}
    outputs.append(again := run())
    assert (counts(again)["unchanged"], counts(again)["created"]) == (4, 0)

    # Naming PulsePlan's own table explicitly is still refused, with the reason.
    outputs.append(ours := run("--table", "calendar_connections"))
    assert ours.returncode != 0
    assert "is PulsePlan's own connections table" in ours.stderr
    assert_no_secrets(outputs, seed_rows())

    bodies = await served(env, A, B)
    assert bodies[A]["google"]["access_token"] == "ya29.A-gmail"
    assert bodies[B]["microsoft"]["access_token"] == "EwB-microsoft-B"


@pytest.mark.parametrize("encoding", ["utf8", "base64"])
async def test_v1_vector_from_a_sept_3_table_is_served_after_import(
    tmp_path: Path, encoding: str
) -> None:
    # Sept-3 schema: no service_type/is_active; V1's key is not base64, so both encodings read it.
    seed_db = tmp_path / "sept3.db"
    ddl = (
        "CREATE TABLE oauth_tokens (id TEXT, user_id TEXT, provider TEXT, access_token TEXT, "
        "refresh_token TEXT, expires_at TEXT, scopes TEXT, created_at TEXT, email TEXT, "
        "updated_at TEXT)"
    )
    row = {
        "id": str(uuid.uuid4()), "user_id": V1_USER, "provider": "google", "access_token": V1,
        "refresh_token": seed_encrypt(V1_KEY, V1_USER, "1//v1-refresh"), "expires_at": FAR,
        "scopes": "openid email", "created_at": "2025-09-03T09:00:00",
        "updated_at": "2025-09-03T09:00:00",
    }  # fmt: skip
    write_sqlite(seed_db, ddl, "oauth_tokens", [row])
    env = env_for(
        tmp_path, TOKEN_ENCRYPTION_SEED_KEY=V1_KEY, TOKEN_ENCRYPTION_SEED_ENCODING=encoding
    )
    result = pulseplan("import-seed", "--from", f"sqlite:///{seed_db}", env=env, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert counts(result)["created"] == 1
    assert_no_secrets([result], [row])
    body = (await served(env, V1_USER))[V1_USER]
    assert body["google"] == {
        "access_token": V1_PLAINTEXT,
        "expires_at": "2099-01-01T00:00:00+00:00",
        "scopes": ["openid", "email"],
    }


async def test_the_wrong_encoding_reports_rows_instead_of_importing_garbage(
    tmp_path: Path,
) -> None:
    seed_db = tmp_path / "seed.db"
    write_sqlite(seed_db, HEAD_DDL, "oauth_tokens", seed_rows()[:3])
    ring = KeyConfig(keys=f"v2:{generate_key()}", seed_key=HEX_KEY, seed_encoding="utf8")
    cipher = TokenCipher(load_keyring(ring))
    storage = SQLiteStorage(str(tmp_path / "pp.db"))
    await storage.open()
    await storage.migrate()
    try:
        async with open_source(str(seed_db), table=None) as source:
            report = await import_seed(source, storage, cipher, enabled=["google", "microsoft"])
        # r02 and r03 were written by the base64-decoding seed code: utf8 alone cannot read them.
        assert {row_id for row_id, _ in report.failed} == {"r02", "r03"}
        assert report.created == 1
        row = await storage.get_connection(A, "google")
        assert row is not None
        assert row.metadata["seed_import"]["row_id"] == "r01"
    finally:
        await storage.close()


async def test_reruns_update_newer_seed_rows_and_never_overwrite_pulseplan_connections(
    tmp_path: Path,
) -> None:
    seed_db = tmp_path / "seed.db"
    write_sqlite(seed_db, HEAD_DDL, "oauth_tokens", seed_rows()[:3])
    ring = KeyConfig(keys=f"v2:{generate_key()}", seed_key=HEX_KEY, seed_encoding="both")
    cipher = TokenCipher(load_keyring(ring))
    storage = SQLiteStorage(str(tmp_path / "pp.db"))
    await storage.open()
    await storage.migrate()

    async def run() -> ImportReport:
        async with open_source(f"sqlite:///{seed_db}", table="oauth_tokens") as source:
            return await import_seed(source, storage, cipher, enabled=["google", "microsoft"])

    def access(row: Connection | None) -> str:
        assert row is not None
        return cipher.decrypt(
            row.access_token, user_id=row.user_id, provider=row.provider, field="access_token"
        )

    try:
        # B connected in PulsePlan itself before the import: PulsePlan's connection wins.
        native = cipher.encrypt(
            "EwB-native-B", user_id=B, provider="microsoft", field="access_token"
        )
        await storage.upsert_connection(
            NewConnection(B, "microsoft", native, None, expires_at=None, scopes=())
        )
        first = await run()
        assert (first.created, first.kept, first.merged) == (1, 1, 1)
        assert access(await storage.get_connection(B, "microsoft")) == "EwB-native-B"

        # The seed kept running and refreshed A's gmail row after the first import.
        newer = seed_encrypt(HEX_KEY, A.upper(), "ya29.A-gmail-2", encoding="base64")
        with closing(sqlite3.connect(seed_db)) as db, db:
            db.execute(
                "UPDATE oauth_tokens SET access_token = ?, updated_at = ? WHERE id = 'r02'",
                (newer, "2025-11-11T00:00:00"),
            )
        second = await run()
        assert (second.updated, second.kept, second.created) == (1, 1, 0)
        assert access(await storage.get_connection(A, "google")) == "ya29.A-gmail-2"

        third = await run()
        assert (third.unchanged, third.updated, third.kept) == (1, 0, 1)
    finally:
        await storage.close()


@pytest.mark.parametrize(
    ("value", "scopes"),
    [
        (["a", "b", "a"], ("a", "b")),
        ('{a,"b c",NULL}', ("a", "b c")),
        ('["x", "y"]', ("x", "y")),
        ("openid  email,profile", ("openid", "email", "profile")),
        (None, ()),
    ],
)
def test_scopes_in_every_shape_the_seed_stored(value: object, scopes: tuple[str, ...]) -> None:
    assert parse_scopes(value) == scopes


@pytest.mark.parametrize(
    "value",
    [
        "2025-09-03T10:00:00",
        "2025-09-03 10:00:00+00",
        "2025-09-03T12:00:00+02:00",
        "2025-09-03T10:00:00Z",
        1756893600,
        1756893600000,
        datetime(2025, 9, 3, 10, 0),
    ],
)
def test_timestamps_naive_or_not_are_utc(value: object) -> None:
    assert parse_time(value, "expires_at") == datetime(2025, 9, 3, 10, 0, tzinfo=UTC)


def test_unreadable_columns_are_reported_without_their_value() -> None:
    with pytest.raises(RowProblem, match=r"^expires_at is not an ISO 8601 timestamp$"):
        normalize({"id": "r1", "expires_at": "ya29.not-a-date"}, 1)
    with pytest.raises(RowProblem, match=r"^is_active is not a boolean$"):
        normalize({"id": "r1", "is_active": "maybe"}, 1)


async def test_sources_refuse_what_is_not_a_seed_table(tmp_path: Path) -> None:
    ours = SQLiteStorage(str(tmp_path / "pulseplan.db"))
    await ours.open()
    await ours.migrate()
    await ours.close()
    with pytest.raises(ConfigurationError, match="PulsePlan's own connections table"):
        async with open_source(str(tmp_path / "pulseplan.db"), table="calendar_connections"):
            pass
    with pytest.raises(ConfigurationError, match=r"no seed table .*PulsePlan's own"):
        async with open_source(str(tmp_path / "pulseplan.db"), table=None):
            pass
    with pytest.raises(ConfigurationError, match="no SQLite file"):
        async with open_source(str(tmp_path / "missing.db"), table=None):
            pass
    with pytest.raises(ConfigurationError, match="unsupported scheme 'mysql'"):
        open_source("mysql://user:pw@host/db", table=None)
    with pytest.raises(ConfigurationError, match="plain lower-case SQL identifier"):
        open_source(str(tmp_path / "x.db"), table="x; DROP TABLE y")


# --------------------------------------------------------------------------- PostgreSQL source


PG_OAUTH_TOKENS_DDL = """
CREATE TABLE {schema}.oauth_tokens (
  id uuid PRIMARY KEY DEFAULT gen_random_uuid(), user_id uuid NOT NULL,
  provider text NOT NULL CHECK (provider = ANY (ARRAY['google','microsoft','outlook','apple',
    'canvas','notion'])),
  access_token text NOT NULL, refresh_token text NOT NULL, expires_at timestamptz NOT NULL,
  scopes text[], created_at timestamptz NOT NULL DEFAULT now(), email text,
  updated_at timestamptz DEFAULT now(), is_active boolean NOT NULL DEFAULT true,
  last_refreshed timestamptz NOT NULL DEFAULT now(), service_type text NOT NULL,
  provider_url text);
"""
PG_DDL = (
    PG_OAUTH_TOKENS_DDL
    + """
CREATE TABLE {schema}.calendar_connections (
  id uuid PRIMARY KEY DEFAULT gen_random_uuid(), user_id uuid NOT NULL,
  provider text NOT NULL CHECK (provider IN ('google', 'microsoft')),
  access_token text NOT NULL, refresh_token text NOT NULL, expires_at timestamptz,
  scopes text[], email text, created_at timestamptz NOT NULL DEFAULT now());
"""
)
PG_FAR = datetime(2099, 1, 1, tzinfo=UTC)
PG_K, PG_M, PG_L = user(30), user(31), user(32)


def pg_seed_rows() -> list[tuple[Any, ...]]:
    """The Python seed's rows for a PostgreSQL ``oauth_tokens``, as :func:`insert_pg_seed` takes
    them: (user_id, provider, access_token, refresh_token, scopes, service_type, updated_at,
    is_active)."""
    k, l_ = PG_K, PG_L  # short names keep the table below readable
    return [
        # V1 verbatim is the newest of V1_USER's per-service rows.
        (V1_USER, "google", V1, seed_encrypt(V1_KEY, V1_USER, "1//v1"), ["openid"], "calendar",
         datetime(2025, 9, 2, tzinfo=UTC), True),
        (V1_USER, "google", seed_encrypt(V1_KEY, V1_USER, "ya29.older-gmail"),
         seed_encrypt(V1_KEY, V1_USER, "1//older"), ["gmail.send"], "gmail",
         datetime(2025, 8, 1, tzinfo=UTC), True),
        (k, "google", tampered(seed_encrypt(V1_KEY, k, "ya29.K")), seed_encrypt(V1_KEY, k, "1//K"),
         [], "calendar", datetime(2025, 9, 1, tzinfo=UTC), True),
        (l_, "microsoft", seed_encrypt(V1_KEY, l_, "EwB-L"), seed_encrypt(V1_KEY, l_, "M.R3-L"),
         [], "calendar", datetime(2025, 9, 1, tzinfo=UTC), False),
    ]  # fmt: skip


async def insert_pg_seed(
    conn: asyncpg.Connection, schema: str, rows: Sequence[tuple[Any, ...]]
) -> None:
    """Insert :func:`pg_seed_rows`-shaped rows into ``schema.oauth_tokens``."""
    await conn.executemany(
        f"INSERT INTO {schema}.oauth_tokens (user_id, provider, access_token, refresh_token,"  # noqa: S608
        " scopes, service_type, updated_at, is_active, expires_at)"
        " VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
        [(*r, PG_FAR) for r in rows],
    )


@pytest.mark.postgres
async def test_import_from_a_postgres_seed_schema(
    tmp_path: Path, pg_database: ScratchDatabase
) -> None:
    schema = f"seed_{uuid.uuid4().hex[:8]}"
    m, l_ = PG_M, PG_L
    py_rows = pg_seed_rows()
    conn = await asyncpg.connect(pg_database.url)
    try:
        await conn.execute(f"CREATE SCHEMA {schema}")
        await conn.execute(PG_DDL.format(schema=schema))
        await insert_pg_seed(conn, schema, py_rows)
        await conn.execute(
            f"INSERT INTO {schema}.calendar_connections"  # noqa: S608
            " (user_id, provider, access_token, refresh_token, expires_at)"
            " VALUES ($1, 'google', $2, $3, $4)",
            m,
            N1,
            node_encrypt(V1_KEY, "1//node-m"),
            PG_FAR,
        )
        env = env_for(
            tmp_path,
            TOKEN_ENCRYPTION_SEED_KEY=V1_KEY,
            TOKEN_ENCRYPTION_SEED_ENCODING="utf8",
            TOKEN_ENCRYPTION_NODE_KEY=V1_KEY,
            SEED_DATABASE_URL=pg_database.url,  # the DSN stays off the command line
        )

        def run(table: str) -> subprocess.CompletedProcess[str]:
            args = ("import-seed", "--schema", schema, "--table", table)
            return pulseplan(*args, env=env, cwd=tmp_path)

        outputs = [python := run("oauth_tokens")]
        assert python.returncode == 1
        assert (counts(python)["created"], counts(python)["merged"]) == (2, 1)
        (reason,) = failures(python).values()
        assert reason.startswith("access_token: tampered_ciphertext: seed-format v1 ciphertext")
        outputs.append(node := run("calendar_connections"))
        assert node.returncode == 0, node.stderr
        assert counts(node)["created"] == 1
        outputs += [again := run("oauth_tokens"), node_again := run("calendar_connections")]
        assert (counts(again)["unchanged"], counts(node_again)["unchanged"]) == (2, 1)
        assert_no_secrets(outputs, [{"access_token": r[2], "refresh_token": r[3]} for r in py_rows])
        assert pg_database.url not in "".join(o.stdout + o.stderr for o in outputs)
    finally:
        await conn.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE")
        await conn.close()

    bodies = await served(env, V1_USER, m, l_)
    assert bodies[V1_USER]["google"]["access_token"] == V1_PLAINTEXT
    assert bodies[V1_USER]["google"]["scopes"] == ["openid"]
    assert bodies[m]["google"]["access_token"] == V1_PLAINTEXT  # N1
    assert bodies[l_]["errors"]["microsoft"]["code"] == "needs_reauth"


@pytest.mark.postgres
async def test_import_detects_the_seed_table_next_to_pulseplans_own_in_postgres(
    tmp_path: Path,
) -> None:
    # The Supabase layout of docs/migrating.md sections 3-4: `pulseplan migrate` into the seed's
    # database, so schema public holds PulsePlan's calendar_connections next to the seed's
    # oauth_tokens, and the import runs without --table. A database of its own: PulsePlan's
    # tables in public must not meet the session database's other users.
    with scratch_database() as database:
        env = env_for(
            tmp_path,
            DATABASE_URL=database.url,
            SEED_DATABASE_URL=database.url,
            TOKEN_ENCRYPTION_SEED_KEY=V1_KEY,
            TOKEN_ENCRYPTION_SEED_ENCODING="utf8",
        )
        migrated = pulseplan("migrate", env=env, cwd=tmp_path)
        assert migrated.returncode == 0, migrated.stderr
        py_rows = pg_seed_rows()
        conn = await asyncpg.connect(database.url)
        try:
            await conn.execute(PG_OAUTH_TOKENS_DDL.format(schema="public"))
            await insert_pg_seed(conn, "public", py_rows)
        finally:
            await conn.close()

        def run(*args: str) -> subprocess.CompletedProcess[str]:
            return pulseplan("import-seed", *args, env=env, cwd=tmp_path)

        outputs = [dry := run("--dry-run")]
        assert "choose one" not in dry.stderr
        assert dry.returncode == 1, dry.stderr  # PG_K's tampered row, nothing else
        assert "seed import from oauth_tokens" in dry.stdout
        assert (counts(dry)["created"], counts(dry)["failed"]) == (2, 1)
        outputs.append(first := run())
        assert first.returncode == 1, first.stderr
        assert (counts(first)["created"], counts(first)["merged"]) == (2, 1)
        outputs.append(ours := run("--table", "calendar_connections"))
        assert ours.returncode != 0
        assert "is PulsePlan's own connections table" in ours.stderr
        assert_no_secrets(outputs, [{"access_token": r[2], "refresh_token": r[3]} for r in py_rows])
        assert database.url not in "".join(o.stdout + o.stderr for o in outputs)

        bodies = await served(env, V1_USER, PG_L)
        assert bodies[V1_USER]["google"]["access_token"] == V1_PLAINTEXT
        assert bodies[PG_L]["errors"]["microsoft"]["code"] == "needs_reauth"
