"""Local verification of Supabase user access tokens (DESIGN.md §6, invariant 6).

The shape follows security-checklist.md §3.3:

1. Read the unverified header only to choose a path; never to choose what is acceptable.
2. The path decides key *and* algorithm: ``HS256`` with the configured legacy secret;
   ``ES256``/``RS256`` with a JWKS key of that type (:mod:`pulseplan.auth.jwks`). Each decode
   allows exactly one algorithm, so an HS256 token can never be checked against a public key
   (CVE-2022-29217, CVE-2026-48526) and ``none`` is never allowed.
3. Header parameters that point at keys (``jku``, ``x5u``, ``jwk``, ``x5c``) or demand
   extensions (``crit``, ``b64``) are refused outright; nothing is ever fetched from a token.
4. PyJWT checks signature, ``exp``/``nbf``/``iat`` (small leeway), ``aud`` and ``iss`` (a *list*,
   immune to the 2.10.0 partial-match bug, CVE-2024-53861) and the presence of required claims.
5. Then ``role`` must be ``authenticated`` (the project's ``anon`` and ``service_role`` API keys
   are valid HS256 JWTs and must not pass as users) and ``sub`` a canonical UUID.

Audience policy: ``aud`` may be a string or a list (RFC 7519 §4.1.3); a list is accepted when it
contains the configured audience, because a token may legitimately name several recipients.

Verified tokens are remembered (keyed by their SHA-256, never the token itself) for at most
:data:`VERIFIED_TTL` seconds and never past ``exp`` + leeway: an app sends the same access token
on every request for up to an hour, and a full verification (two header parses, an HMAC or
signature check, claim checks) was the largest single cost of the token endpoint. Only tokens
that passed every check are remembered; everything that could change the verdict later is
bounded: expiry by ``exp``, a signing key dropped from the JWKS by the TTL.
"""

from __future__ import annotations

import hashlib
import math
import time
import uuid
from collections import OrderedDict
from collections.abc import Callable
from typing import Any
from typing import Final

import httpx
import jwt
from jwt import exceptions as jwt_errors
from loguru import logger

from pulseplan.auth.errors import AuthError
from pulseplan.auth.jwks import JwksCache
from pulseplan.auth.principals import User
from pulseplan.errors import ConfigurationError
from pulseplan.settings import Settings

#: Real Supabase access tokens are 1-3 KB; the cap bounds the parsing work a stranger can cause.
MAX_TOKEN_CHARS: Final = 16 * 1024
ASYMMETRIC: Final = frozenset({"ES256", "RS256"})
#: Header parameters a token may not carry (see point 3 above). ``zip``/``enc`` mean JWE.
FORBIDDEN_HEADERS: Final = frozenset({"jku", "x5u", "jwk", "x5c", "crit", "b64", "zip", "enc"})
#: RFC 7518 §3.2: an HS256 key shorter than the hash output is brute-forceable.
MIN_HS256_SECRET_BYTES: Final = 32
USER_ROLE: Final = "authenticated"
#: How long a verified token is remembered at most (see the module docstring).
VERIFIED_TTL: Final = 60.0
#: Bound on remembered tokens (about 100 bytes each); the oldest are forgotten first.
VERIFIED_MAX: Final = 8192


