"""The fake provider's shared state: configuration, the ledger, faults, consent decisions and
the call log, behind one lock that every request thread and the test thread take."""

from __future__ import annotations

import threading
from collections import deque
from dataclasses import dataclass
from dataclasses import field
from typing import Literal

from pulseplan.testing.fake_faults import FaultQueue
from pulseplan.testing.fake_profile_base import Profile
from pulseplan.testing.fake_state import Account
from pulseplan.testing.fake_state import ClientApp
from pulseplan.testing.fake_state import Ledger
from pulseplan.testing.fake_state import Rotation

ConsentMode = Literal["auto", "manual"]


@dataclass
class Config:
    """Knobs a test may change while the server runs (under :attr:`Core.lock`)."""

    rotation: Rotation
    grace_seconds: float
    access_ttl: float | None
    refresh_ttl: float | None
    code_ttl: float
    require_pkce: bool
    tenant: str
    default_account: Account
    consent_mode: ConsentMode = "auto"
    #: ``"ttl"`` reports the real lifetime; an int (0, negative...) or ``None`` (omit)
    #: reports something else while the token keeps its real lifetime.
    expires_in_report: int | Literal["ttl"] | None = "ttl"
    #: RFC 9207: add ``iss`` to the authorization response.
    authorization_response_iss: bool = False
    dropped_scopes: set[str] = field(default_factory=set)


@dataclass(frozen=True)
class Call:
    """One request the fake received. Holds no token, code, secret or verifier.

    :param endpoint: ``authorize``, ``token``, ``revoke``, ``userinfo``, ``tokeninfo``,
        ``introspect``, ``profile``, ``oidc_userinfo``, ``state`` or ``unknown``.
    :param grant_type: for the token endpoint.
    :param client_auth: ``client_secret_basic``, ``client_secret_post`` or ``none`` when the
        request authenticated a client that way (even if the credentials were wrong).
    :param pkce: ``True`` verified, ``False`` failed or missing, ``None`` not applicable.
    :param error: the refusal reason or the fault kind, when the fake did not succeed.
    """

    endpoint: str
    method: str
    path: str
    status: int
    at: float
    grant_type: str | None = None
    client_auth: str | None = None
    client_id: str | None = None
    body_format: str | None = None
    pkce: bool | None = None
    error: str | None = None
    fault: str | None = None

    @property
    def ok(self) -> bool:
        return 200 <= self.status < 400


@dataclass
class Trace:
    """Facts a handler learns while serving, turned into a :class:`Call` afterwards."""

    grant_type: str | None = None
    client_auth: str | None = None
    client_id: str | None = None
    body_format: str | None = None
    pkce: bool | None = None
    error: str | None = None
    fault: str | None = None


@dataclass
class ConsentDecision:
    """How the (simulated) user answers the consent screen."""

    account: Account | None = None
    scopes: tuple[str, ...] | None = None
    deny: bool = False
    error: str = "access_denied"
    description: str | None = None


@dataclass
class PendingConsent:
    """An authorization request waiting for ``approve``/``deny`` in manual consent mode."""

    pending_id: str
    client_id: str
    redirect_uri: str
    scopes: tuple[str, ...]
    tenant: str
    params: dict[str, str] = field(repr=False)


class Core:
    """Everything the endpoint handlers share."""

    def __init__(
        self,
        profile: Profile,
        config: Config,
        ledger: Ledger,
        client: ClientApp,
    ):
        self.lock = threading.RLock()
        self.profile = profile
        self.config = config
        self.ledger = ledger
        self.faults = FaultQueue()
        self.clients: dict[str, ClientApp] = {client.client_id: client}
        self.calls: list[Call] = []
        #: consent decisions carried by a ``fake_session`` cookie (``FakeProvider.consent``).
        self.tickets: dict[str, ConsentDecision] = {}
        #: decisions for the next browser-driven authorization requests, in order.
        self.queued: deque[ConsentDecision] = deque()
        self.pending: dict[str, PendingConsent] = {}

    def record(self, endpoint: str, method: str, path: str, status: int, trace: Trace) -> None:
        call = Call(
            endpoint=endpoint,
            method=method,
            path=path,
            status=status,
            at=self.ledger.now(),
            grant_type=trace.grant_type,
            client_auth=trace.client_auth,
            client_id=trace.client_id,
            body_format=trace.body_format,
            pkce=trace.pkce,
            error=trace.error,
            fault=trace.fault,
        )
        with self.lock:
            self.calls.append(call)

    def expires_in(self) -> int | None:
        report = self.config.expires_in_report
        if report == "ttl":
            ttl = self.config.access_ttl
            return None if ttl is None else int(ttl)
        return report
