"""One test per Notion quirk the plugin handles, each driven against the kit's fake Notion over
real loopback HTTP, with the plugin's outgoing requests recorded."""

from __future__ import annotations

import base64
import json
from collections.abc import Callable
from typing import Any

import pulseplan_notion
import pytest

from pulseplan import ProviderMisconfigured
from pulseplan import ProviderUnavailable
from pulseplan import ReconnectRequired
from pulseplan.provider_config import resolve

Make = Callable[..., Any]
DEFAULT_VERSION = "2025-09-03"


def basic(h: Any) -> str:
    pair = f"{h.fake.client_id}:{h.fake.client_secret}".encode()
    return "Basic " + base64.b64encode(pair).decode()


# --------------------------------------------------------------------------- requests


async def test_authorization_url_asks_for_a_user_owned_token_without_pkce(notion: Make) -> None:
    h = notion()
    url = h.authorization_url()
    assert "owner=user" in url
    assert "code_challenge" not in url
    assert pulseplan_notion.SPEC.pkce is False


async def test_every_request_carries_the_pinned_notion_version(notion: Make) -> None:
    h = notion()
    tokens = await h.connect()
    assert tokens.refresh_token is not None
    refreshed = await pulseplan_notion.refresh(h.ctx, tokens.refresh_token)
    await pulseplan_notion.validate(h.ctx, refreshed.access_token)
    await pulseplan_notion.revoke(h.ctx, refreshed.access_token, refreshed.refresh_token)
    paths = [r.url.path for r in h.sent]
    assert paths == ["/v1/oauth/token", "/v1/oauth/token", "/v1/users/me", "/v1/oauth/revoke"]
    assert {r.headers.get("Notion-Version") for r in h.sent} == {DEFAULT_VERSION}
    assert all(call.ok for call in h.fake.calls() if call.endpoint != "authorize")


async def test_the_spec_declares_the_header_for_the_hosts_own_calls(notion: Make) -> None:
    """The host's standard client (used by hooks the plugin leaves to it) sends it too."""
    h = notion()
    tokens = await h.connect()
    me = await h.ctx.standard.userinfo(tokens.access_token)
    assert me["object"] == "user"
    assert h.sent[-1].headers["Notion-Version"] == DEFAULT_VERSION


async def test_notion_version_can_be_overridden(notion: Make) -> None:
    h = notion(NOTION_VERSION="2022-06-28")
    tokens = await h.connect()
    await pulseplan_notion.validate(h.ctx, tokens.access_token)
    await pulseplan_notion.revoke(h.ctx, tokens.access_token, tokens.refresh_token)
    assert len(h.sent) == 3
    assert {r.headers.get("Notion-Version") for r in h.sent} == {"2022-06-28"}


@pytest.mark.parametrize("value", ["latest", "2025-13-01", "2025-9-3", "2025-09-03x"])
def test_notion_version_must_be_a_version_date(value: str) -> None:
    env = {"NOTION_CLIENT_ID": "c", "NOTION_CLIENT_SECRET": "s", "NOTION_VERSION": value}
    settings = resolve(pulseplan_notion.SPEC, env, production=False)
    assert any(p.startswith("NOTION_VERSION") for p in settings.problems)


async def test_token_requests_are_json_with_basic_client_auth(notion: Make) -> None:
    h = notion()
    tokens = await h.connect()
    assert tokens.refresh_token is not None
    await pulseplan_notion.refresh(h.ctx, tokens.refresh_token)
    for call in h.fake.calls("token"):
        assert (call.body_format, call.client_auth, call.status) == (
            "json",
            "client_secret_basic",
            200,
        )
    request = h.last("/v1/oauth/token")
    assert request.headers["content-type"] == "application/json"
    assert request.headers["authorization"] == basic(h)
    body = json.loads(request.content)
    assert body["grant_type"] == "refresh_token"
    assert "client_secret" not in body


# --------------------------------------------------------------------------- responses


async def test_exchange_keeps_workspace_bot_and_owner_and_sets_no_expiry(notion: Make) -> None:
    h = notion()
    tokens = await h.connect()
    account = h.fake.default_account
    assert tokens.email == account.email  # owner.user.person.email
    assert tokens.expires_at is None  # no expires_in: the host never refreshes proactively
    assert tokens.scopes is None
    meta = tokens.metadata
    assert meta["workspace_id"] == account.uuid(f"workspace:{account.workspace}")
    assert meta["workspace_name"] == account.workspace
    assert meta["workspace_icon"] is None
    assert meta["duplicated_template_id"] is None
    assert meta["owner_type"] == "user"
    assert meta["owner_user_id"] == account.uuid("notion-user")
    assert isinstance(meta["bot_id"], str)
    assert meta["bot_id"]
    assert tokens.access_token not in json.dumps(meta)


async def test_refresh_rotates_the_refresh_token(notion: Make) -> None:
    h = notion()
    tokens = await h.connect()
    assert tokens.refresh_token is not None
    rotated = await pulseplan_notion.refresh(h.ctx, tokens.refresh_token)
    assert rotated.refresh_token is not None
    assert rotated.refresh_token != tokens.refresh_token
    assert not h.fake.is_live(tokens.refresh_token)  # single use
    assert h.fake.is_live(rotated.refresh_token)
    assert rotated.expires_at is None
    assert rotated.metadata["bot_id"] == tokens.metadata["bot_id"]


async def test_a_null_refresh_token_is_accepted(notion: Make) -> None:
    h = notion()
    tokens = await h.connect()
    assert tokens.refresh_token is not None
    h.fake.fail_next("refresh", "omit_refresh_token")
    rotated = await pulseplan_notion.refresh(h.ctx, tokens.refresh_token)
    assert rotated.refresh_token is None  # the host keeps the stored one
    assert h.fake.is_live(rotated.access_token)


