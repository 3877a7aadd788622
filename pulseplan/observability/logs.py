"""Logging setup with loguru.

``diagnose`` is always off: loguru's diagnose mode prints the values of local variables in
tracebacks, and a token vault's locals are tokens.
"""

from __future__ import annotations

import sys

from loguru import logger

from pulseplan.settings import Settings

_configured = False


def configure_logging(settings: Settings, *, force: bool = False) -> None:
    """Install the process-wide sink once (loguru's logger is global by design)."""
    global _configured
    if _configured and not force:
        return
    logger.remove()
    level = settings.environ.get("LOG_LEVEL", "INFO").upper()
    logger.add(
        sys.stderr, level=level, diagnose=False, backtrace=False, serialize=settings.production
    )
    _configured = True
