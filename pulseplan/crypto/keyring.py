"""The key ring: versioned master keys, each entry saying how per-user keys are derived.

Every stored ciphertext names a version; the ring maps each version to exactly one entry. So a
seed row ``v1:...`` can never be tried with a new-scheme key numbered 1, nor the reverse: a
version belongs to one scheme, or the ring does not load (:mod:`pulseplan.crypto.config` builds
and validates it from settings). The seed's Node.js rows carry no version and get their own,
separate entry.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from dataclasses import field
from types import MappingProxyType
from typing import Literal

from pulseplan.crypto.errors import UnknownKeyVersion

SeedEncoding = Literal["utf8", "base64", "both"]


@dataclass(frozen=True, eq=False)
class CurrentKey:
    """A current-scheme master key: HKDF-SHA256 per-user keys, AAD-bound, read and write."""

    version: int
    master: bytes = field(repr=False)
    scheme = "hkdf"


@dataclass(frozen=True, eq=False)
class SeedKey:
    """The seed Python backend's master key under one version: PBKDF2 per-user keys, read-only.

    ``masters`` holds ``(encoding, M)`` candidates: one for ``utf8`` or ``base64``, both for
    ``both`` (rows written before and after the seed switched encodings, §8.1 of the seed notes).
    """

    version: int
    encoding: SeedEncoding
    masters: tuple[tuple[str, bytes], ...] = field(repr=False)
    scheme = "seed"


@dataclass(frozen=True, eq=False)
class NodeKey:
    """The seed Node.js backend's key string (UTF-8): scrypt, one key for all users, read-only."""

    secret: bytes = field(repr=False)
    scheme = "node"


RingEntry = CurrentKey | SeedKey


@dataclass(frozen=True, eq=False)
class KeyRing:
    """Versioned entries plus the primary (current-scheme) version new ciphertexts use."""

    entries: Mapping[int, RingEntry]
    primary_version: int
    node: NodeKey | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.entries.get(self.primary_version), CurrentKey):
            raise ValueError("the primary version must name a current-scheme key in the ring")
        for version, entry in self.entries.items():
            if entry.version != version:
                raise ValueError("ring entries must be keyed by their own version")
        object.__setattr__(self, "entries", MappingProxyType(dict(self.entries)))

    @property
    def primary(self) -> CurrentKey:
        entry = self.entries[self.primary_version]
        assert isinstance(entry, CurrentKey)
        return entry

    def entry(self, version: int) -> RingEntry:
        """The entry for ``version``.

        :raises UnknownKeyVersion: the version is not in the ring.
        """
        try:
            return self.entries[version]
        except KeyError:
            raise UnknownKeyVersion(
                f"ciphertext key version {version} is not in the key ring", version=version
            ) from None

    def describe(self) -> list[str]:
        """One line per entry, without key material (for ``pulseplan check`` and logs)."""
        lines = []
        for version, entry in sorted(self.entries.items()):
            if isinstance(entry, CurrentKey):
                role = "primary" if version == self.primary_version else "decrypt-only"
                lines.append(f"v{version}: current scheme (HKDF-SHA256), {role}")
            else:
                lines.append(
                    f"v{version}: seed-compatible (PBKDF2, {entry.encoding} master), read-only"
                )
        if self.node is not None:
            lines.append("unversioned: seed Node.js format (scrypt), read-only")
        return lines
