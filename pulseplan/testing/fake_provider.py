"""A fake OAuth 2.0 provider: a real HTTP server on 127.0.0.1 that speaks Google's,
Microsoft's, Canvas's, Notion's or a plain RFC 6749 provider's wire protocol.

::

    with FakeProvider("google") as fake:                  # or: async with
        env = fake.env("google")                          # GOOGLE_CLIENT_ID, ..._TOKEN_URL, ...
        callback = fake.consent(authorization_url)        # -> redirect_uri?code=...&state=...
        fake.fail_next("refresh", "rate_limited", retry_after=30)
        assert fake.count("refresh") == 1
        assert fake.is_live(stored_refresh_token)

Run it on its own for a manual tour: ``python -m pulseplan.testing.fake_provider --profile
google --port 9000`` prints the ``.env`` lines that point PulsePlan at it.

The server runs in a background thread with no event loop of its own, so sync tests, async
tests and several PulsePlan worker processes can use it at once. Nothing it logs, records or
reprs contains a token, code, secret or verifier.
"""

from __future__ import annotations

import argparse
import re
import secrets
import signal
import sys
import threading
import time
from collections.abc import Callable
from collections.abc import Sequence
from types import TracebackType

from pulseplan.testing.fake_consent import ConsentControls
from pulseplan.testing.fake_consent import ConsentError
from pulseplan.testing.fake_core import Call
from pulseplan.testing.fake_core import Config
from pulseplan.testing.fake_core import ConsentMode
from pulseplan.testing.fake_core import Core
from pulseplan.testing.fake_endpoints import Router
from pulseplan.testing.fake_faults import Fault
from pulseplan.testing.fake_faults import FaultEndpoint
from pulseplan.testing.fake_faults import FaultKind
from pulseplan.testing.fake_http import FakeHTTPServer
from pulseplan.testing.fake_ledger import GrantInfo
from pulseplan.testing.fake_ledger import LedgerControls
from pulseplan.testing.fake_profiles import PROFILES
from pulseplan.testing.fake_profiles import ProfileName
from pulseplan.testing.fake_profiles import profile_class
from pulseplan.testing.fake_state import ROTATIONS
from pulseplan.testing.fake_state import Account
from pulseplan.testing.fake_state import ClientApp
from pulseplan.testing.fake_state import Ledger
from pulseplan.testing.fake_state import Rotation

__all__ = ["Account", "Call", "ConsentError", "FakeProvider", "Fault", "GrantInfo", "main"]

PREFIX = re.compile(r"[A-Za-z0-9]{1,32}")


