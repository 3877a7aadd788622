"""Configuration: one typed object built from the environment, ``.env`` and, in development,
a generated secrets file.

Names are the seed backend's (``SUPABASE_URL``, ``TOKEN_ENCRYPTION_KEY``...) plus PulsePlan's
own; ``.env.example`` documents every one. :meth:`Settings.load` reads a *mapping* (by default
``os.environ``) so tests build fully hermetic settings. Per-provider settings
(``GOOGLE_CLIENT_ID``...) are resolved later from :attr:`Settings.environ` because their names
depend on which plugins are installed.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated
from typing import Any
from typing import Literal

from dotenv import dotenv_values
from pydantic import Field
from pydantic import PrivateAttr
from pydantic import SecretStr
from pydantic import field_validator
from pydantic_settings import BaseSettings
from pydantic_settings import NoDecode
from pydantic_settings import PydanticBaseSettingsSource
from pydantic_settings import SettingsConfigDict

from pulseplan.errors import ConfigurationError

CommaList = Annotated[list[str], NoDecode]

#: Values copied from tutorials and the seed's examples; refused in production.
PLACEHOLDER_SECRETS = frozenset(
    {
        "change-me",
        "changeme",
        "secret",
        "your-secret-key",
        "your-secret-key-here",
        "your-encryption-key",
        "fallback-key-for-development-only",
        "super-secret-jwt-token-with-at-least-32-characters-long",
    }
)


def weakness(value: str | None, *, min_length: int = 32) -> str | None:
    """Say why a secret is unusable in production, or ``None`` when it is acceptable."""
    if value is None or not value.strip():
        return "is not set"
    if value.strip().lower() in PLACEHOLDER_SECRETS:
        return "is a well-known placeholder value"
    if len(value) < min_length:
        return f"is too short ({len(value)} characters, need at least {min_length})"
    if len(set(value)) < 10:
        return "has too little variety to be random"
    return None


class Settings(BaseSettings):
    """Every host setting. Field names are the lower-cased environment variable names."""

    model_config = SettingsConfigDict(extra="ignore", frozen=True)

    pulseplan_env: Literal["development", "production"] = "development"
    # Storage and state
    database_url: SecretStr = SecretStr("sqlite:///.pulseplan/pulseplan.db")
    connections_table: str = Field(default="calendar_connections", pattern=r"^[a-z_][a-z0-9_]*$")
    redis_url: SecretStr | None = None
    pulseplan_data_dir: Path = Path(".pulseplan")
    # Secrets
    token_encryption_key: SecretStr | None = None
    secret_key: SecretStr | None = None
    # Supabase
    supabase_url: str | None = None
    supabase_service_key: SecretStr | None = None
    supabase_jwt_secret: SecretStr | None = None
    supabase_jwt_audience: str = "authenticated"
    # HTTP surface
    public_base_url: str = "http://localhost:8000"
    allowed_return_urls: CommaList = Field(default_factory=list)
    enable_rate_limiting: bool | None = None
    # Plugins
    pulseplan_providers: CommaList | None = None
    pulseplan_disabled_providers: CommaList = Field(default_factory=list)
    provider_http_timeout: float = Field(default=10.0, gt=0, le=60)
    # Observability
    sentry_dsn: SecretStr | None = None

    _environ: Mapping[str, str] = PrivateAttr(default_factory=dict)
    _generated: tuple[str, ...] = PrivateAttr(default=())

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # load() merges the environment itself so that tests can pass a mapping instead.
        return (init_settings,)

    @field_validator(
        "allowed_return_urls", "pulseplan_providers", "pulseplan_disabled_providers", mode="before"
    )
    @classmethod
    def _split_commas(cls, value: Any) -> Any:
        if isinstance(value, str):
            return [item.strip() for item in value.split(",") if item.strip()]
        return value

    @field_validator("public_base_url")
    @classmethod
    def _strip_slash(cls, value: str) -> str:
        return value.rstrip("/")

    # ------------------------------------------------------------------ loading

    @classmethod
    def load(
        cls,
        environ: Mapping[str, str] | None = None,
        *,
        env_file: str | os.PathLike[str] | None = ".env",
        generate_dev_secrets: bool = True,
    ) -> Settings:
        """Build settings from ``environ`` (default ``os.environ``) over ``env_file``.

        In development, missing secrets come from ``<data dir>/dev-secrets.env``, generated on
        first use (see :mod:`pulseplan.devsecrets`).
        """
        merged: dict[str, str] = {}
        if env_file is not None and Path(env_file).is_file():
            merged.update({k: v for k, v in dotenv_values(env_file).items() if v is not None})
        merged.update(os.environ if environ is None else environ)
        generated: tuple[str, ...] = ()
        if merged.get("PULSEPLAN_ENV", "development") != "production" and generate_dev_secrets:
            from pulseplan.devsecrets import dev_secrets

            data_dir = Path(merged.get("PULSEPLAN_DATA_DIR", ".pulseplan"))
            extra, generated = dev_secrets(data_dir, merged)
            merged = {**extra, **merged}
        fields = {name: merged[name.upper()] for name in cls.model_fields if name.upper() in merged}
        settings = cls.model_validate(fields)
        settings._environ = merged
        settings._generated = generated
        return settings

    @property
    def environ(self) -> Mapping[str, str]:
        """The merged environment this object was loaded from (for per-provider settings)."""
        return self._environ

    @property
    def generated_secrets(self) -> tuple[str, ...]:
        """Names of development secrets generated by this load (empty in production)."""
        return self._generated

    # ------------------------------------------------------------------ derived values

    @property
    def production(self) -> bool:
        return self.pulseplan_env == "production"

    @property
    def rate_limiting(self) -> bool:
        """``ENABLE_RATE_LIMITING``, defaulting to on in production and off in development."""
        if self.enable_rate_limiting is None:
            return self.production
        return self.enable_rate_limiting

    def secret(self, name: str) -> str | None:
        """The plain value of a ``SecretStr`` field, or ``None``."""
        value = getattr(self, name)
        return value.get_secret_value() if isinstance(value, SecretStr) else value

    def problems(self) -> list[str]:
        """One line per setting that makes this configuration unfit for its environment."""
        problems: list[str] = []
        if not self.production:
            return problems
        for name in ("token_encryption_key", "secret_key"):
            reason = weakness(self.secret(name))
            if reason:
                problems.append(f"{name.upper()} {reason}")
        jwt_secret = self.secret("supabase_jwt_secret")
        if not jwt_secret and not self.supabase_url:
            problems.append(
                "SUPABASE_URL (for JWKS) or SUPABASE_JWT_SECRET must be set to verify users"
            )
        elif jwt_secret and (reason := weakness(jwt_secret)):
            problems.append(f"SUPABASE_JWT_SECRET {reason}")
        if not self.public_base_url.startswith("https://"):
            problems.append("PUBLIC_BASE_URL must be an https:// URL in production")
        if self.supabase_url and not self.supabase_url.startswith("https://"):
            problems.append("SUPABASE_URL must be an https:// URL in production")
        return problems

    def require_valid(self) -> None:
        """Raise :class:`ConfigurationError` listing every problem, if there is any."""
        problems = self.problems()
        if problems:
            raise ConfigurationError(problems)
