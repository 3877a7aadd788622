"""The conformance suite itself: it passes against the host's standard OAuth 2.0 behaviour."""

from __future__ import annotations

from pulseplan.testing.conformance import ProviderConformance
from pulseplan.testing.vault import StandardTestProvider


class TestStandardProviderConformance(ProviderConformance):
    provider = "acme"
    profile = "standard"
    plugin = StandardTestProvider("acme")
