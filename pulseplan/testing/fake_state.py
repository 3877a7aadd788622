"""The fake provider's ledger: clients, authorization codes, grants and their tokens.

A *grant* is one consent: the token family that RFC 9700 §4.14.2 revokes as a whole when a
rotated-out refresh token comes back. Every method runs under the caller's lock (the
:class:`~pulseplan.testing.fake_provider.FakeProvider` lock); none of them does I/O.

Tokens are kept in memory in plain text because tests compare them ("the stored refresh token
is the provider's latest"); every record hides them from ``repr``.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from dataclasses import field
from enum import StrEnum
from typing import Literal

Rotation = Literal["none", "rotate", "strict", "grace"]
ROTATIONS: tuple[Rotation, ...] = ("none", "rotate", "strict", "grace")


class Reason(StrEnum):
    """Why the fake refused a request; each profile renders it in its provider's words."""

    CLIENT_UNKNOWN = "client_unknown"
    CLIENT_SECRET = "client_secret"
    CLIENT_AUTH_MISSING = "client_auth_missing"
    CLIENT_AUTH_METHOD = "client_auth_method"
    CODE_UNKNOWN = "code_unknown"
    CODE_EXPIRED = "code_expired"
    CODE_REUSED = "code_reused"
    WRONG_CLIENT = "wrong_client"
    REDIRECT_MISMATCH = "redirect_mismatch"
    TENANT_MISMATCH = "tenant_mismatch"
    PKCE_MISSING = "pkce_missing"
    PKCE_MISMATCH = "pkce_mismatch"
    PKCE_UNEXPECTED = "pkce_unexpected"
    REFRESH_UNKNOWN = "refresh_unknown"
    REFRESH_REVOKED = "refresh_revoked"
    REFRESH_REUSED = "refresh_reused"
    REFRESH_EXPIRED = "refresh_expired"
    INVALID_SCOPE = "invalid_scope"
    UNSUPPORTED_GRANT = "unsupported_grant_type"
    INVALID_REQUEST = "invalid_request"
    BODY_FORMAT = "body_format"
    MISSING_VERSION = "missing_version"


class Denied(Exception):
    """A refused request. ``detail`` is a fixed phrase, never request data."""

    def __init__(self, reason: Reason, detail: str | None = None):
        super().__init__(reason.value)
        self.reason = reason
        self.detail = detail


@dataclass(frozen=True)
class Account:
    """The provider-side user a consent logs in as.

    :param email: the account's email address.
    :param user_id: a stable numeric id (Google ``sub``, Canvas user id); derived from the
        email when empty. Profiles that use UUIDs derive them from it.
    :param name: display name.
    :param workspace: the Notion workspace name.
    """

    email: str = "ada@example.test"
    user_id: str = ""
    name: str = "Ada Lovelace"
    workspace: str = "Fake Workspace"

    def __post_init__(self) -> None:
        if not self.user_id:
            digest = hashlib.sha256(self.email.lower().encode()).hexdigest()
            object.__setattr__(self, "user_id", str(10**17 + int(digest[:14], 16)))

    def uuid(self, kind: str) -> str:
        """A stable UUID for this account (Microsoft object id, Notion user id...)."""
        return str(uuid.uuid5(uuid.NAMESPACE_URL, f"fake:{kind}:{self.user_id}"))


@dataclass(frozen=True)
class ClientApp:
    """A registered OAuth client. ``client_secret=None`` is a public client."""

    client_id: str
    client_secret: str | None = field(default=None, repr=False)
    redirect_uris: tuple[str, ...] | None = None

    def check_secret(self, secret: str | None) -> bool:
        if self.client_secret is None or secret is None:
            return False
        return hmac.compare_digest(self.client_secret.encode(), secret.encode())


