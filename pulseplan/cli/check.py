"""``pulseplan check``: a configuration doctor. Exit status 1 when anything is wrong."""

from __future__ import annotations

import asyncio
import sys

import click

from pulseplan import wiring
from pulseplan.cli import reports_errors
from pulseplan.errors import ConfigurationError
from pulseplan.observability.logs import configure_logging
from pulseplan.plugins import PluginHost
from pulseplan.runtime import Runtime
from pulseplan.settings import Settings


async def _run_checks(runtime: Runtime) -> list[str]:
    try:
        await runtime.start()
    except Exception as exc:  # the doctor reports what is wrong; it does not crash on it
        return [f"error: start-up failed: {type(exc).__name__}: {exc}"]
    try:
        results = await runtime.run_checks(budget=5.0)
    finally:
        await runtime.stop()
    lines = []
    for name, (check, result, _) in sorted(results.items()):
        mark = "ok" if result.status == "ok" else result.status
        lines.append(f"{mark:8} {name}: {result.detail or 'reachable'}")
        if result.status == "fail" and check.critical:
            lines.append(f"error: {name} check failed")
    return lines


@click.command()
@reports_errors
def check() -> None:
    """Validate configuration, plugins and dependencies; print every problem."""
    # A doctor must not act: no background sweep (it would call providers and write rows).
    settings = Settings.load().model_copy(update={"background_refresh": False})
    problems = list(settings.problems())
    click.echo(f"environment: {settings.pulseplan_env}")
    if settings.generated_secrets or not settings.production:
        click.echo("warning: development mode; secrets may come from the generated dev file")
    try:
        host = PluginHost(settings)
    except ConfigurationError as exc:
        problems.extend(exc.problems)
        host = None
    if host is not None:
        for name in host.providers:
            info = host.info(name)
            state = "configured" if info.configured else "NOT configured"
            click.echo(f"provider {name}: {state}")
        problems.extend(host.problems())
    # Dependency checks run even when a provider is unconfigured: both are worth knowing.
    # The runtime alone (no app): create_app refuses unconfigured providers in production,
    # which would hide the storage and Redis findings behind the provider ones.
    if not settings.problems() and host is not None:
        configure_logging(settings)
        runtime = Runtime(settings=settings, plugins=host)
        wiring.build(runtime)
        for line in asyncio.run(_run_checks(runtime)):
            click.echo(line)
            if line.startswith("error:"):
                problems.append(line.removeprefix("error: "))
    for problem in problems:
        click.echo(f"error: {problem}", err=True)
    if problems:
        sys.exit(1)
    click.echo("configuration OK")
