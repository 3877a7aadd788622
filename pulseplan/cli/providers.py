"""``pulseplan providers``: installed provider plugins and their state."""

from __future__ import annotations

import click

from pulseplan.cli import reports_errors
from pulseplan.plugins import PluginHost
from pulseplan.settings import Settings


def table(rows: list[list[str]]) -> str:
    """Left-aligned columns separated by two spaces."""
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    return "\n".join(
        "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip()
        for row in rows
    )


@click.command()
@reports_errors
def providers() -> None:
    """List provider plugins: package, version, enabled, configured."""
    host = PluginHost(Settings.load())
    rows = [["NAME", "PACKAGE", "VERSION", "ENABLED", "CONFIGURED"]]
    for info in host.plugins():
        rows.append(
            [
                info.name,
                info.package or "-",
                info.version or "-",
                "yes" if info.enabled else "no",
                ("yes" if info.configured else "no") if info.enabled else "-",
            ]
        )
    click.echo(table(rows))
