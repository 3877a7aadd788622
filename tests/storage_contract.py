"""The storage contract: every backend runs these tests through its own ``storage`` fixture.

Subclass :class:`StorageContract` in a ``test_storage_<backend>.py`` module and provide an async
``storage`` fixture yielding a migrated, empty backend.
"""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC
from datetime import datetime
from datetime import timedelta

import pytest

from pulseplan.storage.base import Storage
from pulseplan.storage.models import AuditRecord
from pulseplan.storage.models import NewConnection


def new(user: str = "u1", provider: str = "google", **overrides: object) -> NewConnection:
    values: dict[str, object] = {
        "user_id": user,
        "provider": provider,
        "access_token": f"ct-access-{uuid.uuid4().hex[:6]}",
        "refresh_token": "ct-refresh",
        "expires_at": datetime.now(UTC) + timedelta(hours=1),
        "scopes": ("a", "b"),
        "email": "user@example.com",
        "metadata": {"workspace": "Acme"},
        **overrides,
    }
    return NewConnection(**values)  # type: ignore[arg-type]


def audit(user: str, when: datetime, action: str = "token_fetch") -> AuditRecord:
    return AuditRecord(
        id=str(uuid.uuid4()),
        occurred_at=when,
        actor_type="agent",
        actor_id="agent-1",
        user_id=user,
        provider="google",
        action=action,
        outcome="ok",
        request_id="req-1",
    )


