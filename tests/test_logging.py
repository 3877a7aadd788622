"""Structured logs: JSON lines with request fields, user ids hashed, stdlib routed in, and
every secret shape redacted from messages, extras and tracebacks."""

from __future__ import annotations

import asyncio
import logging
import secrets
from collections.abc import Callable
from typing import Any

import pytest
from loguru import logger
from quart import Blueprint
from quart import Quart

from pulseplan import ConnectionEvent
from pulseplan import TokenSet
from pulseplan import hookimpl
from pulseplan.app import create_app
from pulseplan.observability import context
from pulseplan.observability.logs import configure_logging
from pulseplan.plugins import PluginHost
from pulseplan.settings import Settings
from pulseplan.web.request_id import request_id
from tests.auth_fakes import USER_ID
from tests.auth_fakes import user_token
from tests.observability_kit import LogCapture
from tests.observability_kit import production_env
from tests.plugin_kit import DeclarativeProvider
from tests.plugin_kit import provider_env

MakeSettings = Callable[..., Settings]


class EventLogger:
    """A cross-cutting plugin that logs each event it receives (a background task)."""

    @hookimpl
    async def connection_event(self, event: ConnectionEvent) -> None:
        await asyncio.sleep(0)  # still running after the response went out
        logger.info("event {} delivered", event.name)


def build_app(settings: Settings) -> Quart:
    host = PluginHost(
        settings,
        load_entrypoints=False,
        extra_plugins=[("acme", DeclarativeProvider("acme")), ("event-logger", EventLogger())],
    )
    app = create_app(settings, plugins=host)
    probe = Blueprint("logprobe", __name__)
    later: list[asyncio.Task[None]] = []
    app.extensions["later"] = later

    @probe.get("/_probe/spawn")
    async def spawn() -> dict[str, str]:
        async def background() -> None:
            await asyncio.sleep(0)
            logger.info("background work done")

        later.append(asyncio.get_running_loop().create_task(background()))
        logging.getLogger("quart.app").warning("stdlib line inside a request")
        return {"request_id": request_id() or ""}

    app.register_blueprint(probe)
    return app


@pytest.fixture
def capture() -> LogCapture:
    return LogCapture()


def configured(settings: Settings, capture: LogCapture) -> Quart:
    app = build_app(settings)
    configure_logging(settings, stream=capture)  # same pipeline, written where we can read it
    return app


# --------------------------------------------------------------------------- JSON lines


async def test_production_logs_are_json_lines_on_stdout_with_request_fields(
    make_settings: MakeSettings, capsys: pytest.CaptureFixture[str]
) -> None:
    settings = make_settings(**production_env(), **provider_env("acme"))
    app = build_app(settings)
    token = user_token(settings)
    async with app.test_app():
        response = await app.test_client().get(
            "/api/v1/tokens/connections",
            query_string={"code": "c0de-" + secrets.token_urlsafe(16), "state": "s7"},
            headers={"Authorization": f"Bearer {token}", "X-Request-ID": "req-json-0001"},
        )
        assert response.status_code == 200
    out = capsys.readouterr().out
    records = LogCapture(out).records()  # every line parses as one JSON object
    access = [r for r in records if r.get("route") == "/api/v1/tokens/connections"]
    assert len(access) == 1
    line = access[0]
    assert line["request_id"] == "req-json-0001"
    assert line["method"] == "GET"
    assert line["path"] == "/api/v1/tokens/connections"
    assert line["status"] == 200
    assert isinstance(line["duration_ms"], float)
    assert line["level"] == "INFO"
    assert line["timestamp"].endswith("Z")
    assert line["service"] == "pulseplan"
    assert line["user_hash"] == context.hash_user(USER_ID)
    assert "user_id" not in line
    assert USER_ID not in out  # hashed everywhere in production
    assert "c0de-" not in out
    assert "?" not in line["message"]
    assert token not in out


