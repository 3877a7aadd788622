"""Key hygiene and configuration of the Redis layer: TTLs on every key, no KEYS/SCAN, TLS that
cannot be turned off, a URL (with its password) that never shows, and no change without it."""

from __future__ import annotations

import ast
import re
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path

import pytest

import pulseplan.cache
from pulseplan.app import create_app
from pulseplan.broker.refresh import RefreshCoordinator
from pulseplan.cache.client import RedisClient
from pulseplan.cache.client import RedisUnavailable
from pulseplan.cache.client import connection_kwargs
from pulseplan.cache.flows import RedisFlowStore
from pulseplan.cache.locks import LayeredLocks
from pulseplan.cache.locks import RedisLocks
from pulseplan.cache.rows import CachedStorage
from pulseplan.errors import ConfigurationError
from pulseplan.locks import StorageLocks
from pulseplan.runtime import Runtime
from pulseplan.settings import Settings
from pulseplan.storage.models import utcnow
from pulseplan.storage.sqlite import SQLiteStorage
from tests.redis_kit import down_client
from tests.redis_kit import live_client
from tests.redis_kit import raw_redis
from tests.storage_contract import new

PACKAGE = Path(pulseplan.cache.__file__).parent
PASSWORD = "s3cret-redis-password"


@pytest.mark.redis
async def test_every_key_written_has_a_ttl(tmp_path: Path) -> None:
    inner = SQLiteStorage(str(tmp_path / "ttl.db"))
    await inner.open()
    await inner.migrate()
    try:
        async with live_client() as client:
            storage = CachedStorage(inner, client, ciphertext_only=False)
            locks = LayeredLocks(RedisLocks(client), StorageLocks(inner))
            flows = RedisFlowStore(client, inner)
            row, _ = await storage.upsert_connection(new())  # invalidation creates the hash
            await storage.get_connection("u2", "google")  # a fill creates another
            await storage.list_connections("u1")
            await storage.update_connection(row.id, row.version, access_token="ct-2")
            await storage.get_connection("u1", "google")
            assert await locks.acquire("refresh:ttl", "owner", 30)  # held, not released
            assert await locks.extend("refresh:ttl", "owner", 60)
            await flows.put_flow("pending", "payload", utcnow() + timedelta(minutes=10))
            redis = raw_redis()
            try:
                ttls = {name: await redis.pttl(name) for name in sorted(client.named)}
            finally:
                await redis.aclose()
            assert len(ttls) == 4  # two user hashes, one lock, one flow
            assert all(ttl > 0 for ttl in ttls.values()), ttls
            assert max(ttls.values()) <= 600_000
    finally:
        await inner.close()


KEYS_IN_LUA = re.compile(r"redis\.call\(\s*['\"](KEYS|SCAN)['\"]", re.IGNORECASE)
SCAN_METHODS = {"keys", "scan", "scan_iter", "hscan", "sscan", "zscan", "hscan_iter"}


def test_no_keys_or_scan_in_the_cache_package() -> None:
    sources = sorted(PACKAGE.glob("*.py"))
    assert len(sources) >= 5
    for path in sources:
        tree = ast.parse(path.read_text(), str(path))
        for node in ast.walk(tree):
            if isinstance(node, ast.Attribute):
                assert node.attr not in SCAN_METHODS, f"{path.name}:{node.lineno} .{node.attr}("
            if isinstance(node, ast.Constant) and isinstance(node.value, str):
                assert node.value.upper() not in ("KEYS", "SCAN"), f"{path.name}:{node.lineno}"
                assert not KEYS_IN_LUA.search(node.value), f"{path.name}:{node.lineno}"


def test_lua_scripts_touch_only_declared_keys() -> None:
    # Upstash and Redis Cluster: every key a script touches comes in through KEYS.
    from pulseplan.cache import locks
    from pulseplan.cache import rows

    for script in (locks.RELEASE, locks.EXTEND, rows.FILL):
        for call in re.findall(r"redis\.call\(([^)]*)\)", script):
            target = call.split(",")[1].strip() if "," in call else ""
            assert target.startswith("KEYS["), call


def test_rediss_verifies_certificates_and_host_names() -> None:
    kwargs = connection_kwargs(f"rediss://default:{PASSWORD}@example.upstash.io:6379")
    assert kwargs["ssl_cert_reqs"] == "required"
    assert kwargs["ssl_check_hostname"] is True
    for weakening in ("ssl_cert_reqs=none", "ssl_cert_reqs=optional", "ssl_check_hostname=false"):
        with pytest.raises(ConfigurationError) as caught:
            RedisClient(f"rediss://default:{PASSWORD}@example.upstash.io:6379/0?{weakening}")
        assert PASSWORD not in str(caught.value)
        assert "verification" in str(caught.value)


@pytest.mark.parametrize("url", [f"http://u:{PASSWORD}@host:6379", f"{PASSWORD}@host", ""])
def test_bad_redis_urls_are_refused_without_echoing_them(
    url: str, make_settings: Callable[..., Settings]
) -> None:
    with pytest.raises(ConfigurationError) as caught:
        create_app(make_settings(REDIS_URL=url))
    assert PASSWORD not in str(caught.value)


async def test_the_password_never_shows(logs: list[str]) -> None:
    client = RedisClient(f"redis://default:{PASSWORD}@127.0.0.1:1/0")
    assert PASSWORD not in repr(client)
    assert client.location == "redis://127.0.0.1:1/0"
    with pytest.raises(RedisUnavailable) as caught:
        await client.ping()
    assert PASSWORD not in str(caught.value)
    await client.close()
    assert logs
    assert not any(PASSWORD in line for line in logs)


async def test_an_outage_is_logged_once_and_counted(logs: list[str]) -> None:
    client = down_client(retry_interval=0)
    for _ in range(5):
        with pytest.raises(RedisUnavailable):
            await client.ping()
    assert client.stats() == {"errors": 5, "outages": 1, "down": True}
    assert len([line for line in logs if "unreachable" in line]) == 1
    await client.close()
    with pytest.raises(RedisUnavailable, match="closed"):
        await client.run(lambda r: r.ping())


def test_without_redis_url_nothing_changes(settings: Settings) -> None:
    app = create_app(settings)
    runtime: Runtime = app.extensions["pulseplan"]
    assert type(runtime.storage) is SQLiteStorage
    assert "redis" not in runtime.checks
    assert runtime.auto_migrate
    refresher = runtime.broker.refresher
    assert isinstance(refresher, RefreshCoordinator)
    assert type(refresher.locks) is StorageLocks
    assert runtime.flows.flow_store is runtime.storage


def test_with_redis_url_the_embedded_database_still_migrates_itself(
    make_settings: Callable[..., Settings],
) -> None:
    app = create_app(make_settings(REDIS_URL="redis://127.0.0.1:6379/0"))
    runtime: Runtime = app.extensions["pulseplan"]
    assert isinstance(runtime.storage, CachedStorage)
    assert runtime.auto_migrate
    assert runtime.checks["redis"].name == "redis"
