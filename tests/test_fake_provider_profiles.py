"""Each profile's wire protocol, checked with plain httpx against providers.md: client auth,
body formats, token-response shapes, error bodies, identity endpoints and revocation. Plus:
no request, however malformed, gets a 5xx."""

from __future__ import annotations

import base64
import json
from collections.abc import AsyncIterator
from typing import Any

import httpx
import jwt
import pytest
from hypothesis import given
from hypothesis import settings
from hypothesis import strategies as st

from pulseplan.errors import ProviderMisconfigured
from pulseplan.errors import ReconnectRequired
from pulseplan.testing.fake_provider import FakeProvider
from tests.fake_harness import PROFILES
from tests.fake_harness import REDIRECT_URI
from tests.fake_harness import TLS
from tests.fake_harness import Harness
from tests.fake_harness import Make
from tests.fake_harness import harnesses
from tests.fake_harness import query


@pytest.fixture
async def make() -> AsyncIterator[Make]:
    async with harnesses() as build:
        yield build


def basic(fake: FakeProvider) -> dict[str, str]:
    raw = f"{fake.client_id}:{fake.client_secret}".encode()
    return {"Authorization": "Basic " + base64.b64encode(raw).decode()}


async def post_token(h: Harness, fields: dict[str, str], **kwargs: Any) -> httpx.Response:
    return await h.http.post(h.fake.endpoints["token_url"] or "", data=fields, **kwargs)


def secret_fields(fake: FakeProvider) -> dict[str, str]:
    return {"client_id": fake.client_id, "client_secret": fake.client_secret or ""}


# --------------------------------------------------------------------------- standard


async def test_standard_client_authentication(make: Make) -> None:
    h = await make("standard", rotation="none")
    tokens = await h.connect()
    assert tokens.refresh_token is not None
    refresh = {"grant_type": "refresh_token", "refresh_token": tokens.refresh_token}

    assert (await post_token(h, refresh, headers=basic(h.fake))).status_code == 200
    assert h.fake.calls("token")[-1].client_auth == "client_secret_basic"
    both = await post_token(h, {**refresh, **secret_fields(h.fake)}, headers=basic(h.fake))
    assert (both.status_code, both.json()["error"]) == (400, "invalid_request")
    wrong = await post_token(h, {**refresh, "client_id": h.fake.client_id, "client_secret": "no"})
    assert (wrong.status_code, wrong.json()["error"]) == (401, "invalid_client")
    assert wrong.headers["www-authenticate"].startswith("Basic")
    missing = await post_token(h, refresh)
    assert (missing.status_code, missing.json()["error"]) == (401, "invalid_client")
    repeated = await h.http.post(
        h.fake.endpoints["token_url"] or "",
        content=b"grant_type=refresh_token&grant_type=refresh_token",
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )
    assert repeated.status_code == 400
    unsupported = await post_token(h, {"grant_type": "password", **secret_fields(h.fake)})
    assert unsupported.json()["error"] == "unsupported_grant_type"

    public = h.fake.add_client("spa", public=True)
    assert public.client_secret is None
    anonymous = await post_token(h, {**refresh, "client_id": "spa"})
    assert (anonymous.status_code, anonymous.json()["error"]) == (400, "invalid_grant")
    assert h.fake.calls("token")[-1].client_auth == "none"


async def test_standard_revocation(make: Make) -> None:
    h = await make("standard")
    tokens = await h.connect()
    revoke_url = h.fake.endpoints["revoke_url"] or ""
    unauthenticated = await h.http.post(revoke_url, data={"token": tokens.access_token})
    assert unauthenticated.status_code == 401
    unknown = await h.http.post(revoke_url, data={"token": "nope", **secret_fields(h.fake)})
    assert unknown.status_code == 200  # RFC 7009 §2.2

    result = await h.std.revoke(access_token=tokens.access_token, refresh_token=None)
    assert result.revoked
    assert not h.fake.is_live(tokens.access_token)
    assert tokens.refresh_token is not None
    assert h.fake.is_live(tokens.refresh_token)


# --------------------------------------------------------------------------- google


