"""Agent credentials: shown once, stored only as a keyed hash, checked in constant time,
revocable and limited to providers."""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Callable
from dataclasses import asdict

import pytest

from pulseplan.auth.agents import DuplicateAgent
from pulseplan.auth.agents import agent_pepper
from pulseplan.auth.agents import authenticate_agent
from pulseplan.auth.agents import create_agent
from pulseplan.auth.agents import derive_agent_pepper
from pulseplan.auth.agents import hash_agent_secret
from pulseplan.auth.agents import looks_like_agent_secret
from pulseplan.auth.agents import new_agent_secret
from pulseplan.auth.agents import verify_agent_secret
from pulseplan.auth.errors import AuthError
from pulseplan.auth.principals import Agent
from pulseplan.errors import BadRequest
from pulseplan.errors import ConfigurationError
from pulseplan.settings import Settings
from tests.auth_fakes import InMemoryAgentStore

PEPPER = derive_agent_pepper("test-secret-key-0123456789abcdefghijklmnop")


@pytest.fixture
def store() -> InMemoryAgentStore:
    return InMemoryAgentStore()


async def auth_error(store: InMemoryAgentStore, secret: str, pepper: bytes = PEPPER) -> AuthError:
    with pytest.raises(AuthError) as info:
        await authenticate_agent(store, secret, pepper)
    if len(secret) > 4:
        assert secret not in str(info.value) + repr(info.value) + info.value.detail
    return info.value


def test_secrets_are_random_prefixed_and_long() -> None:
    secrets = {new_agent_secret() for _ in range(100)}
    assert len(secrets) == 100
    for secret in secrets:
        assert secret.startswith("ppa_")
        assert len(secret) == 47
        assert looks_like_agent_secret(secret)


def test_hash_is_hmac_sha256_keyed_by_the_pepper() -> None:
    secret = new_agent_secret()
    digest = hash_agent_secret(secret, PEPPER)
    assert digest == hmac.new(PEPPER, secret.encode(), hashlib.sha256).hexdigest()
    assert hash_agent_secret(secret, derive_agent_pepper("another-secret-key")) != digest
    assert verify_agent_secret(secret, digest, PEPPER)
    assert not verify_agent_secret(new_agent_secret(), digest, PEPPER)


def test_pepper_is_derived_not_the_raw_secret_key(make_settings: Callable[..., Settings]) -> None:
    settings = make_settings()
    raw = settings.secret("secret_key")
    assert raw
    pepper = agent_pepper(settings)
    assert len(pepper) == 32
    assert pepper == derive_agent_pepper(raw) != raw.encode()
    with pytest.raises(ConfigurationError, match="SECRET_KEY"):
        derive_agent_pepper("")


async def test_the_secret_is_returned_once_and_only_its_hash_is_stored(
    store: InMemoryAgentStore,
) -> None:
    record, secret = await create_agent(store, "Planner", ["Google", "notion", "google"], PEPPER)
    assert (record.name, record.providers) == ("planner", ("google", "notion"))
    assert record.secret_hash == hash_agent_secret(secret, PEPPER)
    stored = [str(asdict(r)) for r in store.records.values()]
    assert not any(secret in s or secret[4:] in s for s in stored)
    assert record.secret_hash not in repr(record)
    agent = await authenticate_agent(store, secret, PEPPER)
    assert agent == Agent(id=record.id, name="planner", providers=("google", "notion"))


async def test_wrong_secret_is_refused(store: InMemoryAgentStore) -> None:
    await create_agent(store, "planner", None, PEPPER)
    assert (await auth_error(store, new_agent_secret())).code == "unknown_agent"


async def test_rotated_secret_key_invalidates_agent_secrets(store: InMemoryAgentStore) -> None:
    _, secret = await create_agent(store, "planner", None, PEPPER)
    error = await auth_error(store, secret, derive_agent_pepper("a rotated SECRET_KEY value"))
    assert error.code == "unknown_agent"


@pytest.mark.parametrize(
    "secret", ["", "ppa_", "ppa_short", "xyz_" + "a" * 43, "ppa_" + "a" * 44, "ppa_" + "!" * 43]
)
async def test_malformed_secret_is_refused_without_a_lookup(
    store: InMemoryAgentStore, secret: str
) -> None:
    assert (await auth_error(store, secret)).code == "malformed_token"
    assert store.lookups == 0


async def test_revoked_agent_is_refused(store: InMemoryAgentStore) -> None:
    _, secret = await create_agent(store, "planner", None, PEPPER)
    assert await store.revoke_agent("planner")
    assert not await store.revoke_agent("planner")
    error = await auth_error(store, secret)
    assert (error.code, error.status) == ("revoked_agent", 401)


async def test_names_are_unique_among_active_agents(store: InMemoryAgentStore) -> None:
    await create_agent(store, "planner", None, PEPPER)
    with pytest.raises(DuplicateAgent):
        await create_agent(store, "PLANNER", None, PEPPER)
    await store.revoke_agent("planner")
    _, secret = await create_agent(store, "planner", ["canvas"], PEPPER)
    assert (await authenticate_agent(store, secret, PEPPER)).providers == ("canvas",)
    assert [r.revoked for r in await store.list_agents()] == [True, False]


@pytest.mark.parametrize("name", ["", " ", "-lead", "has space", "a" * 64, "slash/name", "ünï"])
async def test_invalid_names_are_refused(store: InMemoryAgentStore, name: str) -> None:
    with pytest.raises(BadRequest):
        await create_agent(store, name, None, PEPPER)
    assert store.records == {}


async def test_provider_lists_are_validated(store: InMemoryAgentStore) -> None:
    with pytest.raises(BadRequest, match="at least one provider"):
        await create_agent(store, "a", [], PEPPER)
    with pytest.raises(BadRequest, match="unknown provider"):
        await create_agent(store, "a", ["dropbox"], PEPPER, known_providers={"google"})
    with pytest.raises(BadRequest):
        await create_agent(store, "a", ["Goo gle"], PEPPER)
    record, _ = await create_agent(store, "a", ["google"], PEPPER, known_providers={"google"})
    assert record.providers == ("google",)


def test_provider_restriction() -> None:
    limited = Agent(id="1", name="planner", providers=("google",))
    everything = Agent(id="2", name="admin", providers=None)
    assert limited.may_access("google")
    assert limited.may_access("Google")
    assert not limited.may_access("notion")
    assert everything.may_access("notion")
    limited.check_access("google")
    with pytest.raises(AuthError) as info:
        limited.check_access("notion")
    assert (info.value.code, info.value.status) == ("provider_not_allowed", 403)
