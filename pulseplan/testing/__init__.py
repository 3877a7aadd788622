"""The plugin author kit, a pytest plugin: add ``pytest_plugins = ["pulseplan.testing"]`` to
your ``conftest.py``.

It gives you:

* :class:`~pulseplan.testing.fake_provider.FakeProvider`: a real HTTP server on 127.0.0.1 that
  speaks the wire protocol of Google, Microsoft, Canvas, Notion or a plain RFC 6749 provider,
  with scriptable faults and a ledger of live tokens;
* fixtures: ``fake_provider`` (start a fake, stopped after the test), ``pulseplan_vault`` (an
  in-process PulsePlan wired to fakes, with a test client and a JWT-minting helper);
* :mod:`pulseplan.testing.conformance`: the suite every provider plugin should pass.

The kit never contacts a real provider and binds only to loopback.
"""

# Registered by pytest when this module is loaded as a plugin; importing the package itself
# (the fake provider, `pulseplan dev-token`) must not require pytest.
pytest_plugins = ["pulseplan.testing.fixtures"]
