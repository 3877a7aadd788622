"""The conformance suite every provider plugin should pass, in one line::

    from pulseplan.testing.conformance import ProviderConformance

    class TestConformance(ProviderConformance):
        provider = "google"   # the entry-point / provider name
        profile = "google"    # the FakeProvider profile that behaves like the provider

Each check is its own test method, so a failure names what broke. Every check runs a real
PulsePlan (SQLite in ``tmp_path``) with the plugin under test, wired through the
``{NAME}_*_URL`` overrides to a :class:`~pulseplan.testing.fake_provider.FakeProvider` on
127.0.0.1, and drives it through the host's HTTP API or its plugin host:

* discovery: the plugin is found (entry point or ``plugin``), describes ``provider`` and is
  configured by the fake's environment;
* the authorization URL: the provider's endpoint, ``client_id``, the exact ``redirect_uri``,
  the ``state`` echoed back, S256 PKCE when ``ProviderSpec.pkce`` says so, a request the
  provider accepts;
* the code exchange: tokens stored encrypted, email, expiry, granted scopes and metadata
  recorded; fetching never returns the refresh token;
* refresh: a new access token; the refresh token kept or rotated as the provider does, and kept
  when a response has none; an expiring token refreshed on fetch; reconnecting keeps a
  working refresh token;
* validate: valid, then invalid once the fake expires the token;
* revoke: the grant revoked at the fake, or ``supported=False`` when the provider has no
  revocation endpoint;
* failures: each scripted refresh failure ends as ``needs_reauth``, ``error`` or a transient
  failure that keeps the connection active, and each failed code exchange is reported as
  such; no token, code or secret in any log line or response.

Knobs (class attributes; see :class:`~pulseplan.testing.conformance_base.ConformanceBase`):
``plugin`` (register an object instead of the installed entry point), ``rotation``,
``revocation``, ``pkce``, ``records_email``, ``env``, ``refresh_faults`` and ``code_faults``
(lists of :class:`FaultCase`; start from :func:`default_refresh_faults`), and the
``expected_metadata`` method.
"""

from __future__ import annotations

from pulseplan.testing.conformance_failures import FailureChecks
from pulseplan.testing.conformance_faults import FaultCase
from pulseplan.testing.conformance_faults import Outcome
from pulseplan.testing.conformance_faults import default_code_faults
from pulseplan.testing.conformance_faults import default_refresh_faults
from pulseplan.testing.conformance_harness import Harness
from pulseplan.testing.conformance_lifecycle import LifecycleChecks


class ProviderConformance(LifecycleChecks, FailureChecks):
    """Subclass as ``Test...`` and set ``provider`` and ``profile`` (see the module docstring).

    Needs ``pytest-asyncio`` in auto mode (``asyncio_mode = "auto"``), which also lets a
    subclass add sync or async tests of its own; the fixture comes with the class, so no
    ``pytest_plugins`` line is needed.
    """


__all__ = [
    "FaultCase",
    "Harness",
    "Outcome",
    "ProviderConformance",
    "default_code_faults",
    "default_refresh_faults",
]
