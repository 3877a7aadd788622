"""The plugin against PulsePlan's conformance suite."""

from __future__ import annotations

import pulseplan_myprovider

from pulseplan.testing.conformance import ProviderConformance


class TestConformance(ProviderConformance):
    provider = "myprovider"
    profile = "standard"  # <REPLACE> the fake profile that behaves like your provider
    # Registered in-process so the suite runs from a source checkout; delete this line to test
    # the installed plugin, found through its entry point.
    plugin = pulseplan_myprovider
