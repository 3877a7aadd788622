"""The current scheme: round trips, context binding, tampering, truncation, unknown versions,
malformed input, nonces and the HKDF primitive. Every failure is a typed DecryptionError whose
message carries neither the ciphertext nor the plaintext."""

from __future__ import annotations

import string

import pytest
from hypothesis import given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st

from pulseplan.crypto import DecryptionError
from pulseplan.crypto import MalformedCiphertext
from pulseplan.crypto import TamperedCiphertext
from pulseplan.crypto import TokenCipher
from pulseplan.crypto import UnknownKeyVersion
from pulseplan.crypto import generate_key
from pulseplan.crypto import load_keyring
from pulseplan.crypto.config import KeyConfig
from pulseplan.crypto.current import hkdf_sha256
from pulseplan.crypto.current import length_prefixed
from pulseplan.crypto.envelope import MAX_PLAINTEXT_BYTES

USER = "3f2a8c1e-5b7d-4e9a-8c6f-1a2b3c4d5e6f"
OTHER_USER = "9b1c2d3e-4f5a-4b6c-8d7e-0f1a2b3c4d5e"
TOKEN = "CANARY-RT-1//0gLx-refresh-token-value"
CONTEXT = {"user_id": USER, "provider": "google", "field": "refresh_token"}
KEY = generate_key()
CIPHER = TokenCipher(load_keyring(KeyConfig(key=KEY)))
HEX = set(string.hexdigits.lower())


def assert_clean(error: DecryptionError, *secrets: str) -> None:
    """No token material in the message or repr (it ends up in logs and test output)."""
    text = str(error) + repr(error)
    for secret in secrets:
        for part in secret.split(":"):
            if len(part) >= 8:
                assert part not in text


@hypothesis_settings(max_examples=200, deadline=None)
@given(
    plaintext=st.text(min_size=1, max_size=2000),
    user_id=st.text(min_size=1, max_size=40),
    provider=st.text(min_size=1, max_size=20),
    field=st.text(min_size=1, max_size=20),
)
def test_round_trip_of_arbitrary_text(
    plaintext: str, user_id: str, provider: str, field: str
) -> None:
    stored = CIPHER.encrypt(plaintext, user_id=user_id, provider=provider, field=field)
    assert stored.startswith("v1:")
    assert CIPHER.decrypt(stored, user_id=user_id, provider=provider, field=field) == plaintext


def test_stored_form_is_versioned_lowercase_hex_with_12_byte_nonce_and_full_tag() -> None:
    stored = CIPHER.encrypt(TOKEN, **CONTEXT)
    version, iv, tag, ct = stored.split(":")
    assert version == "v1"
    assert len(iv) == 24
    assert len(tag) == 32
    assert len(ct) == 2 * len(TOKEN.encode())
    assert set(iv + tag + ct) <= HEX
    assert TOKEN not in stored


def test_largest_token_round_trips_and_larger_is_refused() -> None:
    big = "x" * MAX_PLAINTEXT_BYTES
    assert CIPHER.decrypt(CIPHER.encrypt(big, **CONTEXT), **CONTEXT) == big
    with pytest.raises(ValueError, match="longer than"):
        CIPHER.encrypt(big + "x", **CONTEXT)


@pytest.mark.parametrize(
    "moved",
    [
        {**CONTEXT, "user_id": OTHER_USER},
        {**CONTEXT, "provider": "microsoft"},
        {**CONTEXT, "field": "access_token"},
        {**CONTEXT, "user_id": USER.upper()},
    ],
    ids=["other-user", "other-provider", "other-field", "user-id-case"],
)
def test_a_moved_ciphertext_fails(moved: dict[str, str]) -> None:
    stored = CIPHER.encrypt(TOKEN, **CONTEXT)
    with pytest.raises(TamperedCiphertext) as excinfo:
        CIPHER.decrypt(stored, **moved)
    assert_clean(excinfo.value, stored, TOKEN)


def test_a_ciphertext_relabelled_to_another_version_of_the_same_key_fails() -> None:
    # Even an operator who reuses key bytes under two versions gets no cross-version reads:
    # the version is in both the HKDF info and the associated data.
    cipher = TokenCipher(load_keyring(KeyConfig(keys=f"v1:{KEY},v2:{KEY}", primary=1)))
    stored = cipher.encrypt(TOKEN, **CONTEXT)
    with pytest.raises(TamperedCiphertext):
        cipher.decrypt("v2" + stored[2:], **CONTEXT)


