"""The plugin author kit: a fake OAuth provider server and, later, pytest fixtures.

Start with :class:`pulseplan.testing.fake_provider.FakeProvider`, a real HTTP server on
127.0.0.1 that speaks the wire protocol of Google, Microsoft, Canvas, Notion or a plain
RFC 6749 provider, with scriptable faults and a ledger of live tokens.
"""
