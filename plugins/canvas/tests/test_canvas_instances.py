"""Several Canvas instances, gated by ``CANVAS_ALLOWED_BASE_URLS``.

Two (or three) fake Canvas instances run on loopback ports. ``home`` is the deployment under
test (``CANVAS_BASE_URL``); ``other`` is a second instance sharing its developer key, whose
tokens are minted through a context pointed at it. Each fake's request log shows which
instance a hook really talked to.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pulseplan_canvas
import pytest
from pulseplan_canvas.instance import instance_context

from pulseplan import ReconnectRequired
from pulseplan.provider_config import resolve
from pulseplan.testing.fake_provider import FakeProvider
from pulseplan.testing.vault import new_user

Make = Callable[..., Any]
Vault = Callable[..., Any]
CLIENT = {
    "CANVAS_CLIENT_ID": "key-1",
    "CANVAS_CLIENT_SECRET": "key-secret",
    "CANVAS_BASE_URL": "https://home.instructure.com",
}
ALLOWED = "CANVAS_ALLOWED_BASE_URLS"


def pair(canvas: Make, allowed: Callable[[str], str]) -> tuple[Any, Any]:
    """``(home, other)``: two fake instances sharing one developer key; ``home``'s context has
    ``CANVAS_ALLOWED_BASE_URLS=allowed(other's URL)``."""
    other = canvas()
    home = canvas(
        client_id=other.fake.client_id,
        client_secret=other.fake.client_secret,
        CANVAS_ALLOWED_BASE_URLS=allowed(other.fake.base_url),
    )
    return home, other


def trail(fake: FakeProvider) -> list[tuple[str, str, str]]:
    return [(c.endpoint, c.method, c.path) for c in fake.calls()]


# --------------------------------------------------------------------------- the setting


def allowed_setting(value: str | None, *, production: bool = False) -> tuple[Any, list[str]]:
    env = dict(CLIENT) if value is None else {**CLIENT, ALLOWED: value}
    settings = resolve(pulseplan_canvas.SPEC, env, production=production)
    return settings, [p for p in settings.problems if p.startswith(ALLOWED)]


def test_unset_means_no_other_instance() -> None:
    settings, _ = allowed_setting(None)
    assert settings.configured, settings.problems
    assert settings.extra["allowed_base_urls"] == ""


def test_a_good_list_is_normalised_and_deduplicated() -> None:
    raw = (
        " https://B.Instructure.com/, https://canvas.example.edu:8443\n"
        "https://b.instructure.com:443,,http://127.0.0.1:9000  https://canvas.example.edu:8443/ "
    )
    settings, problems = allowed_setting(raw)
    assert problems == []
    assert settings.configured, settings.problems
    assert settings.extra["allowed_base_urls"] == (
        "https://b.instructure.com https://canvas.example.edu:8443 http://127.0.0.1:9000"
    )
    # The extra instances change nothing about where new flows go.
    assert settings.authorize_url == "https://home.instructure.com/login/oauth2/auth"


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        ("https://a.example, https://b.example/?next=x", "entry 2: must not contain a query"),
        ("https://a.example https://b.example/courses/12", "entry 2: must be the instance root"),
        ("http://canvas.example.edu", "entry 1: must use https"),
        ("https://a.example,https://b.example,ftp://c.example", "entry 3: "),
        ("https://a.example https://admin:hunter2@b.example", "entry 2: must not contain cred"),
        ("https://a.example https://b.example:99999", "entry 2: has an invalid port"),
    ],
)
def test_a_bad_entry_is_reported_by_position(value: str, reason: str) -> None:
    settings, problems = allowed_setting(value)
    assert not settings.configured
    assert len(problems) == 1
    assert problems[0].startswith(f"{ALLOWED}: {reason}")
    assert "hunter2" not in problems[0]  # a pasted password never reaches the report


def test_production_refuses_plain_http_even_on_loopback() -> None:
    value = "https://a.example http://127.0.0.1:9000"
    assert allowed_setting(value, production=False)[1] == []
    settings, problems = allowed_setting(value, production=True)
    assert not settings.configured
    assert problems == [
        f"{ALLOWED}: entry 2: must use https (plain http is allowed only for "
        "loopback in development)"
    ]


