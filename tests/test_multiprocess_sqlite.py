"""Several real server processes sharing one SQLite file still refresh a connection once.

``pulseplan serve --workers N`` needs Redis, but nothing stops two separate processes (a server
and ``pulseplan refresh``, or two servers) from sharing the embedded database; the refresh lock
lives in that database, so the guarantee holds across processes here too.
"""

from __future__ import annotations

import asyncio
import contextlib
from datetime import UTC
from datetime import datetime
from datetime import timedelta
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import pytest

from pulseplan.crypto import TokenCipher
from pulseplan.settings import Settings
from pulseplan.storage.sqlite import SQLiteStorage
from pulseplan.testing.fake_provider import FakeProvider
from pulseplan.testing.vault import new_user
from tests.auth_fakes import user_token
from tests.conftest import BASE_ENV
from tests.server import free_port
from tests.server import running_server

pytestmark = pytest.mark.slow

SERVERS = 4
CALLS = 60


async def test_four_processes_one_sqlite_file_one_refresh(tmp_path: Path) -> None:
    db = tmp_path / "shared.db"
    with FakeProvider("google", rotation="strict") as fake, contextlib.ExitStack() as stack:
        env = {
            **BASE_ENV,
            **fake.env("google"),
            "DATABASE_URL": f"sqlite:///{db}",
            "PULSEPLAN_PROVIDERS": "google",
            "BACKGROUND_REFRESH": "false",
        }
        servers = []
        for _ in range(SERVERS):
            # Each server's redirect URI names itself; the flow below runs on the first one.
            port = free_port()
            servers.append(
                stack.enter_context(
                    running_server(
                        {**env, "PUBLIC_BASE_URL": f"http://127.0.0.1:{port}"},
                        tmp_path,
                        port=port,
                    )
                )
            )
        settings = Settings.load(env, env_file=None, generate_dev_secrets=False)
        user = new_user()
        headers = {"Authorization": f"Bearer {user_token(settings, sub=user)}"}
        first = servers[0].base_url
        async with httpx.AsyncClient(timeout=30) as http:
            started = await http.get(f"{first}/api/v1/oauth/google/authorize", headers=headers)
            assert started.status_code == 200, started.text
            callback = fake.consent(started.json()["authorization_url"])
            parts = urlsplit(callback)
            done = await http.get(f"{first}{parts.path}?{parts.query}")
            assert done.status_code == 200, done.text  # no return URL configured: JSON answer
            assert done.json()["status"] == "connected"

            storage = SQLiteStorage(str(db))
            await storage.open()
            row = await storage.get_connection(user, "google")
            assert row is not None
            await storage.update_connection(
                row.id, row.version, expires_at=datetime.now(UTC) + timedelta(seconds=30)
            )
            responses = await asyncio.gather(
                *(
                    http.get(
                        f"{servers[i % SERVERS].base_url}/api/v1/tokens/tokens", headers=headers
                    )
                    for i in range(CALLS)
                )
            )
            failures = [r.text for r in responses if r.status_code != 200]
            assert failures == [], [line for s in servers for line in s.output][-20:]
            tokens = {r.json()["google"]["access_token"] for r in responses}
            assert fake.count("refresh") == 1
            assert len(tokens) == 1
            assert fake.is_live(tokens.pop())
            stored = await storage.get_connection(user, "google")
            assert stored is not None
            assert stored.refresh_token is not None
            refresh = TokenCipher.from_settings(settings).decrypt(
                stored.refresh_token, user_id=user, provider="google", field="refresh_token"
            )
            assert refresh == fake.latest_refresh_token()
            await storage.close()
