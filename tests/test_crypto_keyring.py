"""Key ring configuration: the simple case, the ring, seed entries, one clear line per problem
(never key material), production hygiene through Settings.problems(), and `keys generate`."""

from __future__ import annotations

import base64
import secrets
from collections.abc import Callable
from pathlib import Path

import pytest
from click.testing import CliRunner

from pulseplan.cli import main
from pulseplan.crypto import TokenCipher
from pulseplan.crypto import generate_key
from pulseplan.crypto import load_keyring
from pulseplan.crypto.config import KeyConfig
from pulseplan.crypto.config import decode_key
from pulseplan.crypto.config import parse_keyring
from pulseplan.crypto.keyring import CurrentKey
from pulseplan.crypto.keyring import SeedKey
from pulseplan.devsecrets import GENERATORS
from pulseplan.errors import ConfigurationError
from pulseplan.settings import Settings
from tests.crypto_seed import V1
from tests.crypto_seed import V1_KEY
from tests.crypto_seed import V1_PLAINTEXT
from tests.crypto_seed import V1_USER

K1, K2, K3 = generate_key(), generate_key(), generate_key()
RAW = secrets.token_bytes(32)


def problems_of(config: KeyConfig) -> list[str]:
    ring, problems = parse_keyring(config)
    assert ring is None
    assert problems
    return problems


def test_the_simple_case_is_version_1_and_primary() -> None:
    ring = load_keyring(KeyConfig(key=K1))
    assert ring.primary_version == 1
    assert isinstance(ring.primary, CurrentKey)
    assert ring.primary.master == base64.urlsafe_b64decode(K1)


@pytest.mark.parametrize(
    "text",
    [
        base64.urlsafe_b64encode(RAW).decode(),
        base64.urlsafe_b64encode(RAW).decode().rstrip("="),
        base64.b64encode(RAW).decode(),
        base64.b64encode(RAW).decode().rstrip("="),
        f"  {base64.b64encode(RAW).decode()}\n",
    ],
    ids=["urlsafe", "urlsafe-unpadded", "standard", "standard-unpadded", "whitespace"],
)
def test_key_formats(text: str) -> None:
    assert decode_key(text) == RAW
    assert load_keyring(KeyConfig(key=text)).primary.master == RAW


def test_development_secret_generator_output_is_a_valid_key() -> None:
    generated = GENERATORS["TOKEN_ENCRYPTION_KEY"]()
    assert len(load_keyring(KeyConfig(key=generated)).primary.master) == 32


def test_a_ring_with_a_primary_and_a_seed_entry() -> None:
    config = KeyConfig(
        keys=f"v2:{K2}, v3:{K3}\n",
        primary=3,
        seed_key=V1_KEY,
        seed_encoding="utf8",
        node_key=V1_KEY,
    )
    ring = load_keyring(config)
    assert ring.primary_version == 3
    assert sorted(ring.entries) == [1, 2, 3]
    assert isinstance(ring.entries[1], SeedKey)
    assert ring.node is not None
    assert ring.describe() == [
        "v1: seed-compatible (PBKDF2, utf8 master), read-only",
        "v2: current scheme (HKDF-SHA256), decrypt-only",
        "v3: current scheme (HKDF-SHA256), primary",
        "unversioned: seed Node.js format (scrypt), read-only",
    ]
    text = repr(ring) + repr(config) + "".join(ring.describe())
    for secret in (K2, K3, V1_KEY):
        assert secret not in text


@pytest.mark.parametrize("primary", [2, "2", "v2", " v2 "])
def test_primary_spellings(primary: int | str) -> None:
    assert load_keyring(KeyConfig(keys=f"v1:{K1},v2:{K2}", primary=primary)).primary_version == 2


def test_an_unparsable_primary_is_reported_once() -> None:
    assert len(problems_of(KeyConfig(keys=f"v1:{K1},v2:{K2}", primary="x"))) == 1


def test_keys_replaces_the_simple_key() -> None:
    ring = load_keyring(KeyConfig(key=K1, keys=f"v7:{K2}"))
    assert list(ring.entries) == [7]


