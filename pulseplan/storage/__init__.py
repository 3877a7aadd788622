"""Storage backends behind one interface (:class:`~pulseplan.storage.base.Storage`)."""

from __future__ import annotations

from pulseplan.errors import ConfigurationError
from pulseplan.settings import Settings
from pulseplan.storage.base import Storage
from pulseplan.storage.base import StorageError


def make_storage(settings: Settings) -> Storage:
    """The backend ``DATABASE_URL`` names (not opened yet)."""
    url = settings.secret("database_url") or ""
    table = settings.connections_table
    if url.startswith("sqlite:///"):
        from pulseplan.storage.sqlite import SQLiteStorage
        from pulseplan.storage.sqlite import sqlite_path

        return SQLiteStorage(sqlite_path(url), connections_table=table)
    if url.startswith(("postgresql://", "postgres://")):
        try:
            from pulseplan.storage.postgres import PostgresStorage
        except ImportError as exc:  # pragma: no cover - shipped with the package
            raise ConfigurationError([f"PostgreSQL backend unavailable: {exc}"]) from None
        return PostgresStorage(url, connections_table=table, production=settings.production)
    if url.startswith("supabase:"):  # SUPABASE_URL over REST (docs/supabase-rest.md)
        from pulseplan.storage.supabase_rest import rest_storage_from_settings

        return rest_storage_from_settings(settings)
    scheme = url.split(":", 1)[0] or "(empty)"
    raise ConfigurationError(
        [
            f"DATABASE_URL scheme {scheme!r} is not supported "
            "(use sqlite:///, postgresql:// or supabase://)"
        ]
    )


__all__ = ["Storage", "StorageError", "make_storage"]
