"""The fake provider's HTTP layer: a quiet threaded HTTP/1.1 server on loopback.

``ThreadingHTTPServer`` runs in its own thread and owns no event loop, so sync tests, async
tests on any loop and several PulsePlan worker processes can all hit it at once. One thread
serves each connection; the application callable turns a :class:`Request` into a
:class:`Reply` and never sees sockets. Nothing here logs: request lines carry authorization
codes and bodies carry secrets.
"""

from __future__ import annotations

import contextlib
import json
import socket
import struct
import threading
from collections.abc import Callable
from collections.abc import Mapping
from dataclasses import dataclass
from dataclasses import field
from http.server import BaseHTTPRequestHandler
from http.server import ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs
from urllib.parse import urlsplit

#: Larger bodies are refused with 413: no OAuth request comes near it.
MAX_BODY = 64 * 1024
#: Oversized bodies up to this are read and dropped before the 413, so closing the socket
#: with unread data (a TCP RST) cannot race the response on the client side.
DRAIN_LIMIT = 4 * 1024 * 1024


@dataclass(frozen=True)
class Request:
    """One HTTP request as the fake's endpoints see it (header names lower-cased)."""

    method: str
    path: str
    query: Mapping[str, list[str]] = field(repr=False)
    headers: Mapping[str, str] = field(repr=False)
    body: bytes = field(default=b"", repr=False)

    def header(self, name: str) -> str | None:
        return self.headers.get(name.lower())

    def param(self, name: str) -> str | None:
        """First value of a query parameter."""
        values = self.query.get(name)
        return values[0] if values else None

    @property
    def media_type(self) -> str:
        return (self.header("content-type") or "").split(";")[0].strip().lower()


@dataclass
class Reply:
    """A response to write, or ``reset=True`` to drop the connection without one."""

    status: int
    body: bytes = b""
    content_type: str | None = "application/json"
    headers: dict[str, str] = field(default_factory=dict)
    reset: bool = False

    @classmethod
    def json(cls, status: int, data: Any, headers: Mapping[str, str] | None = None) -> Reply:
        return cls(status, json.dumps(data).encode(), headers=dict(headers or {}))

    @classmethod
    def text(
        cls,
        status: int,
        text: str,
        content_type: str = "text/plain; charset=utf-8",
        headers: Mapping[str, str] | None = None,
    ) -> Reply:
        return cls(status, text.encode(), content_type=content_type, headers=dict(headers or {}))

    @classmethod
    def redirect(cls, location: str) -> Reply:
        return cls(302, b"", content_type=None, headers={"Location": location})

    def data(self) -> Any:
        """The JSON body, for tests and for call records."""
        return json.loads(self.body) if self.body else None