async def test_google_refresh_token_rules(make: Make) -> None:
    h = await make("google")
    first = await h.connect()
    assert first.refresh_token is not None
    # Re-consent without prompt=consent: no refresh token (providers.md §1.2).
    assert (await h.connect()).refresh_token is None
    url, verifier = h.authorization_url(extra={"prompt": "consent"})
    code = query(h.fake.consent(url))["code"]
    again = await h.std.exchange_code(code=code, redirect_uri=REDIRECT_URI, code_verifier=verifier)
    assert again.refresh_token is not None
    url, verifier = h.authorization_url(extra={"access_type": "online"})
    code = query(h.fake.consent(url))["code"]
    online = await h.std.exchange_code(code=code, redirect_uri=REDIRECT_URI, code_verifier=verifier)
    assert online.refresh_token is None


async def test_google_scope_echo_id_token_and_tokeninfo(make: Make) -> None:
    h = await make("google")
    calendar = "https://www.googleapis.com/auth/calendar.events"
    h.fake.drop_scopes(calendar)
    code, verifier = h.code()
    response = await post_token(
        h,
        {
            "grant_type": "authorization_code",
            "code": code,
            "redirect_uri": REDIRECT_URI,
            "code_verifier": verifier or "",
            **secret_fields(h.fake),
        },
    )
    data = response.json()
    assert data["scope"] == "openid https://www.googleapis.com/auth/userinfo.email"
    assert data["token_type"] == "Bearer"
    assert data["expires_in"] == 3600
    claims = jwt.decode(
        data["id_token"],
        h.fake.client_secret or "",
        algorithms=["HS256"],
        audience=h.fake.client_id,
    )
    assert claims["email"] == "ada@example.test"
    assert claims["iss"] == h.fake.base_url
    assert h.std.token_set(data).scopes == (
        "openid",
        "https://www.googleapis.com/auth/userinfo.email",
    )

    info = await h.http.get(
        h.fake.endpoints["tokeninfo_url"] or "", params={"access_token": data["access_token"]}
    )
    assert info.json()["aud"] == h.fake.client_id
    assert info.json()["access_type"] == "offline"
    assert int(info.json()["expires_in"]) <= 3600
    bad = await h.http.get(h.fake.endpoints["tokeninfo_url"] or "", params={"access_token": "x"})
    assert (bad.status_code, bad.json()["error"]) == (400, "invalid_token")


async def test_google_revocation_is_project_wide(make: Make) -> None:
    h = await make("google")
    one = await h.connect()
    url, verifier = h.authorization_url(extra={"prompt": "consent"})
    code = query(h.fake.consent(url))["code"]
    two = await h.std.exchange_code(code=code, redirect_uri=REDIRECT_URI, code_verifier=verifier)
    revoke_url = h.fake.endpoints["revoke_url"] or ""
    assert (await h.http.post(revoke_url, data={"token": one.access_token})).status_code == 200
    assert h.fake.live_refresh_tokens() == []
    assert not h.fake.is_live(two.access_token)
    again = await h.http.post(revoke_url, data={"token": one.access_token})
    assert (again.status_code, again.json()["error"]) == (400, "invalid_token")
    # StandardOAuth2 reads Google's invalid_token as "already revoked".
    result = await h.std.revoke(access_token=two.access_token, refresh_token=two.refresh_token)
    assert result.revoked
    assert result.detail


async def test_google_userinfo_401(make: Make) -> None:
    h = await make("google")
    response = await h.http.get(
        h.fake.endpoints["userinfo_url"] or "", headers={"Authorization": "Bearer nope"}
    )
    assert response.status_code == 401
    assert 'error="invalid_token"' in response.headers["www-authenticate"]


# --------------------------------------------------------------------------- microsoft


