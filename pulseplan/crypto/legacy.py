"""Seed compatibility: decrypt-only readers for the two formats the seed backends wrote.

- Python (``v{n}:{iv}:{tag}:{ct}``): per-user key = PBKDF2-HMAC-SHA256(M,
  ``pulseplan:user:{user_id}:v{n}``, 100000, 32), IV of any length (the seed used 16), no
  associated data. ``M`` is the seed key string as UTF-8 or base64-decoded, as the operator says.
- Node.js (``{iv}:{tag}:{ct}``): one key for all users, scrypt(key UTF-8, salt ``b"salt"``,
  N=16384, r=8, p=1, 32 bytes).

Both are deliberately slow (PBKDF2 ~10 ms, scrypt ~50 ms and 16 MiB), so derived keys are cached:
PBKDF2 runs at most once per (user, version, encoding) and scrypt once per key, per process, as
long as the LRU bound holds. Nothing here encrypts: rows are read once and rewrapped under the
current scheme (:meth:`pulseplan.crypto.TokenCipher.rewrap`).

No associated data means a seed row is bound to its user (through the key) but not to its
provider or field; rewrapping adds that binding.
"""

from __future__ import annotations

import hashlib
from functools import partial

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from pulseplan.crypto.cache import KeyCache
from pulseplan.crypto.envelope import Envelope
from pulseplan.crypto.errors import TamperedCiphertext
from pulseplan.crypto.keyring import NodeKey
from pulseplan.crypto.keyring import SeedKey

SEED_ITERATIONS = 100_000
NODE_SALT = b"salt"
NODE_SCRYPT = {"n": 16384, "r": 8, "p": 1}


def seed_salt(user_id: str, version: int) -> bytes:
    """The seed's fixed per-user PBKDF2 salt."""
    return f"pulseplan:user:{user_id}:v{version}".encode()


def seed_user_key(master: bytes, user_id: str, version: int) -> bytes:
    """The seed Python backend's per-user key (about 10 ms: call through the cache)."""
    return hashlib.pbkdf2_hmac("sha256", master, seed_salt(user_id, version), SEED_ITERATIONS, 32)


def node_key(secret: bytes) -> bytes:
    """The seed Node.js backend's key, ``crypto.scryptSync(key, 'salt', 32)``."""
    return hashlib.scrypt(secret, salt=NODE_SALT, dklen=32, **NODE_SCRYPT)


def _seed_aead(master: bytes, user_id: str, version: int) -> AESGCM:
    return AESGCM(seed_user_key(master, user_id, version))


def _node_aead(secret: bytes) -> AESGCM:
    return AESGCM(node_key(secret))


def _open(aead: AESGCM, envelope: Envelope) -> bytes | None:
    try:
        return aead.decrypt(envelope.iv, envelope.ct + envelope.tag, None)
    except InvalidTag:
        return None


class LegacyScheme:
    """Decrypts seed rows; ``seed_cache`` holds PBKDF2 keys, ``node_cache`` scrypt keys."""

    def __init__(self, seed_cache: KeyCache[AESGCM], node_cache: KeyCache[AESGCM]) -> None:
        self.seed_cache = seed_cache
        self.node_cache = node_cache

    def decrypt_seed(self, key: SeedKey, envelope: Envelope, *, user_id: str) -> bytes:
        """Plaintext of a seed Python row.

        :raises TamperedCiphertext: no configured master opens it.
        """
        for encoding, master in key.masters:
            aead = self.seed_cache.get(
                (key.version, encoding, user_id),
                partial(_seed_aead, master, user_id, key.version),
            )
            plaintext = _open(aead, envelope)
            if plaintext is not None:
                return plaintext
        raise TamperedCiphertext(
            f"seed-format v{key.version} ciphertext failed authentication (modified, truncated, "
            "another user's row, or TOKEN_ENCRYPTION_SEED_KEY/_SEED_ENCODING do not match the "
            "key that wrote it)",
            version=key.version,
        )

    def decrypt_node(self, key: NodeKey, envelope: Envelope) -> bytes:
        """Plaintext of a seed Node.js row.

        :raises TamperedCiphertext: the Node key does not open it.
        """
        aead = self.node_cache.get(key, partial(_node_aead, key.secret))
        plaintext = _open(aead, envelope)
        if plaintext is None:
            raise TamperedCiphertext(
                "seed Node.js-format ciphertext failed authentication (modified, truncated, or "
                "TOKEN_ENCRYPTION_NODE_KEY is not the key that wrote it)"
            )
        return plaintext
