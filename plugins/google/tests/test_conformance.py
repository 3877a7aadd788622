"""The google plugin against the conformance suite, with the fake speaking Google's protocol."""

from __future__ import annotations

from pulseplan.testing.conformance import ProviderConformance


class TestConformance(ProviderConformance):
    provider = "google"
    profile = "google"
