"""The token endpoint's hot path after profiling (bench/RESULTS.md): verified JWTs remembered
within their bounds, audit records group-committed but still written before tokens leave,
multi-row audit inserts, fresh tokens answered without tasks, whitespace checks in C."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from collections.abc import Sequence
from datetime import UTC
from datetime import datetime
from datetime import timedelta
from pathlib import Path
from typing import Any

import jwt
import pytest

from pulseplan.audit import Auditor
from pulseplan.auth import verifier as verifier_module
from pulseplan.auth.errors import AuthError
from pulseplan.auth.verifier import JwtVerifier
from pulseplan.broker.results import FreshToken
from pulseplan.broker.results import NeedsReauth
from pulseplan.broker.results import NotConnected
from pulseplan.storage.base import StorageError
from pulseplan.storage.models import AuditRecord
from pulseplan.storage.sqlite import AUDIT_CHUNK
from pulseplan.storage.sqlite import SQLiteStorage
from pulseplan.testing.fake_provider import FakeProvider
from pulseplan.testing.vault import Vault
from pulseplan.testing.vault import new_user
from pulseplan.testing.vault import running_vault

SECRET = b"hot-path-hs256-secret-0123456789abcdef-xyz"
LEEWAY = 30.0

# --------------------------------------------------------------------------- verified JWTs


class Wall:
    """A wall clock the test moves (the verifier's memory of tokens uses it)."""

    def __init__(self) -> None:
        self.offset = 0.0

    def __call__(self) -> float:
        import time

        return time.time() + self.offset


def hs256(**claims: Any) -> str:
    import time

    now = int(time.time())
    payload = {
        "sub": str(uuid.uuid4()),
        "aud": "authenticated",
        "role": "authenticated",
        "iat": now,
        "exp": now + 3600,
        **claims,
    }
    return jwt.encode(payload, SECRET, algorithm="HS256")


def counting(verifier: JwtVerifier) -> list[int]:
    """Count the verifier's full decodes (signature and claims checks)."""
    calls = [0]
    decode = verifier._decode

    def wrapped(token: str, key: Any, alg: str) -> dict[str, Any]:
        calls[0] += 1
        return decode(token, key, alg)

    verifier._decode = wrapped  # type: ignore[method-assign]
    return calls


async def test_a_verified_token_is_remembered_not_verified_again() -> None:
    verifier = JwtVerifier(hs256_secret=SECRET, jwks=None, leeway=LEEWAY)
    calls = counting(verifier)
    token = hs256()
    first = await verifier.verify(token)
    assert await verifier.verify(token) == first
    assert calls[0] == 1


async def test_remembering_is_bounded_by_the_ttl() -> None:
    wall = Wall()
    verifier = JwtVerifier(hs256_secret=SECRET, jwks=None, leeway=LEEWAY, wall_clock=wall)
    calls = counting(verifier)
    token = hs256()
    await verifier.verify(token)
    wall.offset = verifier_module.VERIFIED_TTL + 1
    await verifier.verify(token)
    assert calls[0] == 2


async def test_remembering_never_outlives_exp_plus_leeway() -> None:
    import time

    wall = Wall()
    verifier = JwtVerifier(hs256_secret=SECRET, jwks=None, leeway=LEEWAY, wall_clock=wall)
    calls = counting(verifier)
    token = hs256(exp=int(time.time()) + 5)
    await verifier.verify(token)
    wall.offset = 5 + LEEWAY + 1  # past exp + leeway, well inside the TTL
    await verifier.verify(token)  # PyJWT's own clock has not moved: still valid for it
    assert calls[0] == 2


async def test_refusals_are_not_remembered() -> None:
    verifier = JwtVerifier(hs256_secret=SECRET, jwks=None, leeway=LEEWAY)
    calls = counting(verifier)
    forged = jwt.encode({"sub": "x"}, b"another-secret-0123456789abcdef-0123", algorithm="HS256")
    for _ in range(2):
        with pytest.raises(AuthError):
            await verifier.verify(forged)
    assert calls[0] == 2


async def test_an_exp_too_large_for_a_float_is_still_accepted() -> None:
    verifier = JwtVerifier(hs256_secret=SECRET, jwks=None, leeway=LEEWAY)
    user = await verifier.verify(hs256(exp=10**400))
    assert user.role == "authenticated"


# --------------------------------------------------------------------------- group commit


class GatedStorage(SQLiteStorage):
    """A real SQLite backend whose audit writes can be held and made to fail."""

    def __init__(self, path: str):
        super().__init__(path)
        self.batches: list[list[str]] = []
        self.gate = asyncio.Event()
        self.gate.set()
        self.fail = False

    async def add_audit(self, records: Sequence[AuditRecord]) -> None:
        self.batches.append([r.actor_id for r in records])
        await self.gate.wait()
        if self.fail:
            raise StorageError("audit table unavailable")
        await super().add_audit(records)


@pytest.fixture
async def gated(tmp_path: Path) -> AsyncIterator[GatedStorage]:
    storage = GatedStorage(str(tmp_path / "audit.db"))
    await storage.open()
    await storage.migrate()
    yield storage
    await storage.close()


async def fetch(auditor: Auditor, actor: str, user: str) -> None:
    await auditor.token_fetch(
        actor_type="agent",
        actor_id=actor,
        user_id=user,
        results={"acme": FreshToken("acme", "secret-token", None, ())},
    )


async def test_concurrent_fetches_share_one_write_and_wait_for_it(gated: GatedStorage) -> None:
    auditor = Auditor(gated)
    user = new_user()
    gated.gate.clear()
    first = asyncio.create_task(fetch(auditor, "agent-0", user))
    await asyncio.sleep(0)  # the first write is now in flight, held at the gate
    others = [asyncio.create_task(fetch(auditor, f"agent-{i}", user)) for i in range(1, 6)]
    await asyncio.sleep(0)
    assert not any(task.done() for task in [first, *others])  # nothing released before a write
    gated.gate.set()
    await asyncio.gather(first, *others)
    assert gated.batches == [["agent-0"], [f"agent-{i}" for i in range(1, 6)]]
    assert auditor.commits.writes == 2
    stored = {r.actor_id for r in await gated.list_audit(user)}
    assert stored == {f"agent-{i}" for i in range(6)}


async def test_a_failed_write_fails_every_fetch_it_held(gated: GatedStorage) -> None:
    auditor = Auditor(gated)
    user = new_user()
    gated.gate.clear()
    first = asyncio.create_task(fetch(auditor, "leader", user))
    await asyncio.sleep(0)
    queued = [asyncio.create_task(fetch(auditor, f"queued-{i}", user)) for i in range(3)]
    await asyncio.sleep(0)
    gated.fail = True
    gated.gate.set()
    outcomes = await asyncio.gather(first, *queued, return_exceptions=True)
    assert all(isinstance(o, StorageError) for o in outcomes)  # audit fails closed
    gated.fail = False
    await fetch(auditor, "later", user)  # the next write works again
    assert [r.actor_id for r in await gated.list_audit(user)] == ["later"]


async def test_a_caller_that_gives_up_does_not_cancel_the_others(gated: GatedStorage) -> None:
    auditor = Auditor(gated)
    user = new_user()
    gated.gate.clear()
    leader = asyncio.create_task(fetch(auditor, "leader", user))
    await asyncio.sleep(0)
    quitter = asyncio.create_task(fetch(auditor, "quitter", user))
    stayer = asyncio.create_task(fetch(auditor, "stayer", user))
    await asyncio.sleep(0)
    quitter.cancel()
    gated.gate.set()
    await asyncio.gather(leader, stayer)
    assert quitter.cancelled()
    assert {r.actor_id for r in await gated.list_audit(user)} == {"leader", "quitter", "stayer"}


async def test_sqlite_writes_more_audit_rows_than_one_statement_holds(tmp_path: Path) -> None:
    storage = SQLiteStorage(str(tmp_path / "many.db"))
    await storage.open()
    await storage.migrate()
    user, now = new_user(), datetime.now(UTC)
    records = [
        AuditRecord(
            id=str(uuid.uuid4()),
            occurred_at=now - timedelta(seconds=i),
            actor_type="user",
            actor_id=user,
            user_id=user,
            provider="acme",
            action="token_fetch",
            outcome="ok",
        )
        for i in range(2 * AUDIT_CHUNK + 7)
    ]
    await storage.add_audit(records)
    await storage.add_audit([])
    stored = await storage.list_audit(user, limit=500)
    await storage.close()
    assert sorted(r.id for r in stored) == sorted(r.id for r in records)


# --------------------------------------------------------------------------- the broker


@pytest.fixture
async def vault(tmp_path: Path) -> AsyncIterator[Vault]:
    fakes = {name: FakeProvider("standard", rotation="none") for name in ("acme", "beta", "gamma")}
    async with running_vault(tmp_path, providers=fakes) as v:
        yield v


async def test_tokens_mix_inline_answers_refreshes_and_problems_in_order(vault: Vault) -> None:
    user = new_user()
    acme = await vault.connect(user, "acme")
    beta = await vault.connect(user, "beta")
    await vault.expire_soon(beta)  # only this one needs the provider
    gamma = await vault.connect(user, "gamma")
    current = await vault.runtime.storage.get_connection_by_id(gamma.id)
    assert current is not None
    await vault.runtime.storage.update_connection(
        gamma.id, current.version, status="needs_reauth", status_reason="invalid_grant"
    )
    before = {name: fake.count("refresh") for name, fake in vault.fakes.items()}
    wanted = ["gamma", "missing", "beta", "acme"]
    results = await vault.runtime.broker.tokens(user, wanted)
    assert list(results) == wanted
    assert isinstance(results["gamma"], NeedsReauth)
    assert isinstance(results["missing"], NotConnected)
    beta_token, acme_token = results["beta"], results["acme"]
    assert isinstance(beta_token, FreshToken)
    assert beta_token.refreshed
    assert isinstance(acme_token, FreshToken)
    assert not acme_token.refreshed
    assert vault.stored_refresh_token(acme)
    after = {name: fake.count("refresh") for name, fake in vault.fakes.items()}
    assert {n: after[n] - before[n] for n in after} == {"acme": 0, "beta": 1, "gamma": 0}


# --------------------------------------------------------------------------- the bearer header


@pytest.mark.parametrize("space", ["\t", "\xa0", "\x85", "\x0b"])
async def test_any_unicode_whitespace_inside_a_bearer_token_is_refused(
    vault: Vault, space: str
) -> None:
    response = await vault.client.get(
        "/api/v1/tokens/tokens", headers={"Authorization": f"Bearer abc{space}def"}
    )
    assert response.status_code == 401
    assert (await response.get_json())["code"] == "malformed_token"
