"""The plugin framework: discovery through real entry points, per-provider dispatch, the
standard fallback, cross-cutting wrappers, and start-up failures that name the culprit."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import httpx
import pytest

from pulseplan import ConnectionEvent
from pulseplan import ProviderContext
from pulseplan import hookimpl
from pulseplan.errors import ConfigurationError
from pulseplan.errors import PluginError
from pulseplan.errors import ProviderUnavailable
from pulseplan.errors import ReconnectRequired
from pulseplan.plugins import PluginHost
from pulseplan.plugins import maybe_await
from pulseplan.settings import Settings
from tests.plugin_kit import AsyncProvider
from tests.plugin_kit import DeclarativeProvider
from tests.plugin_kit import SyncProvider
from tests.plugin_kit import provider_env

PROVIDER_MODULE = """
from pulseplan import ProviderSpec, hookimpl

@hookimpl
def describe_provider():
    return ProviderSpec(
        name={name!r},
        display_name="Acme",
        authorize_url="https://acme.invalid/authorize",
        token_url="https://acme.invalid/token",
    )
"""


async def bound(host: PluginHost) -> PluginHost:
    host.bind_http(httpx.AsyncClient())
    return host


def test_entry_point_plugin_is_discovered_with_its_version(
    distribution: Callable[..., str], settings: Settings
) -> None:
    distribution(
        "pulseplan-acme",
        {"pulseplan_acme_ep": PROVIDER_MODULE.format(name="acme")},
        entry_points={"acme": "pulseplan_acme_ep"},
        version="4.5.6",
    )
    host = PluginHost(settings)
    info = host.info("acme")
    assert (info.package, info.version, info.enabled) == ("pulseplan-acme", "4.5.6", True)
    assert "acme" in host.providers
    # The real provider packages are installed too, through their own entry points.
    assert {"google", "microsoft", "canvas", "notion"} <= set(host.providers)


def test_broken_plugin_stops_start_up_naming_it(
    distribution: Callable[..., str], settings: Settings
) -> None:
    distribution(
        "pulseplan-broken",
        {"pulseplan_broken_ep": "raise ImportError('missing dependency frobnicate')"},
        entry_points={"broken": "pulseplan_broken_ep"},
    )
    with pytest.raises(PluginError) as excinfo:
        PluginHost(settings)
    assert "'broken'" in str(excinfo.value)
    assert "pulseplan-broken" in str(excinfo.value)
    assert "frobnicate" in str(excinfo.value)


def test_disabled_broken_plugin_is_not_imported(
    distribution: Callable[..., str], make_settings: Callable[..., Settings]
) -> None:
    distribution(
        "pulseplan-broken",
        {"pulseplan_broken_ep2": "raise ImportError('boom')"},
        entry_points={"broken": "pulseplan_broken_ep2"},
    )
    host = PluginHost(make_settings(PULSEPLAN_DISABLED_PROVIDERS="broken"))
    assert host.info("broken").enabled is False
    assert "broken" not in host.providers


AUDIT_MODULE = """
from pulseplan import hookimpl

EVENTS = []


@hookimpl
def connection_event(event):
    EVENTS.append(event)
