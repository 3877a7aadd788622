"""Import the seed backend's token rows into PulsePlan (``pulseplan import-seed``).

Reads the Python backend's ``oauth_tokens`` or the Node.js backend's ``calendar_connections``
from PostgreSQL or a SQLite file, decrypts the seed formats through the key ring's read-only
seed entries, re-encrypts under the primary key and upserts one connection per (user,
provider) through the storage interface. Guide: ``docs/migrating.md``.

::

    async with open_source(dsn, table=None) as source:
        report = await import_seed(source, storage, cipher, enabled=["google", ...])
"""

from __future__ import annotations

from pulseplan.seedimport.importer import ImportOptions
from pulseplan.seedimport.importer import SeedImporter
from pulseplan.seedimport.importer import import_seed
from pulseplan.seedimport.report import ImportReport
from pulseplan.seedimport.source import SEED_TABLES
from pulseplan.seedimport.source import SeedSource
from pulseplan.seedimport.source import open_source

__all__ = [
    "SEED_TABLES",
    "ImportOptions",
    "ImportReport",
    "SeedImporter",
    "SeedSource",
    "import_seed",
    "open_source",
]
