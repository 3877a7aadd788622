"""The canary test (issue 7, security-checklist C11): complete connect-fetch-refresh-fail-
disconnect flows against a fake provider whose every token and code carries a random canary
prefix, then a search for the canary in everything PulsePlan emits.

Searched: every log line at every level (PulsePlan's JSON sink, a plain loguru sink, and the raw
standard-library records *before* redaction), every Sentry envelope, the ``/metrics`` text, every
response body and header except the token fetches (which must hand out access tokens, and only
those), the audit trail and the database files.

The canary deliberately has no shape the redaction patterns know (``CANARY..._at_...``), so this
tests that PulsePlan never writes a token anywhere, not merely that a regex hides one.
"""

from __future__ import annotations

import logging
import secrets
from collections.abc import AsyncIterator
from collections.abc import Iterator
from dataclasses import dataclass
from dataclasses import field
from pathlib import Path
from typing import Any

import pytest
import sentry_sdk
from quart import Blueprint
from quart import Response
from quart.testing import QuartClient

from pulseplan.auth.agents import agent_pepper
from pulseplan.auth.agents import create_agent
from pulseplan.observability import sentry
from pulseplan.observability.logs import configure_logging
from pulseplan.testing.fake_provider import FakeProvider
from tests.observability_kit import DUMMY_DSN
from tests.observability_kit import LogCapture
from tests.observability_kit import MemoryTransport
from tests.observability_kit import reset_sentry
from tests.observability_kit import samples
from tests.observability_kit import value
from tests.vault import RETURN
from tests.vault import Vault
from tests.vault import new_user
from tests.vault import running_vault

#: Letters and a digit: a valid fake-provider prefix, and unique to this run.
CANARY = "CANARY7" + secrets.token_hex(5).upper()
METRICS_TOKEN = secrets.token_urlsafe(24)
#: Responses that exist to hand out access tokens (never refresh tokens).
TOKEN_ROUTES = ("/api/v1/tokens/tokens", "/api/v1/agent/users/")


@dataclass
class Seen:
    """Every response the test client received."""

    responses: list[tuple[str, str, int, str]] = field(default_factory=list)

    def add(self, method: str, path: str, response: Response, body: str) -> None:
        headers = "\n".join(f"{k}: {v}" for k, v in response.headers.items())
        self.responses.append((method, path, response.status_code, headers + "\n\n" + body))


SEEN = Seen()


class RecordingClient(QuartClient):
    """A test client that keeps every response for the final search."""

    async def open(self, path: str, *args: Any, **kwargs: Any) -> Response:
        response = await super().open(path, *args, **kwargs)
        body = await response.get_data(as_text=True)
        SEEN.add(kwargs.get("method", "GET"), path, response, body)
        return response


class RawRecords(logging.Handler):
    """Standard-library records as they were made, before PulsePlan's redaction."""

    def __init__(self) -> None:
        super().__init__(level=1)
        self.lines: list[str] = []
        self.setFormatter(logging.Formatter("%(name)s %(levelname)s %(message)s"))

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(self.format(record) + repr(sorted(record.__dict__.items())))


@pytest.fixture
def raw_stdlib() -> Iterator[RawRecords]:
    handler = RawRecords()
    logging.getLogger().addHandler(handler)
    yield handler
    logging.getLogger().removeHandler(handler)


@pytest.fixture
def transport(monkeypatch: pytest.MonkeyPatch) -> Iterator[MemoryTransport]:
    memory = MemoryTransport()
    monkeypatch.setattr(sentry, "TRANSPORT", memory)
    yield memory
    reset_sentry()


@pytest.fixture
async def vault(
    tmp_path: Path, transport: MemoryTransport, raw_stdlib: RawRecords
) -> AsyncIterator[Vault]:
    SEEN.responses.clear()
    fake = FakeProvider("standard", rotation="strict", token_prefix=CANARY)
    async with running_vault(
        tmp_path,
        providers={"acme": fake},
        SENTRY_DSN=DUMMY_DSN,
        SENTRY_TRACES_SAMPLE_RATE="1.0",
        LOG_LEVEL="TRACE",
        LOG_FORMAT="json",
        LOG_USER_IDS="hash",
        METRICS_TOKEN=METRICS_TOKEN,
        METRICS_CONNECTIONS_TTL="0",
    ) as v:
        v.app.test_client_class = RecordingClient  # type: ignore[assignment]
        probe = Blueprint("canaryprobe", __name__)

        @probe.post("/_probe/bug")
        async def bug() -> dict[str, str]:
            # A bug that puts a token into an exception message: the 500 body, the log line
            # and the Sentry event must still not show it.
            row = await v.runtime.storage.get_connection(BUG_USER, "acme")
            assert row is not None
            token = v.runtime.cipher.decrypt(
                row.access_token, user_id=row.user_id, provider="acme", field="access_token"
            )
            raise RuntimeError(f"unexpected answer for {token}")

        v.app.register_blueprint(probe)
        yield v


