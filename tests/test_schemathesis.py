"""schemathesis against the live OpenAPI document: a real server on loopback, providers pointed
at fake provider servers, every operation, with and without credentials.

Run by hand with more examples::

    .venv/bin/schemathesis run http://127.0.0.1:8000/api/v1/openapi.json --checks all \\
        -H "Authorization: Bearer $TOKEN" --max-examples 100
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from pulseplan.settings import Settings
from pulseplan.testing.fake_provider import FakeProvider
from pulseplan.testing.users import user_token
from tests.conftest import BASE_ENV
from tests.server import base_env
from tests.server import pulseplan
from tests.server import running_server

pytestmark = pytest.mark.slow

SCHEMATHESIS = str(Path(sys.executable).parent / "schemathesis")
# use_after_free: after DELETE, `GET .../{provider}/status` answers 200 `{"connected": false}`,
# which is the seed's contract, not a leak of the deleted resource.
EXCLUDED = "use_after_free"


def run_schemathesis(
    url: str, token: str, *extra: str, seconds: int = 60, cwd: Path | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [
            SCHEMATHESIS,
            "--config-file",
            str(Path(__file__).with_name("schemathesis.toml")),
            "run",
            f"{url}/api/v1/openapi.json",
            "--checks",
            "all",
            "--exclude-checks",
            EXCLUDED,
            "-H",
            f"Authorization: Bearer {token}",
            "--max-examples",
            "12",
            "--max-time",
            str(seconds),
            "--workers",
            "1",  # hypothesis' lambda introspection is not thread-safe (internal errors)
            "--phases",
            "examples,coverage,fuzzing",
            "--seed",
            "20261126",
            "--no-color",
            *extra,
        ],
        env=base_env({}),
        cwd=cwd,  # schemathesis keeps a crash cache in the working directory
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
    )


def test_no_5xx_no_schema_violation_no_ignored_auth(tmp_path: Path) -> None:
    with FakeProvider("google") as google, FakeProvider("notion") as notion:
        env = {
            **BASE_ENV,
            **google.env("google"),
            **notion.env("notion"),
            "DATABASE_URL": f"sqlite:///{tmp_path / 'st.db'}",
            "PULSEPLAN_PROVIDERS": "google,notion",
            "ALLOWED_RETURN_URLS": "https://app.example/done",
            "BACKGROUND_REFRESH": "false",
        }
        agent = pulseplan("agents", "create", "fuzzer", env=env, cwd=tmp_path)
        assert agent.returncode == 0, agent.stderr
        secret = agent.stdout.strip()
        settings = Settings.load(env, env_file=None, generate_dev_secrets=False)
        with running_server(env, tmp_path) as server:
            as_user = run_schemathesis(server.base_url, user_token(settings), cwd=tmp_path)
            as_agent = run_schemathesis(
                server.base_url, secret, "--include-tag", "agent", seconds=20, cwd=tmp_path
            )
            log = "".join(server.output)
    report = as_user.stdout[-8000:] + as_agent.stdout[-4000:]
    assert as_user.returncode == 0, report
    assert as_agent.returncode == 0, report
    assert "unhandled" not in log, log[-4000:]
