"""Decryption errors: one small hierarchy, so callers catch :class:`DecryptionError` and report
the connection as needing attention instead of ever handing out an empty or raw token.

Messages are fixed, operator-facing sentences. They never contain the ciphertext, the plaintext
or key material; at most the key version, which is not secret.
"""

from __future__ import annotations

from pulseplan.errors import PulsePlanError


class DecryptionError(PulsePlanError):
    """A stored token could not be decrypted. Never a reason to fall back to plaintext.

    :param message: a fixed description; never interpolate token material into it.
    :param version: the key version named by the ciphertext, when it could be parsed.
    """

    #: Short machine code, safe for metric labels and JSON ``code`` fields.
    kind = "decryption_failed"

    def __init__(self, message: str, *, version: int | None = None) -> None:
        super().__init__(message)
        self.version = version


class MalformedCiphertext(DecryptionError):
    """The stored value is not in any ciphertext format we read (empty, truncated, bad hex,
    a bare plaintext token, a wrong IV or tag length...)."""

    kind = "malformed_ciphertext"


class UnknownKeyVersion(DecryptionError):
    """The ciphertext names a key version that is not in the key ring (retired too early, or
    written by a newer key ring this process has not been given yet)."""

    kind = "unknown_key_version"


class TamperedCiphertext(DecryptionError):
    """Authentication failed: the ciphertext was modified, truncated, moved to another user,
    provider or field, or the key ring holds a different key under that version."""

    kind = "tampered_ciphertext"


__all__ = [
    "DecryptionError",
    "MalformedCiphertext",
    "TamperedCiphertext",
    "UnknownKeyVersion",
]
