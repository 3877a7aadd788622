"""Token encryption at rest: AES-256-GCM under a versioned key ring.

The host uses :class:`TokenCipher`::

    cipher = TokenCipher.from_settings(settings)
    stored = cipher.encrypt(token, user_id=uid, provider="google", field="access_token")
    token = cipher.decrypt(stored, user_id=uid, provider="google", field="access_token")

Stored form ``v{version}:{iv_hex}:{tag_hex}:{ct_hex}`` (the seed's). The version picks a key ring
entry: the current scheme (HKDF-SHA256 per-user keys, AAD binding user/provider/field) or a
read-only seed-compatible one. Every failure is a :class:`DecryptionError`; there is no plaintext
fallback. Settings and the rotation runbook: ``docs/keys.md``.
"""

from __future__ import annotations

import base64
import os

from pulseplan.crypto.cipher import Derivations
from pulseplan.crypto.cipher import Scheme
from pulseplan.crypto.cipher import TokenCipher
from pulseplan.crypto.config import KeyConfig
from pulseplan.crypto.config import key_problems
from pulseplan.crypto.config import load_keyring
from pulseplan.crypto.errors import DecryptionError
from pulseplan.crypto.errors import MalformedCiphertext
from pulseplan.crypto.errors import TamperedCiphertext
from pulseplan.crypto.errors import UnknownKeyVersion
from pulseplan.crypto.keyring import KeyRing

KEY_BYTES = 32


def generate_key() -> str:
    """A new current-scheme master key: 32 random bytes, base64url with padding (44 chars),
    the same format the development-secret generator writes for ``TOKEN_ENCRYPTION_KEY``."""
    return base64.urlsafe_b64encode(os.urandom(KEY_BYTES)).decode("ascii")


__all__ = [
    "DecryptionError",
    "Derivations",
    "KeyConfig",
    "KeyRing",
    "MalformedCiphertext",
    "Scheme",
    "TamperedCiphertext",
    "TokenCipher",
    "UnknownKeyVersion",
    "generate_key",
    "key_problems",
    "load_keyring",
]
