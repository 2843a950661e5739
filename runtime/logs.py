"""Structured logs: one JSON object a line (or readable lines on a terminal)."""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Iterable
from urllib.parse import unquote, urlsplit

import structlog
from structlog.typing import EventDict, WrappedLogger

_secrets: set[str] = set()
MASK = "***"


def add_secrets(values: Iterable[str | None]) -> None:
    """Values that must never appear in a log line (JWT secrets, the Agora
    certificate, the database password): masked in every event from now on."""
    for v in values:
        if v and len(v) >= 6:
            _secrets.add(v)


def uri_password(uri: str | None) -> str | None:
    """The password inside a `mongodb://user:password@host` URI, if any."""
    if not uri:
        return None
    try:
        password = urlsplit(uri).password
    except ValueError:
        return None
    return unquote(password) if password else None


def redact(text: str) -> str:
    """`text` with every registered secret masked."""
    for secret in _secrets:
        if secret in text:
            text = text.replace(secret, MASK)
    return text


def _redact_event(_: WrappedLogger, __: str, event: EventDict) -> EventDict:
    if not _secrets:
        return event
    for key, value in event.items():
        if isinstance(value, str):
            event[key] = redact(value)
        elif value is not None and not isinstance(value, (int, float, bool)):
            event[key] = redact(repr(value)) if any(s in repr(value) for s in _secrets) else value
    return event


class _RedactingFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        if _secrets:
            message = record.getMessage()
            cleaned = redact(message)
            if cleaned != message:
                record.msg, record.args = cleaned, None
        return True


def debug_enabled(logger: structlog.typing.FilteringBoundLogger) -> bool:
    """Whether `logger` writes debug lines: checked before measuring what only a debug line
    would show (the stage timings), so that costs nothing at the usual levels."""
    return bool(logger.is_enabled_for(logging.DEBUG))


def resolved_format(fmt: str) -> str:
    """`LOG_FORMAT` made definite: "auto" is "console" on a terminal, else "json"."""
    if fmt == "auto":
        return "console" if sys.stderr.isatty() else "json"
    return fmt


def configure(level: str = "info", fmt: str = "auto") -> None:
    """Configure structlog and the standard library's logging alike. Idempotent.

    One format for every line of a process (`fmt`), coloured only when stderr is a terminal:
    a log file or a pipe never gets colour codes, neither ours nor those of the prefixes Ray
    puts on the lines it forwards from actors (RAY_COLOR_PREFIX, read by `ray.init` later)."""
    fmt = resolved_format(fmt)
    terminal = sys.stderr.isatty()
    if not terminal:
        os.environ.setdefault("RAY_COLOR_PREFIX", "0")
    renderer = (
        structlog.dev.ConsoleRenderer(colors=terminal) if fmt == "console" else structlog.processors.JSONRenderer()
    )
    numeric = logging.getLevelName(level.upper())
    if not isinstance(numeric, int):
        numeric = logging.INFO
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.format_exc_info,
            _redact_event,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(numeric),
        logger_factory=structlog.PrintLoggerFactory(file=sys.stderr),
        cache_logger_on_first_use=False,
    )
    logging.basicConfig(level=max(numeric, logging.WARNING), stream=sys.stderr, force=True)
    for handler in logging.getLogger().handlers:
        handler.addFilter(_RedactingFilter())
