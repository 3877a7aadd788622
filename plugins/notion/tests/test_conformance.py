"""The notion plugin against the conformance suite, with the fake speaking Notion's protocol."""

from __future__ import annotations

from pulseplan.testing.conformance import ProviderConformance


class TestConformance(ProviderConformance):
    provider = "notion"
    profile = "notion"