async def test_microsoft_offline_access_tenant_and_aadsts(make: Make) -> None:
    h = await make("microsoft", tenant="contoso.example")
    assert "/contoso.example/oauth2/v2.0/token" in (h.fake.endpoints["token_url"] or "")
    env = h.fake.env("microsoft")
    assert env["MICROSOFT_TENANT_ID"] == "contoso.example"
    assert "MICROSOFT_REVOKE_URL" not in env

    url, verifier = h.authorization_url()
    code = query(h.fake.consent(url.replace("offline_access+", "")))["code"]
    tokens = await h.std.exchange_code(code=code, redirect_uri=REDIRECT_URI, code_verifier=verifier)
    assert tokens.refresh_token is None
    assert tokens.scopes is not None
    assert "https://graph.microsoft.com/User.Read" in tokens.scopes

    code, verifier = h.code()
    other_tenant = (h.fake.endpoints["token_url"] or "").replace("contoso.example", "common")
    response = await h.http.post(
        other_tenant,
        data={
            "grant_type": "authorization_code",
            "code": code,
            "redirect_uri": REDIRECT_URI,
            "code_verifier": verifier or "",
            **secret_fields(h.fake),
        },
    )
    body = response.json()
    assert body["error"] == "invalid_grant"
    assert body["error_codes"] == [700005]
    assert body["error_description"].startswith("AADSTS700005:")
    assert {"trace_id", "correlation_id", "timestamp"} <= body.keys()

    wrong = await post_token(
        h,
        {
            "grant_type": "refresh_token",
            "refresh_token": "x",
            "client_id": h.fake.client_id,
            "client_secret": "bad",
        },
    )
    assert (wrong.status_code, wrong.json()["error_codes"]) == (401, [7000215])
    with pytest.raises(ReconnectRequired) as failure:
        await h.std.refresh(refresh_token="fake_rt_unknown")
    assert (failure.value.description or "").startswith("AADSTS9002313:")


async def test_microsoft_graph_identity(make: Make) -> None:
    h = await make("microsoft")
    tokens = await h.connect()
    me = await h.std.userinfo(tokens.access_token)
    assert me["mail"] == me["userPrincipalName"] == "ada@example.test"
    assert "@odata.context" in me
    assert me["id"]
    oidc = await h.http.get(
        h.fake.endpoints["oidc_userinfo_url"] or "",
        headers={"Authorization": f"Bearer {tokens.access_token}"},
    )
    assert oidc.json()["email"] == "ada@example.test"
    h.fake.expire_access_token()
    expired = await h.http.get(
        h.fake.endpoints["userinfo_url"] or "",
        headers={"Authorization": f"Bearer {tokens.access_token}"},
    )
    assert expired.status_code == 401
    assert expired.json()["error"]["code"] == "InvalidAuthenticationToken"
    revocation = await h.std.revoke(access_token=tokens.access_token, refresh_token=None)
    assert not revocation.supported


# --------------------------------------------------------------------------- canvas


async def test_canvas_token_shapes(make: Make) -> None:
    h = await make("canvas")
    code, _ = h.code()
    exchange = await post_token(
        h,
        {
            "grant_type": "authorization_code",
            "code": code,
            "redirect_uri": REDIRECT_URI,
            **secret_fields(h.fake),
        },
        headers=basic(h.fake),  # Canvas takes body credentials first and ignores Basic
    )
    data = exchange.json()
    assert "scope" not in data
    assert data["user"]["name"] == "Ada Lovelace"
    assert data["expires_in"] == 3600
    assert data["refresh_token"].startswith("fake_rt_")
    refreshed = await post_token(
        h,
        {"grant_type": "refresh_token", "refresh_token": data["refresh_token"]},
        headers=basic(h.fake),
    )
    assert "refresh_token" not in refreshed.json()
    assert not h.fake.is_live(data["access_token"])  # regenerate_access_token
    profile = await h.http.get(
        h.fake.endpoints["profile_url"] or "",
        params={"access_token": refreshed.json()["access_token"]},
    )
    assert profile.json()["primary_email"] == "ada@example.test"