# --------------------------------------------------------------------------- the context


async def test_the_context_is_bound_to_the_configured_spelling(canvas: Make) -> None:
    home, other = pair(canvas, lambda url: f"https://unused.example {url}")
    base = other.fake.base_url
    assert instance_context(home.ctx, {}) is home.ctx
    assert instance_context(home.ctx, {"base_url": home.fake.base_url + "/"}) is home.ctx

    bound = instance_context(home.ctx, {"base_url": base.replace("http://", "HTTP://") + "/x"})
    assert bound is not None
    assert bound.settings.extra["base_url"] == base
    assert bound.settings.authorize_url == f"{base}/login/oauth2/auth"
    assert bound.settings.token_url == f"{base}/login/oauth2/token"
    assert bound.settings.revoke_url == f"{base}/login/oauth2/token"
    assert bound.settings.userinfo_url == f"{base}/api/v1/users/self"
    assert bound.standard.settings is bound.settings
    assert bound.settings.client_id == home.ctx.settings.client_id  # one shared developer key
    assert bound.http is home.ctx.http
    assert home.ctx.settings.extra["base_url"] == home.fake.base_url  # the original is intact

    assert instance_context(home.ctx, {"base_url": "https://evil.example"}) is None


# --------------------------------------------------------------------------- over the wire


async def test_an_allowed_instance_is_refreshed_validated_and_revoked_there(
    canvas: Make,
) -> None:
    home, other = pair(canvas, lambda url: f"https://unused.example, {url}")
    tokens = await other.connect()
    assert tokens.refresh_token is not None
    metadata = {**tokens.metadata, "base_url": other.fake.base_url}
    other.fake.reset_calls()

    validation = await pulseplan_canvas.validate(home.ctx, tokens.access_token, metadata)
    assert validation.valid
    refreshed = await pulseplan_canvas.refresh(home.ctx, tokens.refresh_token, (), metadata)
    assert refreshed.metadata["base_url"] == other.fake.base_url
    assert other.fake.is_live(refreshed.access_token)
    revocation = await pulseplan_canvas.revoke(
        home.ctx, refreshed.access_token, tokens.refresh_token, metadata
    )
    assert revocation.revoked

    assert trail(other.fake) == [
        ("userinfo", "GET", "/api/v1/users/self"),
        ("token", "POST", "/login/oauth2/token"),
        ("revoke", "DELETE", "/login/oauth2/token"),
    ]
    assert all(call.ok for call in other.fake.calls())
    assert not other.fake.is_live(tokens.refresh_token)
    assert home.fake.count() == 0


async def test_revoke_refreshes_at_the_allowed_instance_too(canvas: Make) -> None:
    home, other = pair(canvas, lambda url: url)
    tokens = await other.connect()
    other.fake.expire_access_token(tokens.access_token)
    other.fake.reset_calls()

    revocation = await pulseplan_canvas.revoke(
        home.ctx, tokens.access_token, tokens.refresh_token, {"base_url": other.fake.base_url}
    )
    assert revocation.revoked
    assert [c.endpoint for c in other.fake.calls()] == ["revoke", "token", "revoke"]
    assert home.fake.count() == 0


@pytest.mark.parametrize("listed", [False, True])
async def test_the_allow_list_decides(canvas: Make, listed: bool) -> None:
    # The same connection, the same live tokens: only the operator's list differs. Ignoring
    # the list either way (refusing every other instance, or following any stored host) fails
    # one of the two cases.
    home, other = pair(canvas, lambda url: url if listed else "")
    tokens = await other.connect()
    assert tokens.refresh_token is not None
    other.fake.reset_calls()

    metadata = {"base_url": other.fake.base_url}
    if listed:
        refreshed = await pulseplan_canvas.refresh(home.ctx, tokens.refresh_token, (), metadata)
        assert refreshed.metadata["base_url"] == other.fake.base_url
        assert other.fake.count("refresh", ok=True) == 1
    else:
        with pytest.raises(ReconnectRequired):
            await pulseplan_canvas.refresh(home.ctx, tokens.refresh_token, (), metadata)
        assert other.fake.count() == 0
    assert home.fake.count() == 0


