"""Property tests (security-checklist.md C3.17): random bytes, random structured tokens and
validly signed tokens with random claims. Never a crash, never a 500, and a token is accepted
only when every claim is right."""

from __future__ import annotations

import base64
import json
import time
from collections.abc import AsyncIterator
from collections.abc import Callable
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck
from hypothesis import event
from hypothesis import given
from hypothesis import settings
from hypothesis import strategies as st
from jwt.algorithms import ECAlgorithm
from quart import Blueprint
from quart.typing import TestClientProtocol as Client

from pulseplan.app import create_app
from pulseplan.auth.errors import AuthError
from pulseplan.auth.guard import current_user
from pulseplan.auth.guard import require_user
from pulseplan.auth.jwks import JwksCache
from pulseplan.auth.verifier import JwtVerifier
from pulseplan.settings import Settings
from tests.auth_fakes import JwksServer
from tests.auth_fakes import b64url
from tests.auth_fakes import sign_raw
from tests.auth_fakes import signing_keys

SECRET = b"legacy-hs256-secret-for-fuzzing-0123456789abcdef"
USER = "0b5e6f4a-9c8d-4e7f-8a1b-2c3d4e5f6a7b"
MISSING = object()
#: The function-scoped fixtures here (an HTTP client, an app) hold no per-example state, so
#: sharing them between examples is safe.
SHARED_FIXTURES = [HealthCheck.function_scoped_fixture]

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=12),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner, max_size=3)
    ),
    max_leaves=8,
)
segment = st.binary(max_size=200).map(lambda b: base64.urlsafe_b64encode(b).decode().rstrip("="))


@pytest.fixture(scope="module")
def server() -> Iterator[JwksServer]:
    jwks = JwksServer(signing_keys().jwks())
    yield jwks
    jwks.stop()


@pytest.fixture
async def http() -> AsyncIterator[httpx.AsyncClient]:
    # One client for all examples of a test: building one (its TLS context) costs ~20 ms.
    async with httpx.AsyncClient() as client:
        yield client


async def outcome(server: JwksServer, token: str, http: httpx.AsyncClient) -> AuthError | str:
    """The user id a fresh verifier returns for ``token``, or its :class:`AuthError`.

    Anything else escaping (a TypeError from odd JSON, say) fails the test: that is a 500.
    """
    verifier = JwtVerifier(
        hs256_secret=SECRET,
        jwks=JwksCache(server.url, http=http, min_refetch=60),
        issuer=server.issuer,
        leeway=30,
    )
    try:
        return (await verifier.verify(token)).id
    except AuthError as error:
        return error
    finally:
        await verifier.aclose()


# --------------------------------------------------------------------------- garbage


@settings(max_examples=300, deadline=None, suppress_health_check=SHARED_FIXTURES)
@given(
    token=st.text(max_size=300)
    | st.builds(lambda a, b, c: f"{a}.{b}.{c}", segment, segment, segment)
    | st.from_regex(r"[A-Za-z0-9_\-=.]{0,200}", fullmatch=True)
)
async def test_garbage_is_refused(server: JwksServer, http: httpx.AsyncClient, token: str) -> None:
    result = await outcome(server, token, http)
    assert isinstance(result, AuthError)
    assert result.status == 401


headers = st.fixed_dictionaries(
    {"alg": st.sampled_from(["HS256", "ES256", "RS256", "none", "HS512", "ES384"]) | json_values},
    optional={
        "kid": st.sampled_from(["ec-1", "rsa-1", "sym-1", "rsa-weak", "ec-384"]) | json_values,
        "typ": json_values,
        "crit": json_values,
        "b64": json_values,
        "jku": st.just("http://127.0.0.1:9/jwks.json"),
    },
)


@settings(max_examples=300, deadline=None, suppress_health_check=SHARED_FIXTURES)
@given(header=headers, payload=json_values, signature=st.binary(max_size=300))
async def test_structured_tokens_with_random_signatures_are_refused(
    server: JwksServer,
    http: httpx.AsyncClient,
    header: dict[str, Any],
    payload: Any,
    signature: bytes,
) -> None:
    parts = [b64url(json.dumps(part).encode()) for part in (header, payload)]
    result = await outcome(server, ".".join([*parts, b64url(signature)]), http)
    assert isinstance(result, AuthError)
    assert result.status == 401


