"""Sentry: events, transactions and breadcrumbs captured in memory (no network) and scrubbed of
headers, cookies, query strings, bodies, frame locals and token-shaped text."""

from __future__ import annotations

import logging
import secrets
from collections.abc import Callable
from collections.abc import Iterator
from typing import Any

import pytest
import sentry_sdk
from loguru import logger
from quart import Blueprint
from quart import Quart
from quart import request

from pulseplan import __version__
from pulseplan.app import create_app
from pulseplan.observability import sentry
from pulseplan.settings import Settings
from tests.observability_kit import DUMMY_DSN
from tests.observability_kit import MemoryTransport
from tests.observability_kit import reset_sentry

MakeSettings = Callable[..., Settings]


@pytest.fixture
def transport(monkeypatch: pytest.MonkeyPatch) -> Iterator[MemoryTransport]:
    memory = MemoryTransport()
    monkeypatch.setattr(sentry, "TRANSPORT", memory)
    yield memory
    reset_sentry()


class Secrets:
    """One random value per place a secret can hide in a request."""

    def __init__(self) -> None:
        self.header = "hdr" + secrets.token_hex(12)
        self.api_key = "key" + secrets.token_hex(12)
        self.cookie = "ck" + secrets.token_hex(12)
        self.code = "cd" + secrets.token_hex(12)
        self.state = "st" + secrets.token_hex(12)
        self.body = "bd" + secrets.token_hex(12)
        self.local = "lc" + secrets.token_hex(12)
        self.message = "ya29.a0" + secrets.token_urlsafe(24)
        self.crumb = "1//0g" + secrets.token_urlsafe(24)
        self.stdlib = "ntn_" + secrets.token_hex(16)

    def all(self) -> dict[str, str]:
        return dict(vars(self))


def probe_app(settings: Settings, leaked: Secrets) -> Quart:
    app = create_app(settings)
    probe = Blueprint("sentryprobe", __name__)

    @probe.post("/_probe/explode")
    async def explode() -> dict[str, str]:
        body = await request.get_json()
        credentials = body["access_token"]  # a local variable holding a token
        hidden = leaked.local  # and one holding something with no recognisable shape
        logger.info("calling the provider with Bearer {}", leaked.crumb)
        logging.getLogger("httpx").info("refresh_token=%s", leaked.stdlib)
        raise RuntimeError(f"provider rejected {leaked.message} ({len(credentials + hidden)})")

    app.register_blueprint(probe)
    return app


async def test_an_exception_in_a_route_is_reported_without_any_secret(
    make_settings: MakeSettings, transport: MemoryTransport
) -> None:
    settings = make_settings(SENTRY_DSN=DUMMY_DSN, SENTRY_TRACES_SAMPLE_RATE="1.0")
    leaked = Secrets()
    app = probe_app(settings, leaked)
    async with app.test_app():
        response = await app.test_client().post(
            "/_probe/explode",
            query_string={"code": leaked.code, "state": leaked.state},
            json={"access_token": leaked.body, "nested": {"refresh_token": leaked.body}},
            headers={
                "Authorization": f"Bearer {leaked.header}",
                "Cookie": f"session={leaked.cookie}",
                "X-Api-Key": leaked.api_key,
                "X-Request-ID": "req-sentry-0001",
            },
        )
    assert response.status_code == 500
    assert (await response.get_json())["code"] == "internal_error"
    sentry_sdk.flush()

    errors = transport.events("event")
    assert len(errors) == 1  # the exception, once (not also the "unhandled ..." log line)
    event = errors[0]
    [exception] = event["exception"]["values"]
    assert exception["type"] == "RuntimeError"
    assert exception["value"].startswith("provider rejected [REDACTED]")
    frames = exception["stacktrace"]["frames"]
    assert frames
    assert all("vars" not in frame for frame in frames)
    assert event["environment"] == "development"
    assert event["release"] == f"pulseplan@{__version__}"
    assert event["tags"]["request_id"] == "req-sentry-0001"
    assert "user" not in event
    req = event["request"]
    assert req["url"] == "http://localhost/_probe/explode"
    assert not req.get("query_string")
    assert "cookies" not in req
    assert "data" not in req
    assert req["headers"]["Authorization"] == "[REDACTED]"
    crumbs = event["breadcrumbs"]["values"]
    assert any("Bearer [REDACTED]" in c.get("message", "") for c in crumbs)

    assert transport.events("transaction"), "traces are sampled and scrubbed too"
    dump = transport.dump()
    for where, value in leaked.all().items():
        assert value not in dump, f"the {where} secret reached Sentry"


async def test_error_log_lines_become_scrubbed_events(
    make_settings: MakeSettings, transport: MemoryTransport
) -> None:
    create_app(make_settings(SENTRY_DSN=DUMMY_DSN))
    secret = "secret_" + secrets.token_hex(16)
    logger.bind(client_secret=secret, detail=f"key {secret}").error("provider {} failed", secret)
    logger.info("just a breadcrumb")
    logger.bind(sentry_skip=True).error("reported elsewhere")
    sentry_sdk.flush()
    [event] = transport.events("event")
    assert "provider [REDACTED] failed" in event["logentry"]["message"]
    assert secret not in transport.dump()


