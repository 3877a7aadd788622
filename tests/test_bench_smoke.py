"""The benchmark still runs: ``bench/run.py`` in its quickest mode, ``bench/hotpath.py`` with a
handful of requests, and the fallback load generator. No timing is asserted, only that each
completes and prints its table (a bench nobody runs rots quietly)."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler
from http.server import ThreadingHTTPServer
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parent.parent


def bench(*args: str, timeout: float) -> str:
    done = subprocess.run(
        [sys.executable, *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-3000:]
    return done.stdout


def test_quick_bench_prints_its_tables(tmp_path: Path) -> None:
    out = tmp_path / "results.json"
    text = bench(
        "bench/run.py", "--quick", "--concurrency", "4", "--sweep", "20", "--json", str(out),
        timeout=300,
    )  # fmt: skip
    for line in (
        "/health (floor)",
        "GET /api/v1/tokens/tokens",
        "agent token API",
        "ratio token endpoint / floor",
        "refresh sweep",
        "start-up",
    ):
        assert line in text, text
    assert "FAILED" not in text, text
    results = json.loads(out.read_text())
    (server,) = results["servers"]
    assert {p["endpoint"] for p in server["points"]} == {"/health", "tokens", "agent"}
    assert all(p["load"]["errors"] == 0 for p in server["points"]), server["points"]
    (sweep,) = results["sweeps"]
    assert (sweep["due"], sweep["refreshed"], sweep["failed"]) == (20, 20, 0)


def test_hotpath_breakdown_prints_its_table() -> None:
    text = bench("bench/hotpath.py", "--requests", "3", "--rounds", "1", timeout=120)
    assert "as is" in text, text
    assert "no audit write" in text, text


class _Ok(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_GET(self) -> None:
        self.send_response(200)
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"ok")

    def log_message(self, format: str, *args: object) -> None:
        """Quiet."""


@pytest.fixture
def ok_server() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Ok)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/"
    server.shutdown()
    server.server_close()


def test_the_fallback_load_generator_reports_like_wrk(ok_server: str, tmp_path: Path) -> None:
    spec = tmp_path / "spec.json"
    spec.write_text(json.dumps({"url": ok_server, "connections": 2, "duration": 1}))
    text = bench("bench/pyload.py", str(spec), timeout=60)
    (line,) = [x for x in text.splitlines() if x.startswith("BENCHJSON ")]
    data = json.loads(line.removeprefix("BENCHJSON "))
    assert data["requests"] > 0
    assert (data["status"], data["read"]) == (0, 0)
