"""A small HTTP/1.1 load generator, for machines without ``wrk``.

``python bench/pyload.py SPEC_FILE`` reads ``{"url", "headers", "connections", "duration",
"method", "body"}`` and prints one line: ``BENCHJSON {...}`` in the shape the ``wrk`` script
of :mod:`bench.load` prints. Keep-alive connections on raw asyncio streams (no HTTP library
in the loop: the client must cost as little as possible). It runs in a process of its own, so
it never shares an interpreter with the server it measures.
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit


def build_request(spec: dict[str, Any]) -> tuple[str, int, bytes]:
    parts = urlsplit(spec["url"])
    path = parts.path or "/"
    if parts.query:
        path += "?" + parts.query
    body = spec.get("body", "").encode()
    lines = [f"{spec.get('method', 'GET')} {path} HTTP/1.1", f"Host: {parts.netloc}"]
    lines += [f"{name}: {value}" for name, value in spec.get("headers", {}).items()]
    if body:
        lines.append(f"Content-Length: {len(body)}")
    raw = ("\r\n".join(lines) + "\r\n\r\n").encode() + body
    return parts.hostname or "127.0.0.1", parts.port or 80, raw


async def read_response(reader: asyncio.StreamReader) -> int:
    """Read one response; return its status. Only ``Content-Length`` bodies are supported."""
    head = await reader.readuntil(b"\r\n\r\n")
    status_line, _, rest = head.partition(b"\r\n")
    status = int(status_line.split()[1])
    length = 0
    for line in rest.split(b"\r\n"):
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value.strip())
    if length:
        await reader.readexactly(length)
    return status


async def worker(
    host: str, port: int, raw: bytes, until: float, latencies: list[float], errors: list[int]
) -> None:
    reader, writer = await asyncio.open_connection(host, port)
    try:
        while time.perf_counter() < until:
            start = time.perf_counter()
            writer.write(raw)
            try:
                status = await read_response(reader)
            except (asyncio.IncompleteReadError, ConnectionError):
                errors[1] += 1
                writer.close()
                reader, writer = await asyncio.open_connection(host, port)
                continue
            latencies.append(time.perf_counter() - start)
            if status >= 400:
                errors[0] += 1
    finally:
        writer.close()


async def run(spec: dict[str, Any]) -> dict[str, int]:
    host, port, raw = build_request(spec)
    latencies: list[float] = []
    errors = [0, 0]  # [status >= 400, socket errors]
    started = time.perf_counter()
    until = started + float(spec["duration"])
    await asyncio.gather(
        *(
            worker(host, port, raw, until, latencies, errors)
            for _ in range(int(spec["connections"]))
        )
    )
    elapsed = time.perf_counter() - started
    latencies.sort()

    def percentile(p: float) -> int:
        if not latencies:
            return 0
        return int(latencies[min(len(latencies) - 1, int(len(latencies) * p / 100))] * 1e6)

    return {
        "requests": len(latencies),
        "duration_us": int(elapsed * 1e6),
        "p50_us": percentile(50),
        "p99_us": percentile(99),
        "status": errors[0],
        "read": errors[1],
    }


def main() -> int:
    spec = json.loads(Path(sys.argv[1]).read_text())
    print("BENCHJSON " + json.dumps(asyncio.run(run(spec))), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
