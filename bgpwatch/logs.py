"""Log output: text, logfmt or JSON lines on stderr, with syslog priorities under systemd.

Under systemd (``JOURNAL_STREAM`` or ``INVOCATION_ID`` in the environment) stderr goes to journald,
which reads a ``<N>`` prefix at the start of each line as that line's syslog priority (sd-daemon(3)):
so every line, also each line of a traceback in text format, starts with the record's priority and
``journalctl -p warning -u bgpwatch`` finds the warnings and errors.  Journald stamps each line
itself, so the text format drops its timestamp there; logfmt and JSON keep ``ts`` (stable keys).

logfmt and JSON write one event per line: ``ts``, ``level``, ``logger``, ``msg``, then the record's
extras (``extra={...}`` of the call) and ``exc`` for an exception, newlines escaped.
"""

from __future__ import annotations

import logging
import os
import sys
import time
from collections.abc import Mapping
from typing import IO, Any

import orjson

FORMATS = ("text", "logfmt", "json")
LEVELS = ("debug", "info", "warning", "error", "critical")

# sd-daemon(3): SD_ERR <3>, SD_WARNING <4>, SD_INFO <6>, SD_DEBUG <7>; CRITICAL is SD_CRIT <2>.
_PRIORITIES = ((logging.CRITICAL, 2), (logging.ERROR, 3), (logging.WARNING, 4), (logging.INFO, 6))

# Attributes every LogRecord has: what is left on a record beyond these came in through `extra=`.
_STANDARD = frozenset(vars(logging.LogRecord("", 0, "", 0, "", (), None))) | {"message", "asctime"}


def priority(levelno: int) -> int:
    """Return the syslog priority of a logging level (debug and below: 7)."""
    for threshold, prio in _PRIORITIES:
        if levelno >= threshold:
            return prio
    return 7


def under_systemd(environ: Mapping[str, str] | None = None) -> bool:
    """Return whether stderr is (most likely) read by journald: a systemd service or a journal stream."""
    env = os.environ if environ is None else environ
    return bool(env.get("JOURNAL_STREAM") or env.get("INVOCATION_ID"))


def _iso(created: float) -> str:
    """Return an epoch time as ISO 8601 UTC with milliseconds, the format of alert transitions."""
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(created)) + f".{int(created % 1 * 1000):03d}Z"


def _extras(record: logging.LogRecord) -> dict[str, Any]:
    return {
        key: value for key, value in vars(record).items() if key not in _STANDARD and not key.startswith("_")
    }


def _event(record: logging.LogRecord, formatter: logging.Formatter) -> dict[str, Any]:
    """Return the record as one flat event: ts, level, logger, msg, extras, exc."""
    event: dict[str, Any] = {
        "ts": _iso(record.created),
        "level": record.levelname.lower(),
        "logger": record.name,
        "msg": record.getMessage(),
    }
    for key, value in _extras(record).items():
        event.setdefault(key, value)  # an extra never overwrites a stable key
    if record.exc_info:
        event["exc"] = formatter.formatException(record.exc_info)
    elif record.exc_text:
        event["exc"] = record.exc_text
    if record.stack_info:
        event["stack"] = formatter.formatStack(record.stack_info)
    return event


def logfmt_value(value: Any) -> str:
    """Return a value as a logfmt token: bare when it can be, else a quoted, escaped string."""
    if value is None:
        text = ""
    elif isinstance(value, str):
        text = value
    elif isinstance(value, bool | int | float):
        text = str(value).lower() if isinstance(value, bool) else str(value)
    else:
        text = orjson.dumps(value, default=str).decode()
    if text and not any(c in text for c in ' "=\\') and text.isprintable():
        return text
    escaped = (
        text.replace("\\", "\\\\")
        .replace('"', '\\"')
        .replace("\n", "\\n")
        .replace("\r", "\\r")
        .replace("\t", "\\t")
    )
    return f'"{escaped}"'


class LogfmtFormatter(logging.Formatter):
    """One logfmt line per record: ts=... level=... logger=... msg=... then the extras."""

    def format(self, record: logging.LogRecord) -> str:
        return " ".join(f"{key}={logfmt_value(value)}" for key, value in _event(record, self).items())


class JsonFormatter(logging.Formatter):
    """One JSON object per record, keys ts, level, logger, msg, then the extras."""

    def format(self, record: logging.LogRecord) -> str:
        return orjson.dumps(_event(record, self), default=str).decode()


class PriorityFormatter(logging.Formatter):
    """Prefix every line of another formatter's output with the record's ``<N>`` syslog priority."""

    def __init__(self, inner: logging.Formatter) -> None:
        super().__init__()
        self.inner = inner

    def format(self, record: logging.LogRecord) -> str:
        prefix = f"<{priority(record.levelno)}>"
        return "\n".join(prefix + line for line in self.inner.format(record).split("\n"))


def make_formatter(fmt: str = "text", journald: bool = False) -> logging.Formatter:
    """Return the formatter for a `logging.format` value, with priority prefixes for journald."""
    if fmt == "logfmt":
        inner: logging.Formatter = LogfmtFormatter()
    elif fmt == "json":
        inner = JsonFormatter()
    elif fmt == "text":
        text = "%(levelname)s %(name)s: %(message)s"
        inner = logging.Formatter(text if journald else "%(asctime)s " + text)
    else:
        raise ValueError(f"unknown log format {fmt!r}: expected one of {', '.join(FORMATS)}")
    return PriorityFormatter(inner) if journald else inner


_handler: logging.Handler | None = None


def setup_logging(
    level: str = "info",
    fmt: str = "text",
    stream: IO[str] | None = None,
    environ: Mapping[str, str] | None = None,
) -> logging.Handler:
    """Send the root logger to stderr (or `stream`) in `fmt` at `level`; calling again replaces the setup.

    Like `logging.basicConfig`, a root logger that already has someone else's handlers (an embedding
    program, pytest's capture) is left alone unless a `stream` is given.
    """
    global _handler
    root = logging.getLogger()
    formatter = make_formatter(fmt, under_systemd(environ))
    foreign = [h for h in root.handlers if h is not _handler]
    if stream is None and foreign:
        return foreign[0]
    handler = logging.StreamHandler(sys.stderr if stream is None else stream)
    handler.setFormatter(formatter)
    if _handler is not None:
        root.removeHandler(_handler)
    root.addHandler(handler)
    root.setLevel(getattr(logging, level.upper()))
    _handler = handler
    return handler


def apply_config(section: Any, level_override: str | None = None) -> None:
    """Apply a config's `logging:` section (format, level); a command-line level wins over the file's."""
    setup_logging(level_override or section.level, section.format)
