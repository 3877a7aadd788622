"""pytest fixtures of the plugin author kit (registered by ``pytest_plugins``)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from collections.abc import Callable
from collections.abc import Iterator
from contextlib import AsyncExitStack
from pathlib import Path
from typing import Any

import pytest

from pulseplan.testing.fake_provider import FakeProvider
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