class FakeProvider(ConsentControls, LedgerControls):
    """The fake provider server. See the module docstring for a tour.

    Consent controls (``consent``, ``deny_next``, ``approve``...) come from
    :class:`~pulseplan.testing.fake_consent.ConsentControls`; the ledger view and provider-side
    actions (``count``, ``is_live``, ``revoke_grant``, ``advance``...) from
    :class:`~pulseplan.testing.fake_ledger.LedgerControls`.

    :param profile: ``standard``, ``google``, ``microsoft``, ``canvas`` or ``notion``.
    :param rotation: refresh-token policy; ``None`` takes the profile's (standard: ``strict``,
        google/canvas: ``none``, microsoft: ``rotate``, notion: ``strict``).
    :param grace_seconds: how long a rotated-out token keeps working under ``grace``.
    :param access_ttl: access-token lifetime in seconds (``None``: never expires).
    :param refresh_ttl: refresh-token lifetime (``None``: until revoked).
    :param code_ttl: authorization-code lifetime.
    :param require_pkce: refuse authorization requests without an S256 challenge; ``None``
        takes the profile's (only ``standard`` requires it). A challenge that was sent is
        always verified where the profile supports PKCE.
    :param token_prefix: tokens look like ``{prefix}_at_...``, ``{prefix}_rt_...`` and codes
        ``{prefix}_code_...``, so a test can grep logs for a canary prefix.
    :param client_id: the registered client (random when omitted).
    :param client_secret: its secret (random when omitted).
    :param redirect_uris: registered redirect URIs; ``None`` accepts any absolute URI.
    :param consent: ``auto`` approves at once; ``manual`` waits for :meth:`approve`.
    :param tenant: Microsoft tenant path segment (default ``common``).
    :param account: who consents by default.
    :param host: interface to bind; keep loopback.
    :param port: ``0`` for an ephemeral port.
    :param clock: wall clock; :meth:`advance` adds to it.
    """

    def __init__(
        self,
        profile: ProfileName = "standard",
        *,
        rotation: Rotation | None = None,
        grace_seconds: float = 60.0,
        access_ttl: float | None = 3600,
        refresh_ttl: float | None = None,
        code_ttl: float = 600,
        require_pkce: bool | None = None,
        token_prefix: str = "fake",  # noqa: S107 - a label, not a secret
        client_id: str | None = None,
        client_secret: str | None = None,
        redirect_uris: Sequence[str] | None = None,
        consent: ConsentMode = "auto",
        tenant: str | None = None,
        account: Account | None = None,
        host: str = "127.0.0.1",
        port: int = 0,
        clock: Callable[[], float] = time.time,
    ):
        cls = profile_class(profile)
        if rotation is not None and rotation not in ROTATIONS:
            raise ValueError(f"rotation must be one of {ROTATIONS}")
        if not PREFIX.fullmatch(token_prefix):
            raise ValueError("token_prefix must be 1-32 letters or digits")
        self._host, self._port = host, port
        client = ClientApp(
            client_id or f"{profile}-client-{secrets.token_hex(4)}",
            client_secret if client_secret is not None else secrets.token_urlsafe(32),
            tuple(redirect_uris) if redirect_uris is not None else None,
        )
        config = Config(
            rotation=rotation or cls.rotation,
            grace_seconds=grace_seconds,
            access_ttl=access_ttl,
            refresh_ttl=refresh_ttl,
            code_ttl=code_ttl,
            require_pkce=cls.require_pkce if require_pkce is None else require_pkce,
            tenant=tenant or cls.default_tenant,
            default_account=account or Account(),
            consent_mode=consent,
        )
        ledger = Ledger(token_prefix=token_prefix, clock=clock)
        self._core = Core(cls(""), config, ledger, client)
        self._client = client
        self._server: FakeHTTPServer | None = None
        self._faults: list[Fault] = []

    # ------------------------------------------------------------------ lifecycle

    def start(self) -> FakeProvider:
        """Bind and serve in a background thread (idempotent)."""
        if self._server is None:
            server = FakeHTTPServer((self._host, self._port), Router(self._core))
            self._core.profile.base_url = f"http://{self._host}:{server.port}"
            server.start()
            self._server = server
        return self

    def stop(self) -> None:
        """Release held responses, close connections, stop the server (idempotent)."""
        self._core.faults.clear()
        for fault in self._faults:
            fault.release()
        if self._server is not None:
            self._server.close()
            self._server = None

    def __enter__(self) -> FakeProvider:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    async def __aenter__(self) -> FakeProvider:
        return self.start()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def __repr__(self) -> str:
        where = self._core.profile.base_url or "not started"
        return (
            f"<FakeProvider {self.profile} at {where} rotation={self._core.config.rotation} "
            f"client_id={self._client.client_id!r}>"
        )

    # ------------------------------------------------------------------ wiring

    @property
    def profile(self) -> str:
        return self._core.profile.name

    @property
    def base_url(self) -> str:
        """``http://127.0.0.1:<port>``; the Canvas instance URL for the canvas profile."""
        if self._server is None:
            raise RuntimeError("the fake provider is not started; call start() or use `with`")
        return self._core.profile.base_url

    @property
    def endpoints(self) -> dict[str, str | None]:
        """``authorize_url``, ``token_url``, ``revoke_url`` (``None`` for Microsoft),
        ``userinfo_url``, ``base_url`` and the profile's extras (``tokeninfo_url``,
        ``introspect_url``, ``profile_url``, ``oidc_userinfo_url``)."""
        self.base_url  # noqa: B018 - raises when not started
        return self._core.profile.endpoints(self._core.config.tenant)

    @property
    def client_id(self) -> str:
        return self._client.client_id

    @property
    def client_secret(self) -> str | None:
        return self._client.client_secret

    def env(
        self, provider_name: str | None = None, *, scopes: Sequence[str] | None = None
    ) -> dict[str, str]:
        """PulsePlan settings that point the provider ``provider_name`` (default: the profile
        name) at this fake: ``{NAME}_CLIENT_ID/SECRET``, the four endpoint overrides that
        exist, and the profile's own settings (``CANVAS_BASE_URL``, ``MICROSOFT_TENANT_ID``)."""
        prefix = (provider_name or self.profile).upper()
        env = {f"{prefix}_CLIENT_ID": self._client.client_id}
        if self._client.client_secret is not None:
            env[f"{prefix}_CLIENT_SECRET"] = self._client.client_secret
        urls = self.endpoints
        for key in ("authorize_url", "token_url", "revoke_url", "userinfo_url"):
            if urls.get(key):
                env[f"{prefix}_{key.upper()}"] = str(urls[key])
        if scopes is not None:
            env[f"{prefix}_SCOPES"] = " ".join(scopes)
        env.update(self._core.profile.env_extra(self._core.config.tenant))
        return env

    def add_client(
        self,
        client_id: str,
        client_secret: str | None = None,
        *,
        public: bool = False,
        redirect_uris: Sequence[str] | None = None,
    ) -> ClientApp:
        """Register another client (a random secret unless ``public``)."""
        secret = None if public else (client_secret or secrets.token_urlsafe(32))
        client = ClientApp(client_id, secret, tuple(redirect_uris) if redirect_uris else None)
        with self._core.lock:
            self._core.clients[client_id] = client
        return client

    # ------------------------------------------------------------------ faults

    def fail_next(
        self,
        endpoint: FaultEndpoint,
        kind: FaultKind,
        *,
        times: int | None = 1,
        status: int | None = None,
        error: str | None = None,
        description: str | None = None,
        code: int | str | None = None,
        retry_after: int = 7,
        body: object = None,
        headers: dict[str, str] | None = None,
        after: bool = False,
        max_wait: float = 30.0,
        rate: float | None = None,
        seed: int = 0,
    ) -> Fault:
        """Queue a fault for the next request(s) to ``endpoint``.

        ``endpoint``: ``token`` (any grant), ``code``, ``refresh``, ``authorize``, ``revoke``,
        ``userinfo``, ``tokeninfo`` or ``introspect``. ``times=None`` repeats until
        :meth:`clear_faults`; with ``rate`` (and ``times=None``) it strikes that fraction of
        requests, reproducibly for a given ``seed``. See
        :class:`~pulseplan.testing.fake_faults.Fault` for the rest.

        ``invalid_grant`` and ``invalid_client`` answer in the active profile's words: Canvas
        reports a dead refresh token as ``invalid_request`` / "refresh_token not found",
        Microsoft with AADSTS50173, Notion with ``{"object": "error", ...}``. The
        provider-named kinds (``canvas_rate_limit``, ``aadsts``, ``notion_error``...) send
        that provider's body whatever the profile.
        """
        fault = Fault(
            endpoint=endpoint,
            kind=kind,
            status=status,
            error=error,
            description=description,
            code=code,
            retry_after=retry_after,
            body=body,
            headers=dict(headers or {}),
            after=after,
            max_wait=max_wait,
            rate=rate,
            seed=seed,
        )
        self._core.faults.push(fault, times)
        self._faults.append(fault)
        return fault

    def clear_faults(self) -> None:
        """Drop queued faults and release every held response."""
        self._core.faults.clear()
        for fault in self._faults:
            fault.release()

    # ------------------------------------------------------------------ knobs

    @property
    def rotation(self) -> Rotation:
        return self._core.config.rotation

    @rotation.setter
    def rotation(self, policy: Rotation) -> None:
        if policy not in ROTATIONS:
            raise ValueError(f"rotation must be one of {ROTATIONS}")
        with self._core.lock:
            self._core.config.rotation = policy

    @property
    def config(self) -> Config:
        """Live knobs (``grace_seconds``, ``access_ttl``, ``expires_in_report``,
        ``require_pkce``, ``authorization_response_iss``...); change them between requests."""
        return self._core.config

    @property
    def internal_errors(self) -> list[str]:
        """Exceptions the fake itself raised while serving (a test can assert none)."""
        return list(self._server.internal_errors) if self._server is not None else []


