"""Concurrency on PostgreSQL across *separate pools* (as separate worker processes would be):
the version fence, and sweepers splitting 1,000 due connections without overlap (checklist
C6.7 at the storage level; the end-to-end refresh-at-scale test runs real server processes)."""

from __future__ import annotations

import asyncio
import uuid
from collections import Counter
from collections.abc import AsyncIterator
from datetime import UTC
from datetime import datetime
from datetime import timedelta

import pytest

from pulseplan.storage.postgres import PostgresStorage
from tests.pg_fixtures import ScratchDatabase
from tests.pg_fixtures import pg_database_fixture  # noqa: F401
from tests.pg_fixtures import pg_storage_fixture  # noqa: F401
from tests.storage_contract import new

pytestmark = pytest.mark.postgres

WORKERS = 4


@pytest.fixture
async def pools(
    pg_storage: PostgresStorage, pg_database: ScratchDatabase
) -> AsyncIterator[list[PostgresStorage]]:
    """``WORKERS`` independent backends on the (emptied) scratch database."""
    others = [PostgresStorage(pg_database.url, max_size=4) for _ in range(WORKERS - 1)]
    for other in others:
        await other.open()
    yield [pg_storage, *others]
    for other in others:
        await other.close()


async def test_version_fence_across_pools(pools: list[PostgresStorage]) -> None:
    row, _ = await pools[0].upsert_connection(new(str(uuid.uuid4())))
    results = await asyncio.gather(
        *(
            pools[i % WORKERS].update_connection(row.id, row.version, access_token=f"ct-{i}")
            for i in range(40)
        )
    )
    winners = [r for r in results if r is not None]
    assert len(winners) == 1
    final = await pools[1].get_connection_by_id(row.id)
    assert final is not None
    assert (final.access_token, final.version) == (winners[0].access_token, row.version + 1)


async def test_sweepers_claim_every_due_connection_exactly_once(
    pools: list[PostgresStorage],
) -> None:
    now = datetime.now(UTC)
    due = 1000
    async with pools[0].db.service() as conn:
        await conn.executemany(
            "INSERT INTO calendar_connections (user_id, provider, access_token, refresh_token, "
            "expires_at) VALUES ($1, 'google', 'ct-a', 'ct-r', $2)",
            [(uuid.uuid4(), now + timedelta(seconds=i % 240)) for i in range(due)],
        )
        # Not due: too far out, no refresh token, or already marked dead.
        await conn.execute(
            "INSERT INTO calendar_connections (user_id, provider, access_token, refresh_token, "
            "expires_at, status) VALUES "
            "(gen_random_uuid(), 'google', 'ct', 'ct-r', $1, 'active'), "
            "(gen_random_uuid(), 'google', 'ct', NULL, $2, 'active'), "
            "(gen_random_uuid(), 'google', 'ct', 'ct-r', $2, 'needs_reauth')",
            now + timedelta(hours=2),
            now,
        )
    horizon = now + timedelta(minutes=5)

    async def sweep(storage: PostgresStorage, owner: str) -> list[str]:
        claimed: list[str] = []
        while batch := await storage.claim_due_connections(
            now=now, horizon=horizon, limit=50, owner=owner, lease_seconds=300
        ):
            assert len(batch) <= 50
            claimed.extend(c.id for c in batch)
        return claimed

    per_worker = await asyncio.gather(*(sweep(p, f"w{i}") for i, p in enumerate(pools)))
    counts = Counter(cid for claimed in per_worker for cid in claimed)
    assert len(counts) == due
    assert set(counts.values()) == {1}
    async with pools[0].db.service() as conn:
        owners = await conn.fetch(
            "SELECT claim_owner, count(*) AS n FROM calendar_connections "
            "WHERE claim_owner IS NOT NULL GROUP BY 1"
        )
    assert {r["claim_owner"]: r["n"] for r in owners} == {
        f"w{i}": len(claimed) for i, claimed in enumerate(per_worker) if claimed
    }
