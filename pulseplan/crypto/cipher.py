"""``TokenCipher``: the one object the rest of the host uses to encrypt and decrypt tokens."""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from typing import TYPE_CHECKING
from typing import Literal

from pulseplan.crypto.cache import DEFAULT_SIZE
from pulseplan.crypto.cache import KeyCache
from pulseplan.crypto.config import KeyConfig
from pulseplan.crypto.config import load_keyring
from pulseplan.crypto.current import CurrentScheme
from pulseplan.crypto.current import check_context
from pulseplan.crypto.envelope import MAX_PLAINTEXT_BYTES
from pulseplan.crypto.envelope import Envelope
from pulseplan.crypto.envelope import parse
from pulseplan.crypto.errors import DecryptionError
from pulseplan.crypto.errors import UnknownKeyVersion
from pulseplan.crypto.keyring import CurrentKey
from pulseplan.crypto.keyring import KeyRing
from pulseplan.crypto.legacy import LegacyScheme

if TYPE_CHECKING:
    from pulseplan.settings import Settings

Scheme = Literal["hkdf", "seed", "node"]
HEALTH_USER = "pulseplan:health-check"


@dataclass(frozen=True)
class Derivations:
    """How many per-user (or Node) keys this cipher has derived since it was built."""

    hkdf: int
    pbkdf2: int
    scrypt: int


