"""What the token endpoint spends per request, layer by layer:
``.venv/bin/python bench/hotpath.py [--requests N]``.

Builds the app in this process (embedded SQLite, rate limiting on as in production, four warm
connections stored through the API) and calls it through ASGI directly: no server, no socket,
no load generator, so CPU time per request is the app's own. Each row repeats the measurement
with one layer replaced by a stand-in that costs (almost) nothing; the difference from
"as is" is what that layer costs per request. ``/health`` runs through the same middleware
(request id, access log, metrics, security headers) and is the floor. CPU is
``time.process_time`` (aiosqlite's thread included), the best of interleaved rounds.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import os
import sys
import tempfile
import time
import uuid
from collections import OrderedDict
from collections.abc import AsyncIterator
from collections.abc import Callable
from datetime import UTC
from datetime import datetime
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from loguru import logger
from quart import Quart

from bench.fakes import PROFILES
from bench.fakes import FakeHost
from bench.seed import WARM_FOR
from bench.seed import bench_secrets
from pulseplan.app import create_app
from pulseplan.auth import verifier as jwt_verifier
from pulseplan.auth.agents import agent_pepper
from pulseplan.auth.agents import create_agent
from pulseplan.auth.guard import auth_state
from pulseplan.runtime import Runtime
from pulseplan.settings import Settings
from pulseplan.testing.users import user_token
from pulseplan.web.ratelimit import http as ratelimit_http

Endpoints = dict[str, tuple[str, dict[str, str]]]


async def call(app: Quart, path: str, headers: dict[str, str]) -> int:
    """One GET through the ASGI interface; returns the status."""
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "GET",
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": b"",
        "root_path": "",
        "headers": [(b"host", b"127.0.0.1")]
        + [(k.lower().encode(), v.encode()) for k, v in headers.items()],
        "client": ("127.0.0.1", 50000),
        "server": ("127.0.0.1", 8000),
        "extensions": {},
    }
    received = False
    status = 0

    async def receive() -> dict[str, Any]:
        nonlocal received
        if not received:
            received = True
            return {"type": "http.request", "body": b"", "more_body": False}
        await asyncio.Event().wait()  # the client never disconnects
        raise AssertionError("unreachable")

    async def send(message: dict[str, Any]) -> None:
        nonlocal status
        if message["type"] == "http.response.start":
            status = message["status"]

    await app(scope, receive, send)  # type: ignore[arg-type]
    return status


async def cpu_per_request(app: Quart, path: str, headers: dict[str, str], requests: int) -> float:
    """CPU seconds per request over ``requests`` calls."""
    gc.collect()  # start every measurement with the same garbage: none
    start = time.process_time()
    for _ in range(requests):
        status = await call(app, path, headers)
        if status != 200:
            raise RuntimeError(f"GET {path} answered {status}")
    return (time.process_time() - start) / requests


# --------------------------------------------------------------------------- stand-ins


@contextlib.contextmanager
def patched(obj: object, name: str, value: object) -> Any:
    original = getattr(obj, name)
    setattr(obj, name, value)
    try:
        yield
    finally:
        setattr(obj, name, original)


def no_access_log(app: Quart, runtime: Runtime) -> contextlib.AbstractContextManager[Any]:
    @contextlib.contextmanager
    def scope() -> Any:
        logger.disable("pulseplan.observability.access")
        try:
            yield
        finally:
            logger.enable("pulseplan.observability.access")

    return scope()


@contextlib.contextmanager
def no_rate_limit(app: Quart, runtime: Runtime) -> Any:
    before, after = app.before_request_funcs[None], app.after_request_funcs[None]
    limit, headers = ratelimit_http._limit, ratelimit_http._add_headers
    at_before, at_after = before.index(limit), after.index(headers)
    before.remove(limit)
    after.remove(headers)
    try:
        yield
    finally:
        before.insert(at_before, limit)
        after.insert(at_after, headers)


@contextlib.contextmanager
def no_jwt_cache(app: Quart, runtime: Runtime) -> Any:
    verifier = auth_state(app).verifier
    with patched(jwt_verifier, "VERIFIED_MAX", 0), patched(verifier, "_verified", OrderedDict()):
        yield


def no_storage_read(app: Quart, runtime: Runtime) -> contextlib.AbstractContextManager[Any]:
    storage = runtime.broker.storage
    read = storage.list_connections
    memo: dict[str, Any] = {}

    async def list_connections(user_id: str) -> Any:
        if user_id not in memo:
            memo[user_id] = await read(user_id)
        return memo[user_id]

    return patched(storage, "list_connections", list_connections)


def no_decrypt(app: Quart, runtime: Runtime) -> contextlib.AbstractContextManager[Any]:
    codec = runtime.broker.codec
    decrypt = codec.decrypt
    memo: dict[tuple[str, str], Any] = {}

    def cached(row: Any, field: Any) -> Any:
        key = (row.id, field)
        if key not in memo:
            memo[key] = decrypt(row, field)
        return memo[key]

    return patched(codec, "decrypt", cached)


def no_audit(app: Quart, runtime: Runtime) -> contextlib.AbstractContextManager[Any]:
    async def token_fetch(**_: Any) -> None:
        return None

    return patched(runtime.auditor, "token_fetch", token_fetch)


Ablation = Callable[[Quart, Runtime], contextlib.AbstractContextManager[Any]]
ABLATIONS: list[tuple[str, list[Ablation]]] = [
    ("as is", []),
    ("JWT verified on every request (cache off)", [no_jwt_cache]),
    ("no rate limiting", [no_rate_limit]),
    ("no storage read (rows memoised)", [no_storage_read]),
    ("no decryption (plaintext memoised)", [no_decrypt]),
    ("no audit write", [no_audit]),
    ("no access log line", [no_access_log]),
    (
        "all five stubbed (framework + route plumbing)",
        [no_rate_limit, no_storage_read, no_decrypt, no_audit, no_access_log],
    ),
]


# --------------------------------------------------------------------------- set-up


@contextlib.asynccontextmanager
async def prepared_app(folder: Path) -> AsyncIterator[tuple[Quart, Runtime, Endpoints]]:
    """The app with a user holding four warm connections and an agent."""
    # The fakes run in their own process: their server threads would otherwise wake up in this
    # one (and take the GIL) while it is being measured. Nothing calls them on this path.
    with FakeHost(folder) as fakes:
        env = {
            **bench_secrets(),
            "DATABASE_URL": f"sqlite:///{folder / 'hotpath.db'}",
            "PULSEPLAN_DATA_DIR": str(folder / "data"),
            "PULSEPLAN_PROVIDERS": ",".join(PROFILES),
            "ENABLE_RATE_LIMITING": "true",
            "RATE_LIMIT_TOKENS": "9999999/60",
            "RATE_LIMIT_AGENT": "9999999/60",
            "BACKGROUND_REFRESH": "false",
        }
        env.update(fakes.env)
        settings = Settings.load(env, env_file=None, generate_dev_secrets=False)
        app = create_app(settings)
        async with app.test_app():
            runtime: Runtime = app.extensions["pulseplan"]
            user_id = str(uuid.uuid4())
            jwt = user_token(settings, user_id)
            client = app.test_client()
            expires = (datetime.now(UTC) + WARM_FOR).isoformat()
            for provider in PROFILES:
                response = await client.post(
                    f"/api/v1/tokens/connections/{provider}",
                    headers={"Authorization": f"Bearer {jwt}"},
                    json={
                        "access_token": f"bench-{provider}-{uuid.uuid4().hex}",
                        "refresh_token": f"bench-{provider}-{uuid.uuid4().hex}",
                        "expires_at": expires,
                        "scopes": ["read"],
                    },
                )
                if response.status_code not in (200, 201):
                    raise RuntimeError(f"storing {provider} failed: {response.status_code}")
            _, secret = await create_agent(runtime.storage, "hotpath", None, agent_pepper(settings))
            endpoints: Endpoints = {
                "/health": ("/health", {}),
                "tokens": ("/api/v1/tokens/tokens", {"Authorization": f"Bearer {jwt}"}),
                "agent": (
                    f"/api/v1/agent/users/{user_id}/tokens",
                    {"Authorization": f"Bearer {secret}"},
                ),
            }
            yield app, runtime, endpoints


async def breakdown(
    requests: int,
    rounds: int,
    variants: list[tuple[str, list[Ablation]]],
    out: Callable[[str], None],
) -> None:
    with tempfile.TemporaryDirectory(prefix="pulseplan-hotpath-") as folder:
        async with prepared_app(Path(folder)) as (app, runtime, endpoints):
            names = list(endpoints)
            best = {label: dict.fromkeys(names, float("inf")) for label, _ in variants}
            for name in names:  # warm caches (derived keys, verified tokens) first
                await cpu_per_request(app, *endpoints[name], 20)
            # Rounds interleave the variants, so a busy moment on a shared machine hits all of
            # them alike; each cell keeps its best round.
            for _ in range(rounds):
                for label, ablations in variants:
                    with contextlib.ExitStack() as stack:
                        for ablation in ablations:
                            stack.enter_context(ablation(app, runtime))
                        for name in names:
                            cost = await cpu_per_request(app, *endpoints[name], requests)
                            best[label][name] = min(best[label][name], cost)
            width = max(len(label) for label, _ in variants)
            out(f"CPU per request, microseconds (best of {rounds} rounds x {requests} requests)")
            header = "".join(f"{n:>9}" for n in names)
            tail = f"{'tokens-floor':>14}{'tokens vs as is':>17}{'ratio':>7}"
            out(f"{'variant'.ljust(width)}{header}{tail}")
            base = best[variants[0][0]]
            for label, _ in variants:
                costs = best[label]
                cells = "".join(f"{costs[n] * 1e6:>9.0f}" for n in names)
                extra = (costs["tokens"] - costs["/health"]) * 1e6
                delta = (costs["tokens"] - base["tokens"]) * 1e6
                ratio = costs["/health"] / costs["tokens"]
                out(f"{label.ljust(width)}{cells}{extra:>14.0f}{delta:>+17.0f}{ratio:>7.2f}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=200, help="requests per round")
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--as-is-only", action="store_true", help="skip the stand-in variants")
    args = parser.parse_args(argv)
    # The access lines are written (their cost is part of what is measured), to nowhere.
    with open(os.devnull, "w") as null, contextlib.redirect_stderr(null):
        asyncio.run(
            breakdown(
                args.requests,
                args.rounds,
                ABLATIONS[:1] if args.as_is_only else ABLATIONS,
                out=lambda line: print(line, file=sys.stdout, flush=True),
            )
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
