"""Rotation at the cipher level: what `pulseplan keys rotate` / `import-legacy` build on.

A dict stands in for the connections table; the storage-backed end-to-end test belongs with the
CLI commands."""

from __future__ import annotations

import pytest

from pulseplan.crypto import TamperedCiphertext
from pulseplan.crypto import TokenCipher
from pulseplan.crypto import UnknownKeyVersion
from pulseplan.crypto import generate_key
from pulseplan.crypto import load_keyring
from pulseplan.crypto.config import KeyConfig
from tests.crypto_seed import V1_KEY
from tests.crypto_seed import node_encrypt
from tests.crypto_seed import seed_encrypt

K1, K2 = generate_key(), generate_key()
USERS = [f"user-{i}" for i in range(5)]
PROVIDERS = ("google", "microsoft", "canvas", "notion")
FIELDS = ("access_token", "refresh_token")
Row = tuple[str, str, str]


def cipher(**config: object) -> TokenCipher:
    return TokenCipher(load_keyring(KeyConfig(**config)))  # type: ignore[arg-type]


def plaintext(row: Row) -> str:
    return "token/" + "/".join(row)


def context(row: Row) -> dict[str, str]:
    user_id, provider, field = row
    return {"user_id": user_id, "provider": provider, "field": field}


def read_all(reader: TokenCipher, table: dict[Row, str]) -> None:
    for row, stored in table.items():
        assert reader.decrypt(stored, **context(row)) == plaintext(row)


def rewrap_pass(writer: TokenCipher, table: dict[Row, str], readers: list[TokenCipher]) -> int:
    """One rotate run: rewrap row by row, checking every reader after each write."""
    changed = 0
    for row in list(table):
        new = writer.rewrap(table[row], **context(row))
        if new is not None:
            table[row] = new
            changed += 1
            for reader in readers:
                read_all(reader, table)
    return changed


def test_rotation_from_key_1_to_key_2() -> None:
    old = cipher(key=K1)
    table = {
        (u, p, f): old.encrypt(plaintext((u, p, f)), **context((u, p, f)))
        for u in USERS
        for p in PROVIDERS
        for f in FIELDS
    }
    assert all(stored.startswith("v1:") for stored in table.values())

    # Stage: every worker learns v2 as decrypt-only; writes stay v1, nothing needs rewrapping.
    staged = cipher(keys=f"v1:{K1},v2:{K2}", primary=1)
    assert staged.primary_version == 1
    assert not any(staged.needs_rewrap(stored) for stored in table.values())
    assert staged.encrypt("x", user_id="u", provider="google", field="access_token")[:3] == "v1:"

    # Promote v2, then rotate while the staged and promoted workers keep reading.
    promoted = cipher(keys=f"v1:{K1},v2:{K2}", primary=2)
    assert all(promoted.needs_rewrap(stored) for stored in table.values())
    assert rewrap_pass(promoted, table, [staged, promoted]) == len(table)
    assert all(stored.startswith("v2:") for stored in table.values())

    # Idempotent: a second run changes nothing.
    before = dict(table)
    assert rewrap_pass(promoted, table, [staged, promoted]) == 0
    assert table == before

    # Retire v1: everything still reads; a straggler v1 row is an explicit error, not garbage.
    retired = cipher(keys=f"v2:{K2}")
    read_all(retired, table)
    straggler = old.encrypt("late", user_id="u", provider="google", field="access_token")
    with pytest.raises(UnknownKeyVersion):
        retired.decrypt(straggler, user_id="u", provider="google", field="access_token")
    # A worker still on the old ring cannot read v2 rows: explicit error, row untouched.
    row = next(iter(table))
    with pytest.raises(UnknownKeyVersion):
        old.decrypt(table[row], **context(row))


def test_a_killed_rotation_resumes() -> None:
    old = cipher(key=K1)
    table = {(u, "google", "access_token"): "" for u in USERS}
    for row in table:
        table[row] = old.encrypt(plaintext(row), **context(row))
    promoted = cipher(keys=f"v1:{K1},v2:{K2}", primary=2)
    first_half = list(table)[:2]
    for row in first_half:  # the first run dies after two rows
        table[row] = promoted.rewrap(table[row], **context(row)) or table[row]
    assert rewrap_pass(promoted, table, [promoted]) == len(table) - 2
    assert rewrap_pass(promoted, table, [promoted]) == 0


def test_importing_seed_rows() -> None:
    table: dict[Row, str] = {}
    for user in USERS[:2]:
        for provider in PROVIDERS:
            for field in FIELDS:
                row = (user, provider, field)
                table[row] = seed_encrypt(V1_KEY, user, plaintext(row))
    node_row = ("user-9", "google", "access_token")
    table[node_row] = node_encrypt(V1_KEY, plaintext(node_row))
    importer = cipher(keys=f"v2:{K2}", seed_key=V1_KEY, seed_encoding="utf8", node_key=V1_KEY)
    assert {importer.scheme_of(s) for s in table.values()} == {"seed", "node"}
    assert rewrap_pass(importer, table, [importer]) == len(table)
    assert {importer.scheme_of(s) for s in table.values()} == {"hkdf"}
    assert rewrap_pass(importer, table, [importer]) == 0
    assert importer.derivations.pbkdf2 == 2
    assert importer.derivations.scrypt == 1
    # Once imported the rows need no seed key, and they are now bound to provider and field.
    read_all(cipher(keys=f"v2:{K2}"), table)
    row = (USERS[0], "google", "refresh_token")
    with pytest.raises(TamperedCiphertext):
        importer.decrypt(table[row], **{**context(row), "field": "access_token"})


def test_rewrap_never_rewrites_what_it_cannot_read() -> None:
    promoted = cipher(keys=f"v1:{K1},v2:{K2}", primary=2)
    stored = cipher(key=K1).encrypt("t", user_id="a", provider="google", field="access_token")
    with pytest.raises(TamperedCiphertext):
        promoted.rewrap(stored, user_id="b", provider="google", field="access_token")
    with pytest.raises(UnknownKeyVersion):
        promoted.rewrap("v5" + stored[2:], user_id="a", provider="google", field="access_token")