class StorageContract:
    async def test_migrations_are_idempotent(self, storage: Storage) -> None:
        assert await storage.pending_migrations() == []
        assert await storage.migrate() == []
        await storage.ping()

    async def test_upsert_creates_then_replaces(self, storage: Storage) -> None:
        created, is_new = await storage.upsert_connection(new())
        assert is_new
        assert created.version == 1
        assert created.status == "active"
        assert created.scopes == ("a", "b")
        assert created.metadata == {"workspace": "Acme"}
        assert created.expires_at is not None
        assert created.expires_at.tzinfo is not None
        dead = await storage.update_connection(
            created.id, 1, status="needs_reauth", status_reason="invalid_grant", refresh_failures=3
        )
        assert dead is not None
        replaced, is_new = await storage.upsert_connection(
            new(access_token="ct-new", scopes=("c",))
        )
        assert not is_new
        assert replaced.id == created.id
        assert replaced.version == 3
        assert replaced.access_token == "ct-new"
        assert replaced.scopes == ("c",)
        assert (replaced.status, replaced.status_reason, replaced.refresh_failures) == (
            "active",
            None,
            0,
        )
        assert replaced.created_at == created.created_at

    async def test_connections_are_scoped_to_their_user(self, storage: Storage) -> None:
        await storage.upsert_connection(new("u1", "google"))
        await storage.upsert_connection(new("u1", "notion"))
        await storage.upsert_connection(new("u2", "google"))
        assert [c.provider for c in await storage.list_connections("u1")] == ["google", "notion"]
        assert [c.user_id for c in await storage.list_connections("u2")] == ["u2"]
        assert await storage.get_connection("u2", "notion") is None
        assert await storage.list_connections("nobody") == []

    async def test_null_expiry_and_refresh_token_round_trip(self, storage: Storage) -> None:
        row, _ = await storage.upsert_connection(
            new(expires_at=None, refresh_token=None, email=None, scopes=())
        )
        assert (row.expires_at, row.refresh_token, row.email, row.scopes) == (None, None, None, ())
        assert not row.is_expired()

    async def test_update_is_fenced_by_version(self, storage: Storage) -> None:
        row, _ = await storage.upsert_connection(new())
        updated = await storage.update_connection(
            row.id, row.version, access_token="ct-2", expires_at=datetime.now(UTC)
        )
        assert updated is not None
        assert updated.version == row.version + 1
        stale = await storage.update_connection(row.id, row.version, access_token="ct-stale")
        assert stale is None
        current = await storage.get_connection_by_id(row.id)
        assert current is not None
        assert current.access_token == "ct-2"
        assert await storage.update_connection("missing-id", 1, access_token="x") is None

    async def test_update_rejects_unknown_columns(self, storage: Storage) -> None:
        row, _ = await storage.upsert_connection(new())
        with pytest.raises(ValueError, match="not updatable"):
            await storage.update_connection(row.id, row.version, user_id="someone-else")

    async def test_concurrent_writers_exactly_one_wins(self, storage: Storage) -> None:
        row, _ = await storage.upsert_connection(new())
        results = await asyncio.gather(
            *(
                storage.update_connection(row.id, row.version, access_token=f"ct-{i}")
                for i in range(20)
            )
        )
        winners = [r for r in results if r is not None]
        assert len(winners) == 1
        final = await storage.get_connection_by_id(row.id)
        assert final is not None
        assert final.access_token == winners[0].access_token
        assert final.version == row.version + 1

    async def test_delete_returns_the_row_once(self, storage: Storage) -> None:
        row, _ = await storage.upsert_connection(new())
        deleted = await storage.delete_connection("u1", "google")
        assert deleted is not None
        assert deleted.id == row.id
        assert deleted.refresh_token == "ct-refresh"
        assert await storage.delete_connection("u1", "google") is None

    async def test_claim_due_connections(self, storage: Storage) -> None:
        now = datetime.now(UTC)
        soon, later, far = (now + timedelta(minutes=m) for m in (1, 3, 60))
        a, _ = await storage.upsert_connection(new("a", expires_at=later))
        b, _ = await storage.upsert_connection(new("b", expires_at=soon))
        await storage.upsert_connection(new("c", expires_at=far))  # not due
        await storage.upsert_connection(new("d", expires_at=soon, refresh_token=None))  # can't
        e, _ = await storage.upsert_connection(new("e", expires_at=soon))
        await storage.update_connection(e.id, e.version, status="needs_reauth")
        f, _ = await storage.upsert_connection(new("f", expires_at=soon))
        await storage.update_connection(f.id, f.version, next_refresh_at=now + timedelta(minutes=2))
        horizon = now + timedelta(minutes=5)
        claimed = await storage.claim_due_connections(
            now=now, horizon=horizon, limit=10, owner="w1", lease_seconds=60
        )
        assert [c.user_id for c in claimed] == ["b", "a"]  # earliest expiry first
        # A second sweeper sees nothing while the lease holds...
        assert (
            await storage.claim_due_connections(
                now=now, horizon=horizon, limit=10, owner="w2", lease_seconds=60
            )
            == []
        )
        # ...gets a released one at once, and the rest after the lease expires.
        await storage.release_claim(a.id, "w2")  # not the owner: no effect
        await storage.release_claim(b.id, "w1")
        again = await storage.claim_due_connections(
            now=now, horizon=horizon, limit=10, owner="w2", lease_seconds=60
        )
        assert [c.id for c in again] == [b.id]
        expired = await storage.claim_due_connections(
            now=now + timedelta(seconds=61), horizon=horizon, limit=10, owner="w3", lease_seconds=60
        )
        assert {c.id for c in expired} == {a.id, b.id}

    async def test_claim_respects_the_limit(self, storage: Storage) -> None:
        now = datetime.now(UTC)
        for i in range(5):
            await storage.upsert_connection(new(f"user{i}", expires_at=now + timedelta(seconds=i)))
        first = await storage.claim_due_connections(
            now=now, horizon=now + timedelta(minutes=5), limit=2, owner="w1", lease_seconds=60
        )
        second = await storage.claim_due_connections(
            now=now, horizon=now + timedelta(minutes=5), limit=10, owner="w2", lease_seconds=60
        )
        assert [c.user_id for c in first] == ["user0", "user1"]
        assert [c.user_id for c in second] == ["user2", "user3", "user4"]

    async def test_pages_cover_every_connection(self, storage: Storage) -> None:
        for i in range(7):
            await storage.upsert_connection(new(f"user{i}"))
        seen: list[str] = []
        after = None
        while page := await storage.connections_page(after, 3):
            seen.extend(c.id for c in page)
            after = page[-1].id
        assert len(seen) == len(set(seen)) == 7
        assert seen == sorted(seen)

    async def test_count_by_status(self, storage: Storage) -> None:
        row, _ = await storage.upsert_connection(new("a"))
        await storage.upsert_connection(new("b"))
        await storage.update_connection(row.id, row.version, status="error")
        assert await storage.count_connections_by_status() == {"active": 1, "error": 1}

    async def test_flow_take_is_single_use_and_expires(self, storage: Storage) -> None:
        now = datetime.now(UTC)
        await storage.put_flow("k1", "payload-1", now + timedelta(minutes=10))
        await storage.put_flow("k2", "payload-2", now - timedelta(seconds=1))
        assert await storage.take_flow("k1", now) == "payload-1"
        assert await storage.take_flow("k1", now) is None
        assert await storage.take_flow("k2", now) is None
        assert await storage.take_flow("never", now) is None

    async def test_concurrent_flow_takes_have_one_winner(self, storage: Storage) -> None:
        now = datetime.now(UTC)
        await storage.put_flow("race", "payload", now + timedelta(minutes=10))
        results = await asyncio.gather(*(storage.take_flow("race", now) for _ in range(10)))
        assert [r for r in results if r is not None] == ["payload"]

    async def test_lease_lock_owner_rules(self, storage: Storage) -> None:
        now = datetime.now(UTC)
        assert await storage.acquire_lock("refresh:1", "A", 10, now)
        assert not await storage.acquire_lock("refresh:1", "B", 10, now)
        assert not await storage.release_lock("refresh:1", "B")  # not the owner
        assert not await storage.extend_lock("refresh:1", "B", 10, now)
        assert await storage.extend_lock("refresh:1", "A", 10, now)
        # A's lease lapses: B takes over, and A can neither extend nor release B's lock.
        later = now + timedelta(seconds=11)
        assert await storage.acquire_lock("refresh:1", "B", 10, later)
        assert not await storage.extend_lock("refresh:1", "A", 10, later)
        assert not await storage.release_lock("refresh:1", "A")
        assert await storage.release_lock("refresh:1", "B")
        assert await storage.acquire_lock("refresh:1", "C", 10, later)

    async def test_concurrent_lock_acquire_has_one_winner(self, storage: Storage) -> None:
        now = datetime.now(UTC)
        results = await asyncio.gather(
            *(storage.acquire_lock("refresh:x", f"owner{i}", 10, now) for i in range(10))
        )
        assert results.count(True) == 1

    async def test_audit_is_per_user_newest_first(self, storage: Storage) -> None:
        now = datetime.now(UTC)
        await storage.add_audit(
            [audit("u1", now - timedelta(minutes=2)), audit("u1", now), audit("u2", now)]
        )
        records = await storage.list_audit("u1")
        assert [r.occurred_at for r in records] == [now, now - timedelta(minutes=2)]
        assert all(r.user_id == "u1" for r in records)
        older = await storage.list_audit("u1", before=now)
        assert len(older) == 1
        assert len(await storage.list_audit("u1", limit=1)) == 1

    async def test_agents_store_only_hashes_and_names_are_unique_while_active(
        self, storage: Storage
    ) -> None:
        from pulseplan.auth.agents import DuplicateAgent

        first = await storage.create_agent("planner", "hash-1", ["google"])
        assert first.providers == ("google",)
        assert first.revoked_at is None
        with pytest.raises(DuplicateAgent):
            await storage.create_agent("planner", "hash-2", None)
        found = await storage.get_agent_by_hash("hash-1")
        assert found is not None
        assert found.id == first.id
        assert await storage.get_agent_by_hash("hash-x") is None
        assert await storage.revoke_agent("planner")
        assert not await storage.revoke_agent("planner")
        revoked = await storage.get_agent_by_hash("hash-1")
        assert revoked is not None
        assert revoked.revoked_at is not None
        again = await storage.create_agent("planner", "hash-2", None)
        assert again.providers is None
        assert [a.name for a in await storage.list_agents()] == ["planner", "planner"]
