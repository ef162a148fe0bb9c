"""Process logging: text or JSON lines on stderr, level set (and reset at reload) by config."""

from __future__ import annotations

import json
import logging
import re
import sys
import time

LEVELS = {
    "debug": logging.DEBUG,
    "info": logging.INFO,
    "warn": logging.WARNING,
    "warning": logging.WARNING,
    "error": logging.ERROR,
    "fatal": logging.CRITICAL,
    "panic": logging.CRITICAL,
}

ROOT = "alloy_runner"

_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def escape_controls(text: str) -> str:
    """Escape control characters, so that no value can start a forged line of the log."""
    return _CONTROL.sub(lambda m: repr(m.group())[1:-1], text)


class TextFormatter(logging.Formatter):
    """`TIME LEVEL message`, one line a record: control characters in messages are escaped."""

    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)-7s %(message)s", "%Y-%m-%dT%H:%M:%S")

    def formatMessage(self, record: logging.LogRecord) -> str:
        record.message = escape_controls(record.message)
        return super().formatMessage(record)


# What every LogRecord has: anything else was passed with `extra=` and is a field of the line.
_RECORD_ATTRIBUTES = frozenset(vars(logging.makeLogRecord({}))) | {"message", "asctime"}


class JsonFormatter(logging.Formatter):
    """One JSON object per line, as GitLab Runner's json format writes them (logrus): `level`,
    `msg`, `time` (RFC 3339), and the record's fields (`extra=`) as keys of their own."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, object] = {
            "level": _LEVEL_NAMES.get(record.levelno, record.levelname.lower()),
            "msg": record.getMessage(),
            "time": time.strftime("%Y-%m-%dT%H:%M:%S%z", time.localtime(record.created)),
            "logger": record.name,
        }
        for key, value in vars(record).items():
            if key not in _RECORD_ATTRIBUTES and key not in entry:
                entry[key] = value if isinstance(value, str | int | float | bool) else str(value)
        if record.exc_info:
            entry["error"] = self.formatException(record.exc_info)
        return json.dumps(entry)


_LEVEL_NAMES = {logging.WARNING: "warning", logging.CRITICAL: "fatal"}


def configure(level: str, fmt: str, handlers: tuple[logging.Handler, ...] = ()) -> None:
    """Send this package's logs to stderr in `fmt`; extra `handlers` see every record."""
    logger = logging.getLogger(ROOT)
    for old in list(logger.handlers):
        logger.removeHandler(old)
    stream = logging.StreamHandler(sys.stderr)
    if fmt == "json":
        stream.setFormatter(JsonFormatter())
    else:
        stream.setFormatter(TextFormatter())
    logger.addHandler(stream)
    for handler in handlers:
        logger.addHandler(handler)
    # Libraries we run on (the OTel SDK above all) log their failures too: count them.
    for library in ("opentelemetry",):
        lib = logging.getLogger(library)
        for handler in (stream, *handlers):
            if handler not in lib.handlers:
                lib.addHandler(handler)
        lib.propagate = False
    logger.propagate = False
    set_level(level)


def set_level(level: str) -> None:
    """Apply a `log_level` value (at start and at SIGHUP)."""
    logging.getLogger(ROOT).setLevel(LEVELS[level])
