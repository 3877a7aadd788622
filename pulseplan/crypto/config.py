"""Key settings -> a validated :class:`~pulseplan.crypto.keyring.KeyRing`, one clear line per
problem and never any key material in them.

Settings (``docs/keys.md`` has the runbook):

- ``TOKEN_ENCRYPTION_KEY``: the simple case, one current-scheme key, version 1.
- ``TOKEN_ENCRYPTION_KEYS``: the general case, ``v1:<key>,v2:<key>`` (commas or whitespace
  between entries); replaces ``TOKEN_ENCRYPTION_KEY`` when set. Keys are base64 or base64url
  (padding optional) of at least 32 random bytes, as ``pulseplan keys generate`` prints.
- ``TOKEN_ENCRYPTION_PRIMARY``: the version new ciphertexts use; required when the ring holds
  more than one current-scheme key, so a newly added key is never primary by accident.
- ``TOKEN_ENCRYPTION_SEED_KEY`` / ``_SEED_ENCODING`` (``utf8`` | ``base64`` | ``both``) /
  ``_SEED_VERSIONS`` (default ``1``): the seed Python backend's key, read-only.
- ``TOKEN_ENCRYPTION_NODE_KEY``: the seed Node.js backend's key, read-only.
"""

from __future__ import annotations

import base64
import binascii
import re
from dataclasses import dataclass
from dataclasses import field
from typing import TYPE_CHECKING

from pulseplan.crypto.envelope import MAX_VERSION
from pulseplan.crypto.keyring import CurrentKey
from pulseplan.crypto.keyring import KeyRing
from pulseplan.crypto.keyring import NodeKey
from pulseplan.crypto.keyring import RingEntry
from pulseplan.crypto.keyring import SeedEncoding
from pulseplan.crypto.keyring import SeedKey
from pulseplan.errors import ConfigurationError

if TYPE_CHECKING:
    from pulseplan.settings import Settings

MIN_KEY_BYTES = 32
#: 32 random bytes have ~30 distinct values; fewer than this means a typed or patterned key.
MIN_DISTINCT_BYTES = 8
SEED_ENCODINGS: tuple[SeedEncoding, ...] = ("utf8", "base64", "both")
GENERATE_HINT = "generate one with `pulseplan keys generate`"
# The seed used the same variable name for an arbitrary string: point its operators home.
_SEED_HINT = "; a seed backend key belongs in TOKEN_ENCRYPTION_SEED_KEY, see docs/keys.md"

_BASE64 = re.compile(r"[A-Za-z0-9+/_-]+={0,2}")
_ENTRY = re.compile(r"v([1-9][0-9]{0,8}):(.*)", re.DOTALL)


@dataclass(frozen=True)
class KeyConfig:
    """The raw key settings; :func:`load_keyring` validates them into a :class:`KeyRing`."""

    key: str | None = field(default=None, repr=False)
    keys: str | None = field(default=None, repr=False)
    primary: int | str | None = None
    seed_key: str | None = field(default=None, repr=False)
    seed_encoding: str | None = None
    seed_versions: str = "1"
    node_key: str | None = field(default=None, repr=False)

    @classmethod
    def from_settings(cls, settings: Settings) -> KeyConfig:
        """Read the ``TOKEN_ENCRYPTION_*`` settings."""
        return cls(
            key=settings.secret("token_encryption_key"),
            keys=settings.secret("token_encryption_keys"),
            primary=settings.token_encryption_primary,
            seed_key=settings.secret("token_encryption_seed_key"),
            seed_encoding=settings.token_encryption_seed_encoding,
            seed_versions=settings.token_encryption_seed_versions,
            node_key=settings.secret("token_encryption_node_key"),
        )


def decode_key(text: str) -> bytes | None:
    """Decode a base64 or base64url key (padding optional); ``None`` when it is not base64."""
    text = text.strip()
    if not _BASE64.fullmatch(text):
        return None
    body = text.rstrip("=").translate(str.maketrans("-_", "+/"))
    if len(body) % 4 == 1:
        return None
    try:
        return base64.b64decode(body + "=" * (-len(body) % 4), validate=True)
    except binascii.Error:
        return None


