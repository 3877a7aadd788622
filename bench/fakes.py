"""The fake providers of a benchmark run, in a process of their own.

``python bench/fakes.py --out FILE [--grants N]`` starts one fake per provider (Google,
Microsoft, Canvas, Notion) on loopback, writes what the benchmark needs to ``FILE`` (mode 0600)
and serves until SIGTERM: the PulsePlan env lines that point each provider at its fake, and
``N`` refresh tokens of live Google grants for the refresh sweep.

A process of its own because the fake is a threaded Python server: sharing a process with the
load generator or with PulsePlan would make them fight over one GIL and measure that instead.
:class:`FakeHost` starts it from the orchestrator.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import threading
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.servers import stop as stop_group
from pulseplan.testing.fake_profiles import ProfileName
from pulseplan.testing.fake_provider import Account
from pulseplan.testing.fake_provider import FakeProvider
from pulseplan.testing.fake_state import Grant

PROFILES: tuple[ProfileName, ...] = ("google", "microsoft", "canvas", "notion")
#: The scopes of the minted grants; the seeded rows carry the same, so a refresh that sends
#: them back asks for nothing the grant lacks.
SWEEP_SCOPES = ("openid", "email", "https://www.googleapis.com/auth/calendar.events")
READY = "fakes ready"


def mint_grants(fake: FakeProvider, count: int) -> list[str]:
    """``count`` consented Google grants, one refresh token each.

    Goes straight to the fake's ledger: running 5,000 consents and code exchanges over HTTP
    would take longer than the sweep being measured. The grants are what a code exchange would
    have opened (same client, offline access, the sweep's scopes).
    """
    core = fake._core  # a benchmark fixture reaching into the fake on purpose
    tokens = []
    with core.lock:
        ledger = core.ledger
        for number in range(count):
            grant = Grant(
                grant_id=uuid.uuid4().hex,
                client_id=fake.client_id,
                account=Account(email=f"bench{number}@example.test"),
                scopes=SWEEP_SCOPES,
                tenant=core.config.tenant,
                created_at=ledger.now(),
            )
            ledger.grants.append(grant)
            tokens.append(ledger.issue(grant, "refresh", core.config.refresh_ttl).token)
    return tokens


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--grants", type=int, default=0)
    args = parser.parse_args(argv)
    stopped = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: stopped.set())
    fakes = {name: FakeProvider(name, token_prefix="bench").start() for name in PROFILES}
    try:
        google = fakes["google"]
        env: dict[str, str] = {}
        for name, fake in fakes.items():
            env.update(fake.env(name))
        payload = {
            "env": env,
            "google": {
                "token_url": google.endpoints["token_url"],
                "client_id": google.client_id,
                "client_secret": google.client_secret,
            },
            "refresh_tokens": mint_grants(google, args.grants),
        }
        descriptor = os.open(args.out, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(descriptor, "w") as out:
            json.dump(payload, out)
        print(READY, flush=True)
        stopped.wait()
    finally:
        for fake in fakes.values():
            fake.stop()
    return 0


@dataclass
class Fakes:
    """What the fakes process published."""

    env: dict[str, str]
    token_url: str
    client_id: str
    client_secret: str
    refresh_tokens: list[str]


class FakeHost:
    """Runs :func:`main` in a child process (its own session, so stopping it stops all)."""

    def __init__(self, folder: Path, *, grants: int = 0, cpus: str | None = None):
        self.folder = folder
        self.grants = grants
        self.cpus = cpus
        self.process: subprocess.Popen[str] | None = None

    def __enter__(self) -> Fakes:
        out = self.folder / f"fakes-{uuid.uuid4().hex[:8]}.json"
        command = [sys.executable, str(Path(__file__)), "--out", str(out)]
        command += ["--grants", str(self.grants)]
        if self.cpus:
            command = ["taskset", "-c", self.cpus, *command]
        self.process = subprocess.Popen(
            command, stdout=subprocess.PIPE, text=True, start_new_session=True
        )
        assert self.process.stdout is not None
        line = self.process.stdout.readline().strip()
        if line != READY:
            self._stop()
            raise RuntimeError(f"the fake providers did not start (got {line!r})")
        data = json.loads(out.read_text())
        out.unlink()  # it holds client secrets and refresh tokens of the fakes
        google = data["google"]
        return Fakes(
            env=data["env"],
            token_url=google["token_url"],
            client_id=google["client_id"],
            client_secret=google["client_secret"],
            refresh_tokens=data["refresh_tokens"],
        )

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._stop()

    def _stop(self) -> None:
        process, self.process = self.process, None
        if process is None:
            return
        try:
            stop_group(process)
        finally:
            if process.stdout is not None:
                process.stdout.close()


if __name__ == "__main__":
    sys.exit(main())
