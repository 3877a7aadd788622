"""Conformance checks of failures: every scripted provider error must reach the host as the
right exception, so the connection ends in the right state, and no secret may leak on the way.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from loguru import logger

from pulseplan.testing.conformance_base import ConformanceBase
from pulseplan.testing.conformance_faults import CALLBACK_ERRORS
from pulseplan.testing.conformance_faults import FaultCase
from pulseplan.testing.conformance_harness import CANARY
from pulseplan.testing.conformance_harness import Harness

EXPECTED_EXCEPTION = {
    "needs_reauth": "ReconnectRequired",
    "error": "ProviderMisconfigured",
    "transient": "ProviderUnavailable",
}


@contextmanager
def captured_logs() -> Iterator[list[str]]:
    """Every log line at every level, with its bound extras and exception text."""
    lines: list[str] = []
    sink = logger.add(
        lambda m: lines.append(f"{m} {m.record['extra']!r} {m.record['exception']!r}"), level=0
    )
    try:
        yield lines
    finally:
        logger.remove(sink)


class FailureChecks(ConformanceBase):
    """The failure half of :class:`~pulseplan.testing.conformance.ProviderConformance`."""

    async def _refresh_fails(self, h: Harness, case: FaultCase) -> tuple[str, str]:
        """Connect, script ``case`` on the next refresh, force a refresh; return the refresh
        token from before and a description of the state the connection ended in."""
        self.require_refresh(h)
        before = h.refresh_token(await h.connect())
        assert before is not None
        h.fake.fail_next("refresh", case.kind, **case.options)
        await h.refresh_now()
        row = await h.stored()
        assert h.fake.count("refresh") == 1, "the host retried a failed refresh at once"
        state = (
            f"{case.id}: the plugin should raise {EXPECTED_EXCEPTION[case.outcome]}; "
            f"the connection ended {row.status} ({row.status_reason})"
        )
        return before, state

    async def test_refresh_fault_needs_reauth(
        self, conformance: Harness, reauth_fault: FaultCase
    ) -> None:
        h = conformance
        _, state = await self._refresh_fails(h, reauth_fault)
        row = await h.stored()
        assert row.status == "needs_reauth", state
        assert "needs_reauth" in await h.events()
        body = await h.tokens()
        assert body[self.provider] is None
        assert body["errors"][self.provider]["code"] == "needs_reauth"
        assert h.fake.count("refresh") == 1, "a dead grant must not be retried"

    async def test_refresh_fault_is_a_configuration_error(
        self, conformance: Harness, config_fault: FaultCase
    ) -> None:
        h = conformance
        _, state = await self._refresh_fails(h, config_fault)
        row = await h.stored()
        assert row.status == "error", state
        assert row.status_reason, "the provider's error code is kept for the operator"

    async def test_refresh_fault_is_transient(
        self, conformance: Harness, transient_fault: FaultCase
    ) -> None:
        h = conformance
        before, state = await self._refresh_fails(h, transient_fault)
        row = await h.stored()
        assert row.status == "active", state
        assert row.refresh_failures == 1, state
        assert row.next_refresh_at is not None, "no retry was scheduled"
        assert h.refresh_token(row) == before
        assert h.fake.is_live(before)
        served = (await h.tokens())[self.provider]
        assert served is not None
        assert h.fake.is_live(served["access_token"])

    async def test_code_exchange_fault_is_classified(
        self, conformance: Harness, code_fault: FaultCase
    ) -> None:
        h = conformance
        url = await h.start()
        h.fake.fail_next("code", code_fault.kind, **code_fault.options)
        back = await h.callback(h.fake.consent(url))
        expected = CALLBACK_ERRORS[code_fault.outcome]
        assert back["status"] == ["error"]
        assert back.get("error") == [expected], (
            f"{code_fault.id}: the plugin should raise {EXPECTED_EXCEPTION[code_fault.outcome]}"
        )
        assert await h.row() is None

    async def test_no_secret_reaches_logs_or_responses(self, conformance: Harness) -> None:
        h = conformance
        secret = h.fake.client_secret
        bodies: list[str] = []
        with captured_logs() as lines:
            row = await h.connect()
            await h.tokens()
            for response in (await h.refresh_now(), await h.refresh_now()):
                bodies.append(await response.get_data(as_text=True))
            if h.spec.supports_validate:
                bodies.append(str(await h.validate_now()))
            h.fake.fail_next("refresh", "invalid_grant")
            bodies.append(await (await h.refresh_now()).get_data(as_text=True))
            h.fake.fail_next("code", "invalid_client")
            await h.callback(h.fake.consent(await h.start()))
            listed = await h.vault.client.get("/api/v1/tokens/connections", headers=h.headers())
            bodies.append(await listed.get_data(as_text=True))
            bodies.append(str(await h.disconnect()))
            bodies.append(repr(row))
        for where, texts in (("log line", lines), ("response", bodies)):
            # Count only: the failure message must not print what leaked.
            leaked = sum(1 for t in texts if CANARY in t or (secret is not None and secret in t))
            assert leaked == 0, f"a token, code or secret reached {leaked} {where}(s)"
