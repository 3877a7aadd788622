"""Configuration: loading, development secrets, production refusals, provider settings."""

from __future__ import annotations

import os
import stat
from collections.abc import Callable
from pathlib import Path

import pytest
from pydantic import ValidationError

from pulseplan.app import create_app
from pulseplan.errors import ConfigurationError
from pulseplan.provider_config import resolve
from pulseplan.settings import Settings
from tests.plugin_kit import spec

STRONG = {
    "TOKEN_ENCRYPTION_KEY": "Zm9vYmFyYmF6cXV4MTIzNDU2Nzg5MGFiY2RlZmdoaWprbG1ub3A=",
    "SECRET_KEY": "s3cr3t-K3y-with-enough-entropy-0123456789abcdef",
    "SUPABASE_JWT_SECRET": "jwt-S3cret-with-enough-entropy-0123456789abcdef",
    "PUBLIC_BASE_URL": "https://vault.example.com",
}


def load(env: dict[str, str], tmp_path: Path) -> Settings:
    return Settings.load({"PULSEPLAN_DATA_DIR": str(tmp_path / "data"), **env}, env_file=None)


def test_production_refuses_missing_secrets_one_line_each(tmp_path: Path) -> None:
    settings = load({"PULSEPLAN_ENV": "production"}, tmp_path)
    with pytest.raises(ConfigurationError) as excinfo:
        create_app(settings)
    problems = excinfo.value.problems
    assert "TOKEN_ENCRYPTION_KEY is not set" in problems
    assert "SECRET_KEY is not set" in problems
    assert any(p.startswith("SUPABASE_URL (for JWKS) or SUPABASE_JWT_SECRET") for p in problems)
    assert "PUBLIC_BASE_URL must be an https:// URL in production" in problems
    # Production never generates development secrets.
    assert not (tmp_path / "data" / "dev-secrets.env").exists()


@pytest.mark.parametrize(
    ("name", "value", "reason"),
    [
        ("SECRET_KEY", "change-me", "well-known placeholder"),
        ("SECRET_KEY", "short-but-random-Q1", "too short"),
        ("SUPABASE_JWT_SECRET", "a" * 40, "too little variety"),
    ],
)
def test_production_refuses_weak_secrets(
    tmp_path: Path, name: str, value: str, reason: str
) -> None:
    settings = load({**STRONG, "PULSEPLAN_ENV": "production", name: value}, tmp_path)
    problems = settings.problems()
    assert len(problems) == 1
    assert problems[0].startswith(name)
    assert reason in problems[0]
    assert value not in problems[0]  # the secret itself is never printed


def test_production_with_strong_secrets_has_no_problems(tmp_path: Path) -> None:
    assert load({**STRONG, "PULSEPLAN_ENV": "production"}, tmp_path).problems() == []


def test_production_refuses_enabled_but_unconfigured_providers(tmp_path: Path) -> None:
    settings = load(
        {**STRONG, "PULSEPLAN_ENV": "production", "PULSEPLAN_PROVIDERS": "google"}, tmp_path
    )
    with pytest.raises(ConfigurationError) as excinfo:
        create_app(settings)
    assert excinfo.value.problems == [
        "GOOGLE_CLIENT_ID is not set",
        "GOOGLE_CLIENT_SECRET is not set",
    ]