def seed_base64_master(key: str) -> bytes:
    """The master bytes the seed's ``49fa7ff``/HEAD code used: a *non-strict*
    ``base64.b64decode`` (which drops characters outside the alphabet), falling back to the
    UTF-8 bytes when that raises. Reproduced exactly, quirks included, to read its rows."""
    try:
        return base64.b64decode(key)
    except ValueError:  # binascii.Error, or non-ASCII text
        return key.encode("utf-8")


def _current_key(name: str, text: str, version: int, problems: list[str]) -> CurrentKey | None:
    master = decode_key(text)
    if master is None:
        problems.append(f"{name} is not valid base64 ({GENERATE_HINT}{_SEED_HINT})")
        return None
    if len(master) < MIN_KEY_BYTES:
        problems.append(
            f"{name} decodes to {len(master)} bytes; current-scheme keys need at least "
            f"{MIN_KEY_BYTES} ({GENERATE_HINT}{_SEED_HINT})"
        )
        return None
    return CurrentKey(version, master)


def _twice(version: int, first: str, second: str) -> str:
    return (
        f"key version {version} is configured twice ({first} and {second}); each version must "
        "name one key (put new keys under an unused version in TOKEN_ENCRYPTION_KEYS)"
    )


def _current_keys(
    config: KeyConfig, problems: list[str], claimed: dict[int, str]
) -> list[tuple[str, CurrentKey]]:
    """``(setting, key)`` pairs; ``claimed`` maps every version named, valid or not, to the
    setting naming it."""
    if not config.keys or not config.keys.strip():
        if not config.key or not config.key.strip():
            problems.append("TOKEN_ENCRYPTION_KEY is not set")
            return []
        claimed[1] = "TOKEN_ENCRYPTION_KEY"
        key = _current_key("TOKEN_ENCRYPTION_KEY", config.key, 1, problems)
        return [("TOKEN_ENCRYPTION_KEY", key)] if key else []
    found = []
    for position, item in enumerate(re.split(r"[\s,]+", config.keys.strip()), start=1):
        name = f"TOKEN_ENCRYPTION_KEYS entry {position}"
        match = _ENTRY.fullmatch(item)
        if match is None:
            # Never echo the entry: it holds the key.
            problems.append(f"{name} is not of the form v{{version}}:{{base64 key}}")
            continue
        version = int(match[1])
        source = f"{name} (v{version})"
        if version in claimed:
            problems.append(_twice(version, claimed[version], source))
            continue
        claimed[version] = source
        key = _current_key(source, match[2], version, problems)
        if key:
            found.append((source, key))
    return found


def _seed_keys(config: KeyConfig, problems: list[str]) -> list[tuple[str, SeedKey]]:
    if not config.seed_key:
        if config.seed_encoding:
            problems.append(
                "TOKEN_ENCRYPTION_SEED_ENCODING is set but TOKEN_ENCRYPTION_SEED_KEY is not"
            )
        return []
    encoding = (config.seed_encoding or "").strip().lower()
    if encoding not in SEED_ENCODINGS:
        problems.append(
            "TOKEN_ENCRYPTION_SEED_ENCODING must be utf8, base64 or both when "
            "TOKEN_ENCRYPTION_SEED_KEY is set (which seed code wrote the rows: see docs/keys.md)"
        )
        return []
    versions: list[int] = []
    for item in re.split(r"[\s,]+", config.seed_versions.strip()):
        if not re.fullmatch(r"v?[1-9][0-9]{0,8}", item):
            problems.append(
                f"TOKEN_ENCRYPTION_SEED_VERSIONS must list versions 1 to {MAX_VERSION}, "
                "separated by commas"
            )
            return []
        versions.append(int(item.removeprefix("v")))
    masters: list[tuple[str, bytes]] = []
    if encoding in ("utf8", "both"):
        masters.append(("utf8", config.seed_key.encode("utf-8")))
    if encoding in ("base64", "both"):
        decoded = seed_base64_master(config.seed_key)
        if all(decoded != m for _, m in masters):
            masters.append(("base64", decoded))
    return [
        ("TOKEN_ENCRYPTION_SEED_VERSIONS", SeedKey(v, encoding, tuple(masters))) for v in versions
    ]