async def test_development_logs_are_readable_text_with_the_user_id(
    make_settings: MakeSettings, capsys: pytest.CaptureFixture[str]
) -> None:
    settings = make_settings(BACKGROUND_REFRESH="false")
    app = build_app(settings)
    async with app.test_app():
        response = await app.test_client().get(
            "/api/v1/tokens/connections",
            headers={"Authorization": f"Bearer {user_token(settings)}"},
        )
        assert response.status_code == 200
    err = capsys.readouterr().err  # development logs go to stderr: CLI output stays clean
    line = next(x for x in err.splitlines() if "GET /api/v1/tokens/connections 200" in x)
    assert f"user_id={USER_ID}" in line
    assert "| INFO " in line


@pytest.mark.parametrize(
    ("mode", "present", "absent"),
    [("hash", "user_hash", "user_id"), ("off", None, "user_")],
)
async def test_user_ids_can_be_hashed_or_left_out(
    make_settings: MakeSettings, capture: LogCapture, mode: str, present: str | None, absent: str
) -> None:
    settings = make_settings(LOG_FORMAT="json", LOG_USER_IDS=mode, BACKGROUND_REFRESH="false")
    app = configured(settings, capture)
    async with app.test_app():
        client = app.test_client()
        await client.get(
            "/api/v1/tokens/connections",
            headers={"Authorization": f"Bearer {user_token(settings)}"},
        )
        # A user id in the path is treated like any other user id.
        await client.get(f"/api/v1/agent/users/{USER_ID}/tokens")
    assert USER_ID not in capture.getvalue()
    [line] = capture.find(route="/api/v1/tokens/connections")
    assert not any(key.startswith(absent) for key in line if key != present)
    if present:
        assert line[present] == context.hash_user(USER_ID)
    [agent] = capture.find(route="/api/v1/agent/users/<user_id>/tokens")
    assert agent["status"] == 401
    expected = f"h:{context.hash_user(USER_ID)}" if mode == "hash" else "-"
    assert agent["path"] == f"/api/v1/agent/users/{expected}/tokens"


async def test_background_tasks_started_by_a_request_log_its_request_id(
    make_settings: MakeSettings, capture: LogCapture
) -> None:
    settings = make_settings(LOG_FORMAT="json", BACKGROUND_REFRESH="false")
    app = configured(settings, capture)
    async with app.test_app():
        client = app.test_client()
        spawned = await client.get("/_probe/spawn", headers={"X-Request-ID": "req-spawn-0001"})
        stored = await client.post(
            "/api/v1/tokens/connections/acme",
            json={"access_token": "at-" + secrets.token_hex(8)},
            headers={
                "Authorization": f"Bearer {user_token(settings)}",
                "X-Request-ID": "req-store-0001",
            },
        )
        assert (spawned.status_code, stored.status_code) == (200, 201)
        await asyncio.gather(*app.extensions["later"])
        await app.extensions["pulseplan"].events.drain()
    [task_line] = capture.find(message="background work done")
    assert task_line["request_id"] == "req-spawn-0001"
    [event_line] = capture.find(message="event connected delivered")
    assert event_line["request_id"] == "req-store-0001"  # EventBus delivery, after the response
    assert event_line["provider"] == "acme"
    # Lines after the request are attributed too, but nothing outside a request is.
    logger.info("outside any request")
    [outside] = capture.find(message="outside any request")
    assert "request_id" not in outside


async def test_stdlib_logging_goes_through_the_same_sink(
    make_settings: MakeSettings, capture: LogCapture
) -> None:
    settings = make_settings(LOG_FORMAT="json", BACKGROUND_REFRESH="false")
    app = configured(settings, capture)
    code = "4/0A" + secrets.token_urlsafe(30)
    logging.getLogger("httpx").warning(
        'HTTP Request: GET https://idp.example/cb?code=%s&state=%s "200"', code, "st8" * 5
    )
    logging.getLogger("hypercorn.error").info("Running on http://127.0.0.1:1 (CTRL + C to quit)")
    async with app.test_app():
        await app.test_client().get("/_probe/spawn", headers={"X-Request-ID": "req-stdlib-01"})
    [httpx_line] = capture.find(logger="httpx")
    assert httpx_line["level"] == "WARNING"
    assert httpx_line["message"].startswith("HTTP Request: GET https://idp.example/cb?code=")
    assert code not in capture.getvalue()
    assert capture.find(logger="hypercorn.error", level="INFO")
    [inside] = capture.find(logger="quart.app")
    assert inside["request_id"] == "req-stdlib-01"


