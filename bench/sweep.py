"""One background-refresh sweep, timed, in a process of its own.

``python bench/sweep.py`` reads its configuration from the environment like ``pulseplan
refresh`` (``DATABASE_URL``, ``GOOGLE_*``, ``REFRESH_CONCURRENCY``...), opens the runtime, and
prints ``BENCHJSON {"claimed", "refreshed", "failed", "seconds", "cpu_seconds"}``. Only the
sweep is timed: interpreter start-up, imports and opening storage are not refresh work.
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from pulseplan.cli.context import opened_runtime
from pulseplan.refresher import BackgroundRefresher


async def sweep() -> dict[str, float]:
    async with opened_runtime() as runtime:
        sweeper = BackgroundRefresher(
            storage=runtime.storage,
            coordinator=runtime.broker.refresher,
            settings=runtime.settings,
        )
        started, cpu = time.perf_counter(), time.process_time()
        result = await sweeper.sweep()
        seconds, cpu = time.perf_counter() - started, time.process_time() - cpu
    return {
        "claimed": result.claimed,
        "refreshed": result.refreshed,
        "failed": result.failed,
        "seconds": seconds,
        "cpu_seconds": cpu,
    }


if __name__ == "__main__":
    print("BENCHJSON " + json.dumps(asyncio.run(sweep())), flush=True)