App = Callable[[Request], Reply]


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "PulsePlanFakeProvider/1"
    sys_version = ""
    # Idle keep-alive connections end after this, so no thread outlives a forgotten client.
    timeout = 30
    # Headers and body go out in two writes; with Nagle on, a keep-alive client waits ~40 ms
    # for the delayed ACK on every request.
    disable_nagle_algorithm = True
    server: FakeHTTPServer

    def log_message(self, format: str, *args: Any) -> None:
        """Silenced: the default access log prints request lines, which carry codes."""

    def do_GET(self) -> None:
        self._serve()

    do_POST = do_PUT = do_PATCH = do_DELETE = do_OPTIONS = do_HEAD = do_GET

    def __getattr__(self, name: str) -> Any:
        # Any other method reaches the router (404/405) instead of the stdlib's 501.
        if name.startswith("do_"):
            return self._serve
        raise AttributeError(name)

    def _serve(self) -> None:
        reply = self._read_and_dispatch()
        if reply.reset:
            # SO_LINGER 0 makes close() send a TCP RST: the client sees a reset connection.
            self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            self.close_connection = True
            self.connection.close()
            return
        try:
            self.send_response(reply.status)
            if reply.content_type:
                self.send_header("Content-Type", reply.content_type)
            for name, value in reply.headers.items():
                self.send_header(name, value)
            self.send_header("Content-Length", str(len(reply.body)))
            self.send_header("Cache-Control", "no-store")
            if self.close_connection:
                # Say so, or a keep-alive client pools the socket and its next request dies.
                self.send_header("Connection", "close")
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(reply.body)
        except OSError:
            # The client gave up (its timeout fired while a slow fault held the reply).
            self.close_connection = True

    def _read_and_dispatch(self) -> Reply:
        raw_length = self.headers.get("Content-Length")
        if raw_length is None and self.headers.get("Transfer-Encoding"):
            self.close_connection = True
            return Reply.json(411, {"error": "invalid_request", "error_description": "length"})
        try:
            length = int(raw_length or 0)
        except ValueError:
            length = -1
        if length < 0 or length > MAX_BODY:
            self.close_connection = True
            remaining = length if 0 < length <= DRAIN_LIMIT else 0
            while remaining > 0:
                chunk = self.rfile.read(min(remaining, 65536))
                if not chunk:
                    break
                remaining -= len(chunk)
            return Reply.json(413, {"error": "invalid_request", "error_description": "body size"})
        body = self.rfile.read(length) if length else b""
        parts = urlsplit(self.path)
        request = Request(
            method=self.command,
            path=parts.path or "/",
            query=parse_qs(parts.query, keep_blank_values=True),
            headers={k.lower(): v for k, v in self.headers.items()},
            body=body,
        )
        try:
            return self.server.app(request)
        except Exception as exc:  # a fake bug must be a visible 500, never a dead socket
            self.server.internal_errors.append(f"{request.method} {request.path}: {exc!r}")
            return Reply.json(
                500, {"error": "server_error", "error_description": "fake provider bug"}
            )


class FakeHTTPServer(ThreadingHTTPServer):
    """A threaded server that tracks its connections so :meth:`close` ends them all."""

    daemon_threads = True
    allow_reuse_address = True
    # socketserver's default backlog of 5 drops the SYNs of a burst of concurrent clients,
    # which then retry a second later: concurrency tests would measure TCP, not the fake.
    request_queue_size = 256

    def __init__(self, address: tuple[str, int], app: App):
        self.app = app
        self.internal_errors: list[str] = []
        self._lock = threading.Lock()
        self._sockets: set[socket.socket] = set()
        self._workers: set[threading.Thread] = set()
        self._thread: threading.Thread | None = None
        super().__init__(address, _Handler)

    @property
    def port(self) -> int:
        return int(self.server_address[1])

    def start(self) -> None:
        self._thread = threading.Thread(
            target=self.serve_forever,
            kwargs={"poll_interval": 0.01},
            name=f"fake-provider-{self.port}",
            daemon=True,
        )
        self._thread.start()

    def close(self, join_timeout: float = 5.0) -> None:
        """Stop accepting, end open keep-alive connections and wait for worker threads."""
        if self._thread is not None:
            self.shutdown()
            self._thread.join(join_timeout)
            self._thread = None
        with self._lock:
            sockets, workers = list(self._sockets), list(self._workers)
        for sock in sockets:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
        for worker in workers:
            worker.join(join_timeout)
        self.server_close()

    def process_request(self, request: Any, client_address: Any) -> None:
        worker = threading.Thread(
            target=self._work, args=(request, client_address), name="fake-provider-conn"
        )
        worker.daemon = True
        with self._lock:
            self._sockets.add(request)
            self._workers.add(worker)
        worker.start()

    def _work(self, request: Any, client_address: Any) -> None:
        try:
            self.process_request_thread(request, client_address)
        finally:
            with self._lock:
                self._sockets.discard(request)
                self._workers.discard(threading.current_thread())

    def handle_error(self, request: Any, client_address: Any) -> None:
        """Quiet: a client hanging up mid-request is normal in fault tests."""
