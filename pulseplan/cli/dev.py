"""``pulseplan dev-token``: a user JWT for trying the API locally (development only)."""

from __future__ import annotations

import time
import uuid

import click

from pulseplan.cli import reports_errors
from pulseplan.settings import Settings
from pulseplan.testing.users import user_token


@click.command(name="dev-token")
@click.option("--user", "user_id", default=None, help="User UUID (default: a new one).")
@click.option("--hours", default=1.0, show_default=True, type=click.FloatRange(0.01, 24))
@reports_errors
def dev_token(user_id: str | None, hours: float) -> None:
    """Print a user access token signed with this server's SUPABASE_JWT_SECRET.

    For local tours and manual testing only: refused when PULSEPLAN_ENV=production, where user
    tokens come from Supabase.
    """
    settings = Settings.load()
    if settings.production:
        raise click.UsageError("dev-token is for development; production tokens come from Supabase")
    if user_id is not None:
        try:
            user_id = str(uuid.UUID(user_id))
        except ValueError:
            raise click.BadParameter("must be a UUID", param_hint="--user") from None
    token = user_token(settings, user_id, exp=int(time.time() + hours * 3600))
    click.echo(token)
