"""The fake provider's ledger as tests see it: call counts, live tokens, grants, and the
provider-side actions (expire, revoke, move the clock)."""

from __future__ import annotations

from dataclasses import dataclass

from pulseplan.testing.fake_core import Call
from pulseplan.testing.fake_core import Core

#: Grant-type aliases accepted by :meth:`LedgerControls.count`.
COUNT_ALIASES = {"refresh": "refresh_token", "code": "authorization_code"}


@dataclass(frozen=True)
class GrantInfo:
    """A grant (one consent, one token family) as a test may inspect it."""

    grant_id: str
    client_id: str
    email: str
    user_id: str
    scopes: tuple[str, ...]
    revoked_reason: str | None


class LedgerControls:
    """Mixin of :class:`~pulseplan.testing.fake_provider.FakeProvider`."""

    _core: Core

    def advance(self, seconds: float) -> None:
        """Move the fake's clock forward (code, token and grace expiry) without sleeping."""
        with self._core.lock:
            self._core.ledger.offset += seconds

    def expire_access_token(self, token: str | None = None) -> int:
        """Expire one access token now, or every access token when ``token`` is ``None``."""
        with self._core.lock:
            ledger, now, expired = self._core.ledger, self._core.ledger.now(), 0
            for record in ledger.tokens.values():
                if record.kind == "access" and (token is None or record.token == token):
                    record.expires_at, expired = now, expired + 1
            return expired

    def expire_refresh_token(self, token: str) -> bool:
        """Expire a refresh token now (Microsoft AADSTS700082 "inactive" style)."""
        with self._core.lock:
            record = self._core.ledger.tokens.get(token)
            if record is None or record.kind != "refresh":
                return False
            record.expires_at = self._core.ledger.now()
            return True

    def revoke_grant(
        self, token: str | None = None, *, email: str | None = None, reason: str = "user_revoked"
    ) -> int:
        """Revoke from the provider side (the user removed the app): the grant of ``token``,
        or every grant of ``email``, or every grant. Returns how many were revoked."""
        with self._core.lock:
            ledger = self._core.ledger
            if token is not None:
                record = ledger.tokens.get(token)
                targets = [record.grant] if record is not None else []
            else:
                targets = [g for g in ledger.grants if email is None or g.account.email == email]
            targets = [g for g in targets if g.revoked_reason is None]
            for grant in targets:
                ledger.revoke_grant(grant, reason)
            return len(targets)

    def calls(self, endpoint: str | None = None) -> list[Call]:
        """Every request received, oldest first (optionally one endpoint's)."""
        with self._core.lock:
            return [c for c in self._core.calls if endpoint is None or c.endpoint == endpoint]

    def count(self, name: str | None = None, *, ok: bool | None = None) -> int:
        """Requests to an endpoint, or token requests of a grant (``"refresh"``, ``"code"``,
        or a ``grant_type``). ``ok`` keeps only successes or only failures."""
        grant_type = COUNT_ALIASES.get(name or "", name)
        calls = [
            c
            for c in self.calls()
            if name is None or c.endpoint == name or c.grant_type == grant_type
        ]
        return sum(1 for c in calls if ok is None or c.ok == ok)

    def reset_calls(self) -> None:
        with self._core.lock:
            self._core.calls.clear()

    def is_live(self, token: str) -> bool:
        """Whether the provider would accept ``token`` now (access: at resource endpoints;
        refresh: at the token endpoint, rotation policy included)."""
        with self._core.lock:
            ledger, config = self._core.ledger, self._core.config
            record = ledger.tokens.get(token)
            if record is None:
                return False
            if record.kind == "access":
                return ledger.valid(record)
            return ledger.live_refresh(record, config.rotation, config.grace_seconds)

    def live_refresh_tokens(
        self, *, email: str | None = None, client_id: str | None = None
    ) -> list[str]:
        """Refresh tokens the provider would accept now, oldest first."""
        with self._core.lock:
            ledger, config = self._core.ledger, self._core.config
            return [
                r.token
                for r in ledger.tokens.values()
                if ledger.live_refresh(r, config.rotation, config.grace_seconds)
                and (email is None or r.grant.account.email == email)
                and (client_id is None or r.grant.client_id == client_id)
            ]

    def latest_refresh_token(self, *, email: str | None = None) -> str | None:
        """The newest live grant's current refresh token: what a correct vault stores."""
        with self._core.lock:
            grants = [
                g
                for g in self._core.ledger.grants
                if g.revoked_reason is None and (email is None or g.account.email == email)
            ]
            return grants[-1].current_refresh if grants else None

    def grant_info(self, token: str) -> GrantInfo | None:
        """The grant ``token`` belongs to (access or refresh), revoked or not."""
        with self._core.lock:
            record = self._core.ledger.tokens.get(token)
            if record is None:
                return None
            grant = record.grant
            return GrantInfo(
                grant_id=grant.grant_id,
                client_id=grant.client_id,
                email=grant.account.email,
                user_id=grant.account.user_id,
                scopes=grant.scopes,
                revoked_reason=grant.revoked_reason,
            )
