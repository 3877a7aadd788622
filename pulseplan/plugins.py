"""The plugin manager: discovers provider plugins through entry points, applies the operator's
allow/deny lists, and dispatches lifecycle hooks to exactly one provider.

Why not ``firstresult`` over every plugin? pluggy does not await: with ``async def``
implementations the first plugin's *coroutine* is the result even when it would resolve to
``None`` (pluggy#320). So each provider gets its own caller built with
``PluginManager.subset_hook_caller``: other providers' plugins removed, the host's standard
implementation (registered ``trylast``) and cross-cutting wrappers kept. The result, a value or
an awaitable, is awaited here.
"""

from __future__ import annotations

import inspect
from collections.abc import Awaitable
from collections.abc import Iterable
from dataclasses import dataclass
from importlib.metadata import EntryPoint
from importlib.metadata import entry_points
from typing import Any
from typing import TypeVar

import httpx
import pluggy
from loguru import logger

from pulseplan import hookspecs
from pulseplan.errors import ConfigurationError
from pulseplan.errors import PluginError
from pulseplan.errors import ProviderError
from pulseplan.errors import ProviderUnavailable
from pulseplan.provider import ConnectionEvent
from pulseplan.provider import ProviderContext
from pulseplan.provider import ProviderSettings
from pulseplan.provider import ProviderSpec
from pulseplan.provider import Revocation
from pulseplan.provider import TokenSet
from pulseplan.provider import Validation
from pulseplan.provider_config import resolve
from pulseplan.settings import Settings
from pulseplan.standard import StandardOAuth2

T = TypeVar("T")

#: Host modules registered as plugins before any entry point.
DEFAULT_PLUGINS = ("pulseplan.default_plugins.standard",)


async def maybe_await(value: T | Awaitable[T]) -> T:
    """Await ``value`` if it is awaitable; lets hooks be sync or async."""
    if inspect.isawaitable(value):
        return await value
    return value


@dataclass(frozen=True)
class PluginInfo:
    """What ``pulseplan providers`` and ``/api/v1/providers`` show about one provider."""

    name: str
    package: str | None
    version: str | None
    enabled: bool
    spec: ProviderSpec | None = None
    settings: ProviderSettings | None = None

    @property
    def configured(self) -> bool:
        return self.settings is not None and self.settings.configured


def _distribution(ep: EntryPoint) -> tuple[str | None, str | None]:
    dist = ep.dist
    return (dist.name, dist.version) if dist is not None else (None, None)


