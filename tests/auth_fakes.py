"""Test doubles and helpers for authentication: an in-memory :class:`AgentStore`, test signing
keys, token minting and a JWKS server on a real loopback socket.

Other test modules may use :func:`user_token` to call ``@require_user`` routes::

    headers = {"Authorization": f"Bearer {user_token(settings)}"}
"""

from __future__ import annotations

import base64
import functools
import hashlib
import hmac
import json
import threading
import time
import uuid
from dataclasses import dataclass
from dataclasses import replace
from datetime import UTC
from datetime import datetime
from http.server import BaseHTTPRequestHandler
from http.server import ThreadingHTTPServer
from typing import Any

import jwt
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.hazmat.primitives.asymmetric.ec import EllipticCurvePrivateKey
from cryptography.hazmat.primitives.asymmetric.rsa import RSAPrivateKey
from jwt.algorithms import ECAlgorithm
from jwt.algorithms import RSAAlgorithm

from pulseplan.auth.agents import AgentRecord
from pulseplan.auth.agents import DuplicateAgent
from pulseplan.settings import Settings

JWKS_PATH = "/auth/v1/.well-known/jwks.json"
USER_ID = "5f0c8a1e-3b6d-4c2a-9e7f-1a2b3c4d5e6f"

# --------------------------------------------------------------------------- agents


class InMemoryAgentStore:
    """An :class:`~pulseplan.auth.agents.AgentStore` in a dict, counting hash lookups."""

    def __init__(self) -> None:
        self.records: dict[str, AgentRecord] = {}
        self.lookups = 0

    async def create_agent(
        self, name: str, secret_hash: str, providers: list[str] | None
    ) -> AgentRecord:
        if any(r.name == name and not r.revoked for r in self.records.values()):
            raise DuplicateAgent(f"an agent named {name!r} exists")
        record = AgentRecord(
            id=str(uuid.uuid4()),
            name=name,
            providers=None if providers is None else tuple(providers),
            created_at=datetime.now(UTC),
            secret_hash=secret_hash,
        )
        self.records[record.id] = record
        return record

    async def get_agent_by_hash(self, secret_hash: str) -> AgentRecord | None:
        self.lookups += 1
        return next((r for r in self.records.values() if r.secret_hash == secret_hash), None)

    async def list_agents(self) -> list[AgentRecord]:
        return sorted(self.records.values(), key=lambda r: r.created_at)

    async def revoke_agent(self, name: str) -> bool:
        for record in self.records.values():
            if record.name == name and not record.revoked:
                self.records[record.id] = replace(record, revoked_at=datetime.now(UTC))
                return True
        return False


# --------------------------------------------------------------------------- keys and tokens


@dataclass(frozen=True)
class SigningKeys:
    """Signing keys for tests; the JWKS publishes their public halves (and some decoys)."""

    ec: EllipticCurvePrivateKey
    rsa: RSAPrivateKey
    weak_rsa: RSAPrivateKey
    p384: EllipticCurvePrivateKey
    oct: bytes

    @classmethod
    def generate(cls) -> SigningKeys:
        return cls(
            ec=ec.generate_private_key(ec.SECP256R1()),
            rsa=rsa.generate_private_key(public_exponent=65537, key_size=2048),
            weak_rsa=rsa.generate_private_key(public_exponent=65537, key_size=1024),  # noqa: S505
            p384=ec.generate_private_key(ec.SECP384R1()),
            oct=b"o" * 16 + uuid.uuid4().bytes,
        )

    def jwks(self) -> dict[str, Any]:
        """A JWKS with the good keys ``ec-1`` and ``rsa-1`` and decoys that must be ignored."""
        return {
            "keys": [
                public_jwk(self.ec, "ec-1"),
                public_jwk(self.rsa, "rsa-1"),
                public_jwk(self.weak_rsa, "rsa-weak"),
                public_jwk(self.p384, "ec-384"),
                {"kty": "oct", "kid": "sym-1", "k": b64url(self.oct), "alg": "HS256"},
                {**json.loads(ECAlgorithm.to_jwk(self.ec)), "kid": "ec-private"},
            ]
        }