@dataclass(eq=False)
class Grant:
    """One consent and its token family."""

    grant_id: str
    client_id: str
    account: Account
    scopes: tuple[str, ...]
    tenant: str
    created_at: float
    nonce: str | None = None
    revoked_reason: str | None = None
    current_refresh: str | None = field(default=None, repr=False)


@dataclass(eq=False)
class TokenRecord:
    """An access or refresh token of a grant."""

    token: str = field(repr=False)
    kind: Literal["access", "refresh"]
    grant: Grant
    issued_at: float
    expires_at: float | None = None
    retired_at: float | None = None
    revoked: bool = False
    scopes: tuple[str, ...] = ()


@dataclass(eq=False)
class AuthCode:
    """An issued authorization code and everything it is bound to."""

    code: str = field(repr=False)
    client_id: str
    redirect_uri: str
    scopes: tuple[str, ...]
    account: Account
    issued_at: float
    expires_at: float
    offline: bool
    tenant: str = ""
    challenge: str | None = field(default=None, repr=False)
    nonce: str | None = None
    used: bool = False
    grant: Grant | None = None


def s256(verifier: str) -> str:
    """RFC 7636 S256: BASE64URL(SHA256(ASCII(verifier))) without padding."""
    digest = hashlib.sha256(verifier.encode("ascii", "replace")).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


