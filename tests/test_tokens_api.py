"""The seed-compatible token endpoints, the agent token API, isolation between users, audit,
webhooks, and the canary that must never leak."""

from __future__ import annotations

import hashlib
import hmac
import json
import threading
from collections.abc import AsyncIterator
from collections.abc import Iterator
from datetime import UTC
from datetime import datetime
from datetime import timedelta
from http.server import BaseHTTPRequestHandler
from http.server import ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from pulseplan.auth.agents import agent_pepper
from pulseplan.auth.agents import create_agent
from pulseplan.storage.models import NewConnection
from pulseplan.testing.fake_provider import FakeProvider
from pulseplan.testing.vault import Vault
from pulseplan.testing.vault import new_user
from pulseplan.testing.vault import running_vault

CANARY = "CANARY7x"


@pytest.fixture
async def vault(tmp_path: Path) -> AsyncIterator[Vault]:
    async with running_vault(
        tmp_path, providers={"acme": FakeProvider("standard", token_prefix=CANARY)}
    ) as v:
        yield v


async def post_tokens(vault: Vault, user: str, body: dict[str, Any], provider: str = "acme") -> Any:
    return await vault.client.post(
        f"/api/v1/tokens/connections/{provider}", json=body, headers=vault.headers(user)
    )


async def test_store_is_201_then_200_with_the_seed_body(vault: Vault) -> None:
    user = new_user()
    created = await post_tokens(vault, user, {"provider": "acme", "access_token": "at-1"})
    assert created.status_code == 201
    body = await created.get_json()
    assert body["message"] == "Acme connection stored successfully"
    assert body["provider"] == "acme"
    replaced = await post_tokens(
        vault, user, {"access_token": "at-2", "refresh_token": "rt-2", "scopes": ["x"]}
    )
    assert replaced.status_code == 200
    assert (await replaced.get_json())["connection_id"] == body["connection_id"]


async def test_listing_has_seed_fields_and_correct_expiry(vault: Vault) -> None:
    user = new_user()
    past = (datetime.now(UTC) - timedelta(minutes=5)).isoformat()
    await post_tokens(vault, user, {"access_token": "at", "expires_at": past})
    listing = await (
        await vault.client.get("/api/v1/tokens/connections", headers=vault.headers(user))
    ).get_json()
    assert len(listing) == 1
    row = listing[0]
    assert set(row) >= {
        "id",
        "user_id",
        "provider",
        "expires_at",
        "scopes",
        "email",
        "created_at",
        "updated_at",
        "is_expired",
        "status",
    }
    assert row["is_expired"] is True  # the seed compared with created_at
    assert "access_token" not in json.dumps(listing)
    # A null expiry is fine (the seed answered 500 for the whole list).
    await post_tokens(vault, user, {"access_token": "at"})
    listing = await (
        await vault.client.get("/api/v1/tokens/connections", headers=vault.headers(user))
    ).get_json()
    assert (listing[0]["expires_at"], listing[0]["is_expired"]) == (None, False)


@pytest.mark.parametrize(
    "body",
    [
        {"access_token": "at", "email": "a\u0000b@example.test"},
        {"access_token": "at with space"},
        {"access_token": "at", "expires_at": 0},
        {"access_token": "at", "scopes": ["has space"]},
    ],
)
async def test_bad_token_bodies_are_422_on_every_backend(
    vault: Vault, body: dict[str, Any]
) -> None:
    response = await post_tokens(vault, new_user(), body)
    assert response.status_code == 422
    assert (await response.get_json())["code"] == "validation_error"


async def test_a_body_that_is_not_json_is_400_json(vault: Vault) -> None:
    user = new_user()
    response = await vault.client.post(
        "/api/v1/tokens/connections/acme",
        data=b'{"access_token": "at-secret-',
        headers={**vault.headers(user), "Content-Type": "application/json"},
    )
    assert response.status_code == 400
    assert response.content_type == "application/json"
    body = await response.get_json()
    assert (body["code"], body["detail"]) == ("bad_request", "request body is not valid JSON")
    assert "at-secret" not in await response.get_data(as_text=True)


