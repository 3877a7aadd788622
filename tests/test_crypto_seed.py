"""Seed compatibility: the vectors of seed-system.md §1.4, the master-key encoding choice, the
Node.js format, and PBKDF2 running once per (user, version) however often rows are read."""

from __future__ import annotations

import threading

import pytest

from pulseplan.crypto import MalformedCiphertext
from pulseplan.crypto import TamperedCiphertext
from pulseplan.crypto import TokenCipher
from pulseplan.crypto import UnknownKeyVersion
from pulseplan.crypto import generate_key
from pulseplan.crypto import load_keyring
from pulseplan.crypto.config import KeyConfig
from pulseplan.crypto.legacy import node_key
from pulseplan.crypto.legacy import seed_user_key
from tests.crypto_seed import N1
from tests.crypto_seed import V1
from tests.crypto_seed import V1_KEY
from tests.crypto_seed import V1_PLAINTEXT
from tests.crypto_seed import V1_USER
from tests.crypto_seed import V1_USER_KEY
from tests.crypto_seed import node_encrypt
from tests.crypto_seed import seed_encrypt

PROVIDERS = ("google", "microsoft", "canvas", "notion")
FIELDS = ("access_token", "refresh_token")
# 64 hex characters: also valid base64 (48 bytes), the case seed weakness §8.1.2 describes.
HEX_KEY = "00112233445566778899aabbccddeeff0123456789abcdeffedcba9876543210"


def seed_cipher(
    seed_key: str = V1_KEY, encoding: str = "utf8", *, node_key: str | None = None
) -> TokenCipher:
    config = KeyConfig(
        keys=f"v2:{generate_key()}", seed_key=seed_key, seed_encoding=encoding, node_key=node_key
    )
    return TokenCipher(load_keyring(config))


def read(cipher: TokenCipher, ciphertext: str, user_id: str = V1_USER) -> str:
    return cipher.decrypt(ciphertext, user_id=user_id, provider="google", field="access_token")


def test_v1_vector_decrypts_through_the_utf8_encoding() -> None:
    assert seed_user_key(V1_KEY.encode(), V1_USER, 1).hex() == V1_USER_KEY
    cipher = seed_cipher(encoding="utf8")
    assert read(cipher, V1) == V1_PLAINTEXT
    assert cipher.scheme_of(V1) == "seed"


def test_v1_vector_also_decrypts_under_base64_because_its_key_is_not_base64() -> None:
    # The HEAD code fell back to UTF-8 when b64decode raised, as it does for this key.
    assert read(seed_cipher(encoding="base64"), V1) == V1_PLAINTEXT
    assert read(seed_cipher(encoding="both"), V1) == V1_PLAINTEXT


@pytest.mark.parametrize("written_with", ["utf8", "base64"])
def test_the_encoding_choice_matters_for_a_base64_valid_key(written_with: str) -> None:
    row = seed_encrypt(HEX_KEY, V1_USER, V1_PLAINTEXT, encoding=written_with)
    other = "base64" if written_with == "utf8" else "utf8"
    assert read(seed_cipher(HEX_KEY, written_with), row) == V1_PLAINTEXT
    with pytest.raises(TamperedCiphertext) as excinfo:
        read(seed_cipher(HEX_KEY, other), row)
    assert HEX_KEY not in str(excinfo.value)
    # "both" reads rows from before and after the seed changed encodings.
    assert read(seed_cipher(HEX_KEY, "both"), row) == V1_PLAINTEXT


def test_n1_node_vector_decrypts_with_the_node_key() -> None:
    assert node_key(V1_KEY.encode()).hex().startswith("b03a7308")
    cipher = seed_cipher(node_key=V1_KEY)
    assert read(cipher, N1) == V1_PLAINTEXT
    assert cipher.scheme_of(N1) == "node"
    # The Node key is the same for every user: any user id reads it.
    assert read(cipher, N1, user_id="someone-else") == V1_PLAINTEXT


