"""What the broker hands out: a fresh token, or a per-provider problem that the API reports
without failing the whole response."""

from __future__ import annotations

from dataclasses import dataclass
from dataclasses import field
from datetime import datetime

from pulseplan.errors import ApiError


@dataclass(frozen=True)
class FreshToken:
    """An access token ready to use. Never carries the refresh token."""

    provider: str
    access_token: str = field(repr=False)
    expires_at: datetime | None
    scopes: tuple[str, ...]
    refreshed: bool = False

    def as_json(self) -> dict[str, object]:
        return {
            "access_token": self.access_token,
            "expires_at": self.expires_at.isoformat() if self.expires_at else None,
            "scopes": list(self.scopes),
        }


class TokenProblem(ApiError):
    """A connection cannot yield a token right now. ``code`` says why; no secrets inside."""

    status = 409
    code = "token_unavailable"

    def as_json(self) -> dict[str, object]:
        return {"code": self.code, "detail": self.detail}


class NotConnected(TokenProblem):
    status = 404
    code = "not_connected"


class NeedsReauth(TokenProblem):
    """The grant is gone; the user must connect the account again."""

    status = 409
    code = "needs_reauth"


class Undecryptable(TokenProblem):
    """Stored ciphertext does not decrypt (wrong or missing key, tampering). Never a token."""

    status = 409
    code = "undecryptable"


class ProviderDown(TokenProblem):
    """The provider failed transiently and the stored token is not usable meanwhile."""

    status = 503
    code = "provider_unavailable"


class ProviderConfigProblem(TokenProblem):
    """The provider rejected the operator's client configuration."""

    status = 503
    code = "provider_misconfigured"