async def test_an_exception_is_logged_redacted_and_without_local_values(
    capture: LogCapture, make_settings: MakeSettings
) -> None:
    configure_logging(make_settings(LOG_FORMAT="json"), stream=capture)
    unrecognisable = "plain-" + secrets.token_hex(6)  # no known shape: only diagnose=False hides it

    def fail(local_value: str) -> None:
        raise ValueError("provider said access_token=" + secrets.token_urlsafe(12))

    try:
        fail(unrecognisable)
    except ValueError:
        logger.exception("refresh failed")
    [line] = capture.find(message="refresh failed")
    assert line["exception"]["type"] == "ValueError"
    assert "access_token=[REDACTED]" in line["exception"]["message"]
    assert "access_token=[REDACTED]" in line["exception"]["traceback"]
    assert unrecognisable not in capture.getvalue()


# --------------------------------------------------------------------------- redaction table

JWT = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJ1c2VyLTEyMyJ9.c2lnbmF0dXJlLXZhbHVlLTEyMzQ1"
SECRETS: list[tuple[str, str, str]] = [
    # (case, secret, how it appears in text)
    ("bearer header", "opaque-" + secrets.token_hex(10), "Authorization: Bearer {}"),
    ("bearer prose", "b3arer" + secrets.token_hex(10), "sent Bearer {} upstream"),
    ("jwt", JWT, "user token {} rejected"),
    ("jwt in json", JWT, '{{"id_token": "{}"}}'),
    ("google access", "ya29.a0" + secrets.token_urlsafe(40), "got {}"),
    ("google refresh", "1//0g" + secrets.token_urlsafe(40), "stored {} for later"),
    ("google code", "4/0A" + secrets.token_urlsafe(40), "callback code {}"),
    ("notion secret", "secret_" + secrets.token_hex(20), "notion key {}"),
    ("notion ntn", "ntn_" + secrets.token_hex(20), "notion key {}"),
    ("agent secret", "ppa_" + secrets.token_urlsafe(32), "agent presented {}"),
    ("canvas token", "7~" + secrets.token_hex(32), "canvas {}"),
    (
        "code query",
        "Zq" + secrets.token_urlsafe(20),
        "GET /api/v1/oauth/acme/callback?code={}&state=x",
    ),
    ("state query", "St" + secrets.token_urlsafe(20), "GET /cb?state={}"),
    ("access_token form", "at" + secrets.token_hex(12), "body: grant_type=x&access_token={}"),
    ("refresh_token json", "rt" + secrets.token_hex(12), '{{"refresh_token": "{}"}}'),
    ("client_secret kv", "cs" + secrets.token_hex(12), "client_secret={} rejected"),
    ("redis password", "pw" + secrets.token_hex(8), "connecting to redis://:{}@cache:6379/0"),
    ("userinfo", "us" + secrets.token_hex(8), "postgresql://app:{}@db/pulseplan"),
    ("sentry dsn key", "k" + secrets.token_hex(16), "dsn https://{}@o1.ingest.sentry.io/1"),
    ("cookie header", "sid" + secrets.token_hex(8), "Cookie: session={}; theme=dark"),
]
KEYED: list[tuple[str, Any]] = [
    ("authorization", "Bearer x" + secrets.token_hex(8)),
    ("access_token", "at" + secrets.token_hex(8)),
    ("refresh_token", "rt" + secrets.token_hex(8)),
    ("id_token", "it" + secrets.token_hex(8)),
    ("client_secret", "cs" + secrets.token_hex(8)),
    ("code", "c" + secrets.token_hex(8)),
    ("state", "s" + secrets.token_hex(8)),
    ("password", "p" + secrets.token_hex(8)),
    ("X-Api-Key", "k" + secrets.token_hex(8)),
    ("google_client_secret", "g" + secrets.token_hex(8)),
    ("cookie", "ck" + secrets.token_hex(8)),
    ("sentry_dsn", "https://" + secrets.token_hex(8) + "@h/1"),
]