def test_context_values_with_separators_cannot_be_confused() -> None:
    stored = CIPHER.encrypt(TOKEN, user_id="a", provider="b:c", field="d")
    with pytest.raises(TamperedCiphertext):
        CIPHER.decrypt(stored, user_id="a:b", provider="c", field="d")


@given(
    st.lists(st.text(max_size=6), min_size=1, max_size=4),
    st.lists(st.text(max_size=6), min_size=1, max_size=4),
)
def test_context_encoding_is_canonical(first: list[str], second: list[str]) -> None:
    assert (length_prefixed(*first) == length_prefixed(*second)) == (first == second)


def test_every_single_bit_flip_fails_with_a_typed_error() -> None:
    stored = CIPHER.encrypt(TOKEN, **CONTEXT)
    iv_start = stored.index(":") + 1
    for i, char in enumerate(stored):
        for bit in range(8):
            flipped_char = chr(ord(char) ^ (1 << bit))
            flipped = stored[:i] + flipped_char + stored[i + 1 :]
            with pytest.raises(DecryptionError) as excinfo:
                CIPHER.decrypt(flipped, **CONTEXT)
            error = excinfo.value
            if i >= iv_start and char in HEX and flipped_char in HEX:
                # Still well-formed hex in the IV, tag or ciphertext: GCM must catch it.
                assert type(error) is TamperedCiphertext
            elif i == 1 and flipped_char in "23456789":
                assert type(error) is UnknownKeyVersion
            else:
                assert type(error) is MalformedCiphertext, (i, bit)
            assert_clean(error, stored, TOKEN)


def test_truncation_at_every_length_fails() -> None:
    stored = CIPHER.encrypt(TOKEN, **CONTEXT)
    for length in range(len(stored)):
        with pytest.raises((MalformedCiphertext, TamperedCiphertext)) as excinfo:
            CIPHER.decrypt(stored[:length], **CONTEXT)
        assert_clean(excinfo.value, stored, TOKEN)


def test_short_tags_are_refused_before_the_cipher_runs() -> None:
    version, iv, tag, ct = CIPHER.encrypt(TOKEN, **CONTEXT).split(":")
    for cut in range(2, 32, 2):
        with pytest.raises(MalformedCiphertext):
            CIPHER.decrypt(f"{version}:{iv}:{tag[:-cut]}:{ct}", **CONTEXT)


def test_unknown_version_is_an_explicit_error() -> None:
    stored = CIPHER.encrypt(TOKEN, **CONTEXT)
    with pytest.raises(UnknownKeyVersion) as excinfo:
        CIPHER.decrypt("v9" + stored[2:], **CONTEXT)
    assert excinfo.value.version == 9
    assert excinfo.value.kind == "unknown_key_version"
    assert_clean(excinfo.value, stored, TOKEN)


def _malformed_cases() -> list[object]:
    stored = CIPHER.encrypt(TOKEN, **CONTEXT)
    version, iv, tag, ct = stored.split(":")
    return [
        "",
        None,
        b"v1:00",
        TOKEN,  # a bare plaintext token, as the seed's Node backend stored on errors
        "ya29.a0AfH6SMB",
        "v1:",
        "v1:::",
        f"{version}:{iv}:{tag}:",  # empty ciphertext
        f"v01:{iv}:{tag}:{ct}",  # leading zero
        f"V1:{iv}:{tag}:{ct}",
        f"v0:{iv}:{tag}:{ct}",
        f"v-1:{iv}:{tag}:{ct}",
        f"{version}:{iv.upper()}:{tag}:{ct}",
        f"{version}:{iv}:{tag}:{ct} ",
        f" {stored}",
        f"{stored}\n",
        f"{version}:{iv}:{tag}:{ct}:00",
        f"{version}:{iv[:-1]}:{tag}:{ct}",  # odd hex length
        f"{version}:{iv[:8]}:{tag}:{ct}",  # 4-byte IV
        f"{version}:{iv}00:{tag}:{ct}",  # 13-byte IV under a current-scheme key
        f"{version}:{iv}:{tag}00:{ct}",  # 17-byte tag
        f"{version}:{iv}:{tag[:30]}:{ct}",  # 15-byte tag
        f"{version}:{iv[:4]} {iv[5:]}:{tag}:{ct}",
        f"{version}:{iv}:{tag}:{ct}".replace(":", ";"),
        f"{version}:{iv}:{tag}:" + "00" * (MAX_PLAINTEXT_BYTES + 200),
    ]