async def test_canvas_api_401s_and_delete_revocation(make: Make) -> None:
    h = await make("canvas")
    tokens = await h.connect()
    revoke_url = h.fake.endpoints["revoke_url"] or ""
    assert revoke_url == h.fake.endpoints["token_url"]
    no_token = await h.http.delete(revoke_url)
    assert no_token.status_code == 400
    assert "message" in no_token.json()
    bad = await h.http.delete(revoke_url, headers={"Authorization": "Bearer nope"})
    assert bad.status_code == 401
    assert "canvas-lms" in bad.headers["www-authenticate"]
    gone = await h.http.delete(revoke_url, params={"access_token": tokens.access_token})
    assert gone.status_code == 200
    assert tokens.refresh_token is not None
    assert not h.fake.is_live(tokens.refresh_token)
    dead = await h.http.get(
        h.fake.endpoints["userinfo_url"] or "",
        headers={"Authorization": f"Bearer {tokens.access_token}"},
    )
    assert dead.json() == {"errors": [{"message": "Invalid access token."}]}
    assert "www-authenticate" in dead.headers


async def test_canvas_pkce_and_throttle(make: Make) -> None:
    h = await make("canvas", spec_overrides={"pkce": True})
    tokens = await h.connect()
    assert h.fake.calls("token")[-1].pkce is True
    h.fake.fail_next("refresh", "canvas_rate_limit")
    assert tokens.refresh_token is not None
    throttled = await post_token(
        h,
        {
            "grant_type": "refresh_token",
            "refresh_token": tokens.refresh_token,
            **secret_fields(h.fake),
        },
    )
    assert throttled.status_code == 403
    assert throttled.text == "403 Forbidden (Rate Limit Exceeded)\n"
    assert throttled.headers["x-rate-limit-remaining"] == "0.0"


# --------------------------------------------------------------------------- notion


async def test_notion_protocol(make: Make) -> None:
    h = await make("notion")
    code, _ = h.code()
    token_url = h.fake.endpoints["token_url"] or ""
    exchange = {"grant_type": "authorization_code", "code": code, "redirect_uri": REDIRECT_URI}
    form = await h.http.post(token_url, data=exchange, headers=basic(h.fake))
    assert form.status_code == 400
    assert form.json()["object"] == "error"
    assert form.json()["code"] == "invalid_json"
    post_auth = await h.http.post(token_url, json={**exchange, **secret_fields(h.fake)})
    assert (post_auth.status_code, post_auth.json()["code"]) == (401, "invalid_client")
    async with httpx.AsyncClient(verify=TLS) as unversioned:
        response = await unversioned.post(token_url, json=exchange, headers=basic(h.fake))
    assert response.json()["code"] == "missing_version"

    code, _ = h.code()
    good = await h.http.post(token_url, json={**exchange, "code": code}, headers=basic(h.fake))
    data = good.json()
    assert "expires_in" not in data
    assert "scope" not in data
    assert data["owner"]["user"]["person"]["email"] == "ada@example.test"
    assert data["workspace_name"] == "Fake Workspace"
    assert {"workspace_id", "bot_id", "request_id"} <= data.keys()

    introspect_url = h.fake.endpoints["introspect_url"] or ""
    active = await h.http.post(
        introspect_url, json={"token": data["access_token"]}, headers=basic(h.fake)
    )
    assert active.json()["active"] is True
    me = await h.std.userinfo(data["access_token"])
    assert me["bot"]["owner"]["user"]["person"]["email"] == "ada@example.test"


async def test_notion_needs_the_version_header_from_standard(make: Make) -> None:
    """StandardOAuth2 sends no Notion-Version header: without one on the shared client the
    token request fails (the Notion plugin needs a header hook; see the report)."""
    h = await make("notion")
    code, _ = h.code()
    async with httpx.AsyncClient(verify=TLS) as plain:
        h.std.http = plain
        with pytest.raises(ProviderMisconfigured) as failure:
            await h.std.exchange_code(code=code, redirect_uri=REDIRECT_URI, code_verifier=None)
    assert failure.value.error == "missing_version"


async def test_notion_authorize_requires_owner_user(make: Make) -> None:
    h = await make("notion")
    url, _ = h.authorization_url()
    assert query(h.fake.consent(url.replace("owner=user", "owner=workspace")))["error"] == (
        "invalid_request"
    )


# --------------------------------------------------------------------------- bad input


