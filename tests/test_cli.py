"""The ``pulseplan`` command line, run as a real subprocess against the installed plugins."""

from __future__ import annotations

import os
import signal
from pathlib import Path

import httpx
import pytest

from tests.conftest import BASE_ENV
from tests.server import pulseplan
from tests.server import running_server

pytestmark = pytest.mark.slow

CONFIGURED = {
    **BASE_ENV,
    "GOOGLE_CLIENT_ID": "g",
    "GOOGLE_CLIENT_SECRET": "gs",
    "MICROSOFT_CLIENT_ID": "m",
    "MICROSOFT_CLIENT_SECRET": "ms",
    "CANVAS_CLIENT_ID": "c",
    "CANVAS_CLIENT_SECRET": "cs",
    "CANVAS_BASE_URL": "https://school.instructure.com",
    "NOTION_CLIENT_ID": "n",
    "NOTION_CLIENT_SECRET": "ns",
}


def rows(output: str) -> dict[str, list[str]]:
    lines = output.strip().splitlines()
    return {line.split()[0]: line.split() for line in lines[1:]}


def test_providers_lists_installed_plugins_with_versions(tmp_path: Path) -> None:
    result = pulseplan("providers", env=CONFIGURED, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    table = rows(result.stdout)
    assert set(table) == {"google", "microsoft", "canvas", "notion"}
    assert table["google"][1:] == ["pulseplan-google", "0.1.0", "yes", "yes"]


def test_providers_respects_allow_and_deny_lists(tmp_path: Path) -> None:
    denied = pulseplan(
        "providers", env={**CONFIGURED, "PULSEPLAN_DISABLED_PROVIDERS": "notion"}, cwd=tmp_path
    )
    assert rows(denied.stdout)["notion"][3] == "no"
    allowed = pulseplan(
        "providers", env={**CONFIGURED, "PULSEPLAN_PROVIDERS": "google"}, cwd=tmp_path
    )
    enabled = {name for name, row in rows(allowed.stdout).items() if row[3] == "yes"}
    assert enabled == {"google"}


def test_check_reports_every_problem_and_exits_1(tmp_path: Path) -> None:
    result = pulseplan("check", env=BASE_ENV, cwd=tmp_path)
    assert result.returncode == 1
    assert "error: GOOGLE_CLIENT_ID is not set" in result.stderr
    assert "error: CANVAS_BASE_URL is not set" in result.stderr
    # Unconfigured providers do not hide the dependency checks: both are worth knowing.
    assert "ok       storage: sqlite" in result.stdout


def test_check_names_an_invalid_setting_without_echoing_its_value(tmp_path: Path) -> None:
    result = pulseplan(
        "check", env={**BASE_ENV, "OAUTH_FLOW_TTL": "s3cret-looking-999999"}, cwd=tmp_path
    )
    assert result.returncode == 1
    assert "error: OAUTH_FLOW_TTL: " in result.stderr
    assert "s3cret-looking" not in result.stderr + result.stdout
    assert "Traceback" not in result.stderr


def test_check_passes_when_configured(tmp_path: Path) -> None:
    result = pulseplan("check", env=CONFIGURED, cwd=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "configuration OK" in result.stdout


def test_production_refuses_to_serve_without_secrets(tmp_path: Path) -> None:
    result = pulseplan("serve", env={"PULSEPLAN_ENV": "production"}, cwd=tmp_path)
    assert result.returncode == 1
    errors = [line for line in result.stderr.splitlines() if line.startswith("error: ")]
    assert "error: TOKEN_ENCRYPTION_KEY is not set" in errors
    assert "error: SECRET_KEY is not set" in errors
    assert "Traceback" not in result.stderr


def test_several_workers_need_redis(tmp_path: Path) -> None:
    result = pulseplan("serve", "--workers", "2", env=BASE_ENV, cwd=tmp_path)
    assert result.returncode == 2
    assert "needs REDIS_URL" in result.stderr


def test_serve_with_zero_configuration_answers_and_stops_on_sigterm(tmp_path: Path) -> None:
    # No secrets at all: the embedded default generates development ones and warns.
    with running_server({}, tmp_path) as server:
        assert "DEVELOPMENT secrets" in "".join(server.output)
        with httpx.Client(base_url=server.base_url, timeout=10) as http:
            health = http.get("/health")
            assert health.status_code == 200
            assert health.json()["status"] == "healthy"
            spec = http.get("/api/v1/openapi.json").json()
            assert "/api/v1/providers" in spec["paths"]
            for page in ("/docs", "/redoc"):
                assert http.get(page).headers["content-type"].startswith("text/html")
        os.killpg(server.process.pid, signal.SIGTERM)
        assert server.process.wait(timeout=20) == 0
    assert (tmp_path / ".pulseplan" / "dev-secrets.env").exists()


def test_check_reports_an_unmigrated_postgres_and_an_unreachable_redis(tmp_path: Path) -> None:
    from tests.pg_fixtures import scratch_database
    from tests.redis_kit import closed_port

    with scratch_database() as db:
        env = {
            **CONFIGURED,
            "DATABASE_URL": db.url,
            "REDIS_URL": f"redis://:redis-pw-Secret9@127.0.0.1:{closed_port()}/0",
        }
        result = pulseplan("check", env=env, cwd=tmp_path)
    assert result.returncode == 1
    lines = result.stdout.splitlines()
    assert any(
        line.startswith("fail") and "migrations: pending: 0001_initial" in line for line in lines
    ), result.stdout
    assert any(line.startswith("degraded") and "redis:" in line for line in lines), result.stdout
    assert any(line.startswith("ok") and "storage: postgres" in line for line in lines)
    assert "error: migrations check failed" in result.stderr
    assert "redis-pw-Secret9" not in result.stdout + result.stderr


def test_check_in_production_reports_dependencies_beside_provider_problems(
    tmp_path: Path,
) -> None:
    env = {
        **BASE_ENV,
        "PULSEPLAN_ENV": "production",
        "PUBLIC_BASE_URL": "https://vault.example.com",
        "DATABASE_URL": f"sqlite:///{tmp_path / 'prod.db'}",
        "PULSEPLAN_PROVIDERS": "google",
    }
    result = pulseplan("check", env=env, cwd=tmp_path)
    assert result.returncode == 1
    assert "error: GOOGLE_CLIENT_ID is not set" in result.stderr
    assert "ok       storage: sqlite" in result.stdout
