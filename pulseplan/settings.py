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

from pulseplan.crypto.config import key_problems
from pulseplan.errors import ConfigurationError

CommaList = Annotated[list[str], NoDecode]
#: A rate limit as ``count/seconds`` (pulseplan.web.ratelimit), e.g. ``120/60``.
RateSpec = Annotated[str, Field(pattern=r"^[1-9][0-9]{0,6}/[1-9][0-9]{0,6}$")]
FailureMode = Literal["open", "closed"]

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
    # Supabase REST backend (DATABASE_URL=supabase://; docs/supabase-rest.md): SUPABASE_URL and
    # SUPABASE_SERVICE_KEY, plus the key sent as `apikey` beside forwarded user JWTs.
    supabase_anon_key: SecretStr | None = None
    supabase_rest_timeout: float = Field(default=10.0, gt=0, le=60)
    redis_url: SecretStr | None = None
    # Redis layer (pulseplan.cache; .env.example): used only when REDIS_URL is set.
    redis_key_prefix: str = Field(default="pulseplan:", pattern=r"^pulseplan:([A-Za-z0-9_.-]+:)*$")
    redis_cache_ttl: float = Field(default=300.0, ge=1, le=3600)
    redis_socket_timeout: float = Field(default=1.0, gt=0, le=30)
    redis_connect_timeout: float = Field(default=1.0, gt=0, le=30)
    redis_max_connections: int = Field(default=50, ge=1, le=10000)
    redis_retry_interval: float = Field(default=2.0, ge=0, le=300)
    pulseplan_data_dir: Path = Path(".pulseplan")
    # Secrets
    token_encryption_key: SecretStr | None = None
    # Token key ring (pulseplan.crypto; docs/keys.md): v1:<key>,v2:<key> replaces the key above.
    token_encryption_keys: SecretStr | None = None
    token_encryption_primary: str | None = None
    # Seed backends' keys, read-only (validated by pulseplan.crypto.keyring for clear messages).
    token_encryption_seed_key: SecretStr | None = None
    token_encryption_seed_encoding: str | None = None
    token_encryption_seed_versions: str = "1"
    token_encryption_node_key: SecretStr | None = None
    secret_key: SecretStr | None = None
    # Supabase
    supabase_url: str | None = None
    supabase_service_key: SecretStr | None = None
    supabase_jwt_secret: SecretStr | None = None
    supabase_jwt_audience: str = "authenticated"
    # Caller authentication (pulseplan.auth). Supabase asks JWKS clients not to cache > 10 min.
    supabase_jwks_ttl: float = Field(default=600.0, gt=0, le=600)
    supabase_jwks_min_refetch: float = Field(default=60.0, ge=1, le=600)
    jwt_leeway: float = Field(default=30.0, ge=0, le=120)
    supabase_allow_anonymous: bool = False
    # HTTP surface
    public_base_url: str = "http://localhost:8000"
    allowed_return_urls: CommaList = Field(default_factory=list)
    enable_rate_limiting: bool | None = None
    # Rate limits per route group, security headers, CORS, request sizes (.env.example)
    rate_limit_tokens: RateSpec = "120/60"
    rate_limit_agent: RateSpec = "600/60"
    rate_limit_oauth_start: RateSpec = "20/60"
    rate_limit_oauth_callback: RateSpec = "60/60"
    rate_limit_auth_failures: RateSpec = "60/300"
    rate_limit_default: RateSpec = "300/60"
    rate_limit_failure_mode: FailureMode | None = None
    rate_limit_failure_mode_tokens: FailureMode | None = None
    rate_limit_failure_mode_agent: FailureMode | None = None
    rate_limit_failure_mode_oauth_start: FailureMode | None = None
    rate_limit_failure_mode_oauth_callback: FailureMode | None = None
    rate_limit_failure_mode_auth_failures: FailureMode | None = None
    rate_limit_failure_mode_default: FailureMode | None = None
    trusted_proxies: CommaList = Field(default_factory=list)
    cors_allowed_origins: CommaList = Field(default_factory=list)
    cors_max_age: int = Field(default=600, ge=0, le=86400)
    hsts_seconds: int | None = Field(default=None, ge=0, le=63072000)
    max_query_string_bytes: int = Field(default=8192, ge=256, le=65536)
    max_header_bytes: int = Field(default=16384, ge=1024, le=262144)
    # Plugins
    pulseplan_providers: CommaList | None = None
    pulseplan_disabled_providers: CommaList = Field(default_factory=list)
    provider_http_timeout: float = Field(default=10.0, gt=0, le=60)
    # Token broker and background refresh
    refresh_skew_seconds: float = Field(default=300.0, ge=0, le=3600)
    refresh_lock_ttl: float = Field(default=30.0, gt=0, le=600)
    refresh_lock_wait: float = Field(default=20.0, gt=0, le=600)
    refresh_interval: float = Field(default=30.0, gt=0, le=3600)
    refresh_batch_size: int = Field(default=50, ge=1, le=1000)
    refresh_concurrency: int = Field(default=8, ge=1, le=256)
    refresh_backoff_base: float = Field(default=30.0, gt=0, le=3600)
    refresh_backoff_max: float = Field(default=3600.0, gt=0, le=86400)
    background_refresh: bool = True
    # OAuth flows
    oauth_flow_ttl: float = Field(default=600.0, ge=60, le=3600)
    oauth_require_confirmation: bool = False
    # Connection events
    webhook_url: str | None = None
    webhook_secret: SecretStr | None = None
    # Observability (pulseplan.observability; .env.example). Unset choices
    # default by environment: JSON to stdout with hashed user ids in production.
    log_level: str = Field(
        default="INFO", pattern=r"(?i)^(trace|debug|info|success|warning|error|critical)$"
    )
    log_format: Literal["json", "text"] | None = None
    log_stream: Literal["stdout", "stderr"] | None = None
    log_user_ids: Literal["plain", "hash", "off"] | None = None
    sentry_dsn: SecretStr | None = None
    sentry_environment: str | None = None
    sentry_release: str | None = None
    sentry_sample_rate: float = Field(default=1.0, ge=0, le=1)
    sentry_traces_sample_rate: float = Field(default=0.0, ge=0, le=1)
    metrics_enabled: bool = True
    metrics_token: SecretStr | None = None
    metrics_connections_ttl: float = Field(default=15.0, ge=0, le=3600)

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
        "allowed_return_urls",
        "pulseplan_providers",
        "pulseplan_disabled_providers",
        "trusted_proxies",
        "cors_allowed_origins",
        mode="before",
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
        data_dir = Path(merged.get("PULSEPLAN_DATA_DIR") or ".pulseplan")
        # The embedded database lives in the data dir unless DATABASE_URL says otherwise.
        merged.setdefault("DATABASE_URL", f"sqlite:///{data_dir / 'pulseplan.db'}")
        # Only an explicit (or absent) "development" generates secrets: a typo such as "prod"
        # must fail validation, not quietly write development secrets first.
        if merged.get("PULSEPLAN_ENV", "development") == "development" and generate_dev_secrets:
            from pulseplan.devsecrets import dev_secrets

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
        # A refresh must finish inside its lock lease (token endpoint + identity call + margin),
        # or a second worker could take the lock and refresh a rotating token twice.
        if self.refresh_lock_ttl < 2 * self.provider_http_timeout + 5:
            problems.append(
                "REFRESH_LOCK_TTL must be at least 2 x PROVIDER_HTTP_TIMEOUT + 5 seconds "
                f"({self.refresh_lock_ttl:g} < {2 * self.provider_http_timeout + 5:g})"
            )
        if self.webhook_url and not self.secret("webhook_secret"):
            problems.append("WEBHOOK_URL is set but WEBHOOK_SECRET is not: webhooks must be signed")
        if not self.production:
            return problems
        problems.extend(key_problems(self))
        if reason := weakness(self.secret("secret_key")):
            problems.append(f"SECRET_KEY {reason}")
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
