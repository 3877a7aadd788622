"""Standard library logging routed into loguru, so Hypercorn, httpx, asyncio and Quart lines get
the same JSON shape, request fields and redaction as PulsePlan's own.

Hypercorn installs its own stream handler on ``hypercorn.error`` unless it is given a logger
object; ``pulseplan serve`` passes ``logging.getLogger("hypercorn.error")`` for that reason.
"""

from __future__ import annotations

import logging
import sys
from types import FrameType
from typing import TYPE_CHECKING

from loguru import logger

if TYPE_CHECKING:
    from loguru import Record

#: Attributes every ``LogRecord`` has; anything else came from ``extra=`` and is kept.
_STANDARD = frozenset(logging.makeLogRecord({}).__dict__) | {"message", "asctime", "taskName"}
#: Loggers whose own handlers would print a second, unredacted copy of every line.
_OWN_HANDLERS = ("hypercorn.error", "hypercorn.access")
#: Lowest level for libraries whose debug output carries secrets or personal data: hpack/h2
#: print decoded headers (Authorization), aiosqlite every SQL statement with its parameters
#: (user ids, ciphertext), httpcore at TRACE the provider's response headers.
FLOORS = {
    "hpack": logging.WARNING,
    "h2": logging.WARNING,
    "aiosqlite": logging.INFO,
    "httpcore": logging.DEBUG,
}


class InterceptHandler(logging.Handler):
    """A ``logging`` handler that re-emits each record through loguru."""

    def emit(self, record: logging.LogRecord) -> None:
        try:
            level: str | int = logger.level(record.levelname).name
        except ValueError:
            level = record.levelno
        try:
            message = record.getMessage()
        except Exception:  # bad %-args in a library call: keep the template, drop the args
            message = str(record.msg)
        extras = {k: v for k, v in record.__dict__.items() if k not in _STANDARD}
        name = extras["logger"] = record.name

        def rename(loguru_record: Record) -> None:
            # The stdlib logger's name, not the calling module's: loguru sinks such as
            # Sentry's then see "httpx" or "sentry_sdk.errors" and can filter on it.
            loguru_record["name"] = name

        logger.patch(rename).opt(depth=_depth(), exception=record.exc_info or None).bind(
            **extras
        ).log(level, message)


def _depth() -> int:
    # Point loguru at the code that called ``logging``, not at the logging module itself.
    frame: FrameType | None = sys._getframe(2)  # 0: here, 1: emit, 2: logging internals
    depth = 1  # relative to emit, which calls loguru
    while frame is not None and frame.f_code.co_filename == logging.__file__:
        frame = frame.f_back
        depth += 1
    return depth


def install(level: int) -> None:
    """Route the root logger (and so every propagating logger) into loguru at ``level``."""
    root = logging.getLogger()
    if not any(isinstance(h, InterceptHandler) for h in root.handlers):
        root.addHandler(InterceptHandler())
    root.setLevel(level)
    for name, floor in FLOORS.items():
        logging.getLogger(name).setLevel(max(level, floor))
    for name in _OWN_HANDLERS:
        named = logging.getLogger(name)
        named.handlers = [h for h in named.handlers if type(h) is not logging.StreamHandler]
        named.propagate = True