class Ledger:
    """Codes, grants and tokens, with the rotation rules. Not thread-safe by itself."""

    def __init__(self, *, token_prefix: str, clock: Callable[[], float]):
        self.token_prefix = token_prefix
        self._clock = clock
        self.offset = 0.0
        self.codes: dict[str, AuthCode] = {}
        self.tokens: dict[str, TokenRecord] = {}
        self.grants: list[Grant] = []

    def now(self) -> float:
        return self._clock() + self.offset

    def mint(self, kind: Literal["at", "rt", "code"]) -> str:
        """A random token with the recognisable prefix: ``{prefix}_at_``, ``_rt_``, ``_code_``."""
        return f"{self.token_prefix}_{kind}_{secrets.token_urlsafe(24)}"

    # ------------------------------------------------------------------ codes

    def issue_code(self, ttl: float, **fields: object) -> str:
        code = self.mint("code")
        now = self.now()
        self.codes[code] = AuthCode(code=code, issued_at=now, expires_at=now + ttl, **fields)  # type: ignore[arg-type]
        return code

    def redeem(
        self,
        code: str,
        *,
        client_id: str,
        redirect_uri: str | None,
        verifier: str | None,
        tenant: str,
        pkce_supported: bool,
        reject_unexpected_verifier: bool,
    ) -> AuthCode:
        """Check and consume a code (single use, even when the check fails after lookup).

        :raises Denied: with the first reason found, in the order a real server checks.
        """
        record = self.codes.get(code)
        if record is None:
            raise Denied(Reason.CODE_UNKNOWN)
        if record.used:
            # RFC 6749 §4.1.2: a replayed code SHOULD revoke what it already issued.
            if record.grant is not None:
                self.revoke_grant(record.grant, "code_replay")
            raise Denied(Reason.CODE_REUSED)
        record.used = True
        if self.now() >= record.expires_at:
            raise Denied(Reason.CODE_EXPIRED)
        if record.client_id != client_id:
            raise Denied(Reason.WRONG_CLIENT)
        if record.tenant != tenant:
            raise Denied(Reason.TENANT_MISMATCH)
        if redirect_uri != record.redirect_uri:
            raise Denied(Reason.REDIRECT_MISMATCH)
        if pkce_supported and record.challenge is not None:
            if not verifier:
                raise Denied(Reason.PKCE_MISSING)
            if not hmac.compare_digest(s256(verifier), record.challenge):
                raise Denied(Reason.PKCE_MISMATCH)
        elif pkce_supported and verifier and reject_unexpected_verifier:
            # RFC 9700 §2.1.1: a verifier without a challenge is a PKCE downgrade attempt.
            raise Denied(Reason.PKCE_UNEXPECTED)
        return record

    # ------------------------------------------------------------------ grants and tokens

    def open_grant(self, code: AuthCode) -> Grant:
        grant = Grant(
            grant_id=uuid.uuid4().hex,
            client_id=code.client_id,
            account=code.account,
            scopes=code.scopes,
            tenant=code.tenant,
            created_at=self.now(),
            nonce=code.nonce,
        )
        code.grant = grant
        self.grants.append(grant)
        return grant

    def issue(
        self,
        grant: Grant,
        kind: Literal["access", "refresh"],
        ttl: float | None,
        scopes: tuple[str, ...] | None = None,
    ) -> TokenRecord:
        now = self.now()
        token = self.mint("at" if kind == "access" else "rt")
        record = TokenRecord(
            token=token,
            kind=kind,
            grant=grant,
            issued_at=now,
            expires_at=None if ttl is None else now + ttl,
            scopes=grant.scopes if scopes is None else scopes,
        )
        self.tokens[token] = record
        if kind == "refresh":
            grant.current_refresh = token
        return record

    def use_refresh(
        self, token: str, *, client_id: str, rotation: Rotation, grace: float
    ) -> TokenRecord:
        """Check a presented refresh token against the rotation policy.

        :raises Denied: unknown, revoked, expired, another client's, or a reused rotated-out
            token (which revokes the whole family first under ``strict`` and after ``grace``).
        """
        record = self.tokens.get(token)
        if record is None or record.kind != "refresh":
            raise Denied(Reason.REFRESH_UNKNOWN)
        grant = record.grant
        if grant.client_id != client_id:
            raise Denied(Reason.WRONG_CLIENT)
        if grant.revoked_reason is not None or record.revoked:
            raise Denied(Reason.REFRESH_REVOKED)
        now = self.now()
        if record.expires_at is not None and now >= record.expires_at:
            raise Denied(Reason.REFRESH_EXPIRED)
        if record.retired_at is not None:
            in_grace = rotation == "grace" and now < record.retired_at + grace
            if rotation != "rotate" and not in_grace:
                self.revoke_grant(grant, "refresh_token_reuse")
                raise Denied(Reason.REFRESH_REUSED)
        return record

    def rotate(self, grant: Grant, ttl: float | None) -> TokenRecord:
        """Issue the family's next refresh token and retire the current one now."""
        previous = grant.current_refresh
        if previous is not None and previous in self.tokens:
            self.tokens[previous].retired_at = self.now()
        return self.issue(grant, "refresh", ttl)

    def revoke_grant(self, grant: Grant, reason: str) -> None:
        if grant.revoked_reason is None:
            grant.revoked_reason = reason
        for record in self.tokens.values():
            if record.grant is grant:
                record.revoked = True

    def revoke_access_of(self, grant: Grant, keep: str | None = None) -> None:
        for record in self.tokens.values():
            if record.grant is grant and record.kind == "access" and record.token != keep:
                record.revoked = True

    # ------------------------------------------------------------------ queries

    def access(self, token: str | None) -> TokenRecord | None:
        """The access token's record when it is valid right now, else ``None``."""
        record = self.tokens.get(token or "")
        if record is None or record.kind != "access" or not self.valid(record):
            return None
        return record

    def valid(self, record: TokenRecord) -> bool:
        if record.revoked or record.grant.revoked_reason is not None:
            return False
        return record.expires_at is None or self.now() < record.expires_at

    def live_refresh(self, record: TokenRecord, rotation: Rotation, grace: float) -> bool:
        if record.kind != "refresh" or not self.valid(record):
            return False
        if record.retired_at is None or rotation == "rotate":
            return True
        return rotation == "grace" and self.now() < record.retired_at + grace

    def live_grants(self, client_id: str, user_id: str) -> int:
        return sum(
            1
            for g in self.grants
            if g.client_id == client_id
            and g.account.user_id == user_id
            and g.revoked_reason is None
        )