class PluginHost:
    """One plugin manager per app (no module global), with its providers resolved.

    :param settings: host settings (allow/deny lists, per-provider environment).
    :param load_entrypoints: discover installed plugins (tests may turn it off).
    :param extra_plugins: ``(name, plugin)`` pairs registered after the defaults, as if they
        had been installed; a provider plugin's name is its provider name.
    """

    def __init__(
        self,
        settings: Settings,
        *,
        load_entrypoints: bool = True,
        extra_plugins: Iterable[tuple[str, object]] = (),
    ) -> None:
        self.settings = settings
        self.pm = pluggy.PluginManager(hookspecs.PROJECT)
        self.pm.add_hookspecs(hookspecs)
        for module in DEFAULT_PLUGINS:
            self.pm.register(__import__(module, fromlist=["_"]), name=module)
        self._infos: dict[str, PluginInfo] = {}
        self._provider_plugins: dict[str, object] = {}
        candidates: list[tuple[str, object, str | None, str | None]] = []
        if load_entrypoints:
            candidates.extend(self._load_entrypoints())
        candidates.extend((name, plugin, None, None) for name, plugin in extra_plugins)
        for name, plugin, package, version in candidates:
            self._register(name, plugin, package, version)
        try:
            self.pm.check_pending()
        except pluggy.PluginValidationError as exc:
            name = self.pm.get_name(exc.plugin) or repr(exc.plugin)
            raise PluginError(f"plugin {name!r} breaks the plugin contract: {exc}") from None
        self._contexts: dict[str, ProviderContext] = {}
        self._callers: dict[tuple[str, str], Any] = {}

    # ------------------------------------------------------------------ discovery

    def _selected(self, name: str) -> bool:
        allow = self.settings.pulseplan_providers
        return (
            allow is None or name in allow
        ) and name not in self.settings.pulseplan_disabled_providers

    def _load_entrypoints(self) -> list[tuple[str, object, str | None, str | None]]:
        seen: dict[str, EntryPoint] = {}
        loaded = []
        for ep in entry_points(group=hookspecs.PROJECT):
            if ep.name in seen and seen[ep.name].value != ep.value:
                raise PluginError(
                    f"two plugins claim provider {ep.name!r}: {seen[ep.name].value} "
                    f"({_distribution(seen[ep.name])[0]}) and {ep.value} ({_distribution(ep)[0]})"
                )
            seen[ep.name] = ep
        self._check_lists(seen)
        for name, ep in sorted(seen.items()):
            package, version = _distribution(ep)
            if name in self.settings.pulseplan_disabled_providers:
                # Denied plugins are not even imported: a broken one must not block start-up.
                self._infos[name] = PluginInfo(name, package, version, enabled=False)
                continue
            # A plugin left out of PULSEPLAN_PROVIDERS is still imported: only then is it known
            # whether it is a provider (disabled in _register) or a cross-cutting plugin such
            # as an audit sink, which an allow-list of providers must not silently turn off.
            # So a broken one stops start-up like any other (fail closed: it may be the audit
            # sink); PULSEPLAN_DISABLED_PROVIDERS is how to skip it.
            try:
                plugin = ep.load()
            except Exception as exc:
                raise PluginError(
                    f"plugin {name!r} ({package or ep.value}) failed to import: "
                    f"{type(exc).__name__}: {exc} (PULSEPLAN_DISABLED_PROVIDERS={name} skips it)"
                ) from exc
            loaded.append((name, plugin, package, version))
        return loaded

    def _check_lists(self, installed: dict[str, EntryPoint]) -> None:
        problems = []
        for var, names in (
            ("PULSEPLAN_PROVIDERS", self.settings.pulseplan_providers or []),
            ("PULSEPLAN_DISABLED_PROVIDERS", self.settings.pulseplan_disabled_providers),
        ):
            for name in names:
                if name not in installed:
                    problems.append(
                        f"{var} names {name!r}, which no installed plugin provides "
                        f"(installed: {', '.join(sorted(installed)) or 'none'})"
                    )
        if problems:
            raise ConfigurationError(problems)

    def _register(
        self, name: str, plugin: object, package: str | None, version: str | None
    ) -> None:
        if self.pm.get_plugin(name) is not None or name in self._provider_plugins:
            raise PluginError(f"two plugins claim the name {name!r}")
        try:
            self.pm.register(plugin, name=name)
        except (ValueError, pluggy.PluginValidationError) as exc:
            raise PluginError(f"plugin {name!r} could not be registered: {exc}") from None
        describe = getattr(plugin, "describe_provider", None)
        if describe is None:
            self._check_cross_cutting(name)
            return
        try:
            spec = describe()
        except Exception as exc:
            raise PluginError(
                f"plugin {name!r} failed in describe_provider(): {type(exc).__name__}: {exc}"
            ) from exc
        if not isinstance(spec, ProviderSpec):
            raise PluginError(f"plugin {name!r}: describe_provider() must return a ProviderSpec")
        if spec.name != name:
            raise PluginError(
                f"plugin {name!r} describes provider {spec.name!r}; the entry-point name must be "
                "the provider name"
            )
        if not self._selected(name):
            self._infos[name] = PluginInfo(name, package, version, enabled=False, spec=spec)
            self.pm.unregister(plugin)
            return
        settings = resolve(spec, self.settings.environ, production=self.settings.production)
        self._provider_plugins[name] = plugin
        self._infos[name] = PluginInfo(name, package, version, True, spec, settings)

    def _check_cross_cutting(self, name: str) -> None:
        for hook in hookspecs.LIFECYCLE_HOOKS:
            for impl in getattr(self.pm.hook, hook).get_hookimpls():
                if impl.plugin_name == name and not (impl.wrapper or impl.hookwrapper):
                    raise PluginError(
                        f"plugin {name!r} implements {hook} but describes no provider; "
                        "cross-cutting plugins may only wrap lifecycle hooks (wrapper=True)"
                    )

    # ------------------------------------------------------------------ introspection

    def plugins(self) -> list[PluginInfo]:
        """Every discovered provider plugin, enabled or not, sorted by name."""
        return [self._infos[name] for name in sorted(self._infos)]

    @property
    def providers(self) -> list[str]:
        """Names of the enabled providers."""
        return sorted(self._provider_plugins)

    def info(self, provider: str) -> PluginInfo:
        return self._infos[provider]

    def spec(self, provider: str) -> ProviderSpec:
        spec = self._infos[provider].spec
        assert spec is not None
        return spec

    def problems(self) -> list[str]:
        """Configuration problems of every enabled provider, one line each."""
        return [p for name in self.providers for p in self._infos[name].settings.problems]  # type: ignore[union-attr]

    # ------------------------------------------------------------------ dispatch

    def bind_http(self, http: httpx.AsyncClient) -> None:
        """Create each provider's context around the app's shared HTTP client."""
        self._contexts = {}
        for name in self.providers:
            info = self._infos[name]
            assert info.spec is not None
            assert info.settings is not None
            self._contexts[name] = ProviderContext(
                spec=info.spec,
                settings=info.settings,
                http=http,
                standard=StandardOAuth2(info.spec, info.settings, http),
                production=self.settings.production,
            )

    def context(self, provider: str) -> ProviderContext:
        try:
            return self._contexts[provider]
        except KeyError:
            raise PluginError(f"provider {provider!r} is not enabled or not bound") from None

    def caller(self, provider: str, hook: str) -> Any:
        """The hook caller that reaches only ``provider``'s implementation (plus wrappers).

        Cached: pluggy re-reads the implementations on every call, so plugins registered later
        (cross-cutting wrappers in tests) are still seen.
        """
        key = (provider, hook)
        if key not in self._callers:
            others = [p for name, p in self._provider_plugins.items() if name != provider]
            self._callers[key] = self.pm.subset_hook_caller(hook, remove_plugins=others)
        return self._callers[key]

    async def call(self, provider: str, hook: str, **kwargs: Any) -> Any:
        """Call lifecycle ``hook`` for one provider and await its result.

        Provider errors get the provider name filled in. Anything else a plugin raises is a bug
        in the plugin: it is logged and reported as :class:`ProviderUnavailable`, so a broken
        plugin never marks a connection dead.
        """
        ctx = self.context(provider)
        try:
            result = await maybe_await(self.caller(provider, hook)(provider=ctx, **kwargs))
        except ProviderError as exc:
            exc.provider = exc.provider or provider
            raise
        except Exception as exc:
            logger.opt(exception=False).error(
                "plugin {} raised {} in {}", provider, type(exc).__name__, hook
            )
            raise ProviderUnavailable(
                f"the {provider} plugin failed in {hook}", provider=provider, error="plugin_error"
            ) from exc
        if result is None:
            raise ProviderUnavailable(
                f"the {provider} plugin returned nothing from {hook}",
                provider=provider,
                error="plugin_error",
            )
        return result

    async def authorization_url(self, provider: str, **kwargs: Any) -> str:
        url: str = await self.call(provider, "authorization_url", **kwargs)
        return url

    async def authorize(self, provider: str, **kwargs: Any) -> TokenSet:
        tokens: TokenSet = await self.call(provider, "authorize", **kwargs)
        return tokens

    async def refresh(self, provider: str, **kwargs: Any) -> TokenSet:
        tokens: TokenSet = await self.call(provider, "refresh", **kwargs)
        return tokens

    async def validate(self, provider: str, **kwargs: Any) -> Validation:
        result: Validation = await self.call(provider, "validate", **kwargs)
        return result

    async def revoke(self, provider: str, **kwargs: Any) -> Revocation:
        result: Revocation = await self.call(provider, "revoke", **kwargs)
        return result

    async def emit(self, event: ConnectionEvent) -> None:
        """Deliver ``event`` to every ``connection_event`` implementation, isolating failures."""
        for impl in self.pm.hook.connection_event.get_hookimpls():
            try:
                await maybe_await(impl.function(**{arg: event for arg in impl.argnames}))
            except Exception as exc:
                logger.error(
                    "connection_event handler {} failed: {}", impl.plugin_name, type(exc).__name__
                )