MALFORMED = _malformed_cases()


@pytest.mark.parametrize("value", MALFORMED, ids=[f"case{i}" for i in range(len(MALFORMED))])
def test_malformed_values_fail_with_malformed_ciphertext(value: object) -> None:
    with pytest.raises(MalformedCiphertext) as excinfo:
        CIPHER.decrypt(value, **CONTEXT)  # type: ignore[arg-type]
    assert isinstance(excinfo.value, DecryptionError)
    assert TOKEN not in str(excinfo.value)


def test_empty_values_are_never_passed_through() -> None:
    with pytest.raises(ValueError, match="empty"):
        CIPHER.encrypt("", **CONTEXT)
    with pytest.raises(ValueError, match="empty"):
        CIPHER.encrypt(None, **CONTEXT)  # type: ignore[arg-type]
    for empty in ("", None):
        with pytest.raises(MalformedCiphertext):
            CIPHER.decrypt(empty, **CONTEXT)  # type: ignore[arg-type]


@pytest.mark.parametrize("name", ["user_id", "provider", "field"])
def test_empty_context_is_a_caller_error(name: str) -> None:
    stored = CIPHER.encrypt(TOKEN, **CONTEXT)
    with pytest.raises(ValueError, match=name):
        CIPHER.encrypt(TOKEN, **{**CONTEXT, name: ""})
    with pytest.raises(ValueError, match=name):
        CIPHER.decrypt(stored, **{**CONTEXT, name: ""})


def test_text_that_is_not_unicode_is_refused() -> None:
    with pytest.raises(UnicodeEncodeError):  # a lone surrogate; a ValueError subclass
        CIPHER.encrypt("token\ud800", **CONTEXT)


def test_nonces_and_ciphertexts_are_unique() -> None:
    count = 50_000
    stored = [CIPHER.encrypt(TOKEN, **CONTEXT) for _ in range(count)]
    assert len({s.split(":")[1] for s in stored}) == count
    assert len(set(stored)) == count


def test_hkdf_matches_rfc5869_test_case_1() -> None:
    okm = hkdf_sha256(
        bytes([0x0B] * 22),
        salt=bytes(range(0x0D)),
        info=bytes(range(0xF0, 0xFA)),
        length=42,
    )
    assert okm.hex() == (
        "3cb25f25faacd57a90434f64d0362f2a2d2d0a90cf1a5a4c5db02d56ecc4c5bf34007208d5b887185865"
    )


def test_per_user_keys_are_derived_once_and_differ_per_user() -> None:
    cipher = TokenCipher(load_keyring(KeyConfig(key=generate_key())))
    for _ in range(100):
        for user in (USER, OTHER_USER):
            for field in ("access_token", "refresh_token"):
                stored = cipher.encrypt(TOKEN, user_id=user, provider="google", field=field)
                cipher.decrypt(stored, user_id=user, provider="google", field=field)
    assert cipher.derivations.hkdf == 2
    assert cipher.derivations.pbkdf2 == 0


def test_cache_is_bounded() -> None:
    cipher = TokenCipher(load_keyring(KeyConfig(key=generate_key())), cache_size=2)
    for user in ("a", "b", "c", "a"):
        cipher.encrypt(TOKEN, user_id=user, provider="google", field="access_token")
    # "a" was evicted by "c" and derived again: bounded memory, correct results.
    assert cipher.derivations.hkdf == 4


def test_health_check_round_trips_and_nothing_leaks_in_reprs() -> None:
    CIPHER.health_check()
    text = repr(CIPHER) + repr(CIPHER.ring) + repr(CIPHER.ring.primary)
    assert "v1" in repr(CIPHER)
    assert KEY not in text
    assert CIPHER.ring.primary.master.hex() not in text
    assert "master" not in repr(CIPHER.ring.primary)
