"""SQL migrations, one directory per backend, applied in file-name order.

``$connections_table`` in a file is replaced by the configured table name (validated as an
identifier by the settings), so deployments that kept the seed's table can point at it.
"""

from __future__ import annotations

from importlib import resources
from string import Template


def load(backend: str, connections_table: str) -> list[tuple[str, str]]:
    """``(name, sql)`` for every migration of ``backend``, in order."""
    folder = resources.files(__package__).joinpath(backend)
    files = sorted(
        (entry for entry in folder.iterdir() if entry.name.endswith(".sql")),
        key=lambda entry: entry.name,
    )
    return [
        (
            entry.name.removesuffix(".sql"),
            Template(entry.read_text()).substitute(connections_table=connections_table),
        )
        for entry in files
    ]
