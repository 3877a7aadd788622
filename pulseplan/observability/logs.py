"""Logging setup with loguru: one sink, JSON lines in production, a readable line in development.

Every record passes one patcher before any sink sees it: it adds the current request's fields
(:mod:`pulseplan.observability.context`) and redacts the message and every extra
(:mod:`pulseplan.observability.redact`). Tracebacks are formatted here with the standard
library (no local variables) and redacted too. Standard library logging (Hypercorn, httpx,
asyncio, Quart) is routed into the same pipeline by :mod:`pulseplan.observability.stdlib`.

``diagnose`` stays off: loguru's diagnose mode prints the values of local variables in
tracebacks, and a token vault's locals are tokens.

Settings: ``LOG_LEVEL`` (default ``INFO``), ``LOG_FORMAT`` (``json`` in production, ``text``
otherwise), ``LOG_STREAM`` (``stdout`` in production, ``stderr`` otherwise, so CLI output on
stdout stays clean), ``LOG_USER_IDS`` (``hash`` in production, ``plain`` otherwise).
"""

from __future__ import annotations

import contextlib
import json
import sys
import traceback
from dataclasses import dataclass
from dataclasses import field
from datetime import UTC
from types import TracebackType
from typing import TYPE_CHECKING
from typing import Any
from typing import Literal
from typing import TextIO

from loguru import logger

from pulseplan.observability import context
from pulseplan.observability import stdlib
from pulseplan.observability.context import UserIds
from pulseplan.observability.redact import redact
from pulseplan.observability.redact import redact_text
from pulseplan.settings import Settings

if TYPE_CHECKING:
    from loguru import Message
    from loguru import Record

LogFormat = Literal["json", "text"]
Stream = Literal["stdout", "stderr"]
SERVICE = "pulseplan"
#: Fields a JSON line always has; extras with the same name do not replace them.
RESERVED = ("timestamp", "level", "message", "logger", "service", "pid")


@dataclass(frozen=True)
class LogConfig:
    """The effective logging configuration derived from :class:`Settings`."""

    level: str = "INFO"
    format: LogFormat = "text"
    stream: Stream = "stderr"
    user_ids: UserIds = "plain"
    secret: str | None = field(default=None, repr=False)

    @classmethod
    def from_settings(cls, settings: Settings) -> LogConfig:
        prod = settings.production
        return cls(
            level=settings.log_level.upper(),
            format=settings.log_format or ("json" if prod else "text"),
            stream=settings.log_stream or ("stdout" if prod else "stderr"),
            user_ids=settings.log_user_ids or ("hash" if prod else "plain"),
            secret=settings.secret("secret_key"),
        )


_handler_id: int | None = None
_active: LogConfig | None = None
_stream: TextIO | None = None


def configure_logging(
    settings: Settings, *, force: bool = False, stream: TextIO | None = None
) -> None:
    """Install PulsePlan's sink, patcher and standard-library bridge.

    Idempotent: calling it again with the same configuration and stream does nothing; a
    different one (or ``force``) replaces PulsePlan's own sink. Sinks added by others (Sentry's
    loguru integration, a test's capture sink) are left alone.

    :param stream: write here instead of ``LOG_STREAM`` (tests).
    """
    global _handler_id, _active, _stream
    config = LogConfig.from_settings(settings)
    if _handler_id is not None and (config, stream) == (_active, _stream) and not force:
        return
    if _handler_id is None:
        _remove_default_sink()
    else:
        logger.remove(_handler_id)
    context.set_user_policy(config.user_ids, config.secret)
    logger.configure(patcher=patch_record)
    _handler_id = logger.add(
        Sink(config, stream),
        level=config.level,
        format=_format,
        diagnose=False,
        backtrace=False,
        colorize=False,
        catch=True,
    )
    _active, _stream = config, stream
    stdlib.install(logger.level(config.level).no)


def _remove_default_sink() -> None:
    # loguru's own stderr sink (id 0) would print every line a second time, unredacted.
    with contextlib.suppress(ValueError):
        logger.remove(0)


def _format(record: Record) -> str:
    # The sink renders the line itself; a callable format keeps loguru from formatting the
    # exception (it would do so unredacted, for nothing).
    return "{message}"


def patch_record(record: Record) -> None:
    """Add the request's fields and redact message and extras (runs before every sink)."""
    extra = record["extra"]
    request = context.current()
    if request is not None:
        for key, value in request.fields().items():
            extra.setdefault(key, value)
    record["message"] = redact_text(record["message"])
    cleaned = redact(dict(extra))
    extra.clear()
    extra.update(cleaned)


# --------------------------------------------------------------------------- rendering


def exception_text(
    exc_type: type[BaseException] | None,
    value: BaseException | None,
    tb: TracebackType | None,
) -> str:
    """A redacted traceback: standard formatting (no locals), secret-shaped runs masked."""
    try:
        text = "".join(traceback.format_exception(exc_type, value, tb))
    except Exception:  # a broken __str__ must not lose the log line
        text = f"{getattr(exc_type, '__name__', 'Exception')}: <unprintable>\n"
    return redact_text(text, aggressive=True)


def _exception(record: Record) -> dict[str, str] | None:
    exc = record["exception"]
    if exc is None or exc.type is None:
        return None
    try:
        message = str(exc.value)
    except Exception:
        message = "<unprintable>"
    return {
        "type": exc.type.__name__,
        "message": redact_text(message, aggressive=True),
        "traceback": exception_text(exc.type, exc.value, exc.traceback),
    }


def render_json(record: Record) -> str:
    """One JSON object (no newline inside) for ``record``."""
    extra = dict(record["extra"])
    line: dict[str, Any] = {
        "timestamp": record["time"].astimezone(UTC).isoformat(timespec="milliseconds")[:-6] + "Z",
        "level": record["level"].name,
        "message": record["message"],
        "logger": extra.pop("logger", None) or record["name"],
        "service": SERVICE,
        "pid": record["process"].id,
    }
    for key, value in extra.items():
        if key not in RESERVED:
            line[key] = value
    exception = _exception(record)
    if exception is not None:
        line["exception"] = exception
    return json.dumps(line, default=str, separators=(",", ":"))


def render_text(record: Record) -> str:
    """``time | LEVEL | where | message | key=value ...`` and the traceback, if any."""
    extra = dict(record["extra"])
    where = extra.pop("logger", None) or f"{record['name']}:{record['function']}:{record['line']}"
    stamp = record["time"].strftime("%Y-%m-%d %H:%M:%S.%f")[:-3]
    text = f"{stamp} | {record['level'].name:<8} | {where} | {record['message']}"
    if extra:
        text += " | " + " ".join(f"{k}={v}" for k, v in extra.items())
    exception = _exception(record)
    if exception is not None:
        text += "\n" + exception["traceback"].rstrip("\n")
    return text


class Sink:
    """Writes rendered records to ``stream`` (default: ``sys.stdout``/``sys.stderr`` looked up
    at write time, so redirection, pytest capture and worker processes all work)."""

    def __init__(self, config: LogConfig, stream: TextIO | None = None):
        self.config = config
        self.stream = stream
        self._render = render_json if config.format == "json" else render_text

    def __call__(self, message: Message) -> None:
        stream = self.stream or getattr(sys, self.config.stream)
        stream.write(self._render(message.record) + "\n")
        stream.flush()


def active_config() -> LogConfig | None:
    """The configuration of the installed sink, or ``None`` before :func:`configure_logging`."""
    return _active
