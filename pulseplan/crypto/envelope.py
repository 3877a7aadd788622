"""The stored string forms of a ciphertext, parsed strictly.

- ``v{version}:{iv_hex}:{tag_hex}:{ct_hex}``: PulsePlan's form, shared with the seed's Python
  backend (the key ring entry for ``version`` says which scheme wrote it);
- ``{iv_hex}:{tag_hex}:{ct_hex}``: the seed's Node.js backend (no version), read for import only.

Strictness is a security property, not pedantry: hex must be lowercase and the version must have
no leading zero, so no two different strings decode to the same bytes. Otherwise flipping the
case bit of a hex digit would leave the value decryptable and tampering would go unnoticed.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from pulseplan.crypto.errors import MalformedCiphertext

#: Largest plaintext :meth:`TokenCipher.encrypt` accepts (UTF-8 bytes). OAuth tokens are a few
#: KiB at most; the bound keeps a hostile row from costing unbounded memory and CPU.
MAX_PLAINTEXT_BYTES = 64 * 1024
#: Largest key version, so a version always fits the 9-digit stored form.
MAX_VERSION = 999_999_999
TAG_BYTES = 16
#: AES-GCM in ``cryptography`` takes nonces of 8 to 128 bytes; outside that is not ours.
MIN_IV_BYTES = 8
MAX_IV_BYTES = 128
# Hex of the largest IV + tag + plaintext plus separators and the version.
_MAX_CHARS = 2 * (MAX_IV_BYTES + TAG_BYTES + MAX_PLAINTEXT_BYTES) + 16

_VERSION = re.compile(r"v[1-9][0-9]{0,8}")
_LOWER_HEX = re.compile(r"[0-9a-f]+")

FORMAT_HELP = (
    "expected v{version}:{iv}:{tag}:{ciphertext} (or the seed Node form {iv}:{tag}:{ciphertext}) "
    "in lowercase hex with a 16-byte tag"
)


@dataclass(frozen=True, slots=True)
class Envelope:
    """A parsed ciphertext. ``version`` is ``None`` for the seed's Node.js form."""

    version: int | None
    iv: bytes
    tag: bytes
    ct: bytes

    def __repr__(self) -> str:
        # The bytes are ciphertext, but they are still a stored credential: keep them out of
        # logs and test failure output.
        return f"Envelope(version={self.version}, iv={len(self.iv)}B, ct={len(self.ct)}B)"

    def format(self) -> str:
        """The stored string (versioned form only; we never write the Node form)."""
        if self.version is None:
            raise ValueError("the seed Node.js form is read-only")
        return f"v{self.version}:{self.iv.hex()}:{self.tag.hex()}:{self.ct.hex()}"


def _hex(part: str, version: int | None) -> bytes:
    # Non-empty, even length, lowercase only: bytes.fromhex alone would also take upper case
    # and spaces, giving several spellings of one ciphertext.
    if len(part) % 2 or not _LOWER_HEX.fullmatch(part):
        raise MalformedCiphertext(f"not a ciphertext: {FORMAT_HELP}", version=version)
    return bytes.fromhex(part)


def parse(value: object) -> Envelope:
    """Parse a stored ciphertext string.

    :raises MalformedCiphertext: anything that is not exactly one of the two forms, including
        ``None``, the empty string and bare plaintext tokens (the seed passed those through).
    """
    if not isinstance(value, str) or not value:
        raise MalformedCiphertext("empty value where a ciphertext was expected")
    if len(value) > _MAX_CHARS:
        raise MalformedCiphertext("value is longer than any ciphertext we write")
    if ":" not in value:
        raise MalformedCiphertext(
            "value has no ':'-separated parts (a plaintext token or another format?)"
        )
    parts = value.split(":")
    version: int | None = None
    if value[0] == "v":
        if len(parts) != 4 or not _VERSION.fullmatch(parts[0]):
            raise MalformedCiphertext(f"not a ciphertext: {FORMAT_HELP}")
        version = int(parts[0][1:])
        parts = parts[1:]
    elif len(parts) != 3:
        raise MalformedCiphertext(f"not a ciphertext: {FORMAT_HELP}")
    iv, tag, ct = (_hex(part, version) for part in parts)
    if len(tag) != TAG_BYTES:
        raise MalformedCiphertext(
            f"tag of {len(tag)} bytes; only full {TAG_BYTES}-byte tags are accepted",
            version=version,
        )
    if not MIN_IV_BYTES <= len(iv) <= MAX_IV_BYTES:
        raise MalformedCiphertext(
            f"IV of {len(iv)} bytes is outside {MIN_IV_BYTES}-{MAX_IV_BYTES}", version=version
        )
    return Envelope(version, iv, tag, ct)
