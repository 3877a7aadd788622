"""Consent controls of the fake provider: who logs in, what they grant, and the ``consent``
helper that plays the browser so tests need none."""

from __future__ import annotations

import http.client
import json
import secrets
from collections.abc import Sequence
from urllib.parse import urlsplit

from pulseplan.testing.fake_authorize import SESSION_COOKIE
from pulseplan.testing.fake_authorize import decide
from pulseplan.testing.fake_core import ConsentDecision
from pulseplan.testing.fake_core import ConsentMode
from pulseplan.testing.fake_core import Core
from pulseplan.testing.fake_core import PendingConsent
from pulseplan.testing.fake_state import Account


class ConsentError(RuntimeError):
    """The authorization request did not end in a redirect (unknown client, bad redirect URI,
    or a pending manual consent). Carries the status and the fake's ``error`` only."""

    def __init__(self, status: int, error: str | None):
        super().__init__(f"authorization request answered HTTP {status} ({error})")
        self.status = status
        self.error = error


class ConsentControls:
    """Mixin of :class:`~pulseplan.testing.fake_provider.FakeProvider`."""

    _core: Core

    @property
    def base_url(self) -> str:
        raise NotImplementedError

    @property
    def default_account(self) -> Account:
        return self._core.config.default_account

    @default_account.setter
    def default_account(self, account: Account) -> None:
        with self._core.lock:
            self._core.config.default_account = account

    def login_as(self, email: str, *, user_id: str = "", name: str = "Test User") -> Account:
        """Make ``email`` the account that auto-approved consents log in as."""
        account = Account(email=email, user_id=user_id, name=name)
        self.default_account = account
        return account

    @property
    def consent_mode(self) -> ConsentMode:
        return self._core.config.consent_mode

    @consent_mode.setter
    def consent_mode(self, mode: ConsentMode) -> None:
        if mode not in ("auto", "manual"):
            raise ValueError("consent mode must be auto or manual")
        self._core.config.consent_mode = mode

    def next_consent(
        self, *, account: Account | None = None, scopes: Sequence[str] | None = None
    ) -> None:
        """How the next browser-driven authorization request is approved."""
        decision = ConsentDecision(account, tuple(scopes) if scopes is not None else None)
        with self._core.lock:
            self._core.queued.append(decision)

    def deny_next(self, error: str = "access_denied", description: str | None = None) -> None:
        """The next browser-driven authorization request is refused by the user."""
        with self._core.lock:
            self._core.queued.append(
                ConsentDecision(deny=True, error=error, description=description)
            )

    def drop_scopes(self, *scopes: str) -> None:
        """Granular consent: from now on the user unticks these scopes (Google §1.5)."""
        with self._core.lock:
            self._core.config.dropped_scopes.update(scopes)

    def consent(
        self,
        authorization_url: str,
        *,
        account: Account | None = None,
        scopes: Sequence[str] | None = None,
        deny: bool = False,
        error: str = "access_denied",
        timeout: float = 5.0,
    ) -> str:
        """Play the browser: GET ``authorization_url`` on this fake, consent as decided here,
        and return the ``Location`` it redirects to (the client's callback URL).

        :raises ValueError: the URL is not this fake's.
        :raises ConsentError: the fake answered without a redirect.
        """
        parts = urlsplit(authorization_url)
        if f"{parts.scheme}://{parts.netloc}" != self.base_url:
            raise ValueError("the authorization URL does not point at this fake provider")
        ticket = secrets.token_urlsafe(16)
        decision = ConsentDecision(
            account, tuple(scopes) if scopes is not None else None, deny=deny, error=error
        )
        with self._core.lock:
            self._core.tickets[ticket] = decision
        connection = http.client.HTTPConnection(parts.hostname or "", parts.port, timeout=timeout)
        try:
            target = parts.path + (f"?{parts.query}" if parts.query else "")
            connection.request("GET", target, headers={"Cookie": f"{SESSION_COOKIE}={ticket}"})
            response = connection.getresponse()
            body = response.read()
        finally:
            connection.close()
            with self._core.lock:
                self._core.tickets.pop(ticket, None)
        location = response.getheader("Location")
        if response.status != 302 or not location:
            raise ConsentError(response.status, _error_code(body))
        return location

    def pending(self) -> list[PendingConsent]:
        """Authorization requests waiting in manual consent mode, oldest first."""
        with self._core.lock:
            return list(self._core.pending.values())

    def approve(
        self,
        pending_id: str | None = None,
        *,
        account: Account | None = None,
        scopes: Sequence[str] | None = None,
    ) -> str:
        """Approve a pending consent (default: the oldest); return the callback URL."""
        decision = ConsentDecision(account, tuple(scopes) if scopes is not None else None)
        return self._settle(pending_id, decision)

    def deny(
        self,
        pending_id: str | None = None,
        *,
        error: str = "access_denied",
        description: str | None = None,
    ) -> str:
        """Refuse a pending consent; return the callback URL carrying ``error``."""
        return self._settle(
            pending_id, ConsentDecision(deny=True, error=error, description=description)
        )

    def _settle(self, pending_id: str | None, decision: ConsentDecision) -> str:
        with self._core.lock:
            if not self._core.pending:
                raise LookupError("no consent is pending")
            key = pending_id or next(iter(self._core.pending))
            pending = self._core.pending.pop(key)
        return decide(self._core, pending.params, pending.tenant, decision)


def _error_code(body: bytes) -> str | None:
    try:
        data = json.loads(body)
    except ValueError:
        return None
    if isinstance(data, dict):
        value = data.get("error") or data.get("consent")
        return value if isinstance(value, str) else None
    return None
