"""``DATABASE_URL`` options of the PostgreSQL backend (no server needed)."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from pulseplan.errors import ConfigurationError
from pulseplan.settings import Settings
from pulseplan.storage import make_storage
from pulseplan.storage.postgres import PostgresStorage
from pulseplan.storage.postgres_config import parse_options

SUPABASE_DIRECT = "postgresql://postgres:pw-Secret1@db.abcdefghijklmnop.supabase.co:5432/postgres"
SUPABASE_POOLER = (
    "postgresql://postgres.abcdefghijklmnop:pw-Secret1@"
    "aws-0-eu-central-1.pooler.supabase.com:6543/postgres"
)


def test_pooler_mode_is_detected_from_the_supabase_urls() -> None:
    direct, pooled = parse_options(SUPABASE_DIRECT), parse_options(SUPABASE_POOLER)
    assert (direct.pooler, direct.statement_cache_size) == ("session", 100)
    assert (pooled.pooler, pooled.statement_cache_size) == ("transaction", 0)
    assert parse_options(SUPABASE_DIRECT + "?pgbouncer=true").pooler == "transaction"
    assert parse_options(SUPABASE_POOLER + "?pulseplan_pooler=session").pooler == "session"
    assert parse_options(SUPABASE_DIRECT, pooler="transaction").pooler == "transaction"


def test_our_parameters_are_removed_before_asyncpg_sees_the_url() -> None:
    options = parse_options(
        SUPABASE_POOLER + "?sslmode=require&pulseplan_rls=on&pulseplan_pool_max_size=20"
        "&connect_timeout=7&pulseplan_command_timeout=4.5&pgbouncer=true"
    )
    assert options.dsn == SUPABASE_POOLER + "?sslmode=require"
    assert (options.rls, options.max_size, options.connect_timeout, options.command_timeout) == (
        "on",
        20,
        7.0,
        4.5,
    )
    assert parse_options(SUPABASE_DIRECT).dsn == SUPABASE_DIRECT  # untouched otherwise


def test_rls_is_required_unless_opted_out_in_production_and_on_supabase() -> None:
    plain = "postgresql://app:pw@db.internal:5432/app"
    assert parse_options(plain).rls == "auto"  # development on a plain PostgreSQL
    assert parse_options(plain, production=True).rls == "on"
    assert parse_options(SUPABASE_DIRECT).rls == "on"
    assert parse_options(SUPABASE_POOLER).rls == "on"
    # An explicit choice always wins, in the URL or as an argument.
    assert parse_options(plain + "?pulseplan_rls=off", production=True).rls == "off"
    assert parse_options(SUPABASE_DIRECT + "?pulseplan_rls=auto").rls == "auto"
    assert parse_options(plain, production=True, rls="off").rls == "off"


@pytest.mark.parametrize(
    ("query", "message"),
    [
        ("pulseplan_pooler=sometimes", "pulseplan_pooler must be one of"),
        ("pulseplan_rls=maybe", "pulseplan_rls must be one of"),
        ("pulseplan_pool_max_size=lots", "pulseplan_pool_max_size must be a number"),
        ("pulseplan_pool_max_size=0", "pulseplan_pool_max_size must be in"),
        ("pulseplan_pool_min_size=5&pulseplan_pool_max_size=2", "min size is larger"),
        ("pulseplan_connect_timeout=-1", "pulseplan_connect_timeout must be in"),
        ("pulseplan_colour=blue", "unknown DATABASE_URL parameter(s): pulseplan_colour"),
    ],
)
def test_bad_options_are_configuration_errors_without_the_url(query: str, message: str) -> None:
    with pytest.raises(ConfigurationError) as caught:
        parse_options(f"{SUPABASE_DIRECT}?{query}")
    assert message in str(caught.value)
    assert "pw-Secret1" not in str(caught.value)
    assert "supabase.co" not in str(caught.value)


def test_make_storage_builds_the_postgres_backend(make_settings: Callable[..., Settings]) -> None:
    for url in (SUPABASE_POOLER, SUPABASE_DIRECT.replace("postgresql://", "postgres://")):
        storage = make_storage(make_settings(DATABASE_URL=url, CONNECTIONS_TABLE="oauth_tokens"))
        assert isinstance(storage, PostgresStorage)
        assert storage.table == "oauth_tokens"
        assert "pw-Secret1" not in repr(storage)
    plain = "postgresql://app:pw@db.internal:5432/app"
    production = make_settings(DATABASE_URL=plain, PULSEPLAN_ENV="production")
    assert make_storage(production).options.rls == "on"  # type: ignore[attr-defined]
    with pytest.raises(ValueError, match="identifier"):
        PostgresStorage(SUPABASE_DIRECT, connections_table="x; DROP TABLE y")
