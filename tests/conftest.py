"""Shared fixtures for the host tests."""

from __future__ import annotations

import base64
import os
import re
import secrets
import sys
import textwrap
from collections.abc import AsyncIterator
from collections.abc import Callable
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from loguru import logger
from quart import Quart
from quart.typing import TestClientProtocol

from pulseplan.app import create_app
from pulseplan.settings import Settings

IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")

BASE_ENV = {
    "TOKEN_ENCRYPTION_KEY": base64.urlsafe_b64encode(b"k" * 16 + secrets.token_bytes(16)).decode(),
    "SECRET_KEY": "test-secret-key-" + secrets.token_urlsafe(24),
    "SUPABASE_JWT_SECRET": "test-jwt-secret-" + secrets.token_urlsafe(24),
}


@pytest.fixture
def make_settings(tmp_path: Path) -> Callable[..., Settings]:
    """Hermetic settings: only what the test passes, never the developer's environment."""

    def make(**env: str) -> Settings:
        merged = {
            **BASE_ENV,
            "PULSEPLAN_DATA_DIR": str(tmp_path / "data"),
            "DATABASE_URL": f"sqlite:///{tmp_path / 'pulseplan.db'}",
            **env,
        }
        return Settings.load(merged, env_file=None, generate_dev_secrets=False)

    return make


@pytest.fixture
def settings(make_settings: Callable[..., Settings]) -> Settings:
    return make_settings()


@pytest.fixture
async def app(settings: Settings) -> AsyncIterator[Quart]:
    application = create_app(settings)
    async with application.test_app():
        yield application


@pytest.fixture
def client(app: Quart) -> TestClientProtocol:
    return app.test_client()


@pytest.fixture
def distribution(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[..., str]]:
    """Install a throwaway distribution with entry points into ``sys.path``.

    ``distribution("pulseplan-acme", {"acme": "code"}, entry_points={"acme": "mod"})`` writes the
    modules and a ``.dist-info`` that ``importlib.metadata`` discovers like an installed wheel.
    """
    site = tmp_path / "site"
    site.mkdir()
    monkeypatch.syspath_prepend(str(site))
    created: list[str] = []

    def install(
        name: str, modules: dict[str, str], *, entry_points: dict[str, str], version: str = "1.2.3"
    ) -> str:
        for module, code in modules.items():
            (site / f"{module}.py").write_text(textwrap.dedent(code))
            created.append(module)
        info = site / f"{name.replace('-', '_')}-{version}.dist-info"
        info.mkdir()
        (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n")
        lines = "\n".join(f"{k} = {v}" for k, v in entry_points.items())
        (info / "entry_points.txt").write_text(f"[pulseplan]\n{lines}\n")
        return name

    yield install
    for module in created:
        sys.modules.pop(module, None)


def service_unavailable(what: str, error: Exception) -> Any:
    """Fail under CI (the service must be there), skip on a developer machine."""
    message = f"{what} is not reachable: {type(error).__name__}: {error}"
    if IN_CI:
        pytest.fail(message + " (CI=true: tests needing it must not be skipped)")
    pytest.skip(message)


@pytest.fixture
def logs() -> Iterator[list[str]]:
    """Every log line (all levels, formatted with extras) emitted during the test."""
    lines: list[str] = []
    sink = logger.add(lambda m: lines.append(str(m) + repr(m.record["extra"])), level=0)
    yield lines
    logger.remove(sink)


FAKE_TOKEN = re.compile(r"\b[A-Za-z0-9]{1,32}_(?:at|rt|code)_[A-Za-z0-9_-]{20,}")
_TOLERATED = [0]


@contextmanager
def tolerated_token_logs() -> Iterator[None]:
    """For a test that runs a deliberately leaky plugin to prove a leak is caught."""
    _TOLERATED[0] += 1
    try:
        yield
    finally:
        _TOLERATED[0] -= 1


@pytest.fixture(scope="session", autouse=True)
def no_token_in_any_log_line() -> Iterator[None]:
    """Across the whole suite: no log line (any level, any logger routed through loguru) ever
    carries a token or code the fake providers issued. Their shape is deliberately *not* in the
    redaction patterns, so this catches code that logs a token, not a regex that hides one."""
    leaks: list[str] = []

    def sink(message: Any) -> None:
        text = str(message) + repr(message.record["extra"])
        if not _TOLERATED[0] and FAKE_TOKEN.search(text):
            leaks.append(FAKE_TOKEN.sub("<token>", text)[:300])

    handler = logger.add(sink, level=0)
    yield
    logger.remove(handler)
    assert not leaks, f"{len(leaks)} log line(s) carried a provider token, e.g.: {leaks[0]}"
