"""Signed webhooks for connection events: a built-in cross-cutting plugin, off by default.

Enable with ``WEBHOOK_URL`` and ``WEBHOOK_SECRET``. Each event is POSTed as JSON with
``X-PulsePlan-Signature: t=<unix time>,v1=<hex HMAC-SHA256 of "<t>.<body>">`` so the receiver can
check both origin and freshness (the same scheme as Stripe's). Events carry ids, never tokens.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import time

import httpx
from loguru import logger

from pulseplan.hookspecs import hookimpl
from pulseplan.provider import ConnectionEvent

ATTEMPTS = 3


def sign(secret: str, timestamp: int, body: bytes) -> str:
    """The signature header value for ``body`` sent at ``timestamp``."""
    mac = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256)
    return f"t={timestamp},v1={mac.hexdigest()}"


class WebhookNotifier:
    """Posts every :class:`ConnectionEvent` to one URL, with a short retry."""

    def __init__(self, url: str, secret: str, http: httpx.AsyncClient | None = None):
        self.url = url
        self._secret = secret
        self._http = http

    def bind(self, http: httpx.AsyncClient) -> None:
        self._http = http

    @hookimpl
    async def connection_event(self, event: ConnectionEvent) -> None:
        if self._http is None:
            return
        body = json.dumps(event.as_dict(), separators=(",", ":")).encode()
        for attempt in range(1, ATTEMPTS + 1):
            headers = {
                "Content-Type": "application/json",
                "X-PulsePlan-Event": event.name,
                "X-PulsePlan-Signature": sign(self._secret, int(time.time()), body),
            }
            try:
                response = await self._http.post(self.url, content=body, headers=headers)
                if response.is_success:
                    return
                failure = f"HTTP {response.status_code}"
            except httpx.HTTPError as exc:
                failure = type(exc).__name__
            if attempt < ATTEMPTS:
                await asyncio.sleep(0.5 * attempt)
        logger.warning(
            "webhook delivery of {} failed after {} attempts: {}", event.name, ATTEMPTS, failure
        )
