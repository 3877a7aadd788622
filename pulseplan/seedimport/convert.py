"""One seed row -> tokens under PulsePlan's primary key, or the reason it cannot be.

Decryption goes through :class:`~pulseplan.crypto.TokenCipher`, whose ring holds the seed's
read-only entries (``TOKEN_ENCRYPTION_SEED_KEY``/``_SEED_ENCODING``/``_SEED_VERSIONS`` for the
Python backend's ``v{n}:...`` rows, ``TOKEN_ENCRYPTION_NODE_KEY`` for the Node.js ``iv:tag:ct``
rows). Re-encryption is under the primary key, bound to the user, provider and field, exactly
as the broker writes. Plaintexts live only inside :func:`convert`.

A value with no ``:`` is not a ciphertext in any seed format: it is one of the plaintext tokens
the seed once stored (seed-system.md §1.3). Those are imported only when the operator says so
(``--accept-plaintext``); a value with ``:`` that does not decrypt is corrupt and reported.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Collection
from dataclasses import dataclass
from dataclasses import field

from pulseplan.crypto import DecryptionError
from pulseplan.crypto import TokenCipher
from pulseplan.crypto.envelope import MAX_PLAINTEXT_BYTES
from pulseplan.seedimport.rows import RowProblem
from pulseplan.seedimport.rows import SeedRow

#: Seed provider values -> PulsePlan provider names. ``outlook`` was the Sept-3 schema's name
#: for Microsoft; ``gmail`` appears where a service name was stored as the provider.
PROVIDER_ALIASES = {
    "google": "google",
    "gmail": "google",
    "microsoft": "microsoft",
    "outlook": "microsoft",
    "canvas": "canvas",
    "notion": "notion",
}
_PRINTABLE_NAME = re.compile(r"[a-z0-9_-]{1,32}")
# A plausible bearer token: visible ASCII, no whitespace (every provider's tokens are).
_PLAUSIBLE_TOKEN = re.compile(r"[\x21-\x7e]+")


@dataclass(frozen=True)
class Converted:
    """A seed row ready for PulsePlan: tokens re-encrypted under the primary key."""

    row: SeedRow
    user_id: str
    provider: str
    access_token: str = field(repr=False)
    refresh_token: str | None = field(repr=False)
    #: Some field was stored in plaintext by the seed (imported under --accept-plaintext).
    from_plaintext: bool = False
    #: The seed stored the access token as the refresh token too (Canvas personal tokens).
    dropped_refresh: bool = False


def seed_provider(row: SeedRow) -> str | None:
    """The row's provider value as the seed wrote it, lower-cased."""
    return row.provider.strip().lower() if row.provider else None


def shown(name: str | None) -> str:
    """A provider value safe to print (arbitrary text is not echoed)."""
    return name if name and _PRINTABLE_NAME.fullmatch(name) else "(invalid)"


def target_provider(row: SeedRow, enabled: Collection[str]) -> str:
    """The PulsePlan provider for ``row``.

    :raises RowProblem: unknown to PulsePlan, or not enabled here.
    """
    name = seed_provider(row)
    mapped = PROVIDER_ALIASES.get(name or "")
    if mapped is None:
        raise RowProblem(f"unknown provider {shown(name)} (PulsePlan has no plugin for it)")
    if mapped not in enabled:
        raise RowProblem(
            f"provider {mapped} is not enabled here (PULSEPLAN_PROVIDERS / "
            "PULSEPLAN_DISABLED_PROVIDERS); enable it or pass --skip-provider"
        )
    return mapped


def canonical_user(row: SeedRow) -> str:
    """The user's id as PulsePlan stores it (a lower-case UUID, as Supabase's ``sub``).

    :raises RowProblem: missing or not a UUID.
    """
    if not row.user_id or not row.user_id.strip():
        raise RowProblem("user_id is empty")
    try:
        return str(uuid.UUID(row.user_id.strip()))
    except ValueError:
        raise RowProblem("user_id is not a UUID (Supabase user ids are)") from None


def _open(
    cipher: TokenCipher,
    value: str | None,
    name: str,
    *,
    seed_user: str,
    user_id: str,
    provider: str,
    accept_plaintext: bool,
) -> tuple[str | None, bool]:
    """``(plaintext or None, was stored in plaintext)`` for one token column."""
    if value is None or value == "":
        return None, False  # the seed passed empty values through unencrypted
    if ":" not in value:
        if not accept_plaintext:
            raise RowProblem(
                f"{name} is stored unencrypted (an early seed row); import it with "
                "--accept-plaintext, or have the user reconnect"
            )
        if not _PLAUSIBLE_TOKEN.fullmatch(value) or len(value) > MAX_PLAINTEXT_BYTES:
            raise RowProblem(f"{name} is neither a ciphertext nor a plausible plaintext token")
        return value, True
    try:
        # Seed (PBKDF2) keys were derived from the user id exactly as the seed had it; the
        # other schemes bind the canonical id PulsePlan uses.
        as_user = seed_user if cipher.scheme_of(value) == "seed" else user_id
        return cipher.decrypt(value, user_id=as_user, provider=provider, field=name), False
    except DecryptionError as exc:
        # DecryptionError messages are fixed sentences without token or key material.
        raise RowProblem(f"{name}: {exc.kind}: {exc}") from None


def convert(
    row: SeedRow,
    cipher: TokenCipher,
    *,
    enabled: Collection[str],
    accept_plaintext: bool = False,
) -> Converted:
    """Decrypt ``row``'s tokens from the seed formats and re-encrypt them under the primary key.

    :raises RowProblem: why the row cannot be imported (never quoting a token).
    """
    user_id = canonical_user(row)
    provider = target_provider(row, enabled)
    assert row.user_id is not None
    seed_user = row.user_id.strip()

    def open_field(value: str | None, name: str) -> tuple[str | None, bool]:
        return _open(
            cipher,
            value,
            name,
            seed_user=seed_user,
            user_id=user_id,
            provider=provider,
            accept_plaintext=accept_plaintext,
        )

    access, access_plain = open_field(row.access_token, "access_token")
    if access is None:
        raise RowProblem("access_token is empty")
    refresh, refresh_plain = open_field(row.refresh_token, "refresh_token")
    dropped = refresh is not None and refresh == access
    if dropped:
        # The seed's Canvas rows put the personal token in both columns (refresh_token was
        # NOT NULL); sending it to a token endpoint as a refresh token would be wrong.
        refresh = None
    try:
        return Converted(
            row=row,
            user_id=user_id,
            provider=provider,
            access_token=cipher.encrypt(
                access, user_id=user_id, provider=provider, field="access_token"
            ),
            refresh_token=cipher.encrypt(
                refresh, user_id=user_id, provider=provider, field="refresh_token"
            )
            if refresh is not None
            else None,
            from_plaintext=access_plain or refresh_plain,
            dropped_refresh=dropped,
        )
    except ValueError:
        raise RowProblem("a token is longer than PulsePlan stores") from None
