"""``pulseplan serve``: run the API with Hypercorn."""

from __future__ import annotations

import logging
import sys

import click
from hypercorn.config import Config
from hypercorn.run import run

from pulseplan.app import create_app
from pulseplan.cli import reports_errors
from pulseplan.observability import metrics
from pulseplan.settings import Settings


@click.command()
@click.option("--host", default="127.0.0.1", show_default=True, envvar="PULSEPLAN_HOST")
@click.option("--port", default=8000, show_default=True, type=int, envvar="PULSEPLAN_PORT")
@click.option(
    "--workers",
    default=1,
    show_default=True,
    type=click.IntRange(1, 64),
    envvar="PULSEPLAN_WORKERS",
    help="Worker processes; more than one needs REDIS_URL for shared state.",
)
@click.option("--graceful-timeout", default=20.0, show_default=True, type=float)
@reports_errors
def serve(host: str, port: int, workers: int, graceful_timeout: float) -> None:
    """Serve the API (embedded SQLite and in-process layers unless configured otherwise)."""
    settings = Settings.load()
    metrics.reset_multiprocess_dir()  # observability: a previous run's samples must not count
    # Build once here so configuration and plugin errors stop us before we bind a socket.
    create_app(settings)
    if workers > 1 and settings.redis_url is None:
        raise click.UsageError(
            f"--workers {workers} needs REDIS_URL: workers must share OAuth flow state, locks "
            "and caches. Run one worker, or configure Redis."
        )
    config = Config()
    config.bind = [f"[{host}]:{port}" if ":" in host else f"{host}:{port}"]
    config.application_path = "pulseplan.asgi:app"
    # workers=0 runs in this process; more spawn children that each import the app.
    config.workers = 0 if workers == 1 else workers
    config.graceful_timeout = graceful_timeout
    # Let oversized request heads reach the app, whose limits (MAX_QUERY_STRING_BYTES,
    # MAX_HEADER_BYTES) answer 414/431 as JSON; Hypercorn's own 431 has no body at all.
    config.h11_max_incomplete_size = 128 * 1024
    config.accesslog = None  # request logging is PulsePlan's own, with redaction
    # observability: a logger object (not "-") makes Hypercorn keep its hands off the handlers, so
    # its lines reach PulsePlan's sink through the root logger (JSON, redacted).
    config.errorlog = logging.getLogger("hypercorn.error")
    click.echo(f"PulsePlan serving on http://{host}:{port} ({workers} worker(s))", err=True)
    sys.exit(run(config))