def test_development_generates_secrets_once_into_a_private_ignored_file(
    tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    first = load({}, tmp_path)
    secrets_file = tmp_path / "data" / "dev-secrets.env"
    assert set(first.generated_secrets) == {
        "TOKEN_ENCRYPTION_KEY",
        "SECRET_KEY",
        "SUPABASE_JWT_SECRET",
    }
    assert stat.S_IMODE(os.stat(secrets_file).st_mode) == 0o600
    assert (tmp_path / "data" / ".gitignore").read_text() == "*\n"
    assert "DEVELOPMENT secrets" in capfd.readouterr().err
    second = load({}, tmp_path)
    assert second.generated_secrets == ()
    assert second.secret("secret_key") == first.secret("secret_key")
    # An explicitly configured secret wins over the generated one.
    third = load({"SECRET_KEY": "mine-" + "x1y2z3" * 8}, tmp_path)
    assert third.secret("secret_key") == "mine-" + "x1y2z3" * 8


def test_env_file_is_read_and_environment_wins(tmp_path: Path) -> None:
    env_file = tmp_path / ".env"
    env_file.write_text("PUBLIC_BASE_URL=https://from-file.example/\nALLOWED_RETURN_URLS=a,b\n")
    settings = Settings.load(
        {
            **{k: v for k, v in STRONG.items() if k != "PUBLIC_BASE_URL"},
            "PULSEPLAN_DATA_DIR": str(tmp_path / "data"),
            "ALLOWED_RETURN_URLS": "https://app.example/done, https://m.example/x",
        },
        env_file=env_file,
    )
    assert settings.public_base_url == "https://from-file.example"
    assert settings.allowed_return_urls == ["https://app.example/done", "https://m.example/x"]


def test_secrets_are_not_in_repr(make_settings: Callable[..., Settings]) -> None:
    settings = make_settings(REDIS_URL="redis://:hunter2-password@127.0.0.1:6379/0")
    text = repr(settings) + str(settings)
    for name in ("token_encryption_key", "secret_key", "supabase_jwt_secret", "redis_url"):
        value = settings.secret(name)
        assert value
        assert value not in text


def test_rate_limiting_defaults_on_only_in_production(tmp_path: Path) -> None:
    assert load({}, tmp_path).rate_limiting is False
    assert load({**STRONG, "PULSEPLAN_ENV": "production"}, tmp_path).rate_limiting is True
    assert load({"ENABLE_RATE_LIMITING": "true"}, tmp_path).rate_limiting is True


def test_provider_settings_from_environment() -> None:
    resolved = resolve(
        spec("acme"),
        {
            "ACME_CLIENT_ID": "cid",
            "ACME_CLIENT_SECRET": "csecret",
            "ACME_SCOPES": "a, b c",
            "ACME_TOKEN_URL": "http://127.0.0.1:9999/token",
        },
        production=False,
    )
    assert resolved.configured
    assert resolved.scopes == ("a", "b", "c")
    assert resolved.token_url == "http://127.0.0.1:9999/token"
    assert resolved.authorize_url == "https://idp.invalid/acme/authorize"
    assert "csecret" not in repr(resolved)


@pytest.mark.parametrize(
    ("url", "production", "ok"),
    [
        ("https://school.instructure.com", True, True),
        ("http://127.0.0.1:8123", False, True),
        ("http://127.0.0.1:8123", True, False),
        ("http://school.instructure.com", False, False),
        ("https://user:pw@school.instructure.com", False, False),
        ("school.instructure.com", False, False),
        ("javascript:alert(1)", False, False),
    ],
)
def test_canvas_base_url_validation(url: str, production: bool, ok: bool) -> None:
    from pulseplan_canvas import SPEC

    resolved = resolve(
        SPEC,
        {"CANVAS_CLIENT_ID": "c", "CANVAS_CLIENT_SECRET": "s", "CANVAS_BASE_URL": url},
        production=production,
    )
    assert resolved.configured is ok, resolved.problems
    if ok:
        assert resolved.token_url == f"{url}/login/oauth2/token"
    else:
        assert resolved.problems[0].startswith("CANVAS_BASE_URL")


def test_microsoft_tenant_fills_the_endpoints() -> None:
    from pulseplan_microsoft import SPEC

    env = {"MICROSOFT_CLIENT_ID": "c", "MICROSOFT_CLIENT_SECRET": "s"}
    assert "/common/oauth2/v2.0/token" in resolve(SPEC, env, production=True).token_url
    env["MICROSOFT_TENANT_ID"] = "contoso.onmicrosoft.com"
    assert "/contoso.onmicrosoft.com/" in resolve(SPEC, env, production=True).authorize_url


def test_the_embedded_database_lives_in_the_data_dir(tmp_path: Path) -> None:
    settings = load({}, tmp_path)
    expected = f"sqlite:///{tmp_path / 'data' / 'pulseplan.db'}"
    assert settings.database_url.get_secret_value() == expected
    explicit = load({"DATABASE_URL": "sqlite:///elsewhere.db"}, tmp_path)
    assert explicit.database_url.get_secret_value() == "sqlite:///elsewhere.db"


def test_a_mistyped_environment_is_refused_before_any_secret_is_written(tmp_path: Path) -> None:
    with pytest.raises(ValidationError) as excinfo:
        load({"PULSEPLAN_ENV": "prod"}, tmp_path)
    assert [e["loc"] for e in excinfo.value.errors()] == [("pulseplan_env",)]
    assert not (tmp_path / "data" / "dev-secrets.env").exists()


def test_a_lock_lease_shorter_than_a_refresh_is_refused_in_every_environment(
    tmp_path: Path,
) -> None:
    # A refresh outliving its lease lets a second worker refresh a rotating grant twice.
    env = {"REFRESH_LOCK_TTL": "10", "PROVIDER_HTTP_TIMEOUT": "10"}
    for environment in ({}, {**STRONG, "PULSEPLAN_ENV": "production"}):
        problems = load({**environment, **env}, tmp_path).problems()
        assert any(p.startswith("REFRESH_LOCK_TTL must be at least") for p in problems)
        with pytest.raises(ConfigurationError):
            create_app(load({**environment, **env}, tmp_path))
    enough = {"REFRESH_LOCK_TTL": "25", "PROVIDER_HTTP_TIMEOUT": "10"}
    assert load(enough, tmp_path).problems() == []
