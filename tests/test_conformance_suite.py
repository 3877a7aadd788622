"""The conformance suite itself: it passes against the host's standard OAuth 2.0 behaviour, and
a plugin that breaks one rule fails exactly the checks for that rule."""

from __future__ import annotations

import pytest

from pulseplan.testing.conformance import ProviderConformance
from pulseplan.testing.vault import StandardTestProvider
from tests.conftest import tolerated_token_logs

pytest_plugins = ["pytester"]


class TestStandardProviderConformance(ProviderConformance):
    provider = "acme"
    profile = "standard"
    plugin = StandardTestProvider("acme")


BROKEN_PLUGINS = '''
from loguru import logger

from pulseplan import ProviderUnavailable, hookimpl
from pulseplan.errors import ProviderError
from pulseplan.testing.conformance import ProviderConformance
from pulseplan.testing.vault import StandardTestProvider


class EverythingIsTransient(StandardTestProvider):
    """Swallows the classification: a dead grant or a bad client looks transient."""

    @hookimpl
    async def refresh(self, provider, refresh_token, scopes):
        try:
            return await provider.standard.refresh(refresh_token=refresh_token, scopes=scopes)
        except ProviderError as exc:
            raise ProviderUnavailable("refresh failed", error=exc.error) from None


class Chatty(StandardTestProvider):
    """Logs the refresh token."""

    @hookimpl
    async def refresh(self, provider, refresh_token, scopes):
        logger.debug("refreshing with {}", refresh_token)
        return await provider.standard.refresh(refresh_token=refresh_token, scopes=scopes)


class TestTransient(ProviderConformance):
    provider = "acme"
    plugin = EverythingIsTransient("acme")


class TestChatty(ProviderConformance):
    provider = "acme"
    plugin = Chatty("acme")
'''


@pytest.mark.slow  # a nested pytest run of two whole suites
def test_a_broken_plugin_fails_exactly_the_checks_it_breaks(pytester: pytest.Pytester) -> None:
    pytester.makeini(
        "[pytest]\nasyncio_mode = auto\nasyncio_default_fixture_loop_scope = function\n"
    )
    pytester.makepyfile(test_broken=BROKEN_PLUGINS)
    with tolerated_token_logs():  # the broken plugin logs a token on purpose
        result = pytester.runpytest_inprocess("-q", "-p", "no:cacheprovider", "-rf")
    failed = {
        line.split("::", 1)[1].split(" ")[0]
        for line in result.outlines
        if line.startswith("FAILED ")
    }
    assert failed == {
        "TestTransient::test_refresh_fault_needs_reauth[invalid_grant]",
        "TestTransient::test_refresh_fault_is_a_configuration_error[invalid_client]",
        "TestChatty::test_no_secret_reaches_logs_or_responses",
    }
    outcomes = result.parseoutcomes()
    assert outcomes["failed"] == 3
    assert outcomes["passed"] > 40
