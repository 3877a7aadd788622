"""The canvas plugin against the conformance suite, with the fake speaking Canvas's protocol."""

from __future__ import annotations

from pulseplan.testing.conformance import ProviderConformance


class TestConformance(ProviderConformance):
    provider = "canvas"
    profile = "canvas"
    pkce = False  # CANVAS_PKCE is off by default: older instances have no PKCE


class TestConformanceWithPkce(ProviderConformance):
    provider = "canvas"
    profile = "canvas"
    env = {"CANVAS_PKCE": "true"}
