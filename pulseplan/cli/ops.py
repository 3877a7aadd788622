"""``pulseplan migrate`` and ``pulseplan refresh``."""

from __future__ import annotations

import asyncio

import click

from pulseplan.cli import reports_errors
from pulseplan.cli.context import opened_runtime


@click.command()
@reports_errors
def migrate() -> None:
    """Apply pending database migrations (idempotent)."""

    async def run() -> list[str]:
        async with opened_runtime(migrate=False) as runtime:
            return await runtime.storage.migrate()

    applied = asyncio.run(run())
    for name in applied:
        click.echo(f"applied {name}")
    click.echo("database is up to date" if not applied else f"{len(applied)} migration(s) applied")


@click.command()
@reports_errors
def refresh() -> None:
    """Run one background-refresh sweep now and report what it did."""

    async def run() -> tuple[int, int, int]:
        from pulseplan.refresher import BackgroundRefresher

        async with opened_runtime() as runtime:
            sweeper = BackgroundRefresher(
                storage=runtime.storage,
                coordinator=runtime.broker.refresher,
                settings=runtime.settings,
            )
            result = await sweeper.sweep()
            return result.claimed, result.refreshed, result.failed

    claimed, refreshed, failed = asyncio.run(run())
    click.echo(f"due: {claimed}  refreshed: {refreshed}  failed: {failed}")
    if failed:
        raise SystemExit(1)
