"""The fake's request router: profile routes, the ``Notion-Version`` gate, faults for the
non-token endpoints, and one :class:`~pulseplan.testing.fake_core.Call` per request."""

from __future__ import annotations

from collections import Counter
from dataclasses import asdict

from pulseplan.testing.fake_authorize import authorize
from pulseplan.testing.fake_core import Core
from pulseplan.testing.fake_core import Trace
from pulseplan.testing.fake_faults import MODIFIERS
from pulseplan.testing.fake_faults import Fault
from pulseplan.testing.fake_faults import fault_reply
from pulseplan.testing.fake_http import Reply
from pulseplan.testing.fake_http import Request
from pulseplan.testing.fake_resources import identity
from pulseplan.testing.fake_resources import introspect
from pulseplan.testing.fake_resources import revoke
from pulseplan.testing.fake_resources import tokeninfo
from pulseplan.testing.fake_state import Reason
from pulseplan.testing.fake_token import token

#: Identity endpoints share the ``userinfo`` fault queue.
IDENTITY_ENDPOINTS = frozenset({"userinfo", "profile", "oidc_userinfo"})
#: Read-only call log for a fake running in another process (no tokens in it).
STATE_PATH = "/_fake/state"


class Router:
    """The WSGI-less application the HTTP server calls for every request."""

    def __init__(self, core: Core):
        self.core = core

    def __call__(self, request: Request) -> Reply:
        trace = Trace()
        endpoint, tenant = self.core.profile.match(request.method, request.path)
        if request.path == STATE_PATH and request.method == "GET":
            endpoint = "state"
        reply = self.dispatch(endpoint, tenant, request, trace)
        name = endpoint if endpoint not in (None, "405") else "unknown"
        self.core.record(name or "unknown", request.method, request.path, reply.status, trace)
        return reply

    def dispatch(self, endpoint: str | None, tenant: str, request: Request, trace: Trace) -> Reply:
        core = self.core
        profile = core.profile
        if endpoint is None:
            return Reply.json(404, {"error": "not_found"})
        if endpoint == "405":
            return Reply.json(405, {"error": "method_not_allowed"})
        if endpoint == "state":
            return self.state()
        version = profile.version_header
        if version and endpoint != "authorize" and not request.header(version):
            trace.error = Reason.MISSING_VERSION.value
            return profile.error(Reason.MISSING_VERSION)
        if endpoint == "token":
            return token(core, request, tenant, trace)
        queue = "userinfo" if endpoint in IDENTITY_ENDPOINTS else endpoint
        fault = core.faults.pop(queue)
        hold_after: Fault | None = None
        if fault is not None:
            trace.fault = fault.kind
            if fault.kind == "slow" and fault.after:
                hold_after = fault
            elif fault.kind == "slow":
                fault.hold()
            elif fault.kind not in MODIFIERS:
                trace.error = fault.kind
                return fault_reply(fault, profile, queue)
        reply = self.serve(endpoint, tenant, request, trace)
        if hold_after is not None:
            hold_after.hold()
        return reply

    def serve(self, endpoint: str, tenant: str, request: Request, trace: Trace) -> Reply:
        core = self.core
        if endpoint == "authorize":
            return authorize(core, request, tenant, trace)
        if endpoint == "revoke":
            return revoke(core, request, trace)
        if endpoint == "tokeninfo":
            return tokeninfo(core, request, trace)
        if endpoint == "introspect":
            return introspect(core, request, trace)
        return identity(core, request, endpoint, trace)

    def state(self) -> Reply:
        with self.core.lock:
            calls = list(self.core.calls)
        counts = Counter(call.endpoint for call in calls)
        refreshes = sum(1 for call in calls if call.grant_type == "refresh_token")
        return Reply.json(
            200,
            {
                "profile": self.core.profile.name,
                "counts": dict(counts),
                "refreshes": refreshes,
                "calls": [asdict(call) for call in calls[-200:]],
            },
        )
