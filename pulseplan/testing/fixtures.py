"""pytest fixtures of the plugin author kit (registered by ``pytest_plugins``)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from collections.abc import Callable
from collections.abc import Iterator
from contextlib import AsyncExitStack
from pathlib import Path
from typing import Any

import httpx
import pytest

from pulseplan.plugins import PluginHost
from pulseplan.testing.fake_provider import FakeProvider
from pulseplan.testing.harness import PluginHarness
from pulseplan.testing.harness import harness_settings
from pulseplan.testing.vault import Vault
from pulseplan.testing.vault import running_vault


@pytest.fixture
def fake_provider() -> Iterator[Callable[..., FakeProvider]]:
    """A factory: ``fake_provider("google", rotation="strict")`` returns a started fake that is
    stopped when the test ends."""
    started: list[FakeProvider] = []

    def make(profile: str = "standard", **options: Any) -> FakeProvider:
        fake = FakeProvider(profile, **options).start()  # type: ignore[arg-type]
        started.append(fake)
        return fake

    yield make
    for fake in started:
        fake.stop()


@pytest.fixture
async def pulseplan_vault(tmp_path: Path) -> AsyncIterator[Callable[..., Any]]:
    """A factory for a running PulsePlan wired to fake providers.

    ``await pulseplan_vault({"google": FakeProvider("google")})`` uses the *installed* plugins
    (entry points); pass ``plugins=[("acme", MyPlugin())]`` to register plugin objects instead.
    Extra keyword arguments become settings.
    """
    async with AsyncExitStack() as stack:
        count = 0

        async def make(
            providers: dict[str, FakeProvider],
            *,
            plugins: list[tuple[str, object]] | None = None,
            **env: str,
        ) -> Vault:
            nonlocal count
            count += 1
            folder = tmp_path / f"vault{count}"
            folder.mkdir()
            return await stack.enter_async_context(
                running_vault(
                    folder,
                    providers=providers,
                    plugins=[] if plugins is None else plugins,
                    **env,
                )
            )

        yield make


@pytest.fixture
async def plugin_harness(
    tmp_path: Path, fake_provider: Callable[..., FakeProvider]
) -> AsyncIterator[Callable[..., Any]]:
    """A factory: ``await plugin_harness("google", pulseplan_google)`` -> a
    :class:`~pulseplan.testing.harness.PluginHarness` on a started fake of the same profile
    (``profile=`` to choose another, ``fake=`` to reuse one); other keywords become settings."""
    async with httpx.AsyncClient(timeout=10) as http:
        harnesses: list[PluginHarness] = []

        async def record(request: httpx.Request) -> None:
            for harness in harnesses:
                harness.urls.append(str(request.url))

        http.event_hooks["request"] = [record]

        async def make(
            name: str,
            plugin: object,
            *,
            profile: str | None = None,
            fake: FakeProvider | None = None,
            **env: str,
        ) -> PluginHarness:
            fake = fake or fake_provider(profile or name)
            settings = harness_settings(tmp_path, {**fake.env(name), **env})
            host = PluginHost(settings, load_entrypoints=False, extra_plugins=[(name, plugin)])
            info = host.info(name)
            assert info.settings is not None
            assert info.configured, info.settings.problems
            host.bind_http(http)
            harness = PluginHarness(name, fake, host)
            harnesses.append(harness)
            return harness

        yield make
