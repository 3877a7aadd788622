"""Builds the layers of a runtime from its settings: storage, encryption, locks, events, the
token broker, OAuth flows, audit, background refresh, and their health checks."""

from __future__ import annotations

from pulseplan.audit import Auditor
from pulseplan.broker.refresh import RefreshCoordinator
from pulseplan.broker.service import TokenBroker
from pulseplan.broker.tokens import TokenCodec
from pulseplan.crypto import TokenCipher
from pulseplan.default_plugins.webhooks import WebhookNotifier
from pulseplan.events import EventBus
from pulseplan.locks import LockManager
from pulseplan.locks import StorageLocks
from pulseplan.oauth.flows import FlowService
from pulseplan.oauth.flows import FlowStore
from pulseplan.refresher import BackgroundRefresher
from pulseplan.runtime import CheckResult
from pulseplan.runtime import Runtime
from pulseplan.storage import make_storage
from pulseplan.storage.base import StorageError
from pulseplan.storage.sqlite import SQLiteStorage


def build(runtime: Runtime) -> None:
    """Create every layer (nothing is opened here; ``Runtime.start`` does that)."""
    settings = runtime.settings
    storage = make_storage(settings)
    # The embedded default migrates itself; shared databases are migrated by `pulseplan migrate`.
    auto_migrate = isinstance(storage, SQLiteStorage)
    locks: LockManager = StorageLocks(storage)
    flow_store: FlowStore = storage
    # --- Redis layer (pulseplan.cache, issue 6): only when REDIS_URL is set ---------------------
    # Row cache around the storage, Redis locks in front of the database lock, flow state in
    # Redis; each falls back to the database while Redis is down. Registers the `redis` check.
    if settings.redis_url is not None:
        from pulseplan.cache.layer import install as install_redis

        redis_layer = install_redis(runtime, storage)
        storage, locks, flow_store = redis_layer.storage, redis_layer.locks, redis_layer.flows
    # --- end Redis layer -------------------------------------------------------------------------
    cipher = TokenCipher.from_settings(settings)
    codec = TokenCodec(cipher)
    events = EventBus(runtime.plugins)
    coordinator = RefreshCoordinator(
        storage=storage,
        codec=codec,
        plugins=runtime.plugins,
        locks=locks,
        events=events,
        settings=settings,
    )
    broker = TokenBroker(
        storage=storage,
        codec=codec,
        plugins=runtime.plugins,
        events=events,
        refresher=coordinator,
    )
    runtime.storage = storage
    runtime.cipher = cipher
    runtime.events = events
    runtime.broker = broker
    runtime.auditor = Auditor(storage)
    runtime.flows = FlowService(
        storage=storage,
        flow_store=flow_store,
        cipher=cipher,
        plugins=runtime.plugins,
        broker=broker,
        settings=settings,
    )
    runtime.auto_migrate = auto_migrate
    if settings.background_refresh:
        runtime.background = BackgroundRefresher(
            storage=storage, coordinator=coordinator, settings=settings
        )
    if settings.webhook_url:
        notifier = WebhookNotifier(settings.webhook_url, settings.secret("webhook_secret") or "")
        runtime.plugins.pm.register(notifier, name="pulseplan.webhooks")

        async def bind_webhooks() -> None:
            assert runtime.http is not None
            notifier.bind(runtime.http)

        runtime.on_start.append(bind_webhooks)
    add_checks(runtime)


def add_checks(runtime: Runtime) -> None:
    storage, cipher = runtime.storage, runtime.cipher

    async def storage_check() -> CheckResult:
        try:
            await storage.ping()
        except StorageError as exc:
            return CheckResult("fail", str(exc))
        return CheckResult("ok", getattr(storage, "detail", storage.name))

    async def migrations_check() -> CheckResult:
        pending = await storage.pending_migrations()
        if pending:
            return CheckResult("fail", f"pending: {', '.join(pending)}; run `pulseplan migrate`")
        return CheckResult("ok", "up to date")

    async def keys_check() -> CheckResult:
        cipher.health_check()
        return CheckResult("ok", f"primary key version {cipher.primary_version}")

    runtime.add_check("storage", storage_check)
    runtime.add_check("migrations", migrations_check)
    runtime.add_check("keys", keys_check)
