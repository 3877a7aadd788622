"""Rate limiting through the real app: groups, verified subjects, 429s, headers, proxies, the
failed-authentication gate and Redis outages (a closed port, no Redis server needed)."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from collections.abc import Callable
from contextlib import asynccontextmanager
from typing import Any

import pytest
from quart import Blueprint
from quart import Quart

from pulseplan.app import create_app
from pulseplan.auth import create_agent
from pulseplan.auth.guard import AGENTS_EXTENSION
from pulseplan.auth.guard import auth_state
from pulseplan.observability import metrics
from pulseplan.settings import Settings
from pulseplan.web.ratelimit import current_limiter
from pulseplan.web.ratelimit import exempt
from pulseplan.web.ratelimit import limit_group
from tests.auth_fakes import user_token
from tests.server import free_port

STATUS = "/api/v1/tokens/connections/status"
CALLBACK = "/api/v1/oauth/google/callback?state=abc&code=xyz"
PASSWORD = "redis-password-canary-0123"


def peer(address: str) -> dict[str, Any]:
    """Test-client keyword arguments making the request come from ``address``."""
    return {"scope_base": {"client": (address, 40000)}}


def rejections(group: str, family: str = "pulseplan_ratelimit_rejections_total") -> float:
    return metrics.REGISTRY.get_sample_value(family, {"group": group}) or 0.0


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


@asynccontextmanager
async def limited(make_settings: Callable[..., Settings], **env: str) -> AsyncIterator[Quart]:
    settings = make_settings(ENABLE_RATE_LIMITING="true", BACKGROUND_REFRESH="false", **env)
    app = create_app(settings)
    async with app.test_app():
        yield app


async def get(app: Quart, path: str, *, frm: str = "203.0.113.5", **kwargs: Any) -> Any:
    return await app.test_client().get(path, **peer(frm), **kwargs)


async def test_rate_limiting_is_off_by_default_in_development(
    make_settings: Callable[..., Settings],
) -> None:
    settings = make_settings()
    app = create_app(settings)
    async with app.test_app():
        assert current_limiter(app) is None
        response = await app.test_client().get(STATUS, headers=bearer(user_token(settings)))
        assert response.status_code == 200
        assert "X-RateLimit-Limit" not in response.headers


async def test_limited_user_route_gets_429_json_with_headers(
    make_settings: Callable[..., Settings],
) -> None:
    rejections_before = rejections("tokens")
    async with limited(make_settings, RATE_LIMIT_TOKENS="3/60") as app:
        token = user_token(make_settings())
        responses = [await get(app, STATUS, headers=bearer(token)) for _ in range(4)]
        assert [r.status_code for r in responses] == [200, 200, 200, 429]
        assert [r.headers["X-RateLimit-Remaining"] for r in responses] == ["2", "1", "0", "0"]
        for response in responses:
            assert response.headers["X-RateLimit-Limit"] == "3"
            assert 0 <= int(response.headers["X-RateLimit-Reset"]) <= 60
        refused = responses[-1]
        assert 1 <= int(refused.headers["Retry-After"]) <= 60
        assert refused.content_type == "application/json"
        assert refused.headers["Cache-Control"] == "no-store"
        body = await refused.get_json()
        assert body == {
            "detail": body["detail"],
            "code": "rate_limited",
            "request_id": refused.headers["X-Request-ID"],
        }
        assert "retry in" in body["detail"]
        assert current_limiter(app).stats[("tokens", "rejected")] == 1  # type: ignore[union-attr]
    assert rejections("tokens") == rejections_before + 1


async def test_subject_is_the_verified_user_not_the_address(
    make_settings: Callable[..., Settings],
) -> None:
    async with limited(make_settings, RATE_LIMIT_TOKENS="2/60", TRUSTED_PROXIES="127.0.0.1") as app:
        settings = make_settings()
        alice = bearer(user_token(settings, sub=str(uuid.uuid4())))
        bob = bearer(user_token(settings, sub=str(uuid.uuid4())))
        statuses = []
        for n in range(3):  # a new address (and a spoofed X-Forwarded-For) every time
            spoofed = {**alice, "X-Forwarded-For": f"198.51.100.{n}"}
            statuses.append(await get(app, STATUS, frm=f"127.0.0.{n + 1}", headers=spoofed))
        assert [r.status_code for r in statuses] == [200, 200, 429]
        assert (await get(app, STATUS, headers=bob)).status_code == 200


async def test_groups_have_independent_limits(make_settings: Callable[..., Settings]) -> None:
    async with limited(
        make_settings, RATE_LIMIT_TOKENS="1/60", RATE_LIMIT_OAUTH_START="1/60"
    ) as app:
        token = bearer(user_token(make_settings()))
        assert (await get(app, STATUS, headers=token)).status_code == 200
        assert (await get(app, STATUS, headers=token)).status_code == 429
        start = await get(app, "/api/v1/oauth/nosuch/authorize", headers=token)
        assert start.status_code == 404  # limited in its own group, then the route ran
        assert start.headers["X-RateLimit-Remaining"] == "0"
        assert (await get(app, "/api/v1/providers")).status_code == 200


async def test_failed_authentication_is_throttled_per_address(
    make_settings: Callable[..., Settings],
) -> None:
    async with limited(make_settings, RATE_LIMIT_AUTH_FAILURES="3/300") as app:
        valid = bearer(user_token(make_settings()))
        guesses = [await get(app, STATUS, headers=bearer(f"guess.{n}.token")) for n in range(2)] + [
            await get(app, STATUS)
        ]  # no credential at all counts too
        assert [r.status_code for r in guesses] == [401, 401, 401]
        assert guesses[-1].headers["X-RateLimit-Remaining"] == "0"
        # The address is now refused before any credential is examined, even a valid one.
        blocked = await get(app, STATUS, headers=valid)
        assert blocked.status_code == 429
        assert (await blocked.get_json())["code"] == "rate_limited"
        assert int(blocked.headers["Retry-After"]) >= 1
        # Other addresses are unaffected.
        assert (await get(app, STATUS, frm="198.51.100.9", headers=valid)).status_code == 200


async def test_valid_requests_do_not_use_up_the_failure_budget(
    make_settings: Callable[..., Settings],
) -> None:
    async with limited(make_settings, RATE_LIMIT_AUTH_FAILURES="1/300") as app:
        valid = bearer(user_token(make_settings()))
        for _ in range(5):
            assert (await get(app, STATUS, headers=valid)).status_code == 200


async def test_agent_routes_are_limited_per_agent_credential(
    make_settings: Callable[..., Settings],
) -> None:
    async with limited(make_settings, RATE_LIMIT_AGENT="2/60") as app:
        store = app.extensions[AGENTS_EXTENSION]
        pepper = auth_state(app).agent_pepper
        assert pepper is not None
        _, first = await create_agent(store, "first-bot", None, pepper)
        _, second = await create_agent(store, "second-bot", None, pepper)
        path = f"/api/v1/agent/users/{uuid.uuid4()}/tokens"
        statuses = [(await get(app, path, headers=bearer(first))).status_code for _ in range(3)]
        assert statuses == [200, 200, 429]
        assert (await get(app, path, headers=bearer(second))).status_code == 200


async def test_callback_is_limited_per_client_address(
    make_settings: Callable[..., Settings],
) -> None:
    async with limited(
        make_settings, RATE_LIMIT_OAUTH_CALLBACK="2/60", TRUSTED_PROXIES="10.0.0.0/8"
    ) as app:
        # From an untrusted peer, X-Forwarded-For is ignored: changing it resets nothing.
        untrusted = [
            await get(app, CALLBACK, frm="203.0.113.5", headers={"X-Forwarded-For": f"192.0.2.{n}"})
            for n in range(3)
        ]
        assert [r.status_code == 429 for r in untrusted] == [False, False, True]
        # From our proxy, the forwarded client is the subject.
        via_proxy = [
            await get(app, CALLBACK, frm="10.0.0.2", headers={"X-Forwarded-For": client})
            for client in ("198.51.100.1", "198.51.100.1", "198.51.100.1", "198.51.100.2")
        ]
        assert [r.status_code == 429 for r in via_proxy] == [False, False, True, False]


async def test_probes_metrics_and_static_files_are_exempt(
    make_settings: Callable[..., Settings],
) -> None:
    async with limited(make_settings, RATE_LIMIT_DEFAULT="1/60") as app:
        for path in ("/health", "/api/v1/health/live", "/static/docs/swagger-init.js") * 3:
            response = await get(app, path)
            assert response.status_code == 200, path
            assert "X-RateLimit-Limit" not in response.headers
        assert (await get(app, "/api/v1/providers")).status_code == 200
        assert (await get(app, "/no/such/page")).status_code == 429  # default group, same IP


async def test_window_slides_over_http(make_settings: Callable[..., Settings]) -> None:
    async with limited(make_settings, RATE_LIMIT_DEFAULT="2/60") as app:
        limiter = current_limiter(app)
        assert limiter is not None
        now = [1_700_000_000.0]
        limiter.clock = lambda: now[0]
        now[0] += 59
        assert [(await get(app, "/api/v1/providers")).status_code for _ in range(2)] == [200, 200]
        now[0] += 2  # a fixed window would have reset at t=60
        refused = await get(app, "/api/v1/providers")
        assert refused.status_code == 429
        assert refused.headers["Retry-After"] == "58"
        now[0] += 58
        assert (await get(app, "/api/v1/providers")).status_code == 200


async def test_redis_down_follows_each_groups_failure_mode(
    make_settings: Callable[..., Settings], logs: list[str]
) -> None:
    closed_port = free_port()  # nothing listens there
    errors_before = rejections("oauth_callback", "pulseplan_ratelimit_backend_errors_total")
    async with limited(
        make_settings,
        REDIS_URL=f"redis://:{PASSWORD}@127.0.0.1:{closed_port}/0",
        RATE_LIMIT_TOKENS="2/60",
    ) as app:
        token = bearer(user_token(make_settings()))
        # tokens fails open: served, limited per process by the in-process fallback.
        tokens = [await get(app, STATUS, headers=token) for _ in range(3)]
        assert [r.status_code for r in tokens] == [200, 200, 429]
        assert tokens[0].headers["X-RateLimit-Remaining"] == "1"
        # oauth_callback fails closed: 503 JSON with Retry-After.
        callback = await get(app, CALLBACK)
        assert callback.status_code == 503
        assert callback.headers["Retry-After"].isdigit()
        body = await callback.get_json()
        assert body["code"] == "rate_limiter_unavailable"
        assert body["request_id"] == callback.headers["X-Request-ID"]
        stats = current_limiter(app).stats  # type: ignore[union-attr]
        assert stats[("tokens", "failed_open")] >= 3
        assert stats[("oauth_callback", "failed_closed")] == 1
    assert any("rate limiter backend redis unavailable" in line for line in logs)
    assert PASSWORD not in "".join(logs)
    errors_after = rejections("oauth_callback", "pulseplan_ratelimit_backend_errors_total")
    assert errors_after == errors_before + 1


async def test_redis_down_with_every_group_open(
    make_settings: Callable[..., Settings],
) -> None:
    async with limited(
        make_settings,
        REDIS_URL=f"redis://127.0.0.1:{free_port()}/0",
        RATE_LIMIT_FAILURE_MODE="open",
    ) as app:
        assert (await get(app, CALLBACK)).status_code != 503


async def test_routes_can_choose_their_group_or_opt_out(
    make_settings: Callable[..., Settings],
) -> None:
    settings = make_settings(
        ENABLE_RATE_LIMITING="true", RATE_LIMIT_DEFAULT="1/60", RATE_LIMIT_AGENT="2/60"
    )
    app = create_app(settings)
    bp = Blueprint("extra", __name__)

    @bp.get("/metrics-like")
    @exempt
    async def scrape() -> dict[str, str]:
        return {"ok": "yes"}

    @bp.get("/agentish")
    @limit_group("agent")
    async def agentish() -> dict[str, str]:
        return {"ok": "yes"}

    app.register_blueprint(bp)
    async with app.test_app():
        assert [(await get(app, "/metrics-like")).status_code for _ in range(3)] == [200] * 3
        statuses = [(await get(app, "/agentish")).status_code for _ in range(3)]
        assert statuses == [200, 200, 429]
    with pytest.raises(ValueError, match="unknown rate limit group"):
        limit_group("nonsense")