def main(argv: Sequence[str] | None = None) -> int:
    """Serve a fake provider until interrupted; print its PulsePlan env lines on stdout."""
    parser = argparse.ArgumentParser(
        prog="python -m pulseplan.testing.fake_provider",
        description="Run a fake OAuth provider on loopback for PulsePlan tests and demos.",
    )
    parser.add_argument("--profile", choices=sorted(PROFILES), default="standard")
    parser.add_argument("--name", help="provider name for the env lines (default: profile)")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--rotation", choices=ROTATIONS)
    parser.add_argument("--client-id")
    parser.add_argument("--client-secret")
    parser.add_argument("--token-prefix", default="fake")
    args = parser.parse_args(argv)
    fake = FakeProvider(
        args.profile,
        rotation=args.rotation,
        client_id=args.client_id,
        client_secret=args.client_secret,
        token_prefix=args.token_prefix,
        host=args.host,
        port=args.port,
    )
    stopped = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: stopped.set())
    try:
        fake.start()
    except OSError as exc:  # the usual cause: the port is taken (an earlier run still going)
        print(f"error: cannot listen on {args.host}:{args.port}: {exc.strerror}", file=sys.stderr)
        return 1
    with fake:
        for key, value in fake.env(args.name).items():
            print(f"{key}={value}")
        sys.stdout.flush()
        print(
            f"# fake {fake.profile} provider at {fake.base_url}; Ctrl-C stops it", file=sys.stderr
        )
        stopped.wait()
    return 0


if __name__ == "__main__":
    sys.exit(main())
