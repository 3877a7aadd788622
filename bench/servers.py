"""Start ``pulseplan serve`` for a benchmark, time its start-up and read its workers' memory.

The server runs in its own session (``start_new_session``) and is stopped by signalling the
whole process group: Hypercorn's worker processes would otherwise outlive a stopped parent
after heavy load. Its log goes to a file, never a pipe nobody reads.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx

STARTUP_TIMEOUT = 60.0
#: Environment variables a server keeps from the benchmark's own environment.
KEEP = ("PATH", "HOME", "LANG", "SSL_CERT_FILE", "SYSTEMROOT")


def base_env(extra: dict[str, str]) -> dict[str, str]:
    """A minimal environment: nothing from the developer's shell (or ``.env``) leaks in."""
    env = {k: os.environ[k] for k in KEEP if k in os.environ}
    env["PYTHONUNBUFFERED"] = "1"
    env.update(extra)
    return env


@dataclass
class Server:
    process: subprocess.Popen[bytes]
    base_url: str
    log_path: Path
    workers: int
    #: Seconds from ``Popen`` to the first 200 on ``/health``.
    startup_seconds: float = 0.0

    def worker_pids(self) -> list[int]:
        """The processes that serve requests: the server itself with one worker (Hypercorn
        serves in-process), else its children that run the app."""
        if self.workers == 1:
            return [self.process.pid]
        return [pid for pid in _children(self.process.pid) if _is_worker(pid)]

    def rss_mib(self) -> list[float]:
        """Resident memory of each worker, in MiB (``VmRSS`` of ``/proc/<pid>/status``)."""
        return [_status_kib(pid, "VmRSS") / 1024 for pid in self.worker_pids()]


def _children(pid: int) -> list[int]:
    found = []
    with contextlib.suppress(OSError):
        for task in os.listdir(f"/proc/{pid}/task"):
            text = Path(f"/proc/{pid}/task/{task}/children").read_text()
            found += [int(child) for child in text.split()]
    return found


def _is_worker(pid: int) -> bool:
    # multiprocessing's resource tracker is a child too; workers are the spawned app processes.
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ")
    except OSError:
        return False
    return b"resource_tracker" not in cmdline


def _status_kib(pid: int, field: str) -> int:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


def _wait_ready(server: Server, started: float) -> None:
    """Poll ``/health`` until it answers 200 and every worker logged that it serves."""
    deadline = started + STARTUP_TIMEOUT
    with httpx.Client(timeout=1.0) as http:
        while True:
            if server.process.poll() is not None:
                raise RuntimeError("server exited:\n" + _tail(server.log_path))
            if time.monotonic() > deadline:
                raise TimeoutError("server did not start:\n" + _tail(server.log_path))
            with contextlib.suppress(httpx.HTTPError):
                if http.get(f"{server.base_url}/health").status_code == 200:
                    if not server.startup_seconds:
                        server.startup_seconds = time.monotonic() - started
                    log = server.log_path.read_text(errors="replace")
                    if log.count("Running on") >= server.workers:
                        return
            # Polling is the only portable way to see a socket start answering; bounded above.
            time.sleep(0.01)


def _tail(path: Path, lines: int = 30) -> str:
    return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])


@contextlib.contextmanager
def running_server(
    env: dict[str, str],
    cwd: Path,
    *,
    port: int,
    workers: int = 1,
    cpus: str | None = None,
) -> Iterator[Server]:
    """Start ``pulseplan serve`` (pinned to ``cpus`` with ``taskset`` when given), yield it
    once it answers, stop the whole process group afterwards."""
    log_path = cwd / f"server-{port}.log"
    command = [sys.executable, "-m", "pulseplan", "serve", "--port", str(port)]
    command += ["--workers", str(workers)]
    if cpus:
        command = ["taskset", "-c", cpus, *command]
    with log_path.open("wb") as log:
        started = time.monotonic()
        process = subprocess.Popen(
            command,
            env=base_env(env),
            cwd=cwd,
            stdout=subprocess.DEVNULL,
            stderr=log,
            start_new_session=True,
        )
    server = Server(process, f"http://127.0.0.1:{port}", log_path, workers)
    try:
        _wait_ready(server, started)
        yield server
    finally:
        stop(process)


def stop(process: subprocess.Popen[bytes] | subprocess.Popen[str]) -> None:
    """SIGTERM the process group, SIGKILL it if it has not exited in 20 seconds."""
    if process.poll() is not None:
        return
    try:
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(timeout=20)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=5)
    except ProcessLookupError:
        pass
    # Workers that outlived the parent still belong to its group.
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGKILL)
