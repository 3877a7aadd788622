"""Run a command against the configured backends, outside the web server."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from pulseplan.app import create_app
from pulseplan.runtime import Runtime
from pulseplan.settings import Settings


@asynccontextmanager
async def opened_runtime(*, migrate: bool | None = None) -> AsyncIterator[Runtime]:
    """A started runtime (storage open, plugins bound) without the background sweeper.

    :param migrate: force (or skip) applying migrations; default: as the server would.
    """
    settings = Settings.load().model_copy(update={"background_refresh": False})
    app = create_app(settings)
    runtime: Runtime = app.extensions["pulseplan"]
    if migrate is not None:
        runtime.auto_migrate = migrate
    await runtime.start()
    try:
        yield runtime
    finally:
        await runtime.stop()
