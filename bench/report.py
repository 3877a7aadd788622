"""What a benchmark run measured, and the tables it prints."""

from __future__ import annotations

import os
import platform
import shutil
import sys
from collections.abc import Callable
from dataclasses import asdict
from dataclasses import dataclass
from dataclasses import field
from datetime import UTC
from datetime import datetime
from pathlib import Path
from typing import Any

from bench.load import Load

FLOOR = "/health"
ENDPOINTS = {
    FLOOR: "/health (floor)",
    "tokens": "GET /api/v1/tokens/tokens",
    "agent": "agent token API",
}


@dataclass
class Point:
    """One endpoint at one concurrency."""

    endpoint: str
    concurrency: int
    load: Load
    #: Server CPU seconds (all its processes) per request during the measurement.
    cpu_per_request: float


@dataclass
class ServerRun:
    """One server configuration: storage backend and worker count."""

    label: str
    workers: int
    startup_seconds: float = 0.0
    rss_mib: list[float] = field(default_factory=list)
    points: list[Point] = field(default_factory=list)

    def point(self, endpoint: str, concurrency: int) -> Point | None:
        return next(
            (p for p in self.points if (p.endpoint, p.concurrency) == (endpoint, concurrency)),
            None,
        )

    def ratio(self, endpoint: str, concurrency: int) -> float | None:
        """Throughput of ``endpoint`` over the floor's, same server, same concurrency."""
        point, floor = self.point(endpoint, concurrency), self.point(FLOOR, concurrency)
        if point is None or floor is None or not floor.load.rps:
            return None
        return point.load.rps / floor.load.rps


@dataclass
class SweepRun:
    """A refresh sweep and the fake provider's own capacity, measured alike."""

    label: str
    due: int
    refreshed: int
    failed: int
    seconds: float
    #: CPU seconds of the sweeping process during the sweep.
    cpu_seconds: float
    concurrency: int
    fake_alone: Load | None

    @property
    def rate(self) -> float:
        return self.refreshed / self.seconds if self.seconds else 0.0


@dataclass
class Results:
    machine: dict[str, str]
    settings: dict[str, Any]
    servers: list[ServerRun] = field(default_factory=list)
    sweeps: list[SweepRun] = field(default_factory=list)
    #: ``SKIPPED: ...`` and ``FAILED: ...`` lines, printed before the tables.
    notes: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def machine() -> dict[str, str]:
    """``nproc``, CPU model, RAM, Python, OS and the date (UTC)."""
    model = "unknown"
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.is_file():
        for line in cpuinfo.read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    ram = "unknown"
    meminfo = Path("/proc/meminfo")
    if meminfo.is_file():
        kib = int(meminfo.read_text().split("MemTotal:")[1].split()[0])
        ram = f"{kib / 1024 / 1024:.1f} GiB"
    wrk = shutil.which("wrk")
    return {
        "date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "nproc": str(os.cpu_count() or 1),
        "cpu": model,
        "ram": ram,
        "python": sys.version.split()[0],
        "os": platform.platform(terse=True),
        "load_generator": "wrk" if wrk else "bench/pyload.py (wrk not found)",
        "load_average": " ".join(f"{x:.2f}" for x in os.getloadavg()),
    }


def _row(cells: list[str], widths: list[int]) -> str:
    return "  ".join(
        c.ljust(w) if i == 0 else c.rjust(w)
        for i, (c, w) in enumerate(zip(cells, widths, strict=True))
    )


def table(head: list[str], rows: list[list[str]]) -> list[str]:
    widths = [max(len(r[i]) for r in [head, *rows]) for i in range(len(head))]
    return [_row(head, widths), _row(["-" * w for w in widths], widths)] + [
        _row(r, widths) for r in rows
    ]


def _f(value: float | None, digits: int = 1) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def render(results: Results, out: Callable[[str], None] = print) -> None:
    m = results.machine
    out(f"PulsePlan benchmark, {m['date']}")
    out(f"machine: {m['nproc']} CPUs ({m['cpu']}), {m['ram']} RAM, Python {m['python']}")
    out(f"load generator: {m['load_generator']}; load average at start: {m['load_average']}")
    for key, value in results.settings.items():
        out(f"{key}: {value}")
    for line in results.notes:
        out(line)
    for run in results.servers:
        out("")
        rss = ", ".join(f"{r:.0f}" for r in run.rss_mib)
        out(
            f"== {run.label}, {run.workers} worker(s): start-up {run.startup_seconds:.2f} s "
            f"(process start to first 200 on /health), RSS per worker {rss} MiB"
        )
        rows = []
        for point in run.points:
            ratio = run.ratio(point.endpoint, point.concurrency)
            rows.append(
                [
                    ENDPOINTS[point.endpoint],
                    str(point.concurrency),
                    _f(point.load.rps, 0),
                    _f(point.load.p50_ms, 2),
                    _f(point.load.p99_ms, 2),
                    _f(point.cpu_per_request * 1000, 2),
                    _f(ratio, 2),
                    str(point.load.errors),
                ]
            )
        head = ["endpoint", "conc", "req/s", "p50 ms", "p99 ms", "CPU ms/req", "x floor", "errors"]
        for line in table(head, rows):
            out(line)
    if results.servers:
        out("")
        out("== ratio token endpoint / floor (req/s, same server, same run)")
        concurrencies = sorted({p.concurrency for r in results.servers for p in r.points})
        head = ["server", *[f"tokens c={c}" for c in concurrencies]]
        head += [f"agent c={c}" for c in concurrencies]
        rows = [
            [f"{r.label}, {r.workers}w"]
            + [_f(r.ratio("tokens", c), 2) for c in concurrencies]
            + [_f(r.ratio("agent", c), 2) for c in concurrencies]
            for r in results.servers
        ]
        for line in table(head, rows):
            out(line)
    if results.sweeps:
        out("")
        concurrency = results.sweeps[0].concurrency
        out(
            "== refresh sweep (one `pulseplan refresh` sweep, refresh concurrency "
            f"{concurrency}) vs the fake's token endpoint alone ({concurrency} connections)"
        )
        head = ["storage", "due", "refreshed", "failed", "seconds", "refreshes/s"]
        head += ["CPU ms/refresh", "fake alone req/s", "sweep / fake"]
        rows = []
        for sweep in results.sweeps:
            fake = sweep.fake_alone.rps if sweep.fake_alone else None
            rows.append(
                [
                    sweep.label,
                    str(sweep.due),
                    str(sweep.refreshed),
                    str(sweep.failed),
                    _f(sweep.seconds, 2),
                    _f(sweep.rate, 0),
                    _f(sweep.cpu_seconds * 1000 / max(sweep.refreshed, 1), 2),
                    _f(fake, 0),
                    _f(sweep.rate / fake if fake else None, 2),
                ]
            )
        for line in table(head, rows):
            out(line)
