"""The README's 60-second tour, run as written (bash), so the README cannot drift from the
product: a newcomer gets from a clone to a connected (fake) provider and a fetched token, and a
quick-start server left running on the tour's port makes the tour say so instead of talking to
the wrong server."""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from tests.server import base_env
from tests.server import free_port
from tests.server import running_server

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parent.parent
VENV_BIN = str(Path(sys.executable).parent)


def tour_script() -> str:
    readme = (ROOT / "README.md").read_text()
    block = re.search(r"<!-- tour:start -->\s*```bash\n(.*?)```\s*<!-- tour:end -->", readme, re.S)
    assert block is not None, "README lost its tour block"
    return block.group(1)


def tour_env(app_port: int) -> dict[str, str]:
    # The default PUBLIC_BASE_URL names port 8000; follow the port substitution.
    return base_env(
        {
            "PATH": f"{VENV_BIN}:{os.environ['PATH']}",
            "PUBLIC_BASE_URL": f"http://localhost:{app_port}",
        }
    )


def run_tour(cwd: Path, fake_port: int, app_port: int) -> subprocess.CompletedProcess[str]:
    """The tour block, run by bash exactly as written, with the repository's virtualenv and the
    given ports in place of 9000 and 8000."""
    script = tour_script()
    # Set-up already happened for the test run; everything else runs as the README says.
    assert script.startswith("python3 tasks.py setup")
    script = script.split("\n", 1)[1]
    script = (
        script.replace(".venv/bin/", f"{VENV_BIN}/")
        .replace("9000", str(fake_port))
        .replace("8000", str(app_port))
    )
    wrapped = f"set -euo pipefail\ntrap 'kill $(jobs -p) 2>/dev/null' EXIT\n{script}"
    return subprocess.run(
        ["bash", "-c", wrapped],
        cwd=cwd,
        env=tour_env(app_port),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_readme_tour_connects_and_fetches_a_token(tmp_path: Path) -> None:
    result = run_tour(tmp_path, free_port(), free_port())
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-4000:]
    lines = [line for line in result.stdout.splitlines() if line.startswith("{")]
    connected, tokens = json.loads(lines[-2]), json.loads(lines[-1])
    assert connected == {"status": "connected", "provider": "google"}
    assert tokens["google"]["access_token"].startswith("fake_at_")
    assert tokens["errors"] == {}
    assert "refresh_token" not in tokens["google"]


def test_readme_tour_waits_for_env_before_starting_serve() -> None:
    # `> .env &` creates .env empty at once and the fake fills it a moment later, while serve
    # reads .env only at start-up: the tour must wait for the fake's lines before serve starts.
    # A timing race cannot be forced from outside the README's text, so the order is checked.
    lines = tour_script().splitlines()
    fake = next(i for i, line in enumerate(lines) if "fake_provider" in line and "> .env &" in line)
    wait = next(i for i, line in enumerate(lines) if "GOOGLE_CLIENT_ID .env" in line)
    serve = next(i for i, line in enumerate(lines) if line.startswith(".venv/bin/pulseplan serve"))
    assert fake < wait < serve
    assert lines[wait].startswith("until grep -q")


def test_readme_tour_reports_a_quick_start_server_still_on_its_port(tmp_path: Path) -> None:
    # The reader ran the quick start and left that server on the tour's port: it answers
    # /health but has no Google configured. The tour's own serve cannot bind, and the tour must
    # say so rather than go on against the old server (409 provider_not_configured).
    app_port = free_port()
    quick_start = {k: v for k, v in tour_env(app_port).items() if k != "PATH"}
    with running_server(quick_start, tmp_path, port=app_port):
        result = run_tour(tmp_path, free_port(), app_port)
    assert result.returncode != 0, result.stdout[-2000:]
    assert f"serve exited: is port {app_port} in use?" in result.stderr, result.stderr[-4000:]


def test_readme_tour_reports_a_taken_fake_provider_port(tmp_path: Path) -> None:
    # Something else (an earlier tour's fake) holds the fake's port: the fake exits at once and
    # leaves .env empty, so waiting for its lines must end with a message, not hang.
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        fake_port = taken.getsockname()[1]
        result = run_tour(tmp_path, fake_port, free_port())
    assert result.returncode != 0
    assert f"fake exited: is port {fake_port} in use?" in result.stderr, result.stderr[-4000:]
    assert f"error: cannot listen on 127.0.0.1:{fake_port}" in result.stderr
    assert "no fake Google settings in .env" in result.stderr  # the second wait ends too
