"""The README's 60-second tour, run as written (bash), so the README cannot drift from the
product: a newcomer gets from a clone to a connected (fake) provider and a fetched token."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.server import base_env
from tests.server import free_port

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parent.parent


def tour_script() -> str:
    readme = (ROOT / "README.md").read_text()
    block = re.search(r"<!-- tour:start -->\s*```bash\n(.*?)```\s*<!-- tour:end -->", readme, re.S)
    assert block is not None, "README lost its tour block"
    return block.group(1)


def test_readme_tour_connects_and_fetches_a_token(tmp_path: Path) -> None:
    script = tour_script()
    # Set-up already happened for the test run; everything else runs exactly as written, with
    # the repository's virtualenv and free ports.
    assert script.startswith("python3 tasks.py setup")
    script = script.split("\n", 1)[1]
    venv_bin = str(Path(sys.executable).parent)
    fake_port, app_port = free_port(), free_port()
    script = (
        script.replace(".venv/bin/", f"{venv_bin}/")
        .replace("9000", str(fake_port))
        .replace("8000", str(app_port))
    )
    wrapped = f"set -euo pipefail\ntrap 'kill $(jobs -p) 2>/dev/null' EXIT\n{script}"
    # The default PUBLIC_BASE_URL names port 8000; follow the port substitution.
    env = base_env(
        {
            "PATH": f"{venv_bin}:{os.environ['PATH']}",
            "PUBLIC_BASE_URL": f"http://localhost:{app_port}",
        }
    )
    result = subprocess.run(
        ["bash", "-c", wrapped],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-4000:]
    lines = [line for line in result.stdout.splitlines() if line.startswith("{")]
    connected, tokens = json.loads(lines[-2]), json.loads(lines[-1])
    assert connected == {"status": "connected", "provider": "google"}
    assert tokens["google"]["access_token"].startswith("fake_at_")
    assert tokens["errors"] == {}
    assert "refresh_token" not in tokens["google"]
