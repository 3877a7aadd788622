"""The current scheme: HKDF-SHA256 per-user keys, AES-256-GCM, context bound as AAD.

- Per-user key = HKDF-SHA256(IKM = master key, salt = :data:`HKDF_SALT`, info = encoding of
  (label, scheme, key version, user id)). The master is already a uniformly random key, so the
  KDF needs no work factor (PBKDF2 would only add ~10 ms per call, seed weakness §8.1.4); the
  ``info`` string separates users and versions, the salt separates this application.
- Nonces are 12 random bytes from ``os.urandom`` per encryption. Per-user keys keep each key's
  invocation count far below the 2^32 random-nonce limit of NIST SP 800-38D §8.3.
- Associated data = encoding of (label, version, user id, provider, field), so a ciphertext
  copied to another user, provider or column fails authentication instead of decrypting.

Encodings are length-prefixed (4-byte big-endian length, then UTF-8), hence canonical: no two
distinct tuples encode alike, whatever separators the values contain.
"""

from __future__ import annotations

import os
from functools import partial

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from pulseplan.crypto.cache import KeyCache
from pulseplan.crypto.envelope import TAG_BYTES
from pulseplan.crypto.envelope import Envelope
from pulseplan.crypto.errors import MalformedCiphertext
from pulseplan.crypto.errors import TamperedCiphertext
from pulseplan.crypto.keyring import CurrentKey

#: Fixed application salt (RFC 5869 §3.1: a non-secret salt strengthens extraction).
HKDF_SALT = b"pulseplan/token-encryption/hkdf-salt/v1"
KEY_LABEL = "pulseplan/token-key"
AAD_LABEL = "pulseplan/token-aad"
SCHEME_ID = "hkdf-sha256;aes-256-gcm"
NONCE_BYTES = 12
KEY_BYTES = 32
_MAX_USER_ID_BYTES = 256
_MAX_NAME_BYTES = 64


def hkdf_sha256(ikm: bytes, *, salt: bytes | None, info: bytes, length: int = KEY_BYTES) -> bytes:
    """RFC 5869 HKDF with SHA-256 (extract then expand), via ``cryptography``."""
    return HKDF(algorithm=hashes.SHA256(), length=length, salt=salt, info=info).derive(ikm)


def length_prefixed(*items: str) -> bytes:
    """Canonical encoding of a tuple of strings: each as 4-byte length + UTF-8 bytes."""
    out = bytearray()
    for item in items:
        data = item.encode("utf-8")
        out += len(data).to_bytes(4, "big")
        out += data
    return bytes(out)


def key_info(version: int, user_id: str) -> bytes:
    """HKDF ``info`` binding the scheme, the key version and the user."""
    return length_prefixed(KEY_LABEL, SCHEME_ID, str(version), user_id)


def associated_data(version: int, user_id: str, provider: str, field: str) -> bytes:
    """AES-GCM associated data binding where a ciphertext lives."""
    return length_prefixed(AAD_LABEL, str(version), user_id, provider, field)


def check_context(user_id: str, provider: str, field: str) -> None:
    """Refuse empty or oversized context values (a caller bug, not bad data).

    :raises ValueError: naming the parameter, never echoing its value.
    """
    for name, value, limit in (
        ("user_id", user_id, _MAX_USER_ID_BYTES),
        ("provider", provider, _MAX_NAME_BYTES),
        ("field", field, _MAX_NAME_BYTES),
    ):
        if not isinstance(value, str) or not value:
            raise ValueError(f"{name} must be a non-empty string")
        if len(value.encode("utf-8")) > limit:
            raise ValueError(f"{name} is longer than {limit} bytes")


def _derive(key: CurrentKey, user_id: str) -> AESGCM:
    return AESGCM(hkdf_sha256(key.master, salt=HKDF_SALT, info=key_info(key.version, user_id)))


class CurrentScheme:
    """Encrypt and decrypt with current-scheme ring entries; per-user keys cached in ``cache``."""

    def __init__(self, cache: KeyCache[AESGCM]) -> None:
        self.cache = cache

    def _aead(self, key: CurrentKey, user_id: str) -> AESGCM:
        return self.cache.get((key.version, user_id), partial(_derive, key, user_id))

    def encrypt(
        self, key: CurrentKey, plaintext: bytes, *, user_id: str, provider: str, field: str
    ) -> str:
        """The stored string for ``plaintext`` under ``key``."""
        nonce = os.urandom(NONCE_BYTES)
        aad = associated_data(key.version, user_id, provider, field)
        sealed = self._aead(key, user_id).encrypt(nonce, plaintext, aad)
        return Envelope(key.version, nonce, sealed[-TAG_BYTES:], sealed[:-TAG_BYTES]).format()

    def decrypt(
        self, key: CurrentKey, envelope: Envelope, *, user_id: str, provider: str, field: str
    ) -> bytes:
        """The plaintext bytes.

        :raises MalformedCiphertext: the IV is not 12 bytes (e.g. a seed row under a version
            the ring assigns to the current scheme).
        :raises TamperedCiphertext: authentication failed.
        """
        if len(envelope.iv) != NONCE_BYTES:
            raise MalformedCiphertext(
                f"v{key.version} is a current-scheme key, which uses {NONCE_BYTES}-byte IVs; "
                f"this ciphertext has {len(envelope.iv)} (a seed row under a version the ring "
                "assigns to a new key? see docs/keys.md)",
                version=key.version,
            )
        aad = associated_data(key.version, user_id, provider, field)
        try:
            return self._aead(key, user_id).decrypt(envelope.iv, envelope.ct + envelope.tag, aad)
        except InvalidTag:
            raise TamperedCiphertext(
                f"v{key.version} ciphertext failed authentication (modified, truncated, moved to "
                "another user, provider or field, or a different key under this version)",
                version=key.version,
            ) from None
