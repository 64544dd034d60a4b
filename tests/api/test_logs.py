"""Structured logs (issue 15): JSON lines with the request id and the batch id; the id
comes from a valid X-Request-ID or is made, and is echoed; log files are mode 0600."""

from __future__ import annotations

import json
import logging
import stat

from rest_framework.test import APIClient

from lib import logs


def _record(msg: str = "hello %s", args=("there",)) -> logging.LogRecord:
    record = logging.LogRecord("healthstream.test", logging.INFO, __file__, 1, msg, args, None)
    logs.ContextFilter().filter(record)
    return record


def test_a_json_line_carries_the_request_and_batch_ids():
    logs.request_id.set("req-1")
    logs.batch_id.set("watch-42-000193")
    line = json.loads(logs.JsonFormatter().format(_record()))
    assert line["message"] == "hello there" and line["level"] == "INFO"
    assert line["request_id"] == "req-1" and line["batch_id"] == "watch-42-000193"
    logs.batch_id.set("")
    assert "batch_id" not in json.loads(logs.JsonFormatter().format(_record()))


def test_ids_travel_as_kafka_headers_and_back():
    logs.request_id.set("abc123")
    logs.batch_id.set("b-7")
    headers = logs.kafka_headers()
    assert headers == [("request_id", b"abc123"), ("batch_id", b"b-7")]
    logs.request_id.set("")
    logs.batch_id.set("")
    logs.from_kafka_headers([*headers, ("other", b"x"), ("request_id", b"bad id with spaces")])
    assert (logs.request_id.get(), logs.batch_id.get()) == ("abc123", "b-7")


def test_every_answer_carries_a_request_id_and_its_log_lines_do_too(world, as_user, caplog):
    client = as_user(world.pat)
    with caplog.at_level(logging.WARNING, logger="django.request"):
        r = client.get("/api/v1/patients/987654")
    assert r.status_code == 404
    rid = r["X-Request-ID"]
    assert len(rid) == 32
    assert [rec.request_id for rec in caplog.records if rec.name == "django.request"] == [rid]
    mine = APIClient().get("/healthz", HTTP_X_REQUEST_ID="from-the-proxy-42")
    assert mine["X-Request-ID"] == "from-the-proxy-42"
    bad = APIClient().get("/healthz", HTTP_X_REQUEST_ID="<script>" + "x" * 100)
    assert bad["X-Request-ID"] != "<script>" + "x" * 100 and len(bad["X-Request-ID"]) == 32


def test_a_log_file_is_created_readable_by_its_owner_only(tmp_path):
    path = tmp_path / "api.log"
    handler = logs.PrivateFileHandler(str(path))
    handler.setFormatter(logs.JsonFormatter())
    handler.emit(_record())
    handler.close()
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert json.loads(path.read_text())["message"] == "hello there"
