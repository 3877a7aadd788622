"""Authentication over HTTP: routes protected by ``require_user``/``require_agent`` on an app
from ``create_app``, a JWKS served over loopback, and the JSON error contract."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from collections.abc import Callable
from collections.abc import Iterator
from typing import Any

import jwt
import pytest
from quart import Blueprint
from quart import Quart
from quart.typing import TestClientProtocol as Client

from pulseplan.app import create_app
from pulseplan.auth import create_agent
from pulseplan.auth import current_agent
from pulseplan.auth import current_user
from pulseplan.auth import require_agent
from pulseplan.auth import require_user
from pulseplan.auth.guard import AGENTS_EXTENSION
from pulseplan.auth.guard import auth_state
from pulseplan.errors import ConfigurationError
from pulseplan.settings import Settings
from tests.auth_fakes import USER_ID
from tests.auth_fakes import InMemoryAgentStore
from tests.auth_fakes import JwksServer
from tests.auth_fakes import signing_keys
from tests.auth_fakes import user_claims
from tests.auth_fakes import user_token

ERROR_KEYS = {"detail", "code", "request_id"}


def probe_routes() -> Blueprint:
    blueprint = Blueprint("auth_probe", __name__)

    @blueprint.get("/test/me")
    @require_user
    async def me() -> dict[str, Any]:
        user = current_user()
        return {"id": user.id, "email": user.email}

    @blueprint.get("/test/agent/<provider>")
    @require_agent
    async def agent_token(provider: str) -> dict[str, Any]:
        agent = current_agent()
        agent.check_access(provider)
        return {"agent": agent.name, "provider": provider}

    return blueprint


@pytest.fixture
def jwks() -> Iterator[JwksServer]:
    server = JwksServer(signing_keys().jwks())
    yield server
    server.stop()


@pytest.fixture
def auth_settings(make_settings: Callable[..., Settings], jwks: JwksServer) -> Settings:
    return make_settings(SUPABASE_URL=jwks.base_url)


@pytest.fixture
async def auth_app(auth_settings: Settings) -> AsyncIterator[Quart]:
    app = create_app(auth_settings)
    app.register_blueprint(probe_routes())
    async with app.test_app():
        yield app


@pytest.fixture
def auth_client(auth_app: Quart) -> Client:
    return auth_app.test_client()


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def es256(jwks: JwksServer, **overrides: Any) -> str:
    claims = user_claims(jwks.issuer, **overrides)
    return jwt.encode(claims, signing_keys().ec, algorithm="ES256", headers={"kid": "ec-1"})


async def error_body(response: Any, status: int, code: str) -> dict[str, Any]:
    assert response.status_code == status
    assert response.mimetype == "application/json"
    body: dict[str, Any] = await response.get_json()
    assert set(body) == ERROR_KEYS
    assert body["code"] == code
    assert body["request_id"] == response.headers["X-Request-ID"]
    assert response.headers["Cache-Control"] == "no-store"
    return body


# --------------------------------------------------------------------------- users


async def test_valid_tokens_reach_the_route(
    auth_client: Client, auth_settings: Settings, jwks: JwksServer
) -> None:
    for token in (user_token(auth_settings), es256(jwks)):
        response = await auth_client.get("/test/me", headers=bearer(token))
        assert response.status_code == 200
        assert await response.get_json() == {"id": USER_ID, "email": "ada@example.com"}
    assert jwks.hits == 1


async def test_missing_token_is_401_not_403(auth_client: Client) -> None:
    response = await auth_client.get("/test/me")
    await error_body(response, 401, "missing_token")
    # RFC 6750 §3.1: no error code when the request carried no credential.
    assert response.headers["WWW-Authenticate"] == 'Bearer realm="pulseplan"'


@pytest.mark.parametrize(
    ("value", "code"),
    [
        ("Basic dXNlcjpwYXNz", "missing_token"),
        ("Token abc", "missing_token"),
        ("", "missing_token"),
        ("Bearer", "malformed_token"),
        ("bearer   ", "malformed_token"),
        ("Bearer a b", "malformed_token"),
    ],
)
async def test_other_schemes_and_empty_bearer_are_401(
    auth_client: Client, value: str, code: str
) -> None:
    response = await auth_client.get("/test/me", headers={"Authorization": value})
    await error_body(response, 401, code)
    assert response.headers["WWW-Authenticate"].startswith('Bearer realm="pulseplan"')


async def test_bad_token_is_401_json_and_never_echoed(
    auth_client: Client, auth_settings: Settings
) -> None:
    token = user_token(auth_settings, exp=int(time.time()) - 3600)
    response = await auth_client.get("/test/me", headers=bearer(token))
    body = await error_body(response, 401, "expired")
    assert response.headers["WWW-Authenticate"] == (
        'Bearer realm="pulseplan", error="invalid_token"'
    )
    text = (await response.get_data(as_text=True)) + str(dict(response.headers))
    for part in token.split("."):
        assert part not in text
    assert body["detail"] == "the token has expired"


async def test_scheme_is_case_insensitive(auth_client: Client, auth_settings: Settings) -> None:
    headers = {"Authorization": f"bearer {user_token(auth_settings)}"}
    assert (await auth_client.get("/test/me", headers=headers)).status_code == 200


async def test_token_in_the_query_string_is_ignored(
    auth_client: Client, auth_settings: Settings
) -> None:
    token = user_token(auth_settings)
    response = await auth_client.get("/test/me", query_string={"access_token": token})
    await error_body(response, 401, "missing_token")


async def test_two_authorization_headers_are_refused(
    auth_app: Quart, auth_settings: Settings
) -> None:
    token = user_token(auth_settings)
    client = auth_app.test_client()
    headers = [("Authorization", f"Bearer {token}"), ("Authorization", "Bearer other")]
    response = await client.get("/test/me", headers=headers)
    await error_body(response, 401, "malformed_token")


async def test_api_keys_are_refused(auth_client: Client, auth_settings: Settings) -> None:
    secret = auth_settings.secret("supabase_jwt_secret")
    assert secret
    now = int(time.time())
    for role in ("anon", "service_role"):
        key = jwt.encode({"iss": "supabase", "role": role, "iat": now, "exp": now + 86400},
                         secret, algorithm="HS256")  # fmt: skip
        response = await auth_client.get("/test/me", headers=bearer(key))
        await error_body(response, 401, "not_a_user_token")


async def test_cold_jwks_outage_is_503_json(auth_client: Client, jwks: JwksServer) -> None:
    token = es256(jwks)
    jwks.stop()
    response = await auth_client.get("/test/me", headers=bearer(token))
    await error_body(response, 503, "keys_unavailable")
    assert int(response.headers["Retry-After"]) >= 1
    assert "WWW-Authenticate" not in response.headers


async def test_user_never_carries_over_to_another_request(
    auth_app: Quart, auth_settings: Settings
) -> None:
    client = auth_app.test_client()
    # With an app context already active, Quart reuses it (and its ``g``) for requests.
    async with auth_app.app_context():
        first = await client.get("/test/me", headers=bearer(user_token(auth_settings)))
        second = await client.get("/test/me")
    assert first.status_code == 200
    await error_body(second, 401, "missing_token")


async def test_openapi_marks_the_route_as_user_secured(auth_client: Client) -> None:
    spec = await (await auth_client.get("/api/v1/openapi.json")).get_json()
    assert spec["paths"]["/test/me"]["get"]["security"] == [{"user": []}]
    assert spec["paths"]["/test/agent/{provider}"]["get"]["security"] == [{"agent": []}]
    assert spec["components"]["securitySchemes"]["user"]["scheme"] == "bearer"


async def test_hs256_only_setup_without_supabase_url(
    app: Quart, settings: Settings, client: Client
) -> None:
    assert settings.supabase_url is None
    verifier = auth_state(app).verifier
    assert verifier.jwks is None
    assert verifier.issuer is None
    user = await verifier.verify(user_token(settings))
    assert user.id == USER_ID


def test_short_jwt_secret_stops_start_up(make_settings: Callable[..., Settings]) -> None:
    with pytest.raises(ConfigurationError, match="SUPABASE_JWT_SECRET"):
        create_app(make_settings(SUPABASE_JWT_SECRET="short"))


def test_settings_defaults_and_limits(make_settings: Callable[..., Settings]) -> None:
    settings = make_settings()
    assert (settings.supabase_jwks_ttl, settings.supabase_jwks_min_refetch) == (600.0, 60.0)
    assert (settings.jwt_leeway, settings.supabase_allow_anonymous) == (30.0, False)
    with pytest.raises(ValueError, match="supabase_jwks_ttl"):
        make_settings(SUPABASE_JWKS_TTL="3600")


# --------------------------------------------------------------------------- agents


@pytest.fixture
def agents(auth_app: Quart) -> InMemoryAgentStore:
    store = InMemoryAgentStore()
    auth_app.extensions[AGENTS_EXTENSION] = store
    return store


async def test_agent_secret_reaches_the_route_within_its_providers(
    auth_app: Quart, auth_client: Client, agents: InMemoryAgentStore
) -> None:
    pepper = auth_state(auth_app).agent_pepper
    assert pepper is not None
    _, secret = await create_agent(agents, "planner", ["google"], pepper)
    response = await auth_client.get("/test/agent/google", headers=bearer(secret))
    assert response.status_code == 200
    assert await response.get_json() == {"agent": "planner", "provider": "google"}
    response = await auth_client.get("/test/agent/notion", headers=bearer(secret))
    await error_body(response, 403, "provider_not_allowed")


async def test_revoked_and_wrong_agent_secrets_are_401(
    auth_app: Quart, auth_client: Client, agents: InMemoryAgentStore
) -> None:
    pepper = auth_state(auth_app).agent_pepper
    assert pepper is not None
    _, secret = await create_agent(agents, "planner", None, pepper)
    _, other = await create_agent(agents, "other", None, pepper)
    assert await agents.revoke_agent("other")
    response = await auth_client.get("/test/agent/google", headers=bearer(other))
    await error_body(response, 401, "revoked_agent")
    wrong = secret[:-2] + ("AA" if not secret.endswith("AA") else "BB")
    response = await auth_client.get("/test/agent/google", headers=bearer(wrong))
    body = await error_body(response, 401, "unknown_agent")
    assert wrong not in str(body)


async def test_user_jwt_is_not_an_agent_credential(
    auth_client: Client, auth_settings: Settings, agents: InMemoryAgentStore
) -> None:
    response = await auth_client.get(
        "/test/agent/google", headers=bearer(user_token(auth_settings))
    )
    await error_body(response, 401, "malformed_token")
    assert agents.lookups == 0


async def test_agent_route_without_a_store_is_503(auth_app: Quart, auth_client: Client) -> None:
    auth_app.extensions.pop(AGENTS_EXTENSION, None)
    response = await auth_client.get("/test/agent/google", headers=bearer("ppa_" + "a" * 43))
    await error_body(response, 503, "agents_unavailable")
