"""The knobs and the fixture every conformance check shares (see
:class:`pulseplan.testing.conformance.ProviderConformance` for how to use them)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from collections.abc import Mapping
from collections.abc import Sequence
from pathlib import Path

import pytest
import pytest_asyncio

from pulseplan.testing.conformance_faults import FaultCase
from pulseplan.testing.conformance_faults import Outcome
from pulseplan.testing.conformance_faults import default_code_faults
from pulseplan.testing.conformance_faults import default_refresh_faults
from pulseplan.testing.conformance_harness import CANARY
from pulseplan.testing.conformance_harness import Harness
from pulseplan.testing.fake_notion import NotionProfile
from pulseplan.testing.fake_profiles import ProfileName
from pulseplan.testing.fake_profiles import profile_class
from pulseplan.testing.fake_provider import FakeProvider
from pulseplan.testing.fake_state import Grant
from pulseplan.testing.fake_state import Rotation
from pulseplan.testing.vault import new_user
from pulseplan.testing.vault import running_vault

#: Parametrized arguments of the failure checks -> the outcome whose cases they receive.
REFRESH_FAULT_ARGS: dict[str, Outcome] = {
    "reauth_fault": "needs_reauth",
    "config_fault": "error",
    "transient_fault": "transient",
}


class ConformanceBase:
    """Knobs (class attributes a subclass sets) and the ``conformance`` fixture."""

    #: The provider name: the plugin's entry-point name and its ``ProviderSpec.name``.
    provider: str
    #: The fake profile that behaves like the provider: ``standard``, ``google``,
    #: ``microsoft``, ``canvas`` or ``notion``.
    profile: ProfileName = "standard"
    #: A plugin object (module or instance) to register in-process; ``None`` tests the
    #: *installed* plugin found through the ``pulseplan`` entry-point group.
    plugin: object | None = None
    #: The fake's refresh-token rotation (``none``, ``strict``, ``rotate``, ``grace``);
    #: ``None`` takes the profile's, which is what the real provider does.
    rotation: Rotation | None = None
    #: Whether disconnecting revokes at the provider. ``None``: the provider revokes when the
    #: profile has a revocation endpoint (Microsoft has none).
    revocation: bool | None = None
    #: Whether the authorization URL must carry an S256 challenge with these settings.
    #: ``None``: what ``ProviderSpec.pkce`` says. Set it when the plugin gates PKCE behind a
    #: setting of its own (Canvas: ``CANVAS_PKCE``, off by default).
    pkce: bool | None = None
    #: Whether the code exchange must record the account's email.
    records_email: bool = True
    #: Extra settings (``{NAME}_SCOPES``, provider settings...) on top of the fake's.
    env: Mapping[str, str] = {}
    #: Refresh failures and their classification; ``None``: ``default_refresh_faults(profile)``.
    refresh_faults: Sequence[FaultCase] | None = None
    #: Code-exchange failures; ``None``: ``default_code_faults(profile)``.
    code_faults: Sequence[FaultCase] | None = None

    # ------------------------------------------------------------------ pytest plumbing

    def pytest_generate_tests(self, metafunc: pytest.Metafunc) -> None:
        """One test per fault case, with the case's id in the test name."""
        for argname, outcome in REFRESH_FAULT_ARGS.items():
            if argname in metafunc.fixturenames:
                cases = [c for c in self.all_refresh_faults() if c.outcome == outcome]
                metafunc.parametrize(argname, cases, ids=[c.id for c in cases])
        if "code_fault" in metafunc.fixturenames:
            cases = list(self.all_code_faults())
            metafunc.parametrize("code_fault", cases, ids=[c.id for c in cases])

    @pytest_asyncio.fixture
    async def conformance(self, tmp_path: Path) -> AsyncIterator[Harness]:
        """A PulsePlan running the plugin under test against a fresh fake provider."""
        fake = FakeProvider(self.profile, rotation=self.rotation, token_prefix=CANARY)
        plugins = [] if self.plugin is None else [(self.provider, self.plugin)]
        async with running_vault(
            tmp_path, providers={self.provider: fake}, plugins=plugins, **dict(self.env)
        ) as vault:
            yield Harness(vault, fake, self.provider, new_user())
            assert fake.internal_errors == [], "the fake provider itself failed"

    # ------------------------------------------------------------------ expectations

    def all_refresh_faults(self) -> Sequence[FaultCase]:
        if self.refresh_faults is not None:
            return self.refresh_faults
        return default_refresh_faults(self.profile)

    def all_code_faults(self) -> Sequence[FaultCase]:
        if self.code_faults is not None:
            return self.code_faults
        return default_code_faults(self.profile)

    def expects_revocation(self) -> bool:
        if self.revocation is not None:
            return self.revocation
        return profile_class(self.profile).revoke_style is not None

    def expected_metadata(self, h: Harness, access_token: str) -> dict[str, str]:
        """Provider facts the connection's metadata must hold, as ``label -> value``.

        Matched by value anywhere in the (nested) metadata, so a plugin chooses its own keys.
        The default asks Notion connections for the workspace and the bot (providers.md §4.2).
        """
        if h.fake.profile != "notion":
            return {}
        info = h.fake.grant_info(access_token)
        assert info is not None
        account = h.fake.default_account
        grant = Grant(info.grant_id, info.client_id, account, info.scopes, "", 0.0)
        return {
            "workspace id": account.uuid(f"workspace:{account.workspace}"),
            "workspace name": account.workspace,
            "bot id": NotionProfile("").bot_id(grant),
        }

    def expects_pkce(self, h: Harness) -> bool:
        return h.spec.pkce if self.pkce is None else self.pkce

    def require_refresh(self, h: Harness) -> None:
        if not h.spec.supports_refresh:
            pytest.skip(f"{self.provider} declares supports_refresh=False")
