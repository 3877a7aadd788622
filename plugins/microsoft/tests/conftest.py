"""Test configuration: ``microsoft`` drives the plugin's hooks through a real plugin manager against
the kit's fake microsoft over loopback (``pulseplan.testing.harness``).

The kit's fixtures come from ``-p pulseplan.testing`` in the root pytest configuration; a
stand-alone plugin repository would write ``pytest_plugins = ["pulseplan.testing"]`` here.
"""

from __future__ import annotations

from collections.abc import Awaitable
from collections.abc import Callable
from typing import Any

import pulseplan_microsoft
import pytest

from pulseplan.testing.fake_provider import FakeProvider
from pulseplan.testing.harness import PluginHarness


@pytest.fixture
def microsoft(plugin_harness: Callable[..., Any]) -> Callable[..., Awaitable[PluginHarness]]:
    """``await microsoft(**env)`` -> a harness on a started fake; pass ``fake=`` to reuse one, other
    keywords become settings."""

    async def make(fake: FakeProvider | None = None, **env: str) -> PluginHarness:
        harness: PluginHarness = await plugin_harness(
            "microsoft", pulseplan_microsoft, fake=fake, **env
        )
        return harness

    return make