def test_without_a_dsn_sentry_stays_off(make_settings: MakeSettings) -> None:
    reset_sentry()
    create_app(make_settings())
    assert not sentry.enabled()
    sentry.capture_exception(RuntimeError("nobody listens"))  # a no-op, not an error


def test_options_are_the_safe_ones(make_settings: MakeSettings) -> None:
    settings = make_settings(
        SENTRY_DSN=DUMMY_DSN,
        SENTRY_SAMPLE_RATE="0.5",
        SENTRY_TRACES_SAMPLE_RATE="0.1",
        SENTRY_ENVIRONMENT="staging",
    )
    options = sentry.sentry_options(settings)
    assert options["environment"] == "staging"
    assert options["sample_rate"] == 0.5
    assert options["traces_sample_rate"] == 0.1
    assert options["include_local_variables"] is False
    assert options["max_request_body_size"] == "never"
    assert options["trace_propagation_targets"] == []
    collection = options.get("data_collection")
    if collection is not None:
        assert collection["user_info"] is False
        assert collection["stack_frame_variables"] is False
        assert collection["http_bodies"] == []
        assert collection["cookies"] == {"mode": "off"}
        assert collection["url_query_params"] == {"mode": "off"}
    else:
        assert options["send_default_pii"] is False
    assert sentry.sentry_options(make_settings())["environment"] == "development"


def test_before_send_scrubs_every_part_of_an_event() -> None:
    token = "ya29." + secrets.token_urlsafe(20)
    opaque = "op" + secrets.token_hex(12)
    event: dict[str, Any] = {
        "user": {"ip_address": "203.0.113.9", "email": "ada@example.com"},
        "request": {
            "url": f"https://{opaque}@vault.example/cb?code={opaque}",
            "query_string": f"code={opaque}&state={opaque}",
            "cookies": {"session": opaque},
            "data": {"access_token": opaque},
            "env": {"REMOTE_ADDR": "203.0.113.9"},
            "headers": {"Authorization": opaque, "X-Forwarded-For": "203.0.113.9", "Accept": "*/*"},
        },
        "exception": {
            "values": [
                {
                    "type": "ValueError",
                    "value": f"bad token {token}",
                    "stacktrace": {"frames": [{"function": "f", "vars": {"tokens": opaque}}]},
                }
            ]
        },
        "threads": {"values": [{"stacktrace": {"frames": [{"vars": {"row": opaque}}]}}]},
        "extra": {"refresh_token": opaque, "note": f"Bearer {opaque}"},
        "contexts": {"provider": {"client_secret": opaque}},
        "tags": {"api_key": opaque},
        "spans": [
            {
                "description": f"POST https://idp.example/token?code={opaque}",
                "data": {"url": "https://idp.example/token", "http.query": f"code={opaque}"},
            }
        ],
        "breadcrumbs": {
            "values": [
                {"category": "httpx", "data": {"url": "https://x", "http.query": opaque}},
                {"category": "log", "message": f"Authorization: Bearer {opaque}"},
            ]
        },
    }
    cleaned = sentry.before_send(event, {})
    assert cleaned is not None
    assert opaque not in repr(cleaned)
    assert token not in repr(cleaned)
    assert "203.0.113.9" not in repr(cleaned)
    assert cleaned["request"]["headers"]["Accept"] == "*/*"
    assert cleaned["request"]["url"] == "https://vault.example/cb"


def test_before_breadcrumb_drops_queries_and_redacts_messages() -> None:
    opaque = "op" + secrets.token_hex(12)
    crumb = sentry.before_breadcrumb(
        {
            "category": "httplib",
            "message": f"GET https://idp/cb?state={opaque}",
            "data": {
                "url": f"https://user:{opaque}@idp/cb",
                "http.query": f"code={opaque}",
                "http.fragment": opaque,
                "method": "GET",
            },
        },
        {},
    )
    assert crumb is not None
    assert opaque not in repr(crumb)
    assert crumb["data"] == {"url": "https://idp/cb", "method": "GET"}


def test_an_event_that_cannot_be_scrubbed_is_dropped() -> None:
    class Hostile(dict[str, Any]):
        def get(self, *args: Any) -> Any:
            raise RuntimeError("boom")

    assert sentry.before_send(Hostile(exception={}), {}) is None


def test_stdlib_errors_are_reported_once_under_their_logger_name(
    make_settings: MakeSettings, transport: MemoryTransport
) -> None:
    create_app(make_settings(SENTRY_DSN=DUMMY_DSN))
    logging.getLogger("httpx").error("provider unreachable")
    logging.getLogger("sentry_sdk.errors").error("the SDK's own trouble: never an event")
    sentry_sdk.flush()
    [event] = transport.events("event")
    assert event["logger"] == "httpx"