async def test_delete_missing_is_404_and_unknown_provider_lists_enabled(vault: Vault) -> None:
    user = new_user()
    missing = await vault.client.delete(
        "/api/v1/tokens/connections/acme", headers=vault.headers(user)
    )
    assert missing.status_code == 404
    unknown = await vault.client.delete(
        "/api/v1/tokens/connections/nope", headers=vault.headers(user)
    )
    assert unknown.status_code == 404
    body = await unknown.get_json()
    assert (body["code"], body["providers"]) == ("unknown_provider", ["acme"])


async def test_undecryptable_row_is_reported_not_500(vault: Vault) -> None:
    user = new_user()
    good = await vault.connect(user)
    bad_user = new_user()
    await vault.runtime.storage.upsert_connection(
        NewConnection(
            user_id=bad_user,
            provider="acme",
            access_token=good.access_token,  # another user's ciphertext: AAD says no
            refresh_token=None,
            expires_at=None,
            scopes=(),
        )
    )
    listing = await vault.client.get("/api/v1/tokens/connections", headers=vault.headers(bad_user))
    assert listing.status_code == 200
    row = (await listing.get_json())[0]
    assert (row["status"], row["status_reason"]) == ("error", "undecryptable")
    tokens = await (await vault.tokens(bad_user)).get_json()
    assert tokens["acme"] is None
    assert tokens["errors"]["acme"]["code"] == "undecryptable"
    status = await vault.client.get(
        "/api/v1/tokens/connections/status", headers=vault.headers(bad_user)
    )
    assert await status.get_json() == {"acme": False}
    good_status = await vault.client.get(
        "/api/v1/tokens/connections/status", headers=vault.headers(user)
    )
    assert await good_status.get_json() == {"acme": True}


async def test_user_a_gets_404_for_everything_of_user_b(vault: Vault) -> None:
    a, b = new_user(), new_user()
    await vault.connect(b)
    headers = vault.headers(a)
    for method, path in [
        ("DELETE", "/api/v1/tokens/connections/acme"),
        ("POST", "/api/v1/tokens/connections/acme/refresh"),
        ("POST", "/api/v1/tokens/connections/acme/validate"),
    ]:
        response = await vault.client.open(path, method=method, headers=headers)
        assert response.status_code == 404, path
    status = await vault.client.get("/api/v1/tokens/connections/acme/status", headers=headers)
    assert (await status.get_json())["connected"] is False
    assert (
        await (await vault.client.get("/api/v1/tokens/connections", headers=headers)).get_json()
        == []
    )
    assert (await (await vault.tokens(a)).get_json())["acme"] is None
    assert await vault.runtime.storage.get_connection(b, "acme") is not None


async def test_every_token_route_requires_a_user(vault: Vault) -> None:
    for method, path in [
        ("GET", "/api/v1/tokens/connections"),
        ("GET", "/api/v1/tokens/connections/status"),
        ("GET", "/api/v1/tokens/tokens"),
        ("POST", "/api/v1/tokens/connections/acme"),
        ("DELETE", "/api/v1/tokens/connections/acme"),
        ("GET", "/api/v1/tokens/connections/acme/status"),
        ("POST", "/api/v1/tokens/connections/acme/refresh"),
        ("POST", "/api/v1/tokens/connections/acme/validate"),
        ("GET", "/api/v1/tokens/audit"),
        ("GET", "/api/v1/oauth/acme/authorize"),
    ]:
        response = await vault.client.open(path, method=method)
        assert response.status_code == 401, path
        assert response.headers["WWW-Authenticate"].startswith("Bearer")


