"""Connection events, delivered to ``connection_event`` plugins off the request path.

A token response must not wait for a webhook receiver, so :meth:`EventBus.fire` schedules the
delivery and returns; :meth:`EventBus.drain` (at shutdown and in tests) waits for what is in
flight so no event is lost on a graceful stop.
"""

from __future__ import annotations

import asyncio
from datetime import UTC
from datetime import datetime

from pulseplan.plugins import PluginHost
from pulseplan.provider import ConnectionEvent
from pulseplan.provider import EventName
from pulseplan.web.request_id import request_id


class EventBus:
    """Fire-and-forget delivery of :class:`ConnectionEvent` to plugins."""

    def __init__(self, plugins: PluginHost):
        self.plugins = plugins
        self._pending: set[asyncio.Task[None]] = set()

    def fire(
        self,
        name: EventName,
        *,
        user_id: str,
        provider: str,
        connection_id: str | None = None,
        detail: str | None = None,
    ) -> ConnectionEvent:
        """Build the event (with the current request id) and schedule its delivery."""
        event = ConnectionEvent(
            name=name,
            user_id=user_id,
            provider=provider,
            connection_id=connection_id,
            occurred_at=datetime.now(UTC),
            detail=detail,
            request_id=request_id(),
        )
        task = asyncio.get_running_loop().create_task(self.plugins.emit(event))
        self._pending.add(task)
        task.add_done_callback(self._pending.discard)
        return event

    async def drain(self) -> None:
        """Wait for every scheduled delivery."""
        while self._pending:
            await asyncio.gather(*list(self._pending), return_exceptions=True)
