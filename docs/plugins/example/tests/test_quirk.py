"""The quirk on its own: ``token_expired`` means reconnect, other errors keep their meaning."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pulseplan_example
import pytest

from pulseplan import ProviderMisconfigured
from pulseplan import ReconnectRequired
from pulseplan.testing.fake_provider import FakeProvider
from pulseplan.testing.vault import Vault
from pulseplan.testing.vault import new_user


async def connected(pulseplan_vault: Callable[..., Any]) -> tuple[Vault, str]:
    vault: Vault = await pulseplan_vault(
        {"example": FakeProvider("standard")}, plugins=[("example", pulseplan_example)]
    )
    user = new_user()
    await vault.connect(user, "example")
    return vault, user


@pytest.mark.parametrize(
    ("error", "expected"),
    [("token_expired", ReconnectRequired), ("invalid_client", ProviderMisconfigured)],
)
async def test_refresh_classifies_the_provider_error(
    pulseplan_vault: Callable[..., Any], error: str, expected: type[Exception]
) -> None:
    vault, user = await connected(pulseplan_vault)
    row = await vault.runtime.storage.get_connection(user, "example")
    assert row is not None
    vault.fakes["example"].fail_next("refresh", "error", error=error, status=400)
    with pytest.raises(expected) as excinfo:
        await vault.runtime.plugins.refresh(
            "example",
            refresh_token=vault.stored_refresh_token(row),
            scopes=row.scopes,
            metadata={},
        )
    assert excinfo.value.error == error  # type: ignore[attr-defined]