@functools.cache
def signing_keys() -> SigningKeys:
    """One set of keys per test session (RSA generation is slow enough to matter)."""
    return SigningKeys.generate()


def public_jwk(key: EllipticCurvePrivateKey | RSAPrivateKey, kid: str) -> dict[str, Any]:
    if isinstance(key, EllipticCurvePrivateKey):
        jwk = json.loads(ECAlgorithm.to_jwk(key.public_key()))
    else:
        jwk = json.loads(RSAAlgorithm.to_jwk(key.public_key()))
    return {**jwk, "kid": kid, "use": "sig"}


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def user_claims(issuer: str | None = None, **overrides: Any) -> dict[str, Any]:
    """Claims of a normal Supabase user access token; ``overrides`` set (or, with ``None``,
    remove) claims."""
    now = int(time.time())
    claims: dict[str, Any] = {
        "aud": "authenticated",
        "exp": now + 3600,
        "iat": now,
        "sub": USER_ID,
        "email": "ada@example.com",
        "phone": "",
        "role": "authenticated",
        "aal": "aal1",
        "session_id": "8d0c1c8e-0000-4000-8000-000000000001",
        "is_anonymous": False,
    }
    if issuer is not None:
        claims["iss"] = issuer
    claims.update(overrides)
    return {k: v for k, v in claims.items() if v is not None}


def sign_raw(header: dict[str, Any], claims: dict[str, Any], key: bytes) -> str:
    """An HS256-style token signed with ``key`` whatever it is (PyJWT refuses PEM-like keys)."""
    signing_input = ".".join(
        b64url(json.dumps(part, separators=(",", ":")).encode()) for part in (header, claims)
    )
    signature = hmac.new(key, signing_input.encode(), hashlib.sha256).digest()
    return f"{signing_input}.{b64url(signature)}"


def unsigned(header: dict[str, Any], claims: dict[str, Any], signature: bytes = b"") -> str:
    """A token with an arbitrary (or empty) signature segment."""
    parts = [b64url(json.dumps(part).encode()) for part in (header, claims)]
    return ".".join([*parts, b64url(signature)])


def user_token(settings: Settings, **overrides: Any) -> str:
    """An HS256 user token the app configured by ``settings`` accepts."""
    secret = settings.secret("supabase_jwt_secret")
    assert secret, "settings have no SUPABASE_JWT_SECRET"
    base = settings.supabase_url.rstrip("/") if settings.supabase_url else None
    claims = user_claims(f"{base}/auth/v1" if base else None, **overrides)
    return jwt.encode(claims, secret, algorithm="HS256")


# --------------------------------------------------------------------------- JWKS server


class JwksServer:
    """A JWKS endpoint on ``127.0.0.1:<ephemeral>`` in a thread, counting requests.

    ``base_url`` plays ``SUPABASE_URL``. Set ``document`` (any JSON, or ``bytes`` to send raw)
    and ``status`` to change the answer; :meth:`stop` closes the socket so later connections
    are refused.
    """

    def __init__(self, document: Any = None) -> None:
        self.document: Any = document if document is not None else {"keys": []}
        self.status = 200
        self.hits = 0
        self._lock = threading.Lock()
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                with server._lock:
                    server.hits += 1
                if self.path != JWKS_PATH:
                    self.send_error(404)
                    return
                doc = server.document
                body = doc if isinstance(doc, bytes) else json.dumps(doc).encode()
                self.send_response(server.status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._httpd.daemon_threads = True
        self.port = self._httpd.server_address[1]
        self._thread = threading.Thread(
            target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self._thread.start()
        self.running = True

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def issuer(self) -> str:
        return f"{self.base_url}/auth/v1"

    @property
    def url(self) -> str:
        return self.base_url + JWKS_PATH

    def stop(self) -> None:
        if self.running:
            self._httpd.shutdown()
            self._httpd.server_close()
            self._thread.join(timeout=5)
            self.running = False


class FakeClock:
    """A monotonic clock that moves only when told to."""

    def __init__(self, start: float = 1000.0) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds
