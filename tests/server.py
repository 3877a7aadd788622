"""Run ``pulseplan serve`` as a real subprocess for end-to-end tests."""

from __future__ import annotations

import os
import selectors
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from dataclasses import field
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
    process: subprocess.Popen[str]
    base_url: str
    output: list[str] = field(default_factory=list)


def _read_until(process: subprocess.Popen[str], marker: str, count: int, out: list[str]) -> None:
    assert process.stderr is not None
    selector = selectors.DefaultSelector()
    selector.register(process.stderr, selectors.EVENT_READ)
    deadline = time.monotonic() + STARTUP_TIMEOUT
    seen = 0
    while seen < count:
        remaining = deadline - time.monotonic()
        if remaining <= 0 or not selector.select(remaining):
            raise TimeoutError("server did not start:\n" + "".join(out))
        line = process.stderr.readline()
        if not line:
            raise RuntimeError("server exited:\n" + "".join(out))
        out.append(line)
        seen += marker in line


@contextmanager
def running_server(
    env: dict[str, str], cwd: Path, *, workers: int = 1, args: tuple[str, ...] = ()
) -> Iterator[Server]:
    """Start ``pulseplan serve`` and yield once every worker reports it is serving."""
    port = free_port()
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
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,  # the whole group is killed at the end: no orphaned workers
    )
    server = Server(process, f"http://127.0.0.1:{port}")
    try:
        _read_until(process, "Running on", workers, server.output)
        yield server
    finally:
        if process.poll() is None:
            try:
                os.killpg(process.pid, signal.SIGTERM)
                process.wait(timeout=20)
            except (subprocess.TimeoutExpired, ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
                process.wait(timeout=5)
        if process.stderr is not None:
            server.output.append(process.stderr.read())
            process.stderr.close()
