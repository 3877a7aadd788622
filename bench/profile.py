"""Profile the token endpoint of a real server with py-spy:
``.venv/bin/python bench/profile.py [--endpoint tokens|agent|/health] [--seconds 8]``.

Starts ``pulseplan serve`` on the embedded default with four warm connections (as
``bench/run.py`` does), keeps it busy with ``wrk`` at 16 connections, attaches ``py-spy record
--gil`` (samples only while Python holds the GIL: where CPU goes, not where it waits) and
prints the functions with the largest share of samples, inclusive and self. py-spy is a dev
tool (``pip install py-spy``); it is looked up on ``PATH`` and next to this interpreter, or
given with ``--py-spy``. It needs permission to read another process's memory (root, or
``kernel.yama.ptrace_scope=0``).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import shutil
import subprocess
import sys
import tempfile
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.backends import sqlite_backend
from bench.fakes import FakeHost
from bench.load import measure
from bench.run import cpu_plan
from bench.run import free_port
from bench.run import run_env
from bench.seed import seed_caller
from bench.servers import running_server
from pulseplan.settings import Settings

LINE = re.compile(r":\d+\)$")
SITE = re.compile(r"^.*?site-packages/")


def find_py_spy(given: str | None) -> str | None:
    if given:
        return given
    beside = Path(sys.executable).parent / "py-spy"
    return shutil.which("py-spy") or (str(beside) if beside.exists() else None)


def summarise(raw: Path, top: int = 25) -> list[str]:
    """Inclusive and self shares per function from py-spy's collapsed-stack output."""
    inclusive: Counter[str] = Counter()
    own: Counter[str] = Counter()
    total = 0
    root = str(Path(__file__).resolve().parent.parent) + "/"
    for line in raw.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if not count.isdigit():
            continue
        samples = int(count)
        total += samples
        frames = [SITE.sub("", LINE.sub(")", f)).replace(root, "") for f in stack.split(";")]
        own[frames[-1]] += samples
        for frame in set(frames):
            inclusive[frame] += samples
    lines = [f"{total} samples with the GIL held"]
    lines.append("-- inclusive (PulsePlan code, and the framework around it)")
    shown = [
        (f, n)
        for f, n in inclusive.most_common()
        if "pulseplan" in f or "quart/app.py" in f or "hypercorn/protocol" in f
    ]
    lines += [f"{100 * n / total:5.1f}%  {f}" for f, n in shown[:top]]
    lines.append("-- self")
    lines += [f"{100 * n / total:5.1f}%  {f}" for f, n in own.most_common(15)]
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--endpoint", choices=["tokens", "agent", "/health"], default="tokens")
    parser.add_argument("--seconds", type=int, default=8)
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--py-spy", dest="py_spy")
    parser.add_argument("--raw", type=Path, help="keep py-spy's collapsed stacks here")
    parser.add_argument("--source", help="run the server from another checkout (A/B)")
    args = parser.parse_args(argv)
    py_spy = find_py_spy(args.py_spy)
    if py_spy is None:
        print("py-spy not found: pip install py-spy (or pass --py-spy PATH)", file=sys.stderr)
        return 2
    plan = cpu_plan(os.cpu_count() or 1, 1)
    with tempfile.TemporaryDirectory(prefix="pulseplan-profile-") as tmp:
        folder = Path(tmp)
        with FakeHost(folder, cpus=plan.fakes) as fakes:
            env = run_env(fakes, sqlite_backend(folder), folder, args.source)
            port = free_port()
            env["PUBLIC_BASE_URL"] = f"http://127.0.0.1:{port}"
            settings = Settings.load(env, env_file=None, generate_dev_secrets=False)
            with running_server(env, folder, port=port, cpus=plan.server) as server:
                caller = asyncio.run(seed_caller(server.base_url, settings))
                path, secret = {
                    "tokens": ("/api/v1/tokens/tokens", caller.user_jwt),
                    "agent": (f"/api/v1/agent/users/{caller.user_id}/tokens", caller.agent_secret),
                    "/health": ("/health", ""),
                }[args.endpoint]
                headers = {"Authorization": f"Bearer {secret}"} if secret else {}
                url = server.base_url + path
                measure(url, connections=args.connections, duration=2, headers=headers,
                        cpus=plan.load)  # fmt: skip
                raw = args.raw or folder / "profile.raw"
                spy = subprocess.Popen(
                    [py_spy, "record", "--pid", str(server.process.pid), "--gil", "--nonblocking",
                     "--rate", "250", "--duration", str(args.seconds), "--format", "raw",
                     "--output", str(raw)],
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.PIPE,
                    text=True,
                )  # fmt: skip
                load = measure(url, connections=args.connections, duration=args.seconds + 1,
                               headers=headers, cpus=plan.load)  # fmt: skip
                _, errors = spy.communicate(timeout=60)
                if spy.returncode != 0 or not raw.exists():
                    print(f"py-spy failed: {errors.strip()[-500:]}", file=sys.stderr)
                    return 1
    print(f"{args.endpoint} under {args.connections} connections: {load.rps:.0f} req/s")
    for line in summarise(raw):
        print(line)
    return 0


if __name__ == "__main__":
    sys.exit(main())