BUG_USER = new_user()


USERS: list[str] = []


async def flows(vault: Vault) -> dict[str, str]:
    """Everything a deployment sees in a day, with the secrets a leak would expose."""
    fake = vault.fakes["acme"]
    client = vault.client
    user, other = new_user(), new_user()
    USERS[:] = [user, other, BUG_USER]
    secrets_seen: dict[str, str] = {"client_secret": fake.client_secret or ""}

    # Connect through the browser flow; a replayed callback (code and state used) must fail.
    started = await vault.authorize(user, return_url=RETURN)
    callback_url = fake.consent((await started.get_json())["authorization_url"])
    connected = await vault.callback(callback_url)
    assert connected.status_code == 303
    replay = await vault.callback(callback_url)
    assert "status=error" in replay.headers.get("Location", "") or replay.status_code >= 400
    forged = await client.get(
        "/api/v1/oauth/acme/callback",
        query_string={"code": f"{CANARY}_code_forged", "state": f"{CANARY}_state"},
    )
    assert forged.status_code >= 400
    row = await vault.runtime.storage.get_connection(user, "acme")
    assert row is not None
    secrets_seen["user_jwt"] = vault.headers(user)["Authorization"].split()[1]

    # Fetch, then refresh on demand (expiry) and by force.
    fetched = await vault.tokens(user)
    assert CANARY in (await fetched.get_json())["acme"]["access_token"]
    await vault.expire_soon(row)
    assert (await vault.tokens(user)).status_code == 200
    assert (
        await client.post("/api/v1/tokens/connections/acme/refresh", headers=vault.headers(user))
    ).status_code == 200

    # Provider failures: 5xx, 429, a rejected client, a bad request, then a dead grant.
    for kind, extra in (
        ("server_error", {"status": 503}),
        ("rate_limited", {"retry_after": 30}),
        ("invalid_client", {}),
        ("error", {"status": 400, "error": "invalid_request"}),
        ("invalid_grant", {}),
    ):
        fake.fail_next("refresh", kind, **extra)  # type: ignore[arg-type]
        await client.post("/api/v1/tokens/connections/acme/refresh", headers=vault.headers(user))
    assert (await vault.tokens(user)).status_code == 200  # errors object, needs_reauth
    dead = await client.post("/api/v1/tokens/connections/acme/refresh", headers=vault.headers(user))
    assert dead.status_code >= 400

    # Tokens obtained elsewhere, bad input carrying a token, a token used as the bearer.
    manual = f"{CANARY}_at_manual{secrets.token_hex(8)}"
    manual_rt = f"{CANARY}_rt_manual{secrets.token_hex(8)}"
    stored = await client.post(
        "/api/v1/tokens/connections/acme",
        json={"access_token": manual, "refresh_token": manual_rt, "scopes": ["read"]},
        headers=vault.headers(other),
    )
    assert stored.status_code == 201
    invalid = await client.post(
        "/api/v1/tokens/connections/acme",
        json={"access_token": manual, "refresh_token": manual_rt, "scopes": manual},
        headers=vault.headers(other),
    )
    assert invalid.status_code == 422
    not_json = await client.post(
        "/api/v1/tokens/connections/acme",
        data=f"access_token={manual}&refresh_token={manual_rt}",
        headers={**vault.headers(other), "Content-Type": "application/x-www-form-urlencoded"},
    )
    assert not_json.status_code >= 400
    as_bearer = await client.get(
        "/api/v1/tokens/tokens", headers={"Authorization": f"Bearer {manual}"}
    )
    assert as_bearer.status_code == 401

    # An agent fetches the other user's tokens; a wrong agent secret is refused.
    _, agent_secret = await create_agent(
        vault.runtime.storage, "canary-agent", None, agent_pepper(vault.settings)
    )
    secrets_seen["agent_secret"] = agent_secret
    agent = await client.get(
        f"/api/v1/agent/users/{other}/tokens",
        headers={"Authorization": f"Bearer {agent_secret}"},
    )
    assert agent.status_code == 200
    wrong = await client.get(
        f"/api/v1/agent/users/{other}/tokens",
        headers={"Authorization": f"Bearer ppa_{secrets.token_urlsafe(32)}"},
    )
    assert wrong.status_code == 401

    # A bug with a token in an exception message.
    await vault.connect(BUG_USER)
    bug = await client.post("/_probe/bug")
    assert bug.status_code == 500

    # Disconnect: revoked at the provider; a failing revocation; a second delete is 404.
    fake.fail_next("revoke", "server_error", times=None)
    await client.delete("/api/v1/tokens/connections/acme", headers=vault.headers(BUG_USER))
    fake.clear_faults()
    deleted = await client.delete("/api/v1/tokens/connections/acme", headers=vault.headers(user))
    assert deleted.status_code == 200
    again = await client.delete("/api/v1/tokens/connections/acme", headers=vault.headers(user))
    assert again.status_code == 404
    await vault.runtime.events.drain()
    assert fake.count("refresh") >= 7
    return secrets_seen


