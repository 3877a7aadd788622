"""``pulseplan keys``: token-encryption key management (``docs/keys.md``)."""

from __future__ import annotations

import click

from pulseplan.crypto import generate_key


@click.group()
def keys() -> None:
    """Manage the token-encryption key ring."""


@keys.command()
def generate() -> None:
    """Print a new master key (32 random bytes, base64url) on stdout."""
    click.echo(generate_key())
    click.echo(
        "hint: set it as TOKEN_ENCRYPTION_KEY, or add it to TOKEN_ENCRYPTION_KEYS as v<N>:<key> "
        "under an unused version to rotate (see docs/keys.md). Keep it secret.",
        err=True,
    )
