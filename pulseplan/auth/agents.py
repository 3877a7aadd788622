"""Agent credentials: random bearer secrets, shown once, stored only as a keyed hash.

Format: ``ppa_`` + 43 URL-safe characters (32 random bytes). The prefix makes a leaked secret
easy to spot for secret scanners and lets the API tell an agent secret from a JWT without
parsing it.

Hashing: ``HMAC-SHA256(pepper, secret)`` where the pepper is derived from ``SECRET_KEY`` by
HKDF. No slow password KDF (bcrypt, scrypt, Argon2) is needed because the secret is 256 bits of
randomness: guessing it is infeasible at any hash speed, and slow KDFs only protect
low-entropy passwords. A fast, deterministic hash lets storage find the agent with one indexed
lookup *by hash* on every request. The lookup leaks no useful timing because an attacker cannot
compute the HMAC without the pepper, so cannot aim at stored hashes; the hash is then compared
again with :func:`hmac.compare_digest`. The pepper also means a stolen database alone cannot
even confirm a guessed secret. Consequence: changing ``SECRET_KEY`` invalidates every agent
secret (re-create the agents).

The CLI (``pulseplan agents create|list|revoke``) is a thin layer over :func:`create_agent`,
:meth:`AgentStore.list_agents` and :meth:`AgentStore.revoke_agent`.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from collections.abc import Collection
from collections.abc import Iterable
from dataclasses import dataclass
from dataclasses import field
from datetime import datetime
from typing import Final
from typing import Protocol

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from pulseplan.auth.errors import AuthError
from pulseplan.auth.principals import Agent
from pulseplan.errors import BadRequest
from pulseplan.errors import ConfigurationError
from pulseplan.errors import Conflict
from pulseplan.settings import Settings

SECRET_PREFIX: Final = "ppa_"
SECRET_BYTES: Final = 32
#: ``secrets.token_urlsafe(32)`` is exactly 43 characters of the URL-safe alphabet.
SECRET_PATTERN: Final = re.compile(r"^ppa_[A-Za-z0-9_-]{43}$")
NAME_PATTERN: Final = re.compile(r"^[a-z0-9][a-z0-9._-]{0,62}$")
PROVIDER_PATTERN: Final = re.compile(r"^[a-z][a-z0-9_-]{0,31}$")
_PEPPER_INFO: Final = b"pulseplan:agent-secret-hash:v1"


class DuplicateAgent(Conflict):
    """An active agent already has this name."""

    code = "agent_exists"


@dataclass(frozen=True, kw_only=True)
class AgentRecord:
    """A stored agent. ``secret_hash`` is the only trace of its secret.

    :param providers: providers it may access; ``None`` means all.
    :param revoked_at: set by ``agents revoke``; a revoked agent never authenticates again.
    """

    id: str
    name: str
    providers: tuple[str, ...] | None
    created_at: datetime
    secret_hash: str = field(repr=False)
    revoked_at: datetime | None = None

    @property
    def revoked(self) -> bool:
        return self.revoked_at is not None

    def principal(self) -> Agent:
        """The :class:`Agent` this record authenticates as."""
        return Agent(id=self.id, name=self.name, providers=self.providers)


class AgentStore(Protocol):
    """Agent persistence; the storage layer implements it (``tests/auth_fakes.py`` in memory).

    Names are unique among agents that are not revoked; a revoked agent's name may be reused.
    """

    async def create_agent(
        self, name: str, secret_hash: str, providers: list[str] | None
    ) -> AgentRecord:
        """Store a new agent; raise :class:`DuplicateAgent` when an active one has ``name``."""
        ...

    async def get_agent_by_hash(self, secret_hash: str) -> AgentRecord | None:
        """The agent with this secret hash (revoked or not), or ``None``."""
        ...

    async def list_agents(self) -> list[AgentRecord]:
        """Every agent, revoked ones included, oldest first."""
        ...

    async def revoke_agent(self, name: str) -> bool:
        """Revoke the active agent named ``name``; ``False`` when there is none."""
        ...


# --------------------------------------------------------------------------- secrets


def new_agent_secret() -> str:
    """A fresh agent secret. Show it once; store only :func:`hash_agent_secret` of it."""
    return SECRET_PREFIX + secrets.token_urlsafe(SECRET_BYTES)


def derive_agent_pepper(secret_key: str | bytes) -> bytes:
    """The HMAC key for agent secrets, derived from ``SECRET_KEY``.

    HKDF with its own ``info`` gives a key used for nothing else, whatever else ``SECRET_KEY``
    feeds.
    """
    material = secret_key.encode() if isinstance(secret_key, str) else secret_key
    if not material:
        raise ConfigurationError(["SECRET_KEY is required for agent credentials"])
    hkdf = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=_PEPPER_INFO)
    return hkdf.derive(material)


def agent_pepper(settings: Settings) -> bytes:
    """:func:`derive_agent_pepper` of the configured ``SECRET_KEY``.

    :raises ConfigurationError: ``SECRET_KEY`` is not set.
    """
    return derive_agent_pepper(settings.secret("secret_key") or "")


def hash_agent_secret(secret: str, pepper: bytes) -> str:
    """The stored form of ``secret``: hex ``HMAC-SHA256(pepper, secret)``."""
    return hmac.new(pepper, secret.encode(), hashlib.sha256).hexdigest()


def verify_agent_secret(secret: str, secret_hash: str, pepper: bytes) -> bool:
    """Whether ``secret`` matches ``secret_hash``, compared in constant time."""
    return hmac.compare_digest(hash_agent_secret(secret, pepper), secret_hash)


def looks_like_agent_secret(value: str) -> bool:
    """Whether ``value`` has the shape of an agent secret (no lookup, no hashing)."""
    return SECRET_PATTERN.fullmatch(value) is not None


# --------------------------------------------------------------------------- operations


def normalize_name(name: str) -> str:
    """The agent name as stored; :class:`BadRequest` when it is not a valid name."""
    normalized = name.strip().lower()
    if not NAME_PATTERN.fullmatch(normalized):
        raise BadRequest(
            "agent names are 1-63 characters: a-z, 0-9, '.', '_', '-', starting alphanumeric",
            code="invalid_agent_name",
        )
    return normalized


def normalize_providers(
    providers: Iterable[str] | None, *, known: Collection[str] | None = None
) -> tuple[str, ...] | None:
    """Providers as a sorted tuple without duplicates; ``None`` (all providers) stays ``None``.

    :param known: when given, every provider must be one of these.
    :raises BadRequest: an empty list, a malformed name or an unknown provider.
    """
    if providers is None:
        return None
    names = sorted({p.strip().lower() for p in providers if p.strip()})
    if not names:
        raise BadRequest(
            "give at least one provider, or none at all for every provider",
            code="invalid_providers",
        )
    for name in names:
        if not PROVIDER_PATTERN.fullmatch(name) or (known is not None and name not in known):
            raise BadRequest(f"unknown provider {name!r}", code="invalid_providers")
    return tuple(names)


async def create_agent(
    store: AgentStore,
    name: str,
    providers: Iterable[str] | None,
    pepper: bytes,
    *,
    known_providers: Collection[str] | None = None,
) -> tuple[AgentRecord, str]:
    """Create an agent and its secret.

    :return: the stored record and the secret, which exists nowhere else: print it once.
    :raises BadRequest: invalid name or providers.
    :raises DuplicateAgent: an active agent already has the name.
    """
    normalized = normalize_name(name)
    allowed = normalize_providers(providers, known=known_providers)
    secret = new_agent_secret()
    record = await store.create_agent(
        normalized, hash_agent_secret(secret, pepper), None if allowed is None else list(allowed)
    )
    return record, secret


async def authenticate_agent(store: AgentStore, secret: str, pepper: bytes) -> Agent:
    """The agent ``secret`` belongs to.

    :raises AuthError: ``malformed_token`` (not an agent secret at all, no lookup made),
        ``unknown_agent`` or ``revoked_agent``; all 401.
    """
    if not looks_like_agent_secret(secret):
        raise AuthError("malformed_token")
    secret_hash = hash_agent_secret(secret, pepper)
    record = await store.get_agent_by_hash(secret_hash)
    if record is None or not hmac.compare_digest(record.secret_hash, secret_hash):
        raise AuthError("unknown_agent")
    if record.revoked:
        raise AuthError("revoked_agent")
    return record.principal()
