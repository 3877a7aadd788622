"""The Supabase signing keys (JWKS), fetched over HTTPS and cached.

Rules, each answering a known failure of JWKS clients (security-checklist.md §3.2):

- Keys live for ``ttl`` seconds (default 600: Supabase asks clients not to cache longer).
- At most **one fetch attempt per ``min_refetch`` interval**, whatever triggered it (an unknown
  ``kid``, an expired TTL, a retry after a failure). A flood of tokens with random ``kid``\\s
  therefore costs at most one outbound request per interval (GHSA-fhv5-28vv-h8m8), and callers
  arriving while a fetch runs wait for that fetch instead of starting their own.
- A failed fetch never empties the cache: known keys keep working past their TTL while the
  endpoint is down. With nothing cached, lookups fail with ``keys_unavailable`` (503).
- Only EC P-256 keys (for ES256) and RSA keys of at least 2048 bits (for RS256) are kept.
  ``oct`` (symmetric) keys, other curves and types, keys published with private parts, and keys
  marked for another use are ignored, so a JWKS entry can never become an HMAC secret.
- The URL comes from configuration only; a token's ``jku``/``x5u`` is never followed.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from typing import Final
from typing import Literal

import httpx
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric import rsa
from jwt.algorithms import ECAlgorithm
from jwt.algorithms import RSAAlgorithm
from jwt.exceptions import PyJWTError
from loguru import logger

from pulseplan import __version__
from pulseplan.auth.errors import AuthError

AsymmetricAlg = Literal["ES256", "RS256"]
PublicKey = ec.EllipticCurvePublicKey | rsa.RSAPublicKey

MIN_RSA_BITS: Final = 2048
#: A JWKS is a few hundred bytes per key; anything far larger is not one.
MAX_JWKS_BYTES: Final = 256 * 1024
MAX_KEYS: Final = 64
#: JWK members that only a private EC/RSA key has. A JWKS publishing them is leaking its signing
#: key, so anyone could mint tokens with it: such a key is refused, not "used for its public
#: half".
PRIVATE_MEMBERS: Final = frozenset({"d", "p", "q", "dp", "dq", "qi", "oth"})


@dataclass(frozen=True)
class VerifyKey:
    """A public key from the JWKS, bound to the one algorithm it may verify."""

    kid: str
    alg: AsymmetricAlg
    key: PublicKey


class _FetchFailed(Exception):
    """The JWKS endpoint answered, but not with a usable key set."""


def parse_key(jwk: Mapping[str, Any]) -> VerifyKey | None:
    """One JWK as a :class:`VerifyKey`, or ``None`` when it is not acceptable for us."""
    kid = jwk.get("kid")
    kty, declared = jwk.get("kty"), jwk.get("alg")
    if not isinstance(kid, str) or not kid or len(kid) > 256 or kty not in ("EC", "RSA"):
        return None  # ``oct`` among others: a JWKS key never becomes an HMAC secret
    if PRIVATE_MEMBERS & jwk.keys():
        logger.error("JWKS key {!r} carries private key material; ignored", kid)
        return None
    if jwk.get("use", "sig") != "sig":
        return None
    ops = jwk.get("key_ops")
    if ops is not None and (not isinstance(ops, list) or "verify" not in ops):
        return None
    try:
        if kty == "EC" and jwk.get("crv") == "P-256" and declared in (None, "ES256"):
            ec_key = ECAlgorithm.from_jwk(dict(jwk))
            if isinstance(ec_key, ec.EllipticCurvePublicKey) and isinstance(
                ec_key.curve, ec.SECP256R1
            ):
                return VerifyKey(kid, "ES256", ec_key)
        elif kty == "RSA" and declared in (None, "RS256"):
            rsa_key = RSAAlgorithm.from_jwk(dict(jwk))
            if isinstance(rsa_key, rsa.RSAPublicKey) and rsa_key.key_size >= MIN_RSA_BITS:
                return VerifyKey(kid, "RS256", rsa_key)
    except (PyJWTError, ValueError, TypeError, KeyError):
        logger.warning("JWKS key {!r} could not be loaded; ignored", kid)
    return None


def parse_jwks(document: object) -> dict[str, VerifyKey]:
    """The usable keys of a JWKS document, by ``kid``.

    :raises _FetchFailed: the document is not a JWKS at all (the old keys are then kept).
    """
    if not isinstance(document, dict) or not isinstance(document.get("keys"), list):
        raise _FetchFailed("not a JWKS document")
    keys: dict[str, VerifyKey] = {}
    for entry in document["keys"][:MAX_KEYS]:
        if not isinstance(entry, dict):
            continue
        parsed = parse_key(entry)
        # First one wins: a duplicated kid is a publishing mistake, and picking one
        # deterministically beats trying both.
        if parsed is not None and parsed.kid not in keys:
            keys[parsed.kid] = parsed
    return keys


class JwksCache:
    """The signing keys of one Supabase project, fetched lazily and cached.

    :param url: ``{SUPABASE_URL}/auth/v1/.well-known/jwks.json``.
    :param http: a client to use; by default the cache opens its own (closed by :meth:`aclose`).
    :param ttl: seconds a fetched key set counts as fresh.
    :param min_refetch: minimum seconds between two fetch attempts, for any reason.
    :param timeout: seconds one fetch may take, connection included.
    :param clock: monotonic seconds; tests inject a fake one instead of sleeping.
    """

    def __init__(
        self,
        url: str,
        *,
        http: httpx.AsyncClient | None = None,
        ttl: float = 600.0,
        min_refetch: float = 60.0,
        timeout: float = 5.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.url = url
        self.ttl = ttl
        self.min_refetch = min_refetch
        self.timeout = timeout
        self._clock = clock
        self._http = http
        self._owns_http = http is None
        self._keys: dict[str, VerifyKey] = {}
        self._fetched_at: float | None = None
        self._last_attempt: float | None = None
        self._lock = asyncio.Lock()
        #: Fetch attempts made so far (for metrics and tests).
        self.attempts = 0

    # ------------------------------------------------------------------ lookups

    @property
    def warm(self) -> bool:
        """Whether a key set was ever fetched successfully (it may be stale)."""
        return self._fetched_at is not None

    @property
    def kids(self) -> frozenset[str]:
        """The key ids currently cached."""
        return frozenset(self._keys)

    async def get_key(self, kid: str, alg: str) -> VerifyKey:
        """The key named ``kid``, which must be a key for ``alg``.

        :raises AuthError: ``unknown_key`` (401) when the key set has no such key, or a key of
            another type; ``keys_unavailable`` (503) when no key set could ever be fetched.
        """
        key = self._keys.get(kid)
        if key is None or not self._fresh():
            await self._fetch_if_allowed()
            key = self._keys.get(kid)
        if key is None:
            if not self.warm:
                raise AuthError("keys_unavailable", retry_after=self._retry_after())
            raise AuthError("unknown_key")
        if key.alg != alg:
            # An ES256 kid presented with alg RS256 (or the reverse): the key type decides.
            raise AuthError("unknown_key")
        return key

    async def refresh(self) -> bool:
        """Fetch now, ignoring the refetch interval (an operator's purge after a rotation).

        :return: whether the fetch succeeded; on failure the old keys stay.
        """
        async with self._lock:
            return await self._fetch()

    async def aclose(self) -> None:
        """Close the HTTP client if this cache opened it."""
        if self._owns_http and self._http is not None:
            await self._http.aclose()
            self._http = None

    # ------------------------------------------------------------------ internals

    def _fresh(self) -> bool:
        return self._fetched_at is not None and self._clock() < self._fetched_at + self.ttl

    def _may_attempt(self) -> bool:
        return self._last_attempt is None or self._clock() >= self._last_attempt + self.min_refetch

    def _retry_after(self) -> float:
        if self._last_attempt is None:
            return self.min_refetch
        return max(1.0, self._last_attempt + self.min_refetch - self._clock())

    async def _fetch_if_allowed(self) -> None:
        seen = self.attempts
        async with self._lock:
            # Whoever held the lock before us just fetched: use that result, do not repeat it.
            if self.attempts != seen or not self._may_attempt():
                return
            await self._fetch()

    def _client(self) -> httpx.AsyncClient:
        if self._http is None:
            self._http = httpx.AsyncClient(
                timeout=httpx.Timeout(self.timeout),
                follow_redirects=False,
                headers={"User-Agent": f"pulseplan/{__version__}", "Accept": "application/json"},
            )
        return self._http

    async def _fetch(self) -> bool:
        """One fetch attempt. The caller holds ``_lock``."""
        self.attempts += 1
        self._last_attempt = self._clock()
        try:
            # wait_for bounds the whole exchange, not each read: a server trickling bytes
            # must not hold every waiting request hostage.
            keys = await asyncio.wait_for(self._download(), self.timeout)
        except (TimeoutError, httpx.HTTPError, ValueError, RecursionError, _FetchFailed) as exc:
            state = "keeping cached keys" if self.warm else "no keys cached"
            logger.warning("JWKS fetch from {} failed ({}); {}", self.url, _why(exc), state)
            return False
        if self._keys and not keys:
            logger.warning("JWKS at {} now lists no usable keys", self.url)
        self._keys = keys
        self._fetched_at = self._clock()
        return True

    async def _download(self) -> dict[str, VerifyKey]:
        async with self._client().stream("GET", self.url, timeout=self.timeout) as response:
            if response.status_code != 200:
                raise _FetchFailed(f"HTTP {response.status_code}")
            body = bytearray()
            async for chunk in response.aiter_bytes():
                body += chunk
                if len(body) > MAX_JWKS_BYTES:
                    raise _FetchFailed("response too large")
        return parse_jwks(json.loads(bytes(body)))


def _why(exc: BaseException) -> str:
    if isinstance(exc, _FetchFailed):
        return str(exc)
    if isinstance(exc, TimeoutError):
        return "timed out"
    return type(exc).__name__
