"""Log lines for people and for log collectors: ``--log-format text`` (default) or ``json``.

Text keeps segkit's usual stderr lines (``warning: ...``). JSON writes one object per line on
stderr, for hospital log collectors (Filebeat, Fluent Bit, journald, Splunk forwarders):

    {"time": "2026-12-07T16:00:00.123Z", "level": "warning", "component": "predict",
     "event": "case_warning", "message": "c01: input is 30.0 degrees oblique ...", "case_id": "c01"}

Every line has ``time`` (UTC, ISO 8601, milliseconds), ``level`` (debug / info / warning /
error), ``component`` (the command: ``predict``, ``serve``), ``event`` (a stable name to filter
on) and ``message``; further fields are the event's data. Events that only collectors need
(``case_finished``, ``run_started``, ...) are written in JSON mode only (``text=False``).

`configure` is called once by a command (``segkit predict --log-format json``; the PACS node
the same way), `emit` / `warning` / `info` / `error` write lines, and `JsonFormatter` gives a
`logging.Handler` the same line format for code that logs through the standard library.
"""

from __future__ import annotations

import json
import logging
import sys
import threading
from datetime import datetime, timezone
from typing import Any, TextIO

FORMATS = ("text", "json")
LEVELS = ("debug", "info", "warning", "error")
_lock = threading.Lock()   # the pipeline logs from its read-ahead and write-behind threads too
_state: dict[str, Any] = {"format": "text", "component": "segkit", "stream": None}


def configure(log_format: str = "text", component: str = "segkit", stream: TextIO | None = None) -> None:
    """Choose the line format and the component name for the rest of the process (stream: default stderr)."""
    if log_format not in FORMATS:
        raise ValueError(f"log format must be one of {FORMATS}, got {log_format!r}")
    _state.update(format=log_format, component=component, stream=stream)


def log_format() -> str:
    """'text' or 'json'."""
    return str(_state["format"])


def json_mode() -> bool:
    """True when lines are JSON."""
    return _state["format"] == "json"


def timestamp() -> str:
    """Now in UTC, ISO 8601 with milliseconds and a Z."""
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def json_line(level: str, event: str, message: str, component: str | None = None, **fields: Any) -> str:
    """One JSON log line (no newline); values JSON cannot hold are written as strings."""
    record = {"time": timestamp(), "level": level, "component": component or _state["component"], "event": event,
              "message": message, **fields}
    return json.dumps(record, default=str, ensure_ascii=False, separators=(",", ":"))


def emit(level: str, message: str, event: str = "message", text: bool = True, **fields: Any) -> None:
    """Write one line: JSON in json mode; in text mode the message (prefixed 'LEVEL: ' unless info) when text."""
    if level not in LEVELS:
        raise ValueError(f"log level must be one of {LEVELS}, got {level!r}")
    stream = _state["stream"] or sys.stderr
    if json_mode():
        line = json_line(level, event, message, **fields)
    elif text:
        line = message if level == "info" else f"{level}: {message}"
    else:
        return
    with _lock:
        print(line, file=stream, flush=True)


def info(message: str, event: str = "message", text: bool = True, **fields: Any) -> None:
    """An info line."""
    emit("info", message, event, text, **fields)


def warning(message: str, event: str = "warning", text: bool = True, **fields: Any) -> None:
    """A warning line ('warning: ...' in text mode)."""
    emit("warning", message, event, text, **fields)


def error(message: str, event: str = "error", text: bool = True, **fields: Any) -> None:
    """An error line ('error: ...' in text mode)."""
    emit("error", message, event, text, **fields)


class JsonFormatter(logging.Formatter):
    """A logging.Formatter writing the same JSON lines (fields from `extra={"fields": {...}}`)."""

    def __init__(self, component: str = "segkit"):
        super().__init__()
        self.component = component

    def format(self, record: logging.LogRecord) -> str:
        """The record as one JSON line."""
        level = {"WARNING": "warning", "ERROR": "error", "CRITICAL": "error", "DEBUG": "debug"}.get(
            record.levelname, "info")
        fields = dict(getattr(record, "fields", {}) or {})
        if record.exc_info:
            fields["exception"] = self.formatException(record.exc_info)
        return json_line(level, getattr(record, "event", record.name), record.getMessage(), self.component, **fields)