# --------------------------------------------------------------------------- errors


@pytest.mark.parametrize(
    ("options", "expected", "error"),
    [
        ({"kind": "notion_error", "code": "invalid_grant"}, ReconnectRequired, "invalid_grant"),
        ({"kind": "invalid_grant"}, ReconnectRequired, "invalid_grant"),
        (
            {"kind": "notion_error", "code": "invalid_client"},
            ProviderMisconfigured,
            "invalid_client",
        ),
        (
            {"kind": "notion_error", "code": "unauthorized_client", "status": 400},
            ProviderMisconfigured,
            "unauthorized_client",
        ),
        ({"kind": "notion_error", "code": "rate_limited"}, ProviderUnavailable, "rate_limited"),
        (
            {"kind": "notion_error", "code": "service_overload"},
            ProviderUnavailable,
            "service_overload",
        ),
        (
            {"kind": "notion_error", "code": "internal_server_error"},
            ProviderUnavailable,
            "internal_server_error",
        ),
        ({"kind": "server_error", "status": 503}, ProviderUnavailable, "service_unavailable"),
        # Google's words, seen in third-party write-ups about Notion: matched defensively.
        (
            {
                "kind": "raw",
                "status": 400,
                "body": {"error": "invalid_grant", "error_description": "expired or revoked"},
            },
            ReconnectRequired,
            "invalid_grant",
        ),
    ],
)
async def test_refresh_errors_are_classified_by_code(
    notion: Make, options: dict[str, Any], expected: type[Exception], error: str
) -> None:
    h = notion()
    tokens = await h.connect()
    assert tokens.refresh_token is not None
    options = dict(options)
    h.fake.fail_next("refresh", options.pop("kind"), retry_after=30, **options)
    with pytest.raises(expected) as failure:
        await pulseplan_notion.refresh(h.ctx, tokens.refresh_token)
    assert failure.value.error == error  # type: ignore[attr-defined]
    if error == "rate_limited":
        assert failure.value.retry_after == 30  # type: ignore[attr-defined]
    assert tokens.refresh_token not in str(failure.value) + repr(failure.value)


async def test_a_failed_code_exchange_is_classified(notion: Make) -> None:
    h = notion()
    h.fake.fail_next("code", "notion_error", code="invalid_grant")
    with pytest.raises(ReconnectRequired):
        await h.connect()


# --------------------------------------------------------------------------- validate


async def test_validate_uses_users_me_and_reports_the_owner(notion: Make) -> None:
    h = notion()
    tokens = await h.connect()
    result = await pulseplan_notion.validate(h.ctx, tokens.access_token)
    assert result.valid
    assert result.email == h.fake.default_account.email
    request = h.last("/v1/users/me")
    assert request.headers["authorization"] == f"Bearer {tokens.access_token}"


async def test_validate_401_unauthorized_is_a_dead_token(notion: Make) -> None:
    h = notion()
    tokens = await h.connect()
    h.fake.revoke_grant(tokens.access_token)
    result = await pulseplan_notion.validate(h.ctx, tokens.access_token)
    assert not result.valid
    assert result.detail is not None
    assert "unauthorized" in result.detail


@pytest.mark.parametrize("code", ["restricted_resource", "object_not_found"])
async def test_validate_access_limits_are_not_dead_tokens(notion: Make, code: str) -> None:
    h = notion()
    tokens = await h.connect()
    h.fake.fail_next("userinfo", "notion_error", code=code)
    result = await pulseplan_notion.validate(h.ctx, tokens.access_token)
    assert result.valid
    assert result.detail is not None
    assert code in result.detail


@pytest.mark.parametrize("code", ["rate_limited", "service_overload", "internal_server_error"])
async def test_validate_transient_failures_raise(notion: Make, code: str) -> None:
    h = notion()
    tokens = await h.connect()
    h.fake.fail_next("userinfo", "notion_error", code=code, retry_after=12)
    with pytest.raises(ProviderUnavailable) as failure:
        await pulseplan_notion.validate(h.ctx, tokens.access_token)
    assert failure.value.error == code
    if code == "rate_limited":
        assert failure.value.retry_after == 12


# --------------------------------------------------------------------------- revoke


async def test_revoke_posts_the_access_token_as_json_with_basic_auth(notion: Make) -> None:
    h = notion()
    tokens = await h.connect()
    assert tokens.refresh_token is not None
    result = await pulseplan_notion.revoke(h.ctx, tokens.access_token, tokens.refresh_token)
    assert result.revoked
    request = h.last("/v1/oauth/revoke")
    assert request.method == "POST"
    assert request.headers["authorization"] == basic(h)
    assert request.headers["content-type"] == "application/json"
    assert json.loads(request.content) == {"token": tokens.access_token}
    assert not h.fake.is_live(tokens.refresh_token)  # the whole connection ended
    assert not h.fake.is_live(tokens.access_token)


async def test_revoke_failures(notion: Make) -> None:
    h = notion()
    tokens = await h.connect()
    h.fake.fail_next("revoke", "notion_error", code="rate_limited")
    with pytest.raises(ProviderUnavailable):
        await pulseplan_notion.revoke(h.ctx, tokens.access_token, None)
    h.fake.fail_next("revoke", "notion_error", code="invalid_client")
    with pytest.raises(ProviderMisconfigured):
        await pulseplan_notion.revoke(h.ctx, tokens.access_token, None)
    h.fake.fail_next("revoke", "notion_error", code="unauthorized")
    gone = await pulseplan_notion.revoke(h.ctx, tokens.access_token, None)
    assert gone.revoked
    assert gone.detail == "Notion reports the token already invalid"