class TokenCipher:
    """Encrypts tokens under the primary key and decrypts every format the key ring can read.

    Context (``user_id``, ``provider``, ``field`` such as ``"access_token"`` or
    ``"refresh_token"``) is required on both sides: current-scheme ciphertexts are bound to it,
    so a value moved to another row or column fails with :class:`TamperedCiphertext`. Seed rows
    carry no associated data and are bound only to their user until rewrapped.

    Everything is synchronous and thread-safe. A warm current-scheme call costs microseconds
    (cached HKDF key + one AES-GCM call), fine on the event loop. A *cold* seed-format decrypt
    runs PBKDF2 (~10 ms) or scrypt (~50 ms) once per user/key; callers on an event loop should
    offload those with ``await asyncio.to_thread(cipher.decrypt, ...)`` when
    :meth:`scheme_of` is not ``"hkdf"``.

    Empty values are never passed through (the seed did): :meth:`encrypt` refuses an empty
    plaintext with ``ValueError`` (store NULL for "no token"), and :meth:`decrypt` raises
    :class:`MalformedCiphertext` for ``""`` or ``None``.
    """

    def __init__(self, ring: KeyRing, *, cache_size: int = DEFAULT_SIZE) -> None:
        self.ring = ring
        self._current = CurrentScheme(KeyCache(cache_size))
        # One Node key at most; the cache only makes scrypt run once.
        self._legacy = LegacyScheme(KeyCache(cache_size), KeyCache(2))

    @classmethod
    def from_settings(cls, settings: Settings) -> TokenCipher:
        """Build from the ``TOKEN_ENCRYPTION_*`` settings.

        :raises ConfigurationError: the key ring is invalid (one line per problem).
        """
        return cls(load_keyring(KeyConfig.from_settings(settings)))

    def __repr__(self) -> str:
        versions = ",".join(f"v{v}" for v in sorted(self.ring.entries))
        return f"TokenCipher(primary=v{self.primary_version}, versions={versions})"

    @property
    def primary_version(self) -> int:
        """The version new ciphertexts are written under (their prefix is ``v{version}:``)."""
        return self.ring.primary_version

    @property
    def derivations(self) -> Derivations:
        """Derivation counters (tests assert PBKDF2 runs once per user and version)."""
        return Derivations(
            hkdf=self._current.cache.derivations,
            pbkdf2=self._legacy.seed_cache.derivations,
            scrypt=self._legacy.node_cache.derivations,
        )

    # ------------------------------------------------------------------ encrypt / decrypt

    def encrypt(self, plaintext: str, *, user_id: str, provider: str, field: str) -> str:
        """Encrypt under the primary key: ``v{version}:{iv}:{tag}:{ct}``, lowercase hex.

        :raises ValueError: empty or oversized plaintext, or an empty context value.
        """
        if not isinstance(plaintext, str) or not plaintext:
            raise ValueError("refusing to encrypt an empty token; store NULL for no token")
        data = plaintext.encode("utf-8")
        if len(data) > MAX_PLAINTEXT_BYTES:
            raise ValueError(f"token is longer than {MAX_PLAINTEXT_BYTES} bytes")
        check_context(user_id, provider, field)
        return self._current.encrypt(
            self.ring.primary, data, user_id=user_id, provider=provider, field=field
        )

    def decrypt(self, ciphertext: str, *, user_id: str, provider: str, field: str) -> str:
        """Decrypt any format the ring reads. Never returns anything but the real plaintext.

        :raises MalformedCiphertext: not a ciphertext (empty, truncated, bare token...).
        :raises UnknownKeyVersion: the version (or the Node format) has no key in the ring.
        :raises TamperedCiphertext: authentication failed (modified, moved, wrong key).
        :raises ValueError: an empty context value (a caller bug).
        """
        check_context(user_id, provider, field)
        data = self._open(parse(ciphertext), user_id=user_id, provider=provider, field=field)
        try:
            return data.decode("utf-8")
        except UnicodeDecodeError:
            raise DecryptionError("decrypted value is not UTF-8 text") from None

    def _open(self, envelope: Envelope, *, user_id: str, provider: str, field: str) -> bytes:
        if envelope.version is None:
            if self.ring.node is None:
                raise UnknownKeyVersion(
                    "seed Node.js-format ciphertext, but TOKEN_ENCRYPTION_NODE_KEY is not set"
                )
            return self._legacy.decrypt_node(self.ring.node, envelope)
        entry = self.ring.entry(envelope.version)
        if isinstance(entry, CurrentKey):
            return self._current.decrypt(
                entry, envelope, user_id=user_id, provider=provider, field=field
            )
        return self._legacy.decrypt_seed(entry, envelope, user_id=user_id)

    # ------------------------------------------------------------------ rotation

    def scheme_of(self, ciphertext: str) -> Scheme:
        """Which scheme would decrypt ``ciphertext``, without decrypting it.

        :raises MalformedCiphertext: not a ciphertext.
        :raises UnknownKeyVersion: no ring entry for it.
        """
        envelope = parse(ciphertext)
        if envelope.version is None:
            if self.ring.node is None:
                raise UnknownKeyVersion(
                    "seed Node.js-format ciphertext, but TOKEN_ENCRYPTION_NODE_KEY is not set"
                )
            return "node"
        entry = self.ring.entry(envelope.version)
        return "hkdf" if isinstance(entry, CurrentKey) else "seed"

    def needs_rewrap(self, ciphertext: str) -> bool:
        """True unless ``ciphertext`` is already under the primary key (parsing only).

        Seed rows, Node rows, older current-scheme versions and versions missing from the ring
        all need rewrapping (the last will fail in :meth:`rewrap` with ``UnknownKeyVersion``).

        :raises MalformedCiphertext: not a ciphertext; it cannot be rewrapped.
        """
        return parse(ciphertext).version != self.ring.primary_version

    def rewrap(self, ciphertext: str, *, user_id: str, provider: str, field: str) -> str | None:
        """Re-encrypt under the primary key; ``None`` when already there (nothing to write).

        Idempotent by construction: the output is under the primary, so a second pass returns
        ``None``. The plaintext stays inside this call. A ``None`` result is not a proof that
        the row decrypts (it is not opened); :meth:`decrypt` is.

        :raises DecryptionError: the old ciphertext does not decrypt (left for the caller to
            count and report; never rewrapped into something else).
        """
        if not self.needs_rewrap(ciphertext):
            return None
        plaintext = self.decrypt(ciphertext, user_id=user_id, provider=provider, field=field)
        return self.encrypt(plaintext, user_id=user_id, provider=provider, field=field)

    def health_check(self) -> None:
        """Round-trip a random value for a synthetic user under the primary key (cheap once
        warm: one cached HKDF key and two AES-GCM calls).

        :raises DecryptionError: the round trip failed.
        """
        probe = secrets.token_urlsafe(16)
        context = {"user_id": HEALTH_USER, "provider": "pulseplan", "field": "health_check"}
        if self.decrypt(self.encrypt(probe, **context), **context) != probe:
            raise DecryptionError("encryption round trip returned a different value")
