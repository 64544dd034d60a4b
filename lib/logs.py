"""Logging: plain text (the default, for ``make run``) or one JSON object a line
(``LOG_FORMAT=json``), each record carrying the request id and the batch id of the work
it belongs to, so that one upload can be followed across processes.

* ``request_id`` / ``batch_id``: context variables, set by ``api.middleware.RequestIdMiddleware``
  (from a valid ``X-Request-ID``, else a new one) and by the ingest view for a batch;
  a consumer sets them from the message's Kafka headers (``KAFKA_HEADERS``).
* ``PrivateFileHandler``: a log file created with mode 0600.

No record may carry health values, names, tokens or passwords: the ids are opaque.
"""

from __future__ import annotations

import contextvars
import logging
import os
import re
import uuid
from datetime import UTC, datetime

import orjson

request_id: contextvars.ContextVar[str] = contextvars.ContextVar("request_id", default="")
batch_id: contextvars.ContextVar[str] = contextvars.ContextVar("batch_id", default="")

#: Kafka header names that carry the ids from the API to the sinks and the worker.
KAFKA_HEADERS = ("request_id", "batch_id")
_VALID_ID = re.compile(r"[A-Za-z0-9._:-]{1,64}")


def valid_id(raw: str | None) -> str | None:
    """An id a client or a message may hand us: short, plain characters, or None."""
    return raw if raw and _VALID_ID.fullmatch(raw) else None


def new_request_id(raw: str | None = None) -> str:
    return valid_id(raw) or uuid.uuid4().hex


def kafka_headers() -> list[tuple[str, bytes]]:
    """The current ids as Kafka message headers (empty ones left out)."""
    return [(name, value.encode()) for name, value in
            (("request_id", request_id.get()), ("batch_id", batch_id.get())) if value]


def from_kafka_headers(headers) -> None:
    """Set the ids from a consumed message's headers (a list of (name, bytes))."""
    for name, value in headers or ():
        if name in KAFKA_HEADERS and isinstance(value, bytes | bytearray):
            ok = valid_id(bytes(value).decode("ascii", "replace"))
            if ok:
                (request_id if name == "request_id" else batch_id).set(ok)


class ContextFilter(logging.Filter):
    """Adds ``request_id`` and ``batch_id`` to every record (empty when none)."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.request_id = request_id.get()
        record.batch_id = batch_id.get()
        return True


class JsonFormatter(logging.Formatter):
    """One JSON object a line: time, level, logger, message, process, and the ids."""

    def format(self, record: logging.LogRecord) -> str:
        out = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
            "process": record.processName if record.processName != "MainProcess" else os.getpid(),
        }
        for key in ("request_id", "batch_id"):
            value = getattr(record, key, "")
            if value:
                out[key] = value
        if record.exc_info:
            out["exception"] = self.formatException(record.exc_info)
        return orjson.dumps(out).decode()


class PrivateFileHandler(logging.FileHandler):
    """A log file readable by its owner only (created, or tightened, to mode 0600)."""

    def _open(self):
        fd = os.open(self.baseFilename, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        os.fchmod(fd, 0o600)
        return open(fd, self.mode, encoding=self.encoding, errors=self.errors)  # noqa: SIM115
