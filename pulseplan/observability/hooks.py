"""A built-in cross-cutting plugin that measures provider calls and counts connection events.

It uses the plugin contract's own seams instead of edits in the broker: a ``wrapper=True``
implementation of each network lifecycle hook (``authorize``, ``refresh``, ``validate``,
``revoke``) times the call and classifies its failure, and a ``connection_event``
implementation counts events. Registered by :func:`pulseplan.observability.init_app` as
``pulseplan.observability``.
"""

from __future__ import annotations

import asyncio
import inspect
import time
from collections.abc import Awaitable
from collections.abc import Generator
from typing import Any
from typing import TypeVar

from loguru import logger

from pulseplan.errors import ProviderMisconfigured
from pulseplan.errors import ReconnectRequired
from pulseplan.hookspecs import hookimpl
from pulseplan.observability import metrics
from pulseplan.provider import ConnectionEvent
from pulseplan.provider import ProviderContext

PLUGIN_NAME = "pulseplan.observability"
T = TypeVar("T")


def error_class(exc: BaseException) -> str:
    """``reconnect``, ``misconfigured`` or ``unavailable`` (anything else a plugin raises is
    reported by the host as unavailable, so it is counted as such)."""
    if isinstance(exc, ReconnectRequired):
        return "reconnect"
    if isinstance(exc, ProviderMisconfigured):
        return "misconfigured"
    return "unavailable"


class _Call:
    """One provider call being measured."""

    def __init__(self, provider: str, operation: str):
        self.provider = provider
        self.operation = operation
        self.started = time.perf_counter()

    def succeeded(self) -> None:
        if self.operation == "refresh":
            metrics.refresh_observed(self.provider, "success", self._elapsed())

    def failed(self, exc: BaseException) -> None:
        if isinstance(exc, asyncio.CancelledError):
            if self.operation == "refresh":  # the host's refresh budget ran out, or shutdown
                metrics.refresh_observed(self.provider, "cancelled", self._elapsed())
            return
        kind = error_class(exc)
        metrics.provider_error(self.provider, self.operation, kind)
        if self.operation == "refresh":
            metrics.refresh_observed(self.provider, kind, self._elapsed())

    def _elapsed(self) -> float:
        return time.perf_counter() - self.started

    async def awaited(self, result: Awaitable[T]) -> T:
        try:
            # Lines logged during the call (httpx, the standard implementation, the plugin)
            # name the provider, also in background refreshes that have no request.
            with logger.contextualize(provider=self.provider):
                value = await result
        except BaseException as exc:
            self.failed(exc)
            raise
        self.succeeded()
        return value


def _observe(provider: ProviderContext, operation: str) -> Generator[None, Any, Any]:
    call = _Call(provider.spec.name, operation)
    try:
        result = yield
    except BaseException as exc:  # a synchronous implementation raised
        call.failed(exc)
        raise
    if inspect.isawaitable(result):
        # Async implementations hand back a coroutine: measure it when the host awaits it.
        return call.awaited(result)
    call.succeeded()
    return result


class ObservabilityPlugin:
    """Provider-call metrics and connection-event counts (no tokens are ever looked at)."""

    @hookimpl(wrapper=True)
    def authorize(self, provider: ProviderContext) -> Generator[None, Any, Any]:
        return (yield from _observe(provider, "authorize"))

    @hookimpl(wrapper=True)
    def refresh(self, provider: ProviderContext) -> Generator[None, Any, Any]:
        return (yield from _observe(provider, "refresh"))

    @hookimpl(wrapper=True)
    def validate(self, provider: ProviderContext) -> Generator[None, Any, Any]:
        return (yield from _observe(provider, "validate"))

    @hookimpl(wrapper=True)
    def revoke(self, provider: ProviderContext) -> Generator[None, Any, Any]:
        return (yield from _observe(provider, "revoke"))

    @hookimpl
    def connection_event(self, event: ConnectionEvent) -> None:
        metrics.connection_event(event.provider, event.name)
