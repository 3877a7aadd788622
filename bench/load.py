"""Drive load at an endpoint with ``wrk`` (or :mod:`bench.pyload` when ``wrk`` is missing).

The load generator is always a separate process, pinned with ``taskset`` to the CPUs the
caller names, so it never shares an interpreter (or, when there are CPUs to spare, a core) with
the server. Credentials go into a 0600 file, never onto a command line that ``ps`` shows.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

MARKER = "BENCHJSON "
PYLOAD = Path(__file__).resolve().parent / "pyload.py"

WRK_SCRIPT = """
wrk.method = {method}
wrk.body = {body}
{headers}
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    '{marker}{{"requests":%d,"duration_us":%d,"p50_us":%d,"p99_us":%d,' ..
    '"status":%d,"read":%d,"connect":%d,"write":%d,"timeout":%d}}\\n',
    summary.requests, summary.duration, latency:percentile(50), latency:percentile(99),
    e.status, e.read, e.connect, e.write, e.timeout))
end
"""


@dataclass(frozen=True)
class Load:
    """One measurement: throughput, latency percentiles and failed requests."""

    requests: int
    seconds: float
    p50_ms: float
    p99_ms: float
    errors: int

    @property
    def rps(self) -> float:
        return self.requests / self.seconds if self.seconds else 0.0


def generator() -> str:
    """``wrk`` when it is on ``PATH``, else ``pyload`` (slower: compare ratios, not rps)."""
    return "wrk" if shutil.which("wrk") else "pyload"


def _lua(value: str) -> str:
    return json.dumps(value)  # a JSON string literal is a valid Lua string literal here


def measure(
    url: str,
    *,
    connections: int,
    duration: int,
    headers: dict[str, str] | None = None,
    method: str = "GET",
    body: str = "",
    cpus: str | None = None,
) -> Load:
    """Keep ``connections`` keep-alive connections busy on ``url`` for ``duration`` seconds."""
    headers = dict(headers or {})
    if body:
        headers.setdefault("Content-Type", "application/x-www-form-urlencoded")
    pin = ["taskset", "-c", cpus] if cpus else []
    descriptor, name = tempfile.mkstemp(prefix="pulseplan-bench-", suffix=".load")
    try:
        with os.fdopen(descriptor, "w") as spec:
            if generator() == "wrk":
                spec.write(
                    WRK_SCRIPT.format(
                        method=_lua(method),
                        body=_lua(body) if body else "nil",
                        headers="\n".join(
                            f"wrk.headers[{_lua(k)}] = {_lua(v)}" for k, v in headers.items()
                        ),
                        marker=MARKER,
                    )
                )
                command = ["wrk", "-t1", f"-c{connections}", f"-d{duration}s", "-s", name, url]
            else:
                spec.write(
                    json.dumps(
                        {
                            "url": url,
                            "headers": headers,
                            "connections": connections,
                            "duration": duration,
                            "method": method,
                            "body": body,
                        }
                    )
                )
                command = [sys.executable, str(PYLOAD), name]
        done = subprocess.run(
            pin + command, capture_output=True, text=True, timeout=duration + 60, check=False
        )
    finally:
        os.unlink(name)
    line = next((x for x in done.stdout.splitlines() if x.startswith(MARKER)), None)
    if line is None:
        raise RuntimeError(f"load generator failed: {done.stderr.strip()[-500:]}")
    data = json.loads(line.removeprefix(MARKER))
    errors = sum(data.get(k, 0) for k in ("status", "read", "connect", "write", "timeout"))
    return Load(
        requests=data["requests"],
        seconds=data["duration_us"] / 1e6,
        p50_ms=data["p50_us"] / 1000,
        p99_ms=data["p99_us"] / 1000,
        errors=errors,
    )
