"""Many processes on PostgreSQL + Redis (issue 6 acceptance): one refresh for 100 concurrent
fetches spread over 4 servers against a strictly rotating provider, and 1,000 due connections
swept by 4 concurrent workers with every connection refreshed exactly once."""

from __future__ import annotations

import asyncio
import contextlib
import sys
from datetime import UTC
from datetime import datetime
from datetime import timedelta
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import pytest

from pulseplan.crypto import TokenCipher
from pulseplan.settings import Settings
from pulseplan.storage.models import NewConnection
from pulseplan.storage.postgres import PostgresStorage
from pulseplan.testing.fake_provider import Account
from pulseplan.testing.fake_provider import FakeProvider
from pulseplan.testing.users import user_token
from pulseplan.testing.vault import new_user
from tests.conftest import BASE_ENV
from tests.fake_harness import harnesses
from tests.pg_fixtures import scratch_database
from tests.redis_kit import REDIS_URL
from tests.redis_kit import require_redis
from tests.redis_kit import unique_prefix
from tests.server import base_env
from tests.server import free_port
from tests.server import pulseplan
from tests.server import running_server

pytestmark = [pytest.mark.slow, pytest.mark.postgres, pytest.mark.redis]

SERVERS = 4
CALLS = 100
DUE = 1000
SWEEPERS = 4


def scale_env(database_url: str, fake: FakeProvider, tmp_path: Path) -> dict[str, str]:
    return {
        **BASE_ENV,
        **fake.env("google"),
        "DATABASE_URL": database_url,
        "REDIS_URL": REDIS_URL,
        "REDIS_KEY_PREFIX": unique_prefix(),
        "PULSEPLAN_PROVIDERS": "google",
        "BACKGROUND_REFRESH": "false",
        "PULSEPLAN_DATA_DIR": str(tmp_path / "data"),
    }


async def test_four_servers_one_refresh_on_postgres_and_redis(tmp_path: Path) -> None:
    await require_redis()
    # A short first lifetime puts the new connection inside the refresh skew at once.
    fake = FakeProvider("google", rotation="strict", access_ttl=120)
    with scratch_database() as db, fake, contextlib.ExitStack() as stack:
        env = scale_env(db.url, fake, tmp_path)
        migrated = pulseplan("migrate", env=env, cwd=tmp_path)
        assert migrated.returncode == 0, migrated.stderr
        ports = [free_port() for _ in range(SERVERS)]
        servers = [
            stack.enter_context(
                running_server(
                    {**env, "PUBLIC_BASE_URL": f"http://127.0.0.1:{port}"}, tmp_path, port=port
                )
            )
            for port in ports
        ]
        settings = Settings.load(env, env_file=None, generate_dev_secrets=False)
        user = new_user()
        headers = {"Authorization": f"Bearer {user_token(settings, user)}"}
        async with httpx.AsyncClient(timeout=30) as http:
            first = servers[0].base_url
            started = await http.get(f"{first}/api/v1/oauth/google/authorize", headers=headers)
            assert started.status_code == 200, started.text
            parts = urlsplit(fake.consent(started.json()["authorization_url"]))
            done = await http.get(f"{first}{parts.path}?{parts.query}")
            assert done.json()["status"] == "connected", done.text
            original = fake.latest_refresh_token()
            fake.config.access_ttl = 3600  # the refreshed token is fresh: no second refresh
            responses = await asyncio.gather(
                *(
                    http.get(
                        f"{servers[i % SERVERS].base_url}/api/v1/tokens/tokens", headers=headers
                    )
                    for i in range(CALLS)
                )
            )
        assert [r.text for r in responses if r.status_code != 200] == []
        tokens = {r.json()["google"]["access_token"] for r in responses}
        assert fake.count("refresh") == 1
        assert len(tokens) == 1
        served = tokens.pop()
        assert fake.is_live(served)
        storage = PostgresStorage(db.url)
        await storage.open()
        try:
            row = await storage.get_connection(user, "google")
            assert row is not None
            assert row.refresh_token is not None
            cipher = TokenCipher.from_settings(settings)
            stored = cipher.decrypt(
                row.refresh_token, user_id=user, provider="google", field="refresh_token"
            )
            stored_access = cipher.decrypt(
                row.access_token, user_id=user, provider="google", field="access_token"
            )
        finally:
            await storage.close()
        # Every caller got the token the one refresh minted, not the pre-refresh one.
        assert row.last_refreshed_at is not None
        assert served == stored_access
        assert stored == fake.latest_refresh_token()
        assert stored != original  # the rotated one, and the old one is dead
        assert not fake.is_live(original)


async def test_thousand_due_connections_four_sweepers_each_refreshed_once(tmp_path: Path) -> None:
    await require_redis()
    with scratch_database() as db:
        async with harnesses() as make:
            h = await make("google", rotation="strict")
            env = scale_env(db.url, h.fake, tmp_path)
            migrated = pulseplan("migrate", env=env, cwd=tmp_path)
            assert migrated.returncode == 0, migrated.stderr
            settings = Settings.load(env, env_file=None, generate_dev_secrets=False)
            cipher = TokenCipher.from_settings(settings)
            storage = PostgresStorage(db.url)
            await storage.open()
            try:
                users = [new_user() for _ in range(DUE)]
                due = datetime.now(UTC) + timedelta(seconds=30)
                for i, user in enumerate(users):
                    tokens = await h.connect(account=Account(email=f"user{i}@example.test"))
                    assert tokens.refresh_token is not None
                    await storage.upsert_connection(
                        NewConnection(
                            user_id=user,
                            provider="google",
                            access_token=cipher.encrypt(
                                tokens.access_token,
                                user_id=user,
                                provider="google",
                                field="access_token",
                            ),
                            refresh_token=cipher.encrypt(
                                tokens.refresh_token,
                                user_id=user,
                                provider="google",
                                field="refresh_token",
                            ),
                            expires_at=due,
                            scopes=(),
                        )
                    )
                h.fake.reset_calls()
                sweeps = await asyncio.gather(
                    *(
                        asyncio.create_subprocess_exec(
                            sys.executable,
                            "-m",
                            "pulseplan",
                            "refresh",
                            env=base_env({**env, "REFRESH_BATCH_SIZE": "50"}),
                            cwd=tmp_path,
                            stdout=asyncio.subprocess.PIPE,
                            stderr=asyncio.subprocess.PIPE,
                        )
                        for _ in range(SWEEPERS)
                    )
                )
                outputs = [await process.communicate() for process in sweeps]
                assert all(p.returncode == 0 for p in sweeps), [o[1][-2000:] for o in outputs]
                refreshed = sum(
                    int(out.decode().split("refreshed:")[1].split()[0]) for out, _ in outputs
                )
                assert refreshed == DUE
                assert h.fake.count("refresh") == DUE  # nobody refreshed a connection twice
                assert h.fake.count("refresh", ok=False) == 0
                working = sum(1 for out, _ in outputs if "refreshed: 0 " not in out.decode())
                assert working >= 2  # the work was really split between sweepers
                for user in users[:: DUE // 50]:
                    row = await storage.get_connection(user, "google")
                    assert row is not None
                    assert row.version == 2
                    assert row.refresh_token is not None
                    assert h.fake.is_live(
                        cipher.decrypt(
                            row.refresh_token,
                            user_id=user,
                            provider="google",
                            field="refresh_token",
                        )
                    )
            finally:
                await storage.close()
