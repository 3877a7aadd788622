"""Run ``pulseplan serve`` as a real subprocess for end-to-end tests."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

STARTUP_TIMEOUT = 30.0


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def base_env(extra: dict[str, str]) -> dict[str, str]:
    """A minimal environment: nothing from the developer's shell leaks into the server."""
    keep = ("PATH", "HOME", "LANG", "SSL_CERT_FILE", "SYSTEMROOT")
    env = {k: os.environ[k] for k in keep if k in os.environ}
    env["PYTHONUNBUFFERED"] = "1"
    env.update(extra)
    return env


def pulseplan(
    *args: str, env: dict[str, str], cwd: Path, timeout: float = 60.0
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "pulseplan", *args],
        env=base_env(env),
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


@dataclass
class Server:
    process: subprocess.Popen[bytes]
    base_url: str
    log_path: Path

    @property
    def output(self) -> list[str]:
        """Everything the server wrote to stderr so far."""
        return self.log_path.read_text(errors="replace").splitlines(keepends=True)


def _wait_for(server: Server, marker: str, count: int) -> None:
    # The log goes to a file, not a pipe: a pipe nobody drains fills up and blocks the server.
    deadline = time.monotonic() + STARTUP_TIMEOUT
    with server.log_path.open("rb") as log:
        text = ""
        while text.count(marker) < count:
            chunk = log.read().decode(errors="replace")
            text += chunk
            if server.process.poll() is not None:
                raise RuntimeError("server exited:\n" + text)
            if time.monotonic() > deadline:
                raise TimeoutError("server did not start:\n" + text)
            if not chunk:
                # Polling a file is the only portable way to follow it; bounded by the deadline.
                time.sleep(0.02)


@contextmanager
def running_server(
    env: dict[str, str],
    cwd: Path,
    *,
    workers: int = 1,
    port: int | None = None,
    args: tuple[str, ...] = (),
) -> Iterator[Server]:
    """Start ``pulseplan serve`` and yield once every worker reports it is serving."""
    port = port or free_port()
    log_path = cwd / f"server-{port}.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "pulseplan",
                "serve",
                "--port",
                str(port),
                "--workers",
                str(workers),
                *args,
            ],
            env=base_env(env),
            cwd=cwd,
            stdout=subprocess.DEVNULL,
            stderr=log,
            start_new_session=True,  # the whole group is killed at the end: no orphaned workers
        )
    server = Server(process, f"http://127.0.0.1:{port}", log_path)
    try:
        _wait_for(server, "Running on", workers)
        yield server
    finally:
        if process.poll() is None:
            try:
                os.killpg(process.pid, signal.SIGTERM)
                process.wait(timeout=20)
            except (subprocess.TimeoutExpired, ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
                process.wait(timeout=5)
