"""The microsoft plugin against the conformance suite, the fake speaking Microsoft's protocol."""

from __future__ import annotations

from pulseplan.testing.conformance import ProviderConformance


class TestConformance(ProviderConformance):
    provider = "microsoft"
    profile = "microsoft"