def _primary(value: int | str | None, problems: list[str]) -> int | None:
    if isinstance(value, int) or value is None:
        return value
    text = value.strip()
    if not text:
        return None
    if not re.fullmatch(r"v?[1-9][0-9]{0,8}", text):
        problems.append("TOKEN_ENCRYPTION_PRIMARY must be a key version such as 2 (or v2)")
        return None
    return int(text.removeprefix("v"))


def parse_keyring(config: KeyConfig) -> tuple[KeyRing | None, list[str]]:
    """Validate ``config``: the ring, or ``None`` and one line per problem (never key material)."""
    problems: list[str] = []
    claimed: dict[int, str] = {}
    current = _current_keys(config, problems, claimed)
    entries: dict[int, RingEntry] = {key.version: key for _, key in current}
    for source, seed in _seed_keys(config, problems):
        if seed.version in claimed:
            problems.append(_twice(seed.version, claimed[seed.version], source))
            continue
        claimed[seed.version] = source
        entries[seed.version] = seed
    current_versions = sorted(key.version for _, key in current)
    reported = len(problems)
    primary = _primary(config.primary, problems)
    if len(problems) > reported:
        pass  # an unparsable TOKEN_ENCRYPTION_PRIMARY, already reported
    elif primary is None:
        if len(current_versions) == 1:
            primary = current_versions[0]
        elif len(current_versions) > 1:
            listed = ", ".join(f"v{v}" for v in current_versions)
            problems.append(
                f"TOKEN_ENCRYPTION_PRIMARY must be set: TOKEN_ENCRYPTION_KEYS holds several keys "
                f"({listed})"
            )
    elif isinstance(entries.get(primary), SeedKey):
        problems.append(
            f"TOKEN_ENCRYPTION_PRIMARY={primary} names a seed-compatible key, which is "
            "read-only; the primary must be a current-scheme key"
        )
    elif primary not in entries and primary not in claimed:
        problems.append(f"TOKEN_ENCRYPTION_PRIMARY={primary} is not a version in the key ring")
    node = None
    if config.node_key:
        node = NodeKey(config.node_key.encode("utf-8"))
    if problems or primary is None:
        return None, problems
    return KeyRing(entries, primary, node), []


def load_keyring(config: KeyConfig) -> KeyRing:
    """The validated ring.

    :raises ConfigurationError: one line per problem; key material is never included.
    """
    ring, problems = parse_keyring(config)
    if ring is None:
        raise ConfigurationError(problems)
    return ring


def key_problems(settings: Settings) -> list[str]:
    """Every key-ring problem for ``settings``, plus production-only hygiene checks.

    Called by :meth:`Settings.problems` in production, so ``pulseplan check`` and start-up
    refuse a bad ring before anything is encrypted.
    """
    config = KeyConfig.from_settings(settings)
    ring, problems = parse_keyring(config)
    if not settings.production:
        return problems
    if config.key and config.keys:
        problems.append(
            "TOKEN_ENCRYPTION_KEY and TOKEN_ENCRYPTION_KEYS are both set; TOKEN_ENCRYPTION_KEYS "
            "replaces it, so remove TOKEN_ENCRYPTION_KEY (add it to the ring as v1:<key> if rows "
            "still use it)"
        )
    if ring is not None:
        for source, key in _current_keys(config, [], {}):
            if len(set(key.master)) < MIN_DISTINCT_BYTES:
                problems.append(f"{source} has too little variety to be random ({GENERATE_HINT})")
    return problems