def test_node_rows_need_the_node_key_and_never_fall_back() -> None:
    with pytest.raises(UnknownKeyVersion, match="TOKEN_ENCRYPTION_NODE_KEY is not set"):
        read(seed_cipher(), N1)
    with pytest.raises(TamperedCiphertext):
        read(seed_cipher(node_key="another-node-key"), N1)


def test_seed_rows_are_bound_to_their_user_and_versions_are_not_interchangeable() -> None:
    cipher = seed_cipher()
    with pytest.raises(TamperedCiphertext):
        read(cipher, V1, user_id="another-user")
    # v1 is the seed entry here and v2 the new-scheme key: the seed row relabelled v2 is
    # refused before any key is tried (its 16-byte IV cannot be a current-scheme IV).
    with pytest.raises(MalformedCiphertext, match="current-scheme"):
        read(cipher, "v2" + V1[2:])
    with pytest.raises(UnknownKeyVersion):
        read(cipher, "v3" + V1[2:])


def test_seed_rows_under_several_versions() -> None:
    rows = {v: seed_encrypt(V1_KEY, V1_USER, f"token-{v}", version=v) for v in (1, 2)}
    cipher = TokenCipher(
        load_keyring(
            KeyConfig(
                keys=f"v3:{generate_key()}",
                seed_key=V1_KEY,
                seed_encoding="utf8",
                seed_versions="1,2",
            )
        )
    )
    assert {v: read(cipher, row) for v, row in rows.items()} == {1: "token-1", 2: "token-2"}
    with pytest.raises(TamperedCiphertext):
        read(cipher, "v2" + rows[1][2:])  # the version is part of the PBKDF2 salt


def test_a_four_connection_user_costs_pbkdf2_only_on_first_use() -> None:
    users = ["user-a", "user-b"]
    rows = {
        (user, provider, field): seed_encrypt(V1_KEY, user, f"{user}/{provider}/{field}")
        for user in users
        for provider in PROVIDERS
        for field in FIELDS
    }
    cipher = seed_cipher()
    assert cipher.derivations.pbkdf2 == 0
    for _ in range(100):
        for (user, provider, field), row in rows.items():
            assert (
                cipher.decrypt(row, user_id=user, provider=provider, field=field)
                == f"{user}/{provider}/{field}"
            )
    # 1600 reads, 2 users x 1 version: exactly 2 PBKDF2 runs.
    assert cipher.derivations.pbkdf2 == len(users)
    assert cipher.derivations.hkdf == 0


def test_concurrent_cold_reads_derive_once() -> None:
    cipher = seed_cipher(node_key=V1_KEY)
    barrier = threading.Barrier(8)
    results: list[str] = []

    def worker() -> None:
        barrier.wait()
        results.append(read(cipher, V1))
        results.append(read(cipher, N1))

    threads = [threading.Thread(target=worker) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert results == [V1_PLAINTEXT] * 16
    assert cipher.derivations.pbkdf2 == 1
    assert cipher.derivations.scrypt == 1


def test_every_bit_flip_and_truncation_of_seed_rows_fails() -> None:
    cipher = seed_cipher(node_key=V1_KEY)
    for row in (V1, N1):
        for i in range(len(row)):
            for bit in range(8):
                flipped = row[:i] + chr(ord(row[i]) ^ (1 << bit)) + row[i + 1 :]
                with pytest.raises((MalformedCiphertext, UnknownKeyVersion, TamperedCiphertext)):
                    read(cipher, flipped)
        for length in range(len(row)):
            with pytest.raises((MalformedCiphertext, TamperedCiphertext)):
                read(cipher, row[:length])
    assert cipher.derivations.pbkdf2 == 1  # no version in the ring was derived twice


def test_a_node_row_with_an_unusual_iv_length_is_read() -> None:
    row = node_encrypt("k", "token", iv=bytes(12))
    assert read(seed_cipher(node_key="k"), row) == "token"
    row = seed_encrypt(V1_KEY, V1_USER, "token", iv=bytes(32))
    assert read(seed_cipher(), row) == "token"
