"""Example Tasks against the conformance suite, with the fake speaking plain RFC 6749."""

from __future__ import annotations

import pulseplan_example

from pulseplan.testing.conformance import FaultCase
from pulseplan.testing.conformance import ProviderConformance
from pulseplan.testing.conformance import default_refresh_faults


class TestConformance(ProviderConformance):
    provider = "example"
    profile = "standard"
    # Registered in-process so the suite runs from a source checkout. Delete this line to test
    # the installed plugin, found through its entry point, instead.
    plugin = pulseplan_example
    # The quirk: a dead refresh token is reported as ``token_expired``.
    refresh_faults = (
        *default_refresh_faults("standard"),
        FaultCase("error", "needs_reauth", {"error": "token_expired"}, "token_expired"),
    )