@pytest.fixture
def json_capture(make_settings: MakeSettings, capture: LogCapture) -> LogCapture:
    configure_logging(make_settings(LOG_FORMAT="json", LOG_LEVEL="trace"), stream=capture)
    return capture


@pytest.mark.parametrize(("case", "secret", "template"), SECRETS, ids=[c for c, _, _ in SECRETS])
def test_secret_shapes_are_redacted_everywhere(
    json_capture: LogCapture, logs: list[str], case: str, secret: str, template: str
) -> None:
    text = template.format(secret)
    logger.debug(text)
    logger.info("with args: {}", text)
    logger.bind(detail=text, nested={"list": [text, {"deeper": text}]}).warning("extras")
    logging.getLogger("httpx").error(text)
    logging.getLogger("some.library").info("%s", text, extra={"payload": text})
    try:
        raise RuntimeError(text)
    except RuntimeError:
        logger.exception("failed")
    output = json_capture.getvalue()
    assert len(json_capture.records()) == 6
    assert secret not in output, case
    assert "[REDACTED]" in output
    # Sinks added by others (here the test's capture) see the redacted message and extras too.
    assert not any(secret in line.split("Traceback")[0] for line in logs)


@pytest.mark.parametrize(("key", "secret"), KEYED, ids=[k for k, _ in KEYED])
def test_sensitive_keys_are_redacted_in_extras(
    json_capture: LogCapture, key: str, secret: str
) -> None:
    logger.bind(**{key: secret}).info("keyed")
    logger.bind(data={"inner": {key: secret}}).info("nested")
    logging.getLogger("lib").info("stdlib extra", extra={key: secret})
    assert secret not in json_capture.getvalue()
    assert json_capture.find(message="keyed")[0][key] == "[REDACTED]"


def test_ordinary_text_is_left_alone(json_capture: LogCapture) -> None:
    ordinary = (
        "refresh of 5f0c8a1e-3b6d-4c2a-9e7f-1a2b3c4d5e6f via google failed transiently "
        "(server_error); token_url=https://oauth2.googleapis.com/token code=invalid_request "
        "request 0123456789abcdef0123456789abcdef"
    )
    logger.bind(token_url="https://idp/token", status=503, expires_at="2030-01-01").info(ordinary)
    [line] = json_capture.records()
    assert line["message"] == ordinary
    assert line["token_url"] == "https://idp/token"
    assert line["status"] == 503


def test_libraries_that_log_secrets_at_debug_are_held_back(
    make_settings: MakeSettings, capture: LogCapture
) -> None:
    configure_logging(make_settings(LOG_FORMAT="json", LOG_LEVEL="debug"), stream=capture)
    logging.getLogger("hpack.hpack").debug("Decoded (b'authorization', b'opaque-credential')")
    logging.getLogger("aiosqlite").debug("executing ('5f0c8a1e-user-id', 'v1:ciphertext')")
    logging.getLogger("httpcore.http11").log(5, "receive_response_headers.complete")
    logging.getLogger("httpx").debug("HTTP Request: POST https://idp.example/token")
    logging.getLogger("aiosqlite").warning("database is locked")
    assert [r["logger"] for r in capture.records()] == ["httpx", "aiosqlite"]


class ChattyProvider(DeclarativeProvider):
    """Logs through the standard library inside its refresh, like an HTTP client would."""

    @hookimpl
    async def refresh(self) -> TokenSet:
        logging.getLogger("httpx").info("HTTP Request: POST https://idp.example/token 200")
        return TokenSet(access_token="at-" + secrets.token_hex(8))


async def test_lines_logged_during_a_provider_call_name_the_provider(
    make_settings: MakeSettings, capture: LogCapture
) -> None:
    settings = make_settings(LOG_FORMAT="json", **provider_env("chatty"))
    host = PluginHost(
        settings, load_entrypoints=False, extra_plugins=[("chatty", ChattyProvider("chatty"))]
    )
    app = create_app(settings, plugins=host)
    configure_logging(settings, stream=capture)
    async with app.test_app():  # no request: like the background refresher
        await host.refresh("chatty", refresh_token="rt", scopes=(), metadata={})
    [line] = capture.find(logger="httpx")
    assert line["provider"] == "chatty"
    assert "request_id" not in line
