"""The PulsePlan benchmark: ``.venv/bin/python bench/run.py [--quick]``.

On loopback only, bounded in time (a full run takes a few minutes, ``--quick`` well under one),
it prints tables of:

* ``/health`` (the framework floor) vs ``GET /api/v1/tokens/tokens`` for a user with four warm
  connections (Google, Microsoft, Canvas and Notion pointed at fake providers, tokens far from
  expiry so nothing is refreshed) vs the agent token API: requests/s, p50/p99 latency and server
  CPU per request at several concurrency levels, with the ratio token endpoint / floor measured
  on the same server in the same run;
* the same on the embedded default (SQLite) and on PostgreSQL + Redis (a scratch database and a
  unique key prefix; skipped with a line saying why when they are unreachable), 1 and 2 workers;
* a refresh sweep of due connections (5,000) against the fake Google vs the fake's own capacity
  measured alone with the same concurrency;
* RSS per worker and start-up time (process start to the first 200 on ``/health``).

Processes: the server, the load generator (``wrk``, or ``bench/pyload.py`` without it), the fake
providers and the sweep each run in their own process, pinned with ``taskset`` so the server
has its own core whenever the machine has two or more (see :func:`cpu_plan`). On a small shared
machine the absolute numbers move with whatever else runs; the ratios are the headline.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlencode

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench import backends
from bench.fakes import PROFILES
from bench.fakes import SWEEP_SCOPES
from bench.fakes import FakeHost
from bench.fakes import Fakes
from bench.load import measure
from bench.report import FLOOR
from bench.report import Point
from bench.report import Results
from bench.report import ServerRun
from bench.report import SweepRun
from bench.report import machine
from bench.report import render
from bench.seed import bench_secrets
from bench.seed import seed_caller
from bench.seed import seed_due
from bench.servers import Server
from bench.servers import base_env
from bench.servers import running_server
from pulseplan.settings import Settings

HERE = Path(__file__).resolve().parent
#: A limit no benchmark reaches: rate limiting stays on (its cost is real) but never refuses.
UNLIMITED = "9999999/60"


@dataclass(frozen=True)
class Plan:
    """CPUs (``taskset -c`` lists) for the server, the load generator and the fakes."""

    server: str | None
    load: str | None
    fakes: str | None

    def describe(self) -> str:
        if self.server is None:
            return "no CPU pinning"
        return f"server on CPU {self.server}, load generator on {self.load}, fakes on {self.fakes}"


def cpu_plan(nproc: int, workers: int, pin: bool = True) -> Plan:
    """Give the server ``workers`` CPUs of its own when there are enough; the load generator
    and the fakes (idle except in the sweep) share the rest. With fewer CPUs than workers + 1
    the workers take every CPU and the load generator shares the last one."""
    if not pin or nproc < 2:
        return Plan(None, None, None)
    last = str(nproc - 1)
    if nproc >= workers + 1:
        server = ",".join(str(c) for c in range(workers))
    else:
        server = ",".join(str(c) for c in range(nproc))
    return Plan(server, last, last)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def cpu_seconds(pids: list[int]) -> float:
    """User + system CPU of ``pids`` so far (``/proc/<pid>/stat``)."""
    total = 0.0
    for pid in pids:
        with contextlib.suppress(OSError, IndexError, ValueError):
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            total += int(fields[11]) + int(fields[12])
    return total / os.sysconf("SC_CLK_TCK")


def server_pids(server: Server) -> list[int]:
    return sorted({server.process.pid, *server.worker_pids()})


# --------------------------------------------------------------------------- phases


def run_env(
    fakes: Fakes, backend: backends.Backend, folder: Path, source: str | None
) -> dict[str, str]:
    env = {
        **bench_secrets(),
        **fakes.env,
        **backend.env,
        "PULSEPLAN_DATA_DIR": str(folder / "data"),
        "PULSEPLAN_PROVIDERS": ",".join(PROFILES),
        "ENABLE_RATE_LIMITING": "true",
        "RATE_LIMIT_TOKENS": UNLIMITED,
        "RATE_LIMIT_AGENT": UNLIMITED,
    }
    if source:
        env["PYTHONPATH"] = source
    return env


def serve_and_measure(
    label: str, env: dict[str, str], folder: Path, workers: int, args: argparse.Namespace
) -> ServerRun:
    plan = cpu_plan(os.cpu_count() or 1, workers, not args.no_pin)
    port = free_port()
    env = {**env, "PUBLIC_BASE_URL": f"http://127.0.0.1:{port}"}
    settings = Settings.load(env, env_file=None, generate_dev_secrets=False)
    with running_server(env, folder, port=port, workers=workers, cpus=plan.server) as server:
        run = ServerRun(label, workers, server.startup_seconds)
        caller = asyncio.run(seed_caller(server.base_url, settings))
        targets = {
            FLOOR: ("/health", {}),
            "tokens": ("/api/v1/tokens/tokens", {"Authorization": f"Bearer {caller.user_jwt}"}),
            "agent": (
                f"/api/v1/agent/users/{caller.user_id}/tokens",
                {"Authorization": f"Bearer {caller.agent_secret}"},
            ),
        }
        for path, headers in targets.values():  # warm up: caches, pools, JIT-less first calls
            measure(server.base_url + path, connections=max(args.concurrency), duration=1,
                    headers=headers, cpus=plan.load)  # fmt: skip
        for concurrency in args.concurrency:
            best: dict[str, Point] = {}
            # Rounds interleave the endpoints, so a busy moment on a shared machine hits all
            # of them alike; each endpoint keeps its best round.
            for _ in range(args.repeat):
                for name, (path, headers) in targets.items():
                    pids = server_pids(server)
                    before = cpu_seconds(pids)
                    load = measure(
                        server.base_url + path,
                        connections=concurrency,
                        duration=args.duration,
                        headers=headers,
                        cpus=plan.load,
                    )
                    cpu = (cpu_seconds(pids) - before) / max(load.requests, 1)
                    if name not in best or load.rps > best[name].load.rps:
                        best[name] = Point(name, concurrency, load, cpu)
            run.points.extend(best.values())
        run.rss_mib = server.rss_mib()
    return run


def sweep(
    label: str, env: dict[str, str], folder: Path, fakes: Fakes, args: argparse.Namespace
) -> SweepRun:
    """Seed ``args.sweep`` due connections, run one sweep in its own process, then measure the
    fake's token endpoint alone at the sweep's concurrency."""
    plan = cpu_plan(os.cpu_count() or 1, 1, not args.no_pin)
    settings = Settings.load(env, env_file=None, generate_dev_secrets=False)
    tokens = fakes.refresh_tokens[: args.sweep]
    asyncio.run(seed_due(settings, tokens, SWEEP_SCOPES))
    command = [sys.executable, str(HERE / "sweep.py")]
    if plan.server:
        command = ["taskset", "-c", plan.server, *command]
    sweep_env = {**env, "REFRESH_CONCURRENCY": str(args.sweep_concurrency)}
    with (folder / f"sweep-{time.monotonic_ns()}.log").open("w") as log:
        done = subprocess.run(
            command,
            env=base_env(sweep_env),
            cwd=folder,
            stdout=subprocess.PIPE,
            stderr=log,
            text=True,
            timeout=max(120, args.sweep // 10),
            check=False,
        )
    line = next((x for x in done.stdout.splitlines() if x.startswith("BENCHJSON ")), None)
    if line is None:
        raise RuntimeError(f"the sweep failed (exit {done.returncode}); log in {log.name}")
    result = json.loads(line.removeprefix("BENCHJSON "))
    body = urlencode(
        {
            "grant_type": "refresh_token",
            "refresh_token": fakes.refresh_tokens[-1],
            "client_id": fakes.client_id,
            "client_secret": fakes.client_secret,
        }
    )
    alone = measure(
        fakes.token_url,
        connections=args.sweep_concurrency,
        duration=args.duration,
        method="POST",
        body=body,
        cpus=plan.server,
    )
    return SweepRun(
        label=label,
        due=len(tokens),
        refreshed=int(result["refreshed"]),
        failed=int(result["failed"]),
        seconds=float(result["seconds"]),
        cpu_seconds=float(result["cpu_seconds"]),
        concurrency=args.sweep_concurrency,
        fake_alone=alone,
    )


@contextlib.contextmanager
def selected_backends(
    keys: list[str], folder: Path, results: Results
) -> Iterator[list[backends.Backend]]:
    chosen = []
    with contextlib.ExitStack() as stack:
        if "sqlite" in keys:
            chosen.append(backends.sqlite_backend(folder))
        if "postgres" in keys:
            reason = backends.unreachable()
            if reason is not None:
                results.notes.append(f"SKIPPED: PostgreSQL + Redis: {reason}")
            else:
                try:
                    chosen.append(stack.enter_context(backends.postgres_redis_backend()))
                except Exception as exc:
                    results.notes.append(f"FAILED: preparing PostgreSQL + Redis: {exc!r}")
        yield chosen


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="SQLite only, short runs (~15 s)")
    parser.add_argument("--backends", help="comma list of sqlite,postgres")
    parser.add_argument("--concurrency", help="comma list, e.g. 1,16,64")
    parser.add_argument("--duration", type=int, help="seconds per measurement")
    parser.add_argument("--repeat", type=int, help="rounds per concurrency; the best counts")
    parser.add_argument("--sweep", type=int, help="due connections in the refresh sweep")
    parser.add_argument("--sweep-concurrency", type=int, default=8)
    parser.add_argument("--no-pin", action="store_true", help="do not pin processes to CPUs")
    parser.add_argument("--source", help="run the server from another checkout (A/B)")
    parser.add_argument("--json", type=Path, help="also write the results as JSON here")
    args = parser.parse_args(argv)
    args.backends = (args.backends or ("sqlite" if args.quick else "sqlite,postgres")).split(",")
    args.concurrency = [
        int(c) for c in (args.concurrency or ("1,16" if args.quick else "1,16,64")).split(",")
    ]
    args.duration = args.duration or (1 if args.quick else 3)
    args.repeat = args.repeat or (1 if args.quick else 2)
    args.sweep = args.sweep if args.sweep is not None else (200 if args.quick else 5000)

    results = Results(
        machine=machine(),
        settings={
            "processes": cpu_plan(os.cpu_count() or 1, 1, not args.no_pin).describe()
            + " (2 workers: see each table)",
            "duration": (
                f"{args.duration} s per measurement, best of {args.repeat} interleaved "
                "round(s), after a 1 s warm-up per endpoint"
            ),
            "rate limiting": f"on, limits {UNLIMITED} (never refuses; its cost is measured)",
            "source": args.source or str(HERE.parent),
        },
    )
    with tempfile.TemporaryDirectory(prefix="pulseplan-bench-") as tmp:
        folder = Path(tmp)
        plan = cpu_plan(os.cpu_count() or 1, 1, not args.no_pin)
        with (
            FakeHost(folder, grants=args.sweep + 1, cpus=plan.fakes) as fakes,
            selected_backends(args.backends, folder, results) as chosen,
        ):
            for backend in chosen:
                env = run_env(fakes, backend, folder, args.source)
                for workers in backend.workers:
                    label = backend.label
                    try:
                        results.servers.append(serve_and_measure(label, env, folder, workers, args))
                    except Exception as exc:
                        results.notes.append(f"FAILED: {label}, {workers} worker(s): {exc}")
                if args.sweep:
                    sweep_env = dict(env)
                    if backend.key == "sqlite":
                        sweep_env.update(backends.sqlite_backend(folder, "sweep").env)
                    try:
                        results.sweeps.append(sweep(backend.label, sweep_env, folder, fakes, args))
                    except Exception as exc:
                        results.notes.append(f"FAILED: {backend.label} sweep: {exc}")
    render(results)
    if args.json:
        args.json.write_text(json.dumps(results.as_dict(), indent=2))
    return 1 if any(note.startswith("FAILED") for note in results.notes) else 0


if __name__ == "__main__":
    sys.exit(main())
