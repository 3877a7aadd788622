"""Import a seed token table into PulsePlan's storage, one user at a time.

For each user: normalize the rows (:mod:`~pulseplan.seedimport.rows`), re-encrypt their tokens
(:mod:`~pulseplan.seedimport.convert`), keep one row per provider
(:mod:`~pulseplan.seedimport.merge`), and write it through the :class:`~pulseplan.storage.base.
Storage` interface (``upsert_connection``, then ``update_connection`` for rows the seed had
marked inactive). A row that cannot be read is reported and the import goes on.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from collections.abc import Callable
from collections.abc import Collection
from dataclasses import dataclass
from typing import Any

from pulseplan.crypto import TokenCipher
from pulseplan.seedimport import merge
from pulseplan.seedimport.convert import PROVIDER_ALIASES
from pulseplan.seedimport.convert import Converted
from pulseplan.seedimport.convert import convert
from pulseplan.seedimport.convert import seed_provider
from pulseplan.seedimport.report import ImportReport
from pulseplan.seedimport.report import Merge
from pulseplan.seedimport.rows import RowProblem
from pulseplan.seedimport.rows import SeedRow
from pulseplan.seedimport.rows import display_id
from pulseplan.seedimport.rows import normalize
from pulseplan.seedimport.source import SeedSource
from pulseplan.storage.base import Storage
from pulseplan.storage.models import Connection
from pulseplan.storage.models import NewConnection

INACTIVE_REASON = "inactive in the seed backend; reconnect the account"
STATUS_ATTEMPTS = 3
CANVAS_BASE_URL = "base_url"  # pulseplan_canvas.instance.BASE_URL_KEY


@dataclass(frozen=True)
class ImportOptions:
    """How to import. ``skip_providers`` holds seed or PulsePlan provider names."""

    dry_run: bool = False
    accept_plaintext: bool = False
    skip_providers: frozenset[str] = frozenset()


async def _user_groups(source: SeedSource) -> AsyncIterator[list[dict[str, Any]]]:
    """Consecutive rows of one user (the source orders by user id)."""
    group: list[dict[str, Any]] = []
    current: object = object()
    async for raw in source.rows():
        user = raw.get("user_id")
        key = str(user).strip().lower() if user is not None else None
        if group and (key is None or key != current):
            yield group
            group = []
        group.append(raw)
        current = key
    if group:
        yield group


class SeedImporter:
    """One import run. :meth:`run` never raises for a bad row; see :class:`ImportReport`."""

    def __init__(
        self,
        source: SeedSource,
        storage: Storage,
        cipher: TokenCipher,
        *,
        enabled: Collection[str],
        options: ImportOptions | None = None,
        read_existing: bool = True,
    ) -> None:
        """
        :param enabled: PulsePlan's enabled providers (rows for others are reported).
        :param read_existing: look up PulsePlan's current connections (a dry run against a
            database that is not migrated yet cannot, and plans every connection as new).
        """
        self.source = source
        self.storage = storage
        self.cipher = cipher
        self.enabled = frozenset(enabled)
        self.options = options or ImportOptions()
        self.read_existing = read_existing
        self.report = ImportReport(table=source.table, dry_run=self.options.dry_run)

    async def run(self, progress: Callable[[int], None] | None = None) -> ImportReport:
        async for raws in _user_groups(self.source):
            await self._user(raws)
            if progress is not None:
                progress(len(raws))
        return self.report

    # ------------------------------------------------------------------ one user

    def _skipped(self, row: SeedRow) -> bool:
        name = seed_provider(row) or ""
        skip = self.options.skip_providers
        return name in skip or PROVIDER_ALIASES.get(name, "") in skip

    def _convert_all(self, rows: list[SeedRow]) -> list[Converted]:
        """Runs in a worker thread: a cold seed-format decrypt is PBKDF2 or scrypt."""
        done = []
        for row in rows:
            try:
                done.append(
                    convert(
                        row,
                        self.cipher,
                        enabled=self.enabled,
                        accept_plaintext=self.options.accept_plaintext,
                    )
                )
            except RowProblem as problem:
                self.report.fail(row.id, str(problem))
        return done

    async def _user(self, raws: list[dict[str, Any]]) -> None:
        rows: list[SeedRow] = []
        for raw in raws:
            self.report.rows += 1
            try:
                row = normalize(raw, self.report.rows)
            except RowProblem as problem:
                self.report.fail(display_id(raw.get("id"), self.report.rows), str(problem))
                continue
            if self._skipped(row):
                self.report.skipped += 1
            else:
                rows.append(row)
        if not rows:
            return
        converted = await asyncio.to_thread(self._convert_all, rows)
        connections: dict[tuple[str, str], list[Converted]] = {}
        for item in converted:
            connections.setdefault((item.user_id, item.provider), []).append(item)
        for key in sorted(connections):
            await self._connection(connections[key])

    async def _connection(self, group: list[Converted]) -> None:
        report = self.report
        kept, superseded = merge.pick(group)
        report.connections += 1
        report.merged += len(superseded)
        if superseded:
            report.merges.append(
                Merge(
                    provider=kept.provider,
                    kept=kept.row.id,
                    kept_service=kept.row.service_type,
                    superseded=tuple((s.row.id, s.row.service_type) for s in superseded),
                )
            )
        existing = None
        if self.read_existing:
            existing = await self.storage.get_connection(kept.user_id, kept.provider)
        action = merge.decide(existing, report.table, kept)
        if action == "unchanged":
            report.unchanged += 1
            return
        if action == "kept":
            report.kept += 1
            return
        report.created += action == "create"
        report.updated += action == "update"
        report.needs_reauth += not kept.row.is_active
        report.plaintext += kept.from_plaintext
        report.dropped_refresh += kept.dropped_refresh
        if not self.options.dry_run:
            await self._write(kept, superseded, existing)

    async def _write(
        self, kept: Converted, superseded: list[Converted], existing: Connection | None
    ) -> None:
        metadata: dict[str, Any] = dict(existing.metadata) if existing else {}
        metadata[merge.MARKER] = merge.marker(self.report.table, kept, superseded)
        if kept.provider == "canvas" and kept.row.provider_url:
            # The instance the token belongs to: the Canvas plugin refuses to send it anywhere
            # else. A row for another instance than CANVAS_BASE_URL is served only if the
            # operator lists that instance in CANVAS_ALLOWED_BASE_URLS; otherwise it stays unused.
            metadata[CANVAS_BASE_URL] = kept.row.provider_url.strip()
        row, _ = await self.storage.upsert_connection(
            NewConnection(
                user_id=kept.user_id,
                provider=kept.provider,
                access_token=kept.access_token,
                refresh_token=kept.refresh_token,
                expires_at=kept.row.expires_at,
                scopes=kept.row.scopes,
                email=kept.row.email,
                metadata=metadata,
            )
        )
        if kept.row.is_active:
            return
        # The seed marked the grant dead (invalid_grant, or no refresh token): import it as
        # needing a reconnect rather than handing out a token the provider will refuse.
        current: Connection | None = row
        for _ in range(STATUS_ATTEMPTS):
            if current is None:
                return  # deleted meanwhile
            done = await self.storage.update_connection(
                current.id, current.version, status="needs_reauth", status_reason=INACTIVE_REASON
            )
            if done is not None:
                return
            current = await self.storage.get_connection_by_id(row.id)
        self.report.fail(
            kept.row.id, "imported, but kept changing before it could be marked inactive"
        )


async def import_seed(
    source: SeedSource,
    storage: Storage,
    cipher: TokenCipher,
    *,
    enabled: Collection[str],
    options: ImportOptions | None = None,
    read_existing: bool = True,
    progress: Callable[[int], None] | None = None,
) -> ImportReport:
    """Import every row of an opened ``source`` into ``storage``; see :class:`SeedImporter`."""
    importer = SeedImporter(
        source,
        storage,
        cipher,
        enabled=enabled,
        options=options,
        read_existing=read_existing,
    )
    return await importer.run(progress)