class JwtVerifier:
    """Turns a bearer token into a :class:`User`, or raises :class:`AuthError`.

    :param hs256_secret: the legacy ``SUPABASE_JWT_SECRET`` as bytes; ``None`` refuses HS256.
    :param jwks: the project's signing keys; ``None`` refuses ES256 and RS256.
    :param audience: the required ``aud`` value.
    :param issuer: the required ``iss`` (``{SUPABASE_URL}/auth/v1``); ``None`` skips the check,
        which is only possible in HS256-only setups without ``SUPABASE_URL``.
    :param leeway: seconds of clock skew tolerated on ``exp``, ``nbf`` and ``iat``.
    :param allow_anonymous: accept Supabase anonymous sign-ins (``is_anonymous: true``).
    :param wall_clock: Unix time, for how long a verified token is remembered (tests).
    """

    def __init__(
        self,
        *,
        hs256_secret: bytes | None,
        jwks: JwksCache | None,
        audience: str = USER_ROLE,
        issuer: str | None = None,
        leeway: float = 30.0,
        allow_anonymous: bool = False,
        wall_clock: Callable[[], float] = time.time,
    ) -> None:
        if hs256_secret is not None and len(hs256_secret) < MIN_HS256_SECRET_BYTES:
            raise ConfigurationError(
                [f"SUPABASE_JWT_SECRET is shorter than {MIN_HS256_SECRET_BYTES} bytes"]
            )
        self._secret = hs256_secret
        self.jwks = jwks
        self.audience = audience
        self.issuer = issuer
        self.leeway = leeway
        self.allow_anonymous = allow_anonymous
        required = ["exp", "iat", "sub", "aud", "role"]
        self._required = [*required, "iss"] if issuer else required
        #: SHA-256 of a verified token -> (its user, wall-clock time until which it stays valid).
        self._verified: OrderedDict[bytes, tuple[User, float]] = OrderedDict()
        self._wall_clock = wall_clock

    @classmethod
    def from_settings(
        cls,
        settings: Settings,
        *,
        http: httpx.AsyncClient | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> JwtVerifier:
        """Build the verifier ``settings`` describe (JWKS when ``SUPABASE_URL`` is set, HS256
        when ``SUPABASE_JWT_SECRET`` is).

        :raises ConfigurationError: the HS256 secret is too short to be safe.
        """
        secret = settings.secret("supabase_jwt_secret")
        base = settings.supabase_url.rstrip("/") if settings.supabase_url else None
        jwks = None
        if base:
            jwks = JwksCache(
                f"{base}/auth/v1/.well-known/jwks.json",
                http=http,
                ttl=settings.supabase_jwks_ttl,
                min_refetch=settings.supabase_jwks_min_refetch,
                clock=clock,
            )
        if not secret and jwks is None:
            logger.warning(
                "neither SUPABASE_URL nor SUPABASE_JWT_SECRET is set: every user token is refused"
            )
        return cls(
            hs256_secret=secret.encode() if secret else None,
            jwks=jwks,
            audience=settings.supabase_jwt_audience,
            issuer=f"{base}/auth/v1" if base else None,
            leeway=settings.jwt_leeway,
            allow_anonymous=settings.supabase_allow_anonymous,
        )

    async def aclose(self) -> None:
        """Release the JWKS client."""
        if self.jwks is not None:
            await self.jwks.aclose()

    # ------------------------------------------------------------------ verification

    async def verify(self, token: str) -> User:
        """Verify ``token`` completely and return its user.

        :raises AuthError: with the reason as ``code``; never with token content in it.
        """
        digest = _digest(token)
        now = self._wall_clock()
        if digest is not None:
            remembered = self._verified.get(digest)
            if remembered is not None:
                if now < remembered[1]:
                    return remembered[0]
                del self._verified[digest]
        header = _header(token)
        alg = header.get("alg")
        key: Any
        if not isinstance(alg, str):  # a list or object here would crash a set lookup
            raise AuthError("unsupported_algorithm")
        if alg == "HS256":
            if self._secret is None:
                raise AuthError("unsupported_algorithm")
            key = self._secret
        elif alg in ASYMMETRIC:
            if self.jwks is None:
                raise AuthError("unsupported_algorithm")
            kid = header.get("kid")
            if not isinstance(kid, str) or not kid:
                raise AuthError("unknown_key")
            key = (await self.jwks.get_key(kid, alg)).key
        else:
            raise AuthError("unsupported_algorithm")
        claims = self._decode(token, key, alg)
        user = self._user(claims)
        if digest is not None:
            self._remember(digest, user, claims, now)
        return user

    def _remember(self, digest: bytes, user: User, claims: dict[str, Any], now: float) -> None:
        # PyJWT accepts ``exp`` while now < exp + leeway; ``nbf`` and ``iat`` only ever turn
        # from "not yet" to "valid", so a token that passed stays valid until then.
        until = now + VERIFIED_TTL
        exp = claims["exp"]  # a finite number (checked); an int may be too large for a float
        if exp < until - self.leeway:
            until = float(exp) + self.leeway
        self._verified[digest] = (user, until)
        while len(self._verified) > VERIFIED_MAX:
            self._verified.popitem(last=False)

    def _decode(self, token: str, key: Any, alg: str) -> dict[str, Any]:
        try:
            claims: dict[str, Any] = jwt.decode(
                token,
                key,
                algorithms=[alg],
                audience=self.audience,
                issuer=[self.issuer] if self.issuer else None,
                leeway=self.leeway,
                options={
                    "require": self._required,
                    "strict_aud": False,
                    "enforce_minimum_key_length": True,
                },
            )
        except jwt_errors.PyJWTError as exc:
            code = _code(exc)
            if code in _CLAIM_CODES and _role_hint(token) not in (None, USER_ROLE):
                # The signature was valid (PyJWT checks it before claims), so this is a real
                # token of ours, just not a user's: most likely the anon or service_role key.
                code = "not_a_user_token"
            raise AuthError(code) from None
        except (ValueError, TypeError, OverflowError, RecursionError):
            raise AuthError("malformed_token") from None
        return claims

    def _user(self, claims: dict[str, Any]) -> User:
        for name in ("exp", "iat", "nbf"):
            # PyJWT coerces with int(), so "exp": "9999999999" would pass; RFC 7519 says number.
            if name in claims and not _is_number(claims[name]):
                raise AuthError("malformed_token")
        if claims.get("role") != USER_ROLE:
            raise AuthError("not_a_user_token")
        user_id = _canonical_uuid(claims.get("sub"))
        if user_id is None:
            raise AuthError("bad_subject")
        anonymous = claims.get("is_anonymous") is True
        if anonymous and not self.allow_anonymous:
            raise AuthError("anonymous_user")
        email = claims.get("email")
        session_id = claims.get("session_id")
        return User(
            id=user_id,
            email=email if isinstance(email, str) and email else None,
            role=USER_ROLE,
            session_id=session_id if isinstance(session_id, str) and session_id else None,
            is_anonymous=anonymous,
        )


# --------------------------------------------------------------------------- helpers


def _digest(token: object) -> bytes | None:
    """The cache key of a token that could be valid at all (``None``: do not cache)."""
    if not isinstance(token, str) or not token.isascii() or len(token) > MAX_TOKEN_CHARS:
        return None
    return hashlib.sha256(token.encode("ascii")).digest()


def _header(token: object) -> dict[str, Any]:
    if not isinstance(token, str) or not token or len(token) > MAX_TOKEN_CHARS:
        raise AuthError("malformed_token")
    if not token.isascii() or token.count(".") != 2:
        raise AuthError("malformed_token")
    try:
        header = jwt.get_unverified_header(token)
    except (jwt_errors.PyJWTError, ValueError, TypeError, RecursionError):
        raise AuthError("malformed_token") from None
    if FORBIDDEN_HEADERS & header.keys():
        raise AuthError("unsupported_header")
    return header


_CLAIM_CODES: Final = frozenset({"wrong_audience", "wrong_issuer", "bad_subject", "missing_claim"})


def _code(exc: jwt_errors.PyJWTError) -> str:
    """The error code for a PyJWT failure (subclasses before their bases)."""
    if isinstance(exc, jwt_errors.ExpiredSignatureError):
        return "expired"
    if isinstance(exc, jwt_errors.ImmatureSignatureError):
        return "not_yet_valid"
    if isinstance(exc, jwt_errors.InvalidAudienceError):
        return "wrong_audience"
    if isinstance(exc, jwt_errors.InvalidIssuerError):
        return "wrong_issuer"
    if isinstance(exc, jwt_errors.InvalidSubjectError):
        return "bad_subject"
    if isinstance(exc, jwt_errors.MissingRequiredClaimError):
        return {"aud": "wrong_audience", "iss": "wrong_issuer", "sub": "bad_subject"}.get(
            exc.claim, "missing_claim"
        )
    if isinstance(exc, jwt_errors.InvalidSignatureError | jwt_errors.InvalidKeyError):
        return "bad_signature"
    if isinstance(exc, jwt_errors.InvalidAlgorithmError):
        return "unsupported_algorithm"
    return "malformed_token"


def _role_hint(token: str) -> object:
    """The ``role`` claim of a token whose signature PyJWT has already verified."""
    try:
        claims = jwt.decode(token, options={"verify_signature": False})
    except (jwt_errors.PyJWTError, ValueError, TypeError, RecursionError):
        return None
    return claims.get("role")


def _is_number(value: object) -> bool:
    if isinstance(value, bool):
        return False
    # Not math.isfinite on ints: a 400-digit int would overflow the float conversion.
    return isinstance(value, int) or (isinstance(value, float) and math.isfinite(value))


def _canonical_uuid(value: object) -> str | None:
    """``value`` when it is a UUID in canonical form (lower-case, hyphenated), else ``None``."""
    if not isinstance(value, str) or len(value) != 36:
        return None
    try:
        parsed = uuid.UUID(value)
    except ValueError:
        return None
    return value if str(parsed) == value else None