@pytest.mark.parametrize(
    ("config", "expected"),
    [
        (KeyConfig(), "TOKEN_ENCRYPTION_KEY is not set"),
        (KeyConfig(key="not base64!"), "TOKEN_ENCRYPTION_KEY is not valid base64"),
        (KeyConfig(key=V1_KEY), "TOKEN_ENCRYPTION_KEY decodes to 24 bytes"),
        (
            KeyConfig(key=base64.b64encode(bytes(16)).decode()),
            "TOKEN_ENCRYPTION_KEY decodes to 16 bytes; current-scheme keys need at least 32",
        ),
        (KeyConfig(keys=f"v1:{K1},2:{K2}"), "TOKEN_ENCRYPTION_KEYS entry 2 is not of the form"),
        (KeyConfig(keys=f"v1:{K1},v0:{K2}"), "TOKEN_ENCRYPTION_KEYS entry 2 is not of the form"),
        (KeyConfig(keys=f"v1:{K1},v2:@@@"), "TOKEN_ENCRYPTION_KEYS entry 2 (v2) is not valid"),
        (KeyConfig(keys=f"v1:{K1},v1:{K2}"), "key version 1 is configured twice"),
        (
            KeyConfig(key=K1, seed_key=V1_KEY, seed_encoding="utf8"),
            "key version 1 is configured twice (TOKEN_ENCRYPTION_KEY and "
            "TOKEN_ENCRYPTION_SEED_VERSIONS)",
        ),
        (KeyConfig(keys=f"v1:{K1},v2:{K2}"), "TOKEN_ENCRYPTION_PRIMARY must be set"),
        (KeyConfig(keys=f"v1:{K1}", primary=4), "TOKEN_ENCRYPTION_PRIMARY=4 is not a version"),
        (
            KeyConfig(keys=f"v1:{K1},v2:{K2}", primary="second"),
            "TOKEN_ENCRYPTION_PRIMARY must be a key version such as 2",
        ),
        (
            KeyConfig(key=K1, seed_encoding="utf8"),
            "TOKEN_ENCRYPTION_SEED_ENCODING is set but TOKEN_ENCRYPTION_SEED_KEY is not",
        ),
        (
            KeyConfig(keys=f"v2:{K2}", primary=1, seed_key=V1_KEY, seed_encoding="utf8"),
            "TOKEN_ENCRYPTION_PRIMARY=1 names a seed-compatible key, which is read-only",
        ),
        (
            KeyConfig(keys=f"v2:{K2}", seed_key=V1_KEY),
            "TOKEN_ENCRYPTION_SEED_ENCODING must be utf8, base64 or both",
        ),
        (
            KeyConfig(keys=f"v2:{K2}", seed_key=V1_KEY, seed_encoding="latin1"),
            "TOKEN_ENCRYPTION_SEED_ENCODING must be utf8, base64 or both",
        ),
        (
            KeyConfig(keys=f"v2:{K2}", seed_key=V1_KEY, seed_encoding="utf8", seed_versions="x"),
            "TOKEN_ENCRYPTION_SEED_VERSIONS must list versions",
        ),
    ],
)
def test_each_problem_is_one_clear_line_without_key_material(
    config: KeyConfig, expected: str
) -> None:
    problems = problems_of(config)
    assert any(line.startswith(expected) for line in problems), problems
    for line in problems:
        assert "\n" not in line
        for secret in (K1, K2, V1_KEY, "not base64!", "@@@"):
            assert secret not in line


def test_every_problem_is_reported_at_once() -> None:
    problems = problems_of(
        KeyConfig(keys=f"v1:short,v1:{K1},bogus", seed_key=V1_KEY, seed_encoding="nope")
    )
    assert len(problems) == 4, problems


def test_load_keyring_raises_configuration_error() -> None:
    with pytest.raises(ConfigurationError) as excinfo:
        load_keyring(KeyConfig(key="short"))
    assert len(excinfo.value.problems) == 1
    assert "short" not in str(excinfo.value)


# --------------------------------------------------------------------------- settings


