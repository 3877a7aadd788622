"""``pulseplan keys rotate`` and ``keys import-legacy``: re-encrypt stored tokens."""

from __future__ import annotations

import asyncio
import sys

import click
from tqdm import tqdm

from pulseplan.cli import reports_errors
from pulseplan.cli.context import opened_runtime
from pulseplan.rewrap import RewrapReport
from pulseplan.rewrap import rewrap_all


def _run(batch_size: int, legacy_only: bool) -> RewrapReport:
    async def run() -> RewrapReport:
        async with opened_runtime() as runtime:
            total = sum((await runtime.storage.count_connections_by_status()).values())
            stderr = sys.stderr
            with tqdm(total=total, unit="conn", desc="rewrapping", file=stderr) as bar:
                return await rewrap_all(
                    runtime.storage,
                    runtime.cipher,
                    batch_size=batch_size,
                    legacy_only=legacy_only,
                    progress=bar.update,
                )

    report = asyncio.run(run())
    click.echo(
        f"scanned: {report.scanned}  rewrapped: {report.rewrapped}  "
        f"unchanged: {report.unchanged}  failed: {len(report.failed)}"
    )
    for connection_id, reason in report.failed:
        click.echo(f"failed: connection {connection_id}: {reason}", err=True)
    return report


@click.command()
@click.option("--batch-size", default=200, show_default=True, type=click.IntRange(1, 5000))
@reports_errors
def rotate(batch_size: int) -> None:
    """Re-encrypt every token not under the primary key (seed formats included).

    Safe to interrupt and run again; the service keeps serving meanwhile.
    """
    if _run(batch_size, legacy_only=False).failed:
        raise SystemExit(1)


@click.command(name="import-legacy")
@click.option("--batch-size", default=200, show_default=True, type=click.IntRange(1, 5000))
@reports_errors
def import_legacy(batch_size: int) -> None:
    """Re-encrypt only rows still in the seed backend's formats."""
    if _run(batch_size, legacy_only=True).failed:
        raise SystemExit(1)