# --------------------------------------------------------------------------- signed tokens


def claim_pools(issuer: str) -> dict[str, tuple[list[Any], list[Any]]]:
    """Per claim: values a correct verifier accepts, and values it must refuse."""
    now = int(time.time())
    return {
        "exp": ([now + 3600, now + 3600.5], [MISSING, now - 3600, str(now + 3600), None, [1]]),
        "iat": ([now, now - 100], [MISSING, now + 3600, str(now), None]),
        "nbf": ([MISSING, now - 10], [now + 3600, "soon"]),
        "sub": (
            [USER],
            [MISSING, "", "admin", USER.upper(), USER + "\x00", "urn:uuid:" + USER, 42],
        ),
        "aud": (
            ["authenticated", ["authenticated"], ["x", "authenticated"]],
            [MISSING, "anon", ["x"], [], 5, None, "authenticated "],
        ),
        "iss": ([issuer], [MISSING, issuer[:-3], issuer + "/", "supabase", [issuer], None]),
        "role": (["authenticated"], [MISSING, "anon", "service_role", "Authenticated", ["x"]]),
        "is_anonymous": ([MISSING, False, "true"], [True]),
    }


@st.composite
def signed_tokens(draw: st.DrawFn, issuer: str) -> tuple[bool, str]:
    """A validly signed token and whether its claims are all acceptable."""
    pools = claim_pools(issuer)
    # Breaking a small random set of claims (often none) keeps both outcomes common.
    broken = draw(st.sets(st.sampled_from(sorted(pools)), max_size=3))
    claims: dict[str, Any] = {}
    for name, (good, bad) in pools.items():
        value = draw(st.sampled_from(bad if name in broken else good))
        if value is not MISSING:
            claims[name] = value
    claims.update(draw(st.dictionaries(st.sampled_from(["email", "aal", "x"]), json_values)))
    if draw(st.booleans()):
        return not broken, sign_raw({"alg": "HS256", "typ": "JWT"}, claims, SECRET)
    # PyJWT's encoder insists on some claim types; sign the same bytes with the EC key by hand.
    header = b64url(json.dumps({"alg": "ES256", "kid": "ec-1"}).encode())
    signing_input = f"{header}.{b64url(json.dumps(claims).encode())}"
    signature = ECAlgorithm(ECAlgorithm.SHA256).sign(signing_input.encode(), signing_keys().ec)
    return not broken, f"{signing_input}.{b64url(signature)}"


@settings(max_examples=400, deadline=None, suppress_health_check=SHARED_FIXTURES)
@given(data=st.data())
async def test_signed_tokens_are_accepted_only_with_every_claim_right(
    server: JwksServer, http: httpx.AsyncClient, data: st.DataObject
) -> None:
    valid, token = data.draw(signed_tokens(server.issuer))
    result = await outcome(server, token, http)
    event("valid" if valid else "invalid")
    if valid:
        assert result == USER
    else:
        assert isinstance(result, AuthError)
        assert result.status == 401 or result.code == "anonymous_user"


# --------------------------------------------------------------------------- over HTTP


@pytest.fixture
async def probe(make_settings: Callable[..., Settings]) -> AsyncIterator[Client]:
    blueprint = Blueprint("fuzz_probe", __name__)

    @blueprint.get("/test/fuzz")
    @require_user
    async def fuzz() -> dict[str, str]:
        return {"id": current_user().id}

    app = create_app(make_settings())
    app.register_blueprint(blueprint)
    async with app.test_app():
        yield app.test_client()


@settings(max_examples=150, deadline=None, suppress_health_check=SHARED_FIXTURES)
@given(
    value=st.text(st.characters(min_codepoint=0x20, max_codepoint=0xFF), max_size=200)
    | st.builds(
        lambda t: "Bearer " + t,
        st.text(st.characters(min_codepoint=0x21, max_codepoint=0x7E), max_size=300),
    )
)
async def test_random_authorization_headers_get_401_json(probe: Client, value: str) -> None:
    response = await probe.get("/test/fuzz", headers={"Authorization": value})
    assert response.status_code == 401
    body = await response.get_json()
    assert set(body) == {"detail", "code", "request_id"}
    if len(value) > 10:
        assert value.strip() not in json.dumps(body)
