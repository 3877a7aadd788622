"""What an import did, counted and listed for the operator. Never a token, never a user id in
the printed lines (row ids are enough to look a row up in the seed table)."""

from __future__ import annotations

from dataclasses import dataclass
from dataclasses import field


@dataclass(frozen=True)
class Merge:
    """Several seed rows for one (user, provider): which one PulsePlan keeps."""

    provider: str
    kept: str
    kept_service: str | None
    superseded: tuple[tuple[str, str | None], ...]  # (row id, service_type)

    def line(self) -> str:
        def row(row_id: str, service: str | None) -> str:
            return f"row {row_id}" + (f" ({service})" if service else "")

        others = ", ".join(row(r, s) for r, s in self.superseded)
        kept = row(self.kept, self.kept_service)
        return f"merged: {self.provider}: kept {kept}; superseded {others}"


@dataclass
class ImportReport:
    """Counts per outcome, plus the failed rows and the merges.

    Connection outcomes (one per user and provider): ``created``, ``updated`` (the seed row is
    newer than what an earlier import wrote), ``unchanged`` (already imported from this very
    row version), ``kept`` (PulsePlan already holds a connection it did not import from an
    older seed row: PulsePlan's wins). Row outcomes: ``merged`` (superseded by a newer row of the
    same user and provider), ``skipped`` (``--skip-provider``), ``failed``.
    """

    table: str
    dry_run: bool = False
    rows: int = 0
    connections: int = 0
    created: int = 0
    updated: int = 0
    unchanged: int = 0
    kept: int = 0
    merged: int = 0
    skipped: int = 0
    needs_reauth: int = 0
    plaintext: int = 0
    dropped_refresh: int = 0
    failed: list[tuple[str, str]] = field(default_factory=list)  # (row id, reason)
    merges: list[Merge] = field(default_factory=list)

    def fail(self, row_id: str, reason: str) -> None:
        self.failed.append((row_id, reason))

    @property
    def ok(self) -> bool:
        return not self.failed

    def summary(self) -> str:
        """One line of counts (``would`` wording is left to the caller's header)."""
        parts = [
            ("rows", self.rows),
            ("connections", self.connections),
            ("created", self.created),
            ("updated", self.updated),
            ("unchanged", self.unchanged),
            ("kept", self.kept),
            ("merged", self.merged),
            ("needs_reauth", self.needs_reauth),
            ("plaintext", self.plaintext),
            ("skipped", self.skipped),
            ("failed", len(self.failed)),
        ]
        return "  ".join(f"{name}: {count}" for name, count in parts)

    def lines(self) -> list[str]:
        """Everything for stdout: header, merges, notes, counts."""
        header = f"seed import from {self.table}"
        if self.dry_run:
            header += " (dry run: nothing imported; counts say what would happen)"
        out = [header]
        out += [merge.line() for merge in self.merges]
        if self.dropped_refresh:
            out.append(
                f"note: {self.dropped_refresh} row(s) stored the access token as the refresh "
                "token too (Canvas personal tokens); imported without a refresh token"
            )
        out.append(self.summary())
        return out

    def failure_lines(self) -> list[str]:
        """One line per failed row, for stderr."""
        return [f"failed: {self.table} row {row_id}: {reason}" for row_id, reason in self.failed]
