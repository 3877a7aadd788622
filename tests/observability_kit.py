"""Helpers for the observability tests: an in-memory Sentry transport, JSON log capture,
production settings and Prometheus parsing."""

from __future__ import annotations

import io
import json
from collections.abc import Iterator
from typing import Any

import sentry_sdk
from prometheus_client.parser import text_string_to_metric_families
from sentry_sdk.envelope import Envelope
from sentry_sdk.transport import Transport

#: A DSN that points nowhere real; the in-memory transport means nothing is ever sent.
DUMMY_DSN = "https://public@127.0.0.1/1"
#: Label names any PulsePlan metric may carry (plus Prometheus' own ``le`` for histograms).
ALLOWED_LABELS = frozenset(
    {
        "method",
        "route",
        "status",
        "provider",
        "outcome",
        "operation",
        "error_class",
        "event",
        "group",
        "cache",
        "lock",
        "version",
        "le",
        # prometheus-client's own process/platform collectors
        "implementation",
        "major",
        "minor",
        "patchlevel",
        "generation",
    }
)


class MemoryTransport(Transport):
    """Keeps every envelope item Sentry would send."""

    def __init__(self) -> None:
        super().__init__(None)
        self.items: list[dict[str, Any]] = []

    def capture_envelope(self, envelope: Envelope) -> None:
        for item in envelope.items:
            payload = item.payload.json
            if payload is None and item.payload.bytes is not None:
                payload = item.payload.bytes.decode("utf-8", "replace")
            self.items.append({"type": item.type, "payload": payload})

    def events(self, kind: str = "event") -> list[dict[str, Any]]:
        return [i["payload"] for i in self.items if i["type"] == kind]

    def dump(self) -> str:
        """Everything captured, as one string to search."""
        return json.dumps(self.items, default=str)


def reset_sentry() -> None:
    """Close the test's client and leave none active for later tests."""
    sentry_sdk.get_client().close(timeout=0)
    sentry_sdk.get_global_scope().set_client(None)


class LogCapture(io.StringIO):
    """A stream for ``configure_logging(..., stream=...)`` with JSON-line helpers."""

    def lines(self) -> list[str]:
        return [line for line in self.getvalue().splitlines() if line]

    def records(self) -> list[dict[str, Any]]:
        return [json.loads(line) for line in self.lines()]

    def find(self, **fields: Any) -> list[dict[str, Any]]:
        return [r for r in self.records() if all(r.get(k) == v for k, v in fields.items())]


def production_env() -> dict[str, str]:
    """Settings a production app accepts (with ``tests.conftest.BASE_ENV`` secrets)."""
    return {
        "PULSEPLAN_ENV": "production",
        "PUBLIC_BASE_URL": "https://vault.example",
        "BACKGROUND_REFRESH": "false",
    }


def samples(exposition: str) -> Iterator[tuple[str, dict[str, str], float]]:
    """``(sample name, labels, value)`` of every sample in a Prometheus exposition."""
    for family in text_string_to_metric_families(exposition):
        for sample in family.samples:
            yield sample.name, dict(sample.labels), sample.value


def value(exposition: str, name: str, **labels: str) -> float:
    """The sum of the samples called ``name`` whose labels include ``labels`` (0 if none)."""
    return sum(
        v
        for n, have, v in samples(exposition)
        if n == name and all(have.get(k) == want for k, want in labels.items())
    )
