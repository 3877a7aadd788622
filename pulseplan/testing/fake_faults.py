"""Scriptable faults: what the fake answers instead of (or on top of) the normal response.

A test queues a :class:`Fault` per endpoint with ``FakeProvider.fail_next``; the next matching
request takes it. ``slow`` holds the response on a :class:`threading.Event` the test releases
(no sleeps), and :attr:`Fault.arrived` tells the test the request got there.
"""

from __future__ import annotations

import json
import random
import threading
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass
from dataclasses import field
from typing import Literal
from typing import get_args

from pulseplan.testing.fake_canvas import RATE_LIMIT_TEXT
from pulseplan.testing.fake_canvas import REFRESH_NOT_FOUND
from pulseplan.testing.fake_http import Reply
from pulseplan.testing.fake_microsoft import AADSTS_FAULTS
from pulseplan.testing.fake_microsoft import MicrosoftProfile
from pulseplan.testing.fake_notion import CODE_STATUS
from pulseplan.testing.fake_notion import notion_error
from pulseplan.testing.fake_profile_base import Profile
from pulseplan.testing.fake_state import Reason

FaultKind = Literal[
    "invalid_grant",
    "invalid_client",
    "rate_limited",
    "server_error",
    "slow",
    "reset",
    "omit_refresh_token",
    "error",
    "raw",
    "google_invalid_rapt",
    "google_deleted_client",
    "canvas_refresh_token_not_found",
    "canvas_rate_limit",
    "aadsts",
    "notion_error",
]
FAULT_KINDS: frozenset[str] = frozenset(get_args(FaultKind))
#: ``code`` and ``refresh`` narrow ``token`` to one grant type; ``userinfo`` covers every
#: identity endpoint of the profile.
FaultEndpoint = Literal[
    "authorize", "token", "code", "refresh", "revoke", "userinfo", "tokeninfo", "introspect"
]
FAULT_ENDPOINTS: frozenset[str] = frozenset(get_args(FaultEndpoint))
#: Kinds that change how the normal response is produced instead of replacing it.
MODIFIERS = frozenset({"slow", "omit_refresh_token"})
RESOURCE_ENDPOINTS = frozenset({"userinfo", "tokeninfo", "introspect"})


@dataclass(eq=False)
class Fault:
    """One scripted fault.

    :param endpoint: where it applies (see :data:`FAULT_ENDPOINTS`).
    :param kind: what happens (see :data:`FaultKind`).
    :param status: HTTP status override (``server_error`` defaults to 500).
    :param error: ``error`` (or Notion ``code``) for ``error`` / ``aadsts`` faults.
    :param description: ``error_description`` / message override.
    :param code: the AADSTS number or the Notion ``code``.
    :param retry_after: ``Retry-After`` seconds for rate limits.
    :param body: the body of a ``raw`` fault (``str``, ``bytes`` or JSON data).
    :param headers: extra headers for ``raw`` faults.
    :param after: ``slow`` only: process the request first (tokens issued and rotated), then
        hold the response; models a reply lost to a client timeout or crash.
    :param max_wait: ``slow`` only: the longest the response is held without release (so a
        small value is a fixed delay that :meth:`release` can cut short).
    :param rate: take the fault on this fraction of matching requests (``None``: always),
        drawn from a generator seeded with ``seed`` so a failing run can be replayed.
    """

    endpoint: str
    kind: str
    status: int | None = None
    error: str | None = None
    description: str | None = None
    code: int | str | None = None
    retry_after: int = 7
    body: object = None
    headers: Mapping[str, str] = field(default_factory=dict)
    after: bool = False
    max_wait: float = 30.0
    rate: float | None = None
    seed: int = 0
    arrived: threading.Event = field(default_factory=threading.Event, repr=False)
    gate: threading.Event = field(default_factory=threading.Event, repr=False)
    hits: int = 0
    _random: random.Random = field(init=False, repr=False)

    def __post_init__(self) -> None:
        if self.endpoint not in FAULT_ENDPOINTS:
            raise ValueError(f"unknown endpoint {self.endpoint!r}: {sorted(FAULT_ENDPOINTS)}")
        if self.kind not in FAULT_KINDS:
            raise ValueError(f"unknown fault kind {self.kind!r}: {sorted(FAULT_KINDS)}")
        if self.rate is not None and not 0.0 < self.rate <= 1.0:
            raise ValueError("rate must be in (0, 1]")
        self._random = random.Random(self.seed)

    def strikes(self) -> bool:
        """Whether this request takes the fault (always, unless a ``rate`` is set)."""
        return self.rate is None or self._random.random() < self.rate

    def release(self) -> None:
        """Let a held ``slow`` response go."""
        self.gate.set()

    def wait_arrived(self, timeout: float = 5.0) -> bool:
        """Block until a request has taken this fault (use ``asyncio.to_thread`` in async
        tests)."""
        return self.arrived.wait(timeout)

    def hold(self) -> None:
        self.arrived.set()
        self.gate.wait(self.max_wait)