async def agent_secret(vault: Vault, providers: list[str] | None = None) -> str:
    _, secret = await create_agent(
        vault.runtime.storage, "planner", providers, agent_pepper(vault.settings)
    )
    return secret


async def test_agent_token_api_same_shape_and_audited(vault: Vault) -> None:
    user = new_user()
    await vault.connect(user)
    secret = await agent_secret(vault)
    response = await vault.client.get(
        f"/api/v1/agent/users/{user}/tokens?providers=acme",
        headers={"Authorization": f"Bearer {secret}"},
    )
    assert response.status_code == 200
    assert response.headers["Cache-Control"] == "no-store"
    body = await response.get_json()
    assert body["user_id"] == user
    assert vault.fakes["acme"].is_live(body["acme"]["access_token"])
    assert "refresh_token" not in json.dumps(body)
    records = await (
        await vault.client.get("/api/v1/tokens/audit", headers=vault.headers(user))
    ).get_json()
    agent_records = [r for r in records["records"] if r["actor_type"] == "agent"]
    assert agent_records[0]["actor_id"] == "planner"
    assert agent_records[0]["action"] == "token_fetch"
    assert agent_records[0]["outcome"] == "ok"
    assert agent_records[0]["request_id"] == response.headers["X-Request-ID"]


async def test_agent_limits_and_credentials(vault: Vault) -> None:
    user = new_user()
    await vault.connect(user)
    limited = await agent_secret(vault, ["acme"])
    bad_uuid = await vault.client.get(
        "/api/v1/agent/users/not-a-uuid/tokens", headers={"Authorization": f"Bearer {limited}"}
    )
    assert bad_uuid.status_code == 400
    user_jwt = await vault.client.get(
        f"/api/v1/agent/users/{user}/tokens", headers=vault.headers(user)
    )
    assert user_jwt.status_code == 401  # a user token is not an agent credential
    await vault.runtime.storage.revoke_agent("planner")
    revoked = await vault.client.get(
        f"/api/v1/agent/users/{user}/tokens", headers={"Authorization": f"Bearer {limited}"}
    )
    assert revoked.status_code == 401


async def test_an_agent_limited_to_one_provider_never_gets_another(tmp_path: Path) -> None:
    providers = {"acme": FakeProvider("standard"), "beta": FakeProvider("standard")}
    async with running_vault(tmp_path, providers=providers) as vault:
        user = new_user()
        await vault.connect(user, "acme")
        await vault.connect(user, "beta")
        secret = await agent_secret(vault, ["acme"])
        auth = {"Authorization": f"Bearer {secret}"}
        default = await vault.client.get(f"/api/v1/agent/users/{user}/tokens", headers=auth)
        assert default.status_code == 200
        body = await default.get_json()
        assert body["acme"] is not None
        assert "beta" not in body  # not even as null: the agent was never given it
        for asked in ("beta", "acme,beta"):
            refused = await vault.client.get(
                f"/api/v1/agent/users/{user}/tokens?providers={asked}", headers=auth
            )
            assert refused.status_code == 403, asked
            assert (await refused.get_json())["code"] == "provider_not_allowed"
        records = await vault.runtime.storage.list_audit(user)
        assert {r.provider for r in records if r.actor_type == "agent"} == {"acme"}


@pytest.fixture
def webhook_receiver() -> Iterator[tuple[str, list[tuple[dict[str, str], bytes]]]]:
    received: list[tuple[dict[str, str], bytes]] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers["Content-Length"]))
            received.append((dict(self.headers), body))
            self.send_response(204)
            self.end_headers()

        def log_message(self, *args: object) -> None:
            return None

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/hook", received
    server.shutdown()
    server.server_close()


