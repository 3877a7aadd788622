"""``pulseplan migrate``, ``refresh`` and ``agents``, run as real subprocesses."""

from __future__ import annotations

from pathlib import Path

import pytest

from pulseplan.testing.fake_provider import FakeProvider
from pulseplan.testing.vault import new_user
from pulseplan.testing.vault import running_vault
from tests.conftest import BASE_ENV
from tests.server import pulseplan

pytestmark = pytest.mark.slow


def env_for(tmp_path: Path) -> dict[str, str]:
    return {**BASE_ENV, "DATABASE_URL": f"sqlite:///{tmp_path / 'ops.db'}"}


def test_migrate_applies_once(tmp_path: Path) -> None:
    first = pulseplan("migrate", env=env_for(tmp_path), cwd=tmp_path)
    assert first.returncode == 0, first.stderr
    assert "applied 0001_initial" in first.stdout
    second = pulseplan("migrate", env=env_for(tmp_path), cwd=tmp_path)
    assert "database is up to date" in second.stdout


def test_agents_create_list_revoke(tmp_path: Path) -> None:
    env = env_for(tmp_path)
    created = pulseplan(
        "agents", "create", "Planner", "--providers", "google", env=env, cwd=tmp_path
    )
    assert created.returncode == 0, created.stderr
    secret = created.stdout.strip()
    assert secret.startswith("ppa_")
    assert "shown only now" in created.stderr
    listed = pulseplan("agents", "list", env=env, cwd=tmp_path)
    assert "planner" in listed.stdout
    assert "google" in listed.stdout
    assert secret not in listed.stdout + listed.stderr
    duplicate = pulseplan("agents", "create", "planner", env=env, cwd=tmp_path)
    assert duplicate.returncode == 1
    unknown = pulseplan("agents", "create", "other", "--providers", "nope", env=env, cwd=tmp_path)
    assert unknown.returncode == 1
    # Names are stored in lower case: revoking by the name as typed at creation works.
    revoked = pulseplan("agents", "revoke", "Planner", env=env, cwd=tmp_path)
    assert revoked.returncode == 0, revoked.stderr
    again = pulseplan("agents", "revoke", "planner", env=env, cwd=tmp_path)
    assert again.returncode == 1
    assert "no active agent" in again.stderr


async def test_refresh_command_runs_one_sweep(tmp_path: Path) -> None:
    fake = FakeProvider("google")
    async with running_vault(tmp_path, providers={"google": fake}, plugins=[]) as vault:
        row = await vault.connect(new_user(), "google")
        await vault.expire_soon(row)
        env = dict(vault.settings.environ)
        env.pop("BACKGROUND_REFRESH", None)
        result = pulseplan("refresh", env=env, cwd=tmp_path)
        assert result.returncode == 0, result.stderr
        assert "due: 1  refreshed: 1  failed: 0" in result.stdout
        assert fake.count("refresh") == 1
        nothing = pulseplan("refresh", env=env, cwd=tmp_path)
        assert "due: 0" in nothing.stdout