@pytest.mark.parametrize(
    "stored",
    [
        "third",  # a live Canvas that is not listed
        "https://{host}:{port}",  # the allowed host and port, other scheme
        "http://{host}:1",  # the allowed host, other port
        "http://localhost:{port}",  # another name for the same machine is another instance
        "http://evil.example:{port}",
    ],
)
async def test_an_instance_not_listed_is_refused_offline(
    canvas: Make, fake_provider: Callable[..., FakeProvider], stored: str
) -> None:
    third = fake_provider("canvas")
    home, other = pair(canvas, lambda url: url)
    # ``other`` holds the grant, but the row names something else: nothing may be contacted.
    tokens = await other.connect()
    assert tokens.refresh_token is not None
    host, port = other.fake.base_url.removeprefix("http://").split(":")
    target = third.base_url if stored == "third" else stored.format(host=host, port=port)
    metadata = {"base_url": target}
    other.fake.reset_calls()

    with pytest.raises(ReconnectRequired) as failure:
        await pulseplan_canvas.refresh(home.ctx, tokens.refresh_token, (), metadata)
    assert failure.value.error == "canvas_instance_mismatch"
    assert "CANVAS_BASE_URL" in str(failure.value)
    assert ALLOWED in str(failure.value)
    validation = await pulseplan_canvas.validate(home.ctx, tokens.access_token, metadata)
    assert not validation.valid
    assert validation.detail is not None
    assert ALLOWED in validation.detail
    revocation = await pulseplan_canvas.revoke(
        home.ctx, tokens.access_token, tokens.refresh_token, metadata
    )
    assert not revocation.revoked

    assert (home.fake.count(), other.fake.count(), third.count()) == (0, 0, 0)
    assert other.fake.is_live(tokens.refresh_token)


async def test_new_flows_still_go_to_canvas_base_url(canvas: Make) -> None:
    home, other = pair(canvas, lambda url: url)
    assert home.authorization_url().startswith(home.fake.base_url + "/login/oauth2/auth?")
    tokens = await home.connect()
    assert tokens.metadata["base_url"] == home.fake.base_url
    assert other.fake.count() == 0


# --------------------------------------------------------------------------- through the host


async def test_an_imported_row_of_an_allowed_instance_end_to_end(
    canvas: Make, pulseplan_vault: Vault
) -> None:
    other = canvas()
    home = FakeProvider(
        "canvas", client_id=other.fake.client_id, client_secret=other.fake.client_secret
    )
    vault = await pulseplan_vault({"canvas": home}, CANVAS_ALLOWED_BASE_URLS=other.fake.base_url)
    tokens = await other.connect()
    user = new_user()
    stored = await vault.client.post(
        "/api/v1/tokens/connections/canvas",
        json={"access_token": tokens.access_token, "refresh_token": tokens.refresh_token},
        headers=vault.headers(user),
    )
    assert stored.status_code == 201
    # What the seed importer records for a row of this instance.
    storage = vault.runtime.storage
    row = await storage.get_connection(user, "canvas")
    await storage.update_connection(row.id, row.version, metadata={"base_url": other.fake.base_url})
    other.fake.reset_calls()

    forced = await vault.client.post(
        "/api/v1/tokens/connections/canvas/refresh", headers=vault.headers(user)
    )
    assert forced.status_code == 200, await forced.get_data(as_text=True)
    refreshed = await storage.get_connection(user, "canvas")
    assert refreshed.status == "active"
    assert refreshed.metadata["base_url"] == other.fake.base_url
    assert other.fake.is_live(vault.stored_access_token(refreshed))

    response = await vault.disconnect(user, "canvas")
    assert response.status_code == 200
    assert (await response.get_json())["revoked"] is True
    assert [(c.endpoint, c.method) for c in other.fake.calls()] == [
        ("token", "POST"),
        ("revoke", "DELETE"),
    ]
    assert home.count() == 0