async def test_webhooks_are_signed_and_carry_no_tokens(
    tmp_path: Path, webhook_receiver: tuple[str, list[tuple[dict[str, str], bytes]]]
) -> None:
    url, received = webhook_receiver
    secret = "whsec-test-0123456789abcdef"
    async with running_vault(
        tmp_path,
        providers={"acme": FakeProvider("standard", token_prefix=CANARY)},
        WEBHOOK_URL=url,
        WEBHOOK_SECRET=secret,
    ) as vault:
        await vault.connect(new_user())
        await vault.runtime.events.drain()
    assert len(received) == 1
    headers, body = received[0]
    assert headers["X-PulsePlan-Event"] == "connected"
    stamp, signature = (
        part.split("=", 1)[1] for part in headers["X-PulsePlan-Signature"].split(",")
    )
    expected = hmac.new(secret.encode(), f"{stamp}.".encode() + body, hashlib.sha256).hexdigest()
    assert hmac.compare_digest(signature, expected)
    assert json.loads(body)["event"] == "connected"
    assert CANARY not in body.decode()


async def test_canary_never_leaves_except_as_the_fetched_token(
    vault: Vault, logs: list[str]
) -> None:
    fake = vault.fakes["acme"]
    bodies: list[str] = []
    user = new_user()
    row = await vault.connect(user)
    await vault.tokens(user)  # token body: the one place an access token may appear
    await vault.expire_soon(row)
    fake.fail_next("refresh", "server_error")
    await vault.expire_soon(row, seconds=-1)
    failed = await vault.tokens(user)
    bodies.append(await failed.get_data(as_text=True))
    fake.fail_next("refresh", "invalid_grant")
    await vault.expire_soon(row, seconds=-1)
    bodies.append(await (await vault.tokens(user)).get_data(as_text=True))
    for method, path in [
        ("POST", "/api/v1/tokens/connections/acme/refresh"),
        ("POST", "/api/v1/tokens/connections/acme/validate"),
        ("GET", "/api/v1/tokens/connections"),
        ("GET", "/api/v1/tokens/audit"),
        ("DELETE", "/api/v1/tokens/connections/acme"),
    ]:
        response = await vault.client.open(path, method=method, headers=vault.headers(user))
        bodies.append(await response.get_data(as_text=True))
    await vault.runtime.events.drain()
    audit = await vault.runtime.storage.list_audit(user)
    haystack = "\n".join([*logs, *bodies, repr(audit), repr(vault.events.events)])
    assert CANARY not in haystack
    assert len(audit) >= 5


async def test_a_failed_revocation_still_disconnects_and_says_so(
    tmp_path: Path, webhook_receiver: tuple[str, list[tuple[dict[str, str], bytes]]]
) -> None:
    url, received = webhook_receiver
    async with running_vault(
        tmp_path,
        providers={"acme": FakeProvider("standard", token_prefix=CANARY)},
        WEBHOOK_URL=url,
        WEBHOOK_SECRET="whsec-test-0123456789abcdef",
    ) as vault:
        user = new_user()
        row = await vault.connect(user)
        fake = vault.fakes["acme"]
        fake.fail_next("revoke", "server_error", times=None)
        response = await vault.client.delete(
            "/api/v1/tokens/connections/acme", headers=vault.headers(user)
        )
        assert response.status_code == 200
        body = await response.get_json()
        assert body["revoked"] is False
        assert "unavailable" in body["revocation"]["detail"]
        assert fake.count("revoke") == 3  # a short retry, then the row goes anyway
        assert await vault.runtime.storage.get_connection(user, "acme") is None
        records = await vault.runtime.storage.list_audit(user)
        assert [r.outcome for r in records if r.action == "disconnect"] == ["revocation_failed"]
        await vault.runtime.events.drain()
    events = [json.loads(payload) for _, payload in received]
    failed = [e for e in events if e["event"] == "revocation_failed"]
    # Webhooks are delivered concurrently: their order is not part of the contract.
    assert sorted(e["event"] for e in events) == ["connected", "disconnected", "revocation_failed"]
    assert failed[0]["connection_id"] == row.id
    assert CANARY not in "".join(payload.decode() for _, payload in received)