def database_files(directory: Path) -> bytes:
    """The SQLite database, its WAL and shared memory, as bytes."""
    return b"".join(p.read_bytes() for p in sorted(directory.glob("vault.db*")))


async def test_the_canary_never_leaves_the_vault(
    vault: Vault,
    transport: MemoryTransport,
    raw_stdlib: RawRecords,
    logs: list[str],
    tmp_path: Path,
) -> None:
    sink = LogCapture()
    configure_logging(vault.settings, stream=sink)
    other_secrets = await flows(vault)

    scrape = await vault.client.get(
        "/metrics", headers={"Authorization": f"Bearer {METRICS_TOKEN}"}
    )
    assert scrape.status_code == 200
    exposition = await scrape.get_data(as_text=True)
    audit = repr([await vault.runtime.storage.list_audit(u, limit=500) for u in USERS])
    sentry_sdk.flush()
    database = database_files(tmp_path)

    # The channels are live: something was captured in each.
    assert sink.records()
    assert "'refresh'" in audit
    assert raw_stdlib.lines
    assert transport.events("event"), "the bug was reported to Sentry"
    assert value(exposition, "pulseplan_refreshes_total", provider="acme", outcome="reconnect")
    for family in (
        "pulseplan_http_requests_total",
        "pulseplan_http_request_duration_seconds_count",
        "pulseplan_refreshes_total",
        "pulseplan_refresh_duration_seconds_count",
        "pulseplan_provider_errors_total",
        "pulseplan_connections",
        "pulseplan_lock_wait_seconds_count",
        "pulseplan_connection_events_total",
    ):
        assert any(name == family for name, _, _ in samples(exposition)), family

    channels = {
        "json log sink": sink.getvalue(),
        "loguru records": "\n".join(logs),
        "raw stdlib records": "\n".join(raw_stdlib.lines),
        "sentry": transport.dump(),
        "metrics": exposition,
        "audit": audit,
    }
    for channel, text in channels.items():
        assert CANARY not in text, f"a canary token reached the {channel}"
        if channel in ("json log sink", "metrics"):
            assert not any(u in text for u in USERS), f"a user id in the {channel} (hash mode)"
        for name, secret in other_secrets.items():
            assert secret not in text, f"the {name} reached the {channel}"
    assert CANARY.encode() not in database, "a token is stored in plaintext"

    token_bodies = 0
    for method, path, status, text in SEEN.responses:
        if status == 200 and path.startswith(TOKEN_ROUTES):
            token_bodies += 1
            assert f"{CANARY}_rt_" not in text, f"a refresh token in {method} {path}"
            assert f"{CANARY}_code_" not in text
            continue
        assert CANARY not in text, f"a canary in the {status} response to {method} {path}"
        for name, secret in other_secrets.items():
            assert secret not in text, f"the {name} in the response to {method} {path}"
    assert token_bodies >= 4
    assert sum(1 for _, _, status, _ in SEEN.responses if status >= 400) >= 8