def test_cipher_from_settings_reads_every_key_setting(
    make_settings: Callable[..., Settings],
) -> None:
    settings = make_settings(
        TOKEN_ENCRYPTION_KEYS=f"v2:{K2},v3:{K3}",
        TOKEN_ENCRYPTION_PRIMARY="2",
        TOKEN_ENCRYPTION_SEED_KEY=V1_KEY,
        TOKEN_ENCRYPTION_SEED_ENCODING="utf8",
        TOKEN_ENCRYPTION_SEED_VERSIONS="1",
        TOKEN_ENCRYPTION_NODE_KEY=V1_KEY,
    )
    cipher = TokenCipher.from_settings(settings)
    assert cipher.primary_version == 2
    plaintext = cipher.decrypt(V1, user_id=V1_USER, provider="google", field="access_token")
    assert plaintext == V1_PLAINTEXT
    text = repr(settings) + str(settings)
    for secret in (K2, K3, V1_KEY):
        assert secret not in text


def test_cipher_from_settings_refuses_a_bad_ring(make_settings: Callable[..., Settings]) -> None:
    settings = make_settings(TOKEN_ENCRYPTION_KEY="c2hvcnQ=")
    with pytest.raises(ConfigurationError, match="decodes to 5 bytes"):
        TokenCipher.from_settings(settings)


def production(tmp_path: Path, **env: str) -> list[str]:
    base = {
        "PULSEPLAN_ENV": "production",
        "PULSEPLAN_DATA_DIR": str(tmp_path / "data"),
        "SECRET_KEY": "s3cr3t-K3y-with-enough-entropy-0123456789abcdef",
        "SUPABASE_JWT_SECRET": "jwt-S3cret-with-enough-entropy-0123456789abcdef",
        "PUBLIC_BASE_URL": "https://vault.example.com",
    }
    return Settings.load({**base, **env}, env_file=None).problems()


def test_production_accepts_a_good_ring(tmp_path: Path) -> None:
    assert production(tmp_path, TOKEN_ENCRYPTION_KEY=K1) == []
    assert (
        production(tmp_path, TOKEN_ENCRYPTION_KEYS=f"v1:{K1},v2:{K2}", TOKEN_ENCRYPTION_PRIMARY="2")
        == []
    )


def test_production_refuses_bad_and_weak_keys(tmp_path: Path) -> None:
    assert production(tmp_path, TOKEN_ENCRYPTION_KEY="too-short") == [
        "TOKEN_ENCRYPTION_KEY is not valid base64 (generate one with `pulseplan keys generate`; "
        "a seed backend key belongs in TOKEN_ENCRYPTION_SEED_KEY, see docs/keys.md)"
    ]
    zeros = base64.b64encode(bytes(32)).decode()
    problems = production(tmp_path, TOKEN_ENCRYPTION_KEY=zeros)
    assert problems == [
        "TOKEN_ENCRYPTION_KEY has too little variety to be random "
        "(generate one with `pulseplan keys generate`)"
    ]
    assert production(tmp_path) == ["TOKEN_ENCRYPTION_KEY is not set"]


def test_production_refuses_both_the_simple_key_and_a_ring(tmp_path: Path) -> None:
    problems = production(tmp_path, TOKEN_ENCRYPTION_KEY=K1, TOKEN_ENCRYPTION_KEYS=f"v1:{K1}")
    assert len(problems) == 1
    assert problems[0].startswith("TOKEN_ENCRYPTION_KEY and TOKEN_ENCRYPTION_KEYS are both set")


# --------------------------------------------------------------------------- CLI


def test_keys_generate_prints_a_32_byte_key_and_a_hint() -> None:
    runner = CliRunner()
    first = runner.invoke(main, ["keys", "generate"])
    second = runner.invoke(main, ["keys", "generate"])
    assert first.exit_code == 0, first.output
    key = first.stdout.strip()
    assert len(base64.urlsafe_b64decode(key)) == 32
    assert first.stdout == key + "\n"  # only the key on stdout: `$(pulseplan keys generate)`
    assert "TOKEN_ENCRYPTION_KEY" in first.stderr
    assert key not in first.stderr
    assert second.stdout.strip() != key
    assert load_keyring(KeyConfig(key=key)).primary.master == base64.urlsafe_b64decode(key)
