"""Test configuration: ``google`` drives the plugin's hooks through a real plugin manager against
the kit's fake google over loopback (``pulseplan.testing.harness``).

The kit's fixtures come from ``-p pulseplan.testing`` in the root pytest configuration; a
stand-alone plugin repository would write ``pytest_plugins = ["pulseplan.testing"]`` here.
"""

from __future__ import annotations

from collections.abc import Awaitable
from collections.abc import Callable
from typing import Any

import pulseplan_google
import pytest

from pulseplan.testing.fake_provider import FakeProvider
from pulseplan.testing.harness import PluginHarness


@pytest.fixture
def google(plugin_harness: Callable[..., Any]) -> Callable[..., Awaitable[PluginHarness]]:
    """``await google(**env)`` -> a harness on a started fake; pass ``fake=`` to reuse one, other
    keywords become settings."""

    async def make(fake: FakeProvider | None = None, **env: str) -> PluginHarness:
        harness: PluginHarness = await plugin_harness("google", pulseplan_google, fake=fake, **env)
        return harness

    return make
