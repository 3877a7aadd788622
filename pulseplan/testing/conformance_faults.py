"""The provider failures the conformance suite scripts, and how a plugin must classify each.

A :class:`FaultCase` is one ``FakeProvider.fail_next`` call plus the outcome the host must reach
through the plugin:

* ``needs_reauth``: the plugin raised :class:`~pulseplan.ReconnectRequired`; the connection is
  marked ``needs_reauth`` and the user must connect again;
* ``error``: :class:`~pulseplan.ProviderMisconfigured`; the connection gets status ``error``
  (the operator must fix the client);
* ``transient``: :class:`~pulseplan.ProviderUnavailable`; the connection stays ``active``, the
  refresh token is kept and a retry is scheduled.

The defaults follow providers.md §6. Each profile adds the failures only its provider sends
(Canvas's plain-text 403 rate limit, Notion's ``code`` bodies, Microsoft's AADSTS numbers), so a
plugin for that provider is checked against its provider's own words.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from dataclasses import field
from typing import Any
from typing import Literal

from pulseplan.testing.fake_faults import FaultKind

Outcome = Literal["needs_reauth", "error", "transient"]

#: What the OAuth callback reports (``?status=error&error=...``) for each outcome of a failed
#: code exchange.
CALLBACK_ERRORS: dict[Outcome, str] = {
    "needs_reauth": "exchange_failed",
    "error": "provider_misconfigured",
    "transient": "provider_unavailable",
}


@dataclass(frozen=True)
class FaultCase:
    """A scripted provider failure and the classification the plugin must give it.

    :param kind: the ``FakeProvider.fail_next`` fault kind.
    :param outcome: ``needs_reauth``, ``error`` or ``transient``.
    :param options: more ``fail_next`` keyword arguments (``status``, ``code``, ``error``...).
    :param label: the test id; defaults to the kind.
    """

    kind: FaultKind
    outcome: Outcome
    options: Mapping[str, Any] = field(default_factory=dict)
    label: str | None = None

    @property
    def id(self) -> str:
        return self.label or self.kind


#: Failures every provider's token endpoint can send, in the active profile's own words (the
#: fake words ``invalid_grant`` as Canvas's "refresh_token not found", Notion's ``code`` body,
#: Microsoft's AADSTS50173...).
COMMON_REFRESH_FAULTS: tuple[FaultCase, ...] = (
    FaultCase("invalid_grant", "needs_reauth"),
    FaultCase("invalid_client", "error"),
    FaultCase("server_error", "transient", {"status": 500}, "server_error_500"),
    FaultCase("server_error", "transient", {"status": 503}, "server_error_503"),
    FaultCase("rate_limited", "transient", {"retry_after": 30}),
    FaultCase("reset", "transient", label="connection_reset"),
)

#: Failures only one provider sends (providers.md §1.7, §2.7, §3.7-3.8, §4.4).
PROFILE_REFRESH_FAULTS: dict[str, tuple[FaultCase, ...]] = {
    "google": (
        FaultCase("google_invalid_rapt", "needs_reauth"),
        FaultCase("google_deleted_client", "error"),
    ),
    "microsoft": (
        FaultCase("aadsts", "needs_reauth", {"code": 70008}, "aadsts70008_expired_grant"),
        FaultCase("aadsts", "needs_reauth", {"code": 700082}, "aadsts700082_inactive"),
        FaultCase("aadsts", "needs_reauth", {"code": 50076}, "aadsts50076_mfa"),
        FaultCase("aadsts", "needs_reauth", {"code": 65001}, "aadsts65001_consent"),
        FaultCase("aadsts", "error", {"code": 7000222}, "aadsts7000222_secret_expired"),
        FaultCase("aadsts", "error", {"code": 700016}, "aadsts700016_app_not_found"),
        FaultCase("aadsts", "transient", {"code": 90024}, "aadsts90024_budget"),
        FaultCase("aadsts", "transient", {"code": 50196}, "aadsts50196_loop"),
    ),
    "canvas": (
        FaultCase("canvas_refresh_token_not_found", "needs_reauth"),
        FaultCase("canvas_rate_limit", "transient"),
    ),
    "notion": (
        FaultCase(
            "notion_error", "needs_reauth", {"code": "invalid_grant"}, "notion_invalid_grant"
        ),
        FaultCase("notion_error", "error", {"code": "invalid_client"}, "notion_invalid_client"),
        FaultCase("notion_error", "transient", {"code": "rate_limited"}, "notion_rate_limited"),
        FaultCase("notion_error", "transient", {"code": "service_overload"}, "notion_529"),
    ),
}

#: Failed code exchanges: the callback must report the matching error and store nothing.
COMMON_CODE_FAULTS: tuple[FaultCase, ...] = (
    FaultCase("invalid_grant", "needs_reauth"),
    FaultCase("invalid_client", "error"),
    FaultCase("server_error", "transient", {"status": 503}, "server_error_503"),
    FaultCase("rate_limited", "transient"),
)

#: Microsoft words a reused code as AADSTS54005, which providers.md §2.7 files under
#: configuration; a plain dead grant (AADSTS70000) is the unambiguous "start again" case.
PROFILE_CODE_FAULTS: dict[str, tuple[FaultCase, ...]] = {
    "microsoft": (
        FaultCase("aadsts", "needs_reauth", {"code": 70000}, "aadsts70000_invalid_grant"),
        *COMMON_CODE_FAULTS[1:],
    ),
}


def default_refresh_faults(profile: str) -> tuple[FaultCase, ...]:
    """The refresh failures the suite scripts for ``profile``: the common ones plus the
    profile's own."""
    return COMMON_REFRESH_FAULTS + PROFILE_REFRESH_FAULTS.get(profile, ())


def default_code_faults(profile: str) -> tuple[FaultCase, ...]:
    """The code-exchange failures the suite scripts for ``profile``."""
    return PROFILE_CODE_FAULTS.get(profile, COMMON_CODE_FAULTS)


__all__ = [
    "CALLBACK_ERRORS",
    "FaultCase",
    "Outcome",
    "default_code_faults",
    "default_refresh_faults",
]