@pytest.mark.parametrize("profile", PROFILES)
async def test_malformed_requests_get_4xx(make: Make, profile: str) -> None:
    h = await make(profile)
    urls = h.fake.endpoints
    token_url = urls["token_url"] or ""
    requests: list[tuple[str, str, dict[str, Any]]] = [
        ("POST", token_url, {"content": b"\xff\xfe", "headers": {"Content-Type": "text/plain"}}),
        (
            "POST",
            token_url,
            {"content": b"{not json", "headers": {"Content-Type": "application/json"}},
        ),
        ("POST", token_url, {"json": ["a", "list"]}),
        ("POST", token_url, {"json": {"grant_type": 1, "code": {"x": 1}}}),
        (
            "POST",
            token_url,
            {
                "content": b"a=%ff%fe&b",
                "headers": {"Content-Type": "application/x-www-form-urlencoded"},
            },
        ),
        (
            "POST",
            token_url,
            {"headers": {"Authorization": "Basic !!!"}, "data": {"grant_type": "refresh_token"}},
        ),
        (
            "POST",
            token_url,
            {
                "headers": {"Authorization": "Basic " + base64.b64encode(b"nocolon").decode()},
                "data": {},
            },
        ),
        ("POST", token_url, {"content": b"x" * 70_000}),
        ("GET", token_url, {}),
        (
            "GET",
            urls["authorize_url"] or "",
            {"params": {"client_id": "\x00", "redirect_uri": "::"}},
        ),
        (
            "GET",
            urls["authorize_url"] or "",
            {
                "params": {
                    "client_id": h.fake.client_id,
                    "redirect_uri": REDIRECT_URI,
                    "response_type": "code",
                    "code_challenge": "short",
                    "code_challenge_method": "S256",
                    "owner": "user",
                }
            },
        ),
        ("GET", urls["authorize_url"] or "", {"headers": {"Cookie": 'fake_session="unterminated'}}),
        ("GET", urls["userinfo_url"] or "", {"headers": {"Authorization": "Bearer"}}),
        (
            "GET",
            urls["userinfo_url"] or "",
            {"headers": {"Authorization": "Bearer \u00e9".encode("latin-1")}},
        ),
        ("PUT", urls["userinfo_url"] or "", {}),
        ("BREW", urls["userinfo_url"] or "", {}),
        ("GET", h.fake.base_url + "/nope/../../etc/passwd", {}),
    ]
    if urls.get("revoke_url"):
        requests.append(("POST", urls["revoke_url"] or "", {"json": {"token": None}}))
        requests.append(("DELETE", urls["revoke_url"] or "", {"params": {"access_token": ""}}))
    for method, url, kwargs in requests:
        response = await h.http.request(method, url, **kwargs)
        assert 300 <= response.status_code < 500, (method, url, response.status_code)
        if response.status_code >= 400 and response.content:
            response.json()  # errors are JSON (bar Canvas's plain-text throttle, not sent here)


def test_token_endpoint_never_fails_with_5xx_on_fuzzed_bodies() -> None:
    text = st.text(st.characters(codec="utf-8"), max_size=40)
    fields = st.dictionaries(
        st.sampled_from(
            [
                "grant_type",
                "code",
                "refresh_token",
                "client_id",
                "client_secret",
                "redirect_uri",
                "code_verifier",
                "scope",
                "token",
            ]
        )
        | text,
        text | st.sampled_from(["authorization_code", "refresh_token"]),
        max_size=6,
    )

    with FakeProvider("standard") as fake, httpx.Client(verify=TLS) as http:
        token_url = fake.endpoints["token_url"] or ""

        @settings(max_examples=60, deadline=None, database=None)
        @given(fields, st.booleans())
        def check(body: dict[str, str], as_json: bool) -> None:
            if as_json:
                response = http.post(
                    token_url,
                    content=json.dumps(body).encode(),
                    headers={"Content-Type": "application/json"},
                )
            else:
                response = http.post(token_url, data=body)
            assert 400 <= response.status_code < 500
            assert "error" in response.json()

        check()
        assert fake.internal_errors == []
