"""``pulseplan import-seed``: bring the seed backend's connections into PulsePlan
(``docs/migrating.md``)."""

from __future__ import annotations

import asyncio
import sys

import aiosqlite
import asyncpg
import click
from tqdm import tqdm

from pulseplan.cli import reports_errors
from pulseplan.cli.context import opened_runtime
from pulseplan.seedimport import ImportOptions
from pulseplan.seedimport import ImportReport
from pulseplan.seedimport import SeedImporter
from pulseplan.seedimport import open_source
from pulseplan.storage.base import StorageError

#: Where ``--from`` is read from when the option is not given (keeps a password off the
#: command line and out of shell history).
SOURCE_ENV = "SEED_DATABASE_URL"


def _run(
    location: str, table: str | None, schema: str, options: ImportOptions
) -> tuple[ImportReport, str | None]:
    """The report, and the error type that stopped the run part-way (``None`` when none)."""

    async def run() -> tuple[ImportReport, str | None]:
        # The source first: a wrong --from or --table fails before PulsePlan's database is
        # touched. A dry run does not migrate PulsePlan's schema either.
        async with (
            open_source(location, table=table, schema=schema) as source,
            opened_runtime(migrate=False if options.dry_run else None) as runtime,
        ):
            read_existing = not (options.dry_run and await runtime.storage.pending_migrations())
            importer = SeedImporter(
                source,
                runtime.storage,
                runtime.cipher,
                enabled=runtime.plugins.providers,
                options=options,
                read_existing=read_existing,
            )
            total = await source.count()
            with tqdm(
                total=total, unit="row", desc="importing", file=sys.stderr, disable=None
            ) as bar:
                try:
                    await importer.run(progress=bar.update)
                except (asyncpg.PostgresError, aiosqlite.Error, OSError, StorageError) as exc:
                    # Messages of these may quote connection details; the type suffices.
                    return importer.report, type(exc).__name__
            return importer.report, None

    return asyncio.run(run())


@click.command(name="import-seed")
@click.option(
    "--from",
    "location",
    envvar=SOURCE_ENV,
    required=True,
    metavar="DSN|PATH",
    help=f"The seed database: postgresql://... or a SQLite file (default: ${SOURCE_ENV}).",
)
@click.option(
    "--table",
    default=None,
    metavar="NAME",
    help="oauth_tokens (Python seed) or calendar_connections (Node.js seed); detected if omitted.",
)
@click.option(
    "--schema", default="public", show_default=True, help="PostgreSQL schema of the table."
)
@click.option("--dry-run", is_flag=True, help="Read and decrypt everything, write nothing.")
@click.option(
    "--accept-plaintext",
    is_flag=True,
    help="Import tokens the seed stored unencrypted (refused by default).",
)
@click.option(
    "--skip-provider",
    "skip",
    multiple=True,
    metavar="NAME",
    help="Leave this provider's rows out without failing (repeatable), e.g. apple.",
)
@reports_errors
def import_seed_command(
    location: str,
    table: str | None,
    schema: str,
    dry_run: bool,
    accept_plaintext: bool,
    skip: tuple[str, ...],
) -> None:
    """Import the seed backend's OAuth connections, re-encrypted under the primary key.

    Needs the seed's key settings (TOKEN_ENCRYPTION_SEED_KEY / _SEED_ENCODING, or
    TOKEN_ENCRYPTION_NODE_KEY). Rows that cannot be read are listed and the rest imported;
    exit status 1 when any row failed. Safe to run again: already imported rows are unchanged.
    """
    options = ImportOptions(
        dry_run=dry_run,
        accept_plaintext=accept_plaintext,
        skip_providers=frozenset(name.strip().lower() for name in skip),
    )
    report, aborted = _run(location, table, schema, options)
    for line in report.lines():
        click.echo(line)
    for line in report.failure_lines():
        click.echo(line, err=True)
    if aborted is not None:
        click.echo(
            f"error: the import stopped part-way ({aborted}); the counts cover what was done "
            "before, and running it again continues safely",
            err=True,
        )
    if aborted is not None or not report.ok:
        raise SystemExit(1)