class FaultQueue:
    """Per-endpoint FIFO queues; ``times=None`` repeats a fault until cleared."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._queues: dict[str, deque[list[object]]] = {e: deque() for e in FAULT_ENDPOINTS}

    def push(self, fault: Fault, times: int | None) -> None:
        if times is not None and times < 1:
            raise ValueError("times must be at least 1 (or None for every request)")
        with self._lock:
            self._queues[fault.endpoint].append([fault, times])

    def pop(self, *endpoints: str) -> Fault | None:
        """Take the first queued fault of the first endpoint (in order) that has one."""
        with self._lock:
            for endpoint in endpoints:
                queue = self._queues.get(endpoint)
                if not queue:
                    continue
                entry = queue[0]
                fault, remaining = entry[0], entry[1]
                assert isinstance(fault, Fault)
                if not fault.strikes():
                    continue
                fault.hits += 1
                if isinstance(remaining, int):
                    entry[1] = remaining - 1
                    if remaining == 1:
                        queue.popleft()
                return fault
        return None

    def clear(self) -> None:
        with self._lock:
            faults = [e[0] for q in self._queues.values() for e in q]
            for queue in self._queues.values():
                queue.clear()
        for fault in faults:
            assert isinstance(fault, Fault)
            fault.release()

    def pending(self) -> int:
        with self._lock:
            return sum(len(q) for q in self._queues.values())


def raw_reply(fault: Fault) -> Reply:
    body, content_type = fault.body, "application/json"
    if isinstance(body, bytes):
        data, content_type = body, "application/octet-stream"
    elif isinstance(body, str):
        data, content_type = body.encode(), "text/plain; charset=utf-8"
    else:
        data = b"" if body is None else json.dumps(body).encode()
    headers = {k: v for k, v in fault.headers.items() if k.lower() != "content-type"}
    content_type = next(
        (v for k, v in fault.headers.items() if k.lower() == "content-type"), content_type
    )
    return Reply(fault.status or 500, data, content_type=content_type, headers=headers)


def fault_reply(fault: Fault, profile: Profile, endpoint: str) -> Reply:
    """The reply a replacing fault produces; ``endpoint`` is the queue it came from."""
    kind = fault.kind
    if kind == "reset":
        return Reply(0, reset=True)
    if kind == "invalid_grant":
        if endpoint in RESOURCE_ENDPOINTS:
            return profile.unauthorized(False)
        return profile.error(Reason.CODE_REUSED if endpoint == "code" else Reason.REFRESH_REVOKED)
    if kind == "invalid_client":
        return profile.error(Reason.CLIENT_SECRET)
    if kind == "rate_limited":
        return profile.rate_limited(fault.retry_after)
    if kind == "server_error":
        return profile.server_error(fault.status or 500)
    if kind == "error":
        return profile.oauth_error(
            fault.status or 400, fault.error or "invalid_request", fault.description
        )
    if kind == "raw":
        return raw_reply(fault)
    if kind == "google_invalid_rapt":
        return Reply.json(
            fault.status or 400,
            {
                "error": "invalid_grant",
                "error_description": fault.description or "reauth related error (invalid_rapt)",
                "error_subtype": "invalid_rapt",
            },
        )
    if kind == "google_deleted_client":
        description = fault.description or "The OAuth client was deleted."
        return Reply.json(
            fault.status or 401, {"error": "deleted_client", "error_description": description}
        )
    if kind == "canvas_refresh_token_not_found":
        return Reply.json(
            fault.status or 400,
            {"error": "invalid_request", "error_description": REFRESH_NOT_FOUND},
        )
    if kind == "canvas_rate_limit":
        headers = {"X-Rate-Limit-Remaining": "0.0", "X-Request-Cost": "200"}
        return Reply.text(fault.status or 403, RATE_LIMIT_TEXT, headers=headers)
    if kind == "aadsts":
        return aadsts_reply(fault, profile)
    if kind == "notion_error":
        code = str(fault.code or fault.error or "invalid_grant")
        reply = notion_error(
            fault.status or CODE_STATUS.get(code, 400), code, fault.description or code
        )
        if code == "rate_limited":
            reply.headers["Retry-After"] = str(fault.retry_after)
        return reply
    raise ValueError(f"fault kind {kind!r} does not replace the response")


def aadsts_reply(fault: Fault, profile: Profile) -> Reply:
    number = int(fault.code or 70008)
    default_error, default_text = AADSTS_FAULTS.get(number, ("invalid_grant", "Fake AADSTS."))
    error = fault.error or default_error
    status = fault.status or (401 if error == "invalid_client" else 400)
    reply = MicrosoftProfile(profile.base_url).aadsts(
        number, error, fault.description or default_text, status=status
    )
    if status == 429:
        reply.headers["Retry-After"] = str(fault.retry_after)
    return reply