"""


def test_a_provider_allow_list_keeps_cross_cutting_plugins(
    distribution: Callable[..., str], make_settings: Callable[..., Settings]
) -> None:
    distribution(
        "pulseplan-audit-sink",
        {"pulseplan_audit_sink": AUDIT_MODULE},
        entry_points={"audit-sink": "pulseplan_audit_sink"},
    )
    host = PluginHost(make_settings(PULSEPLAN_PROVIDERS="google"))
    assert host.providers == ["google"]
    assert host.pm.get_plugin("audit-sink") is not None  # an audit sink is not a provider
    assert host.info("microsoft").enabled is False
    # The deny-list still removes any plugin, cross-cutting or not, without importing it.
    denied = PluginHost(make_settings(PULSEPLAN_DISABLED_PROVIDERS="audit-sink"))
    assert denied.pm.get_plugin("audit-sink") is None


def test_a_broken_plugin_left_out_of_the_allow_list_still_stops_start_up(
    distribution: Callable[..., str], make_settings: Callable[..., Settings]
) -> None:
    # It could be a cross-cutting plugin (an audit sink): failing closed is the safe side.
    distribution(
        "pulseplan-broken",
        {"pulseplan_broken_ep3": "raise ImportError('boom')"},
        entry_points={"broken": "pulseplan_broken_ep3"},
    )
    with pytest.raises(PluginError, match="PULSEPLAN_DISABLED_PROVIDERS=broken skips it"):
        PluginHost(make_settings(PULSEPLAN_PROVIDERS="google"))
    skipped = PluginHost(
        make_settings(PULSEPLAN_PROVIDERS="google", PULSEPLAN_DISABLED_PROVIDERS="broken")
    )
    assert skipped.info("broken").enabled is False


def test_a_plugin_failing_to_describe_itself_is_named(
    distribution: Callable[..., str], settings: Settings
) -> None:
    distribution(
        "pulseplan-odd",
        {
            "pulseplan_odd_ep": (
                "from pulseplan import hookimpl\n\n"
                "@hookimpl\n"
                "def describe_provider():\n"
                "    raise KeyError('ODD_BASE_URL')\n"
            )
        },
        entry_points={"odd": "pulseplan_odd_ep"},
    )
    with pytest.raises(PluginError, match=r"plugin 'odd' failed in describe_provider\(\)"):
        PluginHost(settings)


def test_two_plugins_claiming_one_provider_name_is_an_error(
    distribution: Callable[..., str], settings: Settings
) -> None:
    distribution(
        "pulseplan-acme-one",
        {"acme_one": PROVIDER_MODULE.format(name="acme")},
        entry_points={"acme": "acme_one"},
    )
    distribution(
        "pulseplan-acme-two",
        {"acme_two": PROVIDER_MODULE.format(name="acme")},
        entry_points={"acme": "acme_two"},
    )
    with pytest.raises(PluginError, match="two plugins claim provider 'acme'"):
        PluginHost(settings)


def test_entry_point_name_must_match_the_provider(
    distribution: Callable[..., str], settings: Settings
) -> None:
    distribution(
        "pulseplan-liar",
        {"liar_ep": PROVIDER_MODULE.format(name="google2")},
        entry_points={"liar": "liar_ep"},
    )
    with pytest.raises(PluginError, match="entry-point name must be the provider name"):
        PluginHost(settings)


def test_unknown_hook_is_rejected_by_check_pending(settings: Settings) -> None:
    class Typo:
        @hookimpl
        def describe_provider(self) -> Any:
            return DeclarativeProvider("typo").describe_provider()

        @hookimpl
        def refesh(self) -> None:  # misspelt on purpose
            return None

    with pytest.raises(PluginError, match="typo"):
        PluginHost(settings, load_entrypoints=False, extra_plugins=[("typo", Typo())])


async def test_lifecycle_call_reaches_only_the_named_provider(
    make_settings: Callable[..., Settings],
) -> None:
    a, b = AsyncProvider("alpha"), AsyncProvider("beta")
    host = await bound(
        PluginHost(
            make_settings(**provider_env("alpha", "beta")),
            load_entrypoints=False,
            extra_plugins=[("alpha", a), ("beta", b)],
        )
    )
    tokens = await host.refresh("alpha", refresh_token="rt", scopes=(), metadata={})
    assert tokens.access_token == "alpha-access"  # awaited, not a coroutine
    assert a.calls == ["refresh:alpha"]
    assert b.calls == []
    await host.refresh("beta", refresh_token="rt", scopes=(), metadata={})
    assert a.calls == ["refresh:alpha"]
    assert b.calls == ["refresh:beta"]


async def test_sync_implementations_work_too(make_settings: Callable[..., Settings]) -> None:
    plugin = SyncProvider("gamma")
    host = await bound(
        PluginHost(
            make_settings(**provider_env("gamma")),
            load_entrypoints=False,
            extra_plugins=[("gamma", plugin)],
        )
    )
    tokens = await host.refresh("gamma", refresh_token="rt", scopes=(), metadata={})
    assert tokens.access_token == "gamma-access"


async def test_hook_not_implemented_falls_back_to_standard(
    make_settings: Callable[..., Settings],
) -> None:
    host = await bound(
        PluginHost(
            make_settings(**provider_env("delta")),
            load_entrypoints=False,
            extra_plugins=[("delta", DeclarativeProvider("delta", pkce=True))],
        )
    )
    url = await host.authorization_url(
        "delta",
        state="st",
        redirect_uri="https://app.invalid/cb",
        scopes=("read", "write"),
        code_verifier="v" * 43,
        needs_refresh_token=True,
    )
    assert url.startswith("https://idp.invalid/delta/authorize?")
    assert "client_id=delta-client" in url
    assert "code_challenge_method=S256" in url
    assert "scope=read+write" in url


async def test_cross_cutting_wrapper_sees_every_provider(
    make_settings: Callable[..., Settings],
) -> None:
    seen: list[tuple[str, str]] = []

    class Audit:
        @hookimpl(wrapper=True)
        def refresh(self, provider: ProviderContext) -> Any:
            result = yield

            async def observed() -> Any:
                value = await maybe_await(result)
                seen.append((provider.name, value.access_token))
                return value

            return observed()

    host = await bound(
        PluginHost(
            make_settings(**provider_env("alpha", "beta")),
            load_entrypoints=False,
            extra_plugins=[
                ("alpha", AsyncProvider("alpha")),
                ("beta", SyncProvider("beta")),
                ("audit", Audit()),
            ],
        )
    )
    await host.refresh("alpha", refresh_token="rt", scopes=(), metadata={})
    await host.refresh("beta", refresh_token="rt", scopes=(), metadata={})
    assert seen == [("alpha", "alpha-access"), ("beta", "beta-access")]


def test_cross_cutting_plugin_may_not_answer_lifecycle_hooks(settings: Settings) -> None:
    class Greedy:
        @hookimpl
        async def refresh(self, provider: ProviderContext) -> None:
            return None

    with pytest.raises(PluginError, match="cross-cutting plugins may only wrap"):
        PluginHost(settings, load_entrypoints=False, extra_plugins=[("greedy", Greedy())])


async def test_provider_errors_pass_through_with_the_provider_name(
    make_settings: Callable[..., Settings],
) -> None:
    class Dead(DeclarativeProvider):
        @hookimpl
        async def refresh(self) -> None:
            raise ReconnectRequired("grant revoked", error="invalid_grant")

    host = await bound(
        PluginHost(
            make_settings(**provider_env("dead")),
            load_entrypoints=False,
            extra_plugins=[("dead", Dead("dead"))],
        )
    )
    with pytest.raises(ReconnectRequired) as excinfo:
        await host.refresh("dead", refresh_token="rt", scopes=(), metadata={})
    assert excinfo.value.provider == "dead"


async def test_plugin_bugs_are_transient_not_fatal(make_settings: Callable[..., Settings]) -> None:
    class Buggy(DeclarativeProvider):
        @hookimpl
        async def refresh(self) -> None:
            raise KeyError("oops")

    class Empty(DeclarativeProvider):
        @hookimpl
        async def refresh(self) -> None:
            return None

    host = await bound(
        PluginHost(
            make_settings(**provider_env("buggy", "empty")),
            load_entrypoints=False,
            extra_plugins=[("buggy", Buggy("buggy")), ("empty", Empty("empty"))],
        )
    )
    for name in ("buggy", "empty"):
        with pytest.raises(ProviderUnavailable) as excinfo:
            await host.refresh(name, refresh_token="rt", scopes=(), metadata={})
        assert excinfo.value.error == "plugin_error"


async def test_connection_event_failures_are_isolated(settings: Settings) -> None:
    received: list[str] = []

    class Broken:
        @hookimpl
        def connection_event(self, event: ConnectionEvent) -> None:
            raise RuntimeError("observer down")

    class Listener:
        @hookimpl
        async def connection_event(self, event: ConnectionEvent) -> None:
            received.append(event.name)

    host = PluginHost(
        settings,
        load_entrypoints=False,
        extra_plugins=[("broken", Broken()), ("listener", Listener())],
    )
    from datetime import UTC
    from datetime import datetime

    await host.emit(ConnectionEvent("connected", "u", "p", datetime.now(UTC)))
    assert received == ["connected"]


def test_allow_and_deny_lists_apply_to_installed_plugins(
    make_settings: Callable[..., Settings],
) -> None:
    host = PluginHost(make_settings(PULSEPLAN_DISABLED_PROVIDERS="notion"))
    assert host.info("notion").enabled is False
    assert host.info("notion").version  # listed from metadata even though not imported
    assert "notion" not in host.providers
    only = PluginHost(make_settings(PULSEPLAN_PROVIDERS="google"))
    assert only.providers == ["google"]
    assert {p.name for p in only.plugins() if not p.enabled} == {"canvas", "microsoft", "notion"}


def test_unknown_provider_in_lists_is_a_clear_error(make_settings: Callable[..., Settings]) -> None:
    with pytest.raises(ConfigurationError) as excinfo:
        PluginHost(make_settings(PULSEPLAN_PROVIDERS="gogle"))
    assert "PULSEPLAN_PROVIDERS names 'gogle'" in excinfo.value.problems[0]
