"""Uploaded exports imported by the Celery job, end to end: the API stores the file and
queues the job; a real Celery worker process imports it through Kafka (samples.v1);
the real ingest sink process stores the samples; the job ends ``done`` with the
importer's counts and the file is gone. A malformed file ends ``failed`` with the
reader's message (line, column) and what was sent before it."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from rest_framework.test import APIClient

from api import auth as api_auth
from bench.common import stop
from ingest import tasks, uploads
from ingest.models import ImportJob
from tests.conftest import ROOT, run_manage, wait_for
from tests.ingest import exports

pytestmark = pytest.mark.django_db(transaction=True)


def stored(patient_id: int) -> int:
    with connection.cursor() as cur:
        cur.execute("SELECT count(*) FROM samples WHERE patient_id = %s", [patient_id])
        return cur.fetchone()[0]


def _worker_ready(proc: subprocess.Popen, log: Path, timeout: float = 90.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"the Celery worker exited: {log.read_text()[-3000:]}")
        if " ready." in log.read_text():
            return
        time.sleep(0.2)
    raise AssertionError(f"the Celery worker was not ready after {timeout}s: {log.read_text()[-3000:]}")


@pytest.mark.slow
def test_an_uploaded_apple_export_is_imported_by_a_celery_worker_and_reaches_the_samples_table(
        subprocess_env, patient_with_device, settings, tmp_path):
    patient, _, user = patient_with_device
    settings.IMPORT_DIR = tmp_path / "imports"
    env = {**subprocess_env, "IMPORT_DIR": str(settings.IMPORT_DIR), "IMPORT_PROGRESS_S": "0",
           "CELERY_TASK_ALWAYS_EAGER": "false"}
    records = [*exports.apple_heart_rates(12),
               exports.apple_record("HKQuantityTypeIdentifierHeartRate", "2024-01-02 10:00:00 +0100",
                                    value="400", unit="count/min"),  # refused: out of range
               exports.apple_record("HKQuantityTypeIdentifierBodyMass", "2024-01-02 08:00:00 +0100",
                                    value="70", unit="kg")]  # skipped by type
    export = exports.apple_export_zip(tmp_path / "export.zip", records)

    log = tmp_path / "celery.log"
    with open(log, "wb") as out:
        worker = subprocess.Popen(
            [sys.executable, "-m", "celery", "-A", "config", "worker", "-Q", "celery,bulk", "--pool", "solo", "--loglevel", "INFO",
             "--hostname", f"import-test-{os.getpid()}@%h"],
            cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    sink = run_manage(["run_ingest_sink"], env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                      start_new_session=True)
    try:
        _worker_ready(worker, log)
        client = APIClient()
        client.credentials(HTTP_AUTHORIZATION=f"Token {api_auth.issue(user)[1]}")
        started = time.monotonic()
        with open(export, "rb") as fh:
            r = client.post(f"/api/v1/patients/{patient.pk}/imports", {"file": fh}, format="multipart")
        assert r.status_code == 202, r.content
        assert r.json()["format"] == "apple-health-xml"

        def ended():
            job = client.get(r["Location"]).json()
            return job if job["status"] in ("done", "failed") else None

        job = wait_for(ended, 120, "the import job to end")
        print(f"import job {job['status']} {time.monotonic() - started:.1f} s after the upload")
        assert job["status"] == "done", job["error"]
        assert (job["read"], job["accepted"], job["skipped"], job["refused"], job["batches"]) == (14, 12, 1, 1, 1)
        assert job["error"] == "" and job["started_at"] and job["finished_at"]
        assert not any(settings.IMPORT_DIR.iterdir())  # the file is deleted when the job ends
        assert ImportJob.objects.get().stored_path == ""

        wait_for(lambda: stored(patient.pk) >= 12, 120, "the sink to store the 12 samples")
        print(f"12 samples in the samples table {time.monotonic() - started:.1f} s after the upload")
        time.sleep(1)
        assert stored(patient.pk) == 12
        text = log.read_text()
        assert f"import job {job['id']} done" in text
        assert "2024-01-02" not in text and 'value="6' not in text  # no health data in the worker's log
    finally:
        stop(worker, sink)


def _job_for(patient, path: Path, settings) -> ImportJob:
    """A job as the upload leaves it, without queuing it (the test runs the task itself)."""
    folder = Path(settings.IMPORT_DIR) / "f1"
    folder.mkdir(parents=True, exist_ok=True)
    shutil.copy(path, folder / path.name)
    return ImportJob.objects.create(patient=patient, original_name=path.name, format="apple-health-xml",
                                    stored_path=str(folder / path.name))


def test_a_truncated_export_ends_failed_with_the_line_and_the_batches_sent_before_it(
        kafka_topics, patient_with_device, settings, tmp_path, monkeypatch):
    from ingest.readers import base

    patient, _, _ = patient_with_device
    settings.IMPORT_DIR = tmp_path / "imports"
    settings.INGEST_MAX_SAMPLES = 2  # batches of 2 samples
    settings.IMPORT_PROGRESS_S = 0.0
    monkeypatch.setattr(base, "CHUNK_ROWS", 4)  # chunks of 4 records, so some arrive before the cut
    text = exports.apple_export_xml(exports.apple_heart_rates(10))
    cut = text.index('value="66"')  # inside the 7th record
    broken = tmp_path / "export.xml"
    broken.write_text(text[:cut])
    line = text[:cut].count("\n") + 1

    job = _job_for(patient, broken, settings)
    with CaptureQueriesContext(connection) as queries:
        assert tasks.run_import_job.apply(args=[job.pk]).get() == "failed"
    job.refresh_from_db()
    assert job.status == ImportJob.FAILED
    assert f"cut short at line {line}" in job.error and "column" in job.error
    assert "Before it, 2 whole batches (4 samples) were sent" in job.error
    assert (job.read, job.accepted, job.batches) == (4, 4, 2)
    assert job.stored_path == "" and not any(Path(settings.IMPORT_DIR).iterdir())
    progress = [q for q in queries.captured_queries
                if q["sql"].startswith('UPDATE "ingest_importjob" SET "read"')]
    assert progress, "no progress was written while the job ran"

    # The repaired file, uploaded again: the leading batches are already imported, the rest is sent.
    broken.write_text(text)
    again = _job_for(patient, broken, settings)
    assert tasks.run_import_job.apply(args=[again.pk]).get() == "done"
    again.refresh_from_db()
    assert (again.read, again.already_imported, again.accepted, again.batches) == (10, 4, 6, 5)
    assert again.error == ""


def test_a_job_that_already_ended_is_not_run_again(kafka_topics, patient_with_device, settings, tmp_path):
    patient, _, _ = patient_with_device
    settings.IMPORT_DIR = tmp_path / "imports"
    job = ImportJob.objects.create(patient=patient, original_name="export.xml", format="apple-health-xml",
                                   status=ImportJob.DONE, read=3, accepted=3)
    assert tasks.run_import_job.apply(args=[job.pk]).get() == "gone"
    job.refresh_from_db()
    assert (job.status, job.read, job.accepted) == ("done", 3, 3)


def test_a_job_whose_file_is_missing_ends_failed_saying_so(kafka_topics, patient_with_device, settings, tmp_path):
    patient, _, _ = patient_with_device
    settings.IMPORT_DIR = tmp_path / "imports"
    job = ImportJob.objects.create(patient=patient, original_name="export.xml", format="apple-health-xml",
                                   stored_path=str(tmp_path / "imports" / "gone" / "export.xml"))
    assert tasks.run_import_job.apply(args=[job.pk]).get() == "failed"
    job.refresh_from_db()
    assert job.error == ("the uploaded file is not in IMPORT_DIR on this worker (deleted, or IMPORT_DIR is "
                         "not shared with the API); upload it again")


def test_discard_never_deletes_outside_the_import_folder(settings, tmp_path):
    settings.IMPORT_DIR = tmp_path / "imports"
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    (outside / "keep.txt").write_text("x")
    uploads.discard(str(outside / "keep.txt"))
    assert (outside / "keep.txt").exists()


def test_an_unavailable_broker_is_retried_with_backoff_then_the_job_fails_saying_why(
        patient_with_device, settings, tmp_path, monkeypatch):
    """One step with a stand-in: ``run_import`` answers as it does when the broker does
    not acknowledge (the broker outage itself is tests/test_outages.py's)."""
    from ingest.importer import ImportFailed

    patient, _, _ = patient_with_device
    settings.IMPORT_DIR = tmp_path / "imports"
    path = tmp_path / "export.xml"
    path.write_text(exports.apple_export_xml(exports.apple_heart_rates(2)))
    job = _job_for(patient, path, settings)
    seen = []

    def broker_down(paths, **kwargs):
        row = ImportJob.objects.get(pk=job.pk)
        seen.append((row.status, row.error, Path(paths[0]).exists()))
        raise ImportFailed("the broker did not acknowledge the batch; retry later: nothing after the last "
                           "acknowledged batch was sent", None, retryable=True)

    monkeypatch.setattr(tasks, "run_import", broker_down)
    waits = []

    def retry(countdown: int, **_kwargs):
        waits.append(countdown)
        raise _Retry  # what Celery's retry raises, so the worker schedules the next try

    monkeypatch.setattr(tasks.run_import_job, "retry", retry)
    for _ in range(4):
        try:
            result = tasks.run_import_job.apply(args=[job.pk], retries=len(waits)).get()
        except _Retry:
            row = ImportJob.objects.get(pk=job.pk)
            assert row.status == ImportJob.QUEUED
            assert row.error.endswith(f"; trying again in {waits[-1]} s")
    assert waits == [30, 60, 120]
    assert result == "failed"
    job.refresh_from_db()
    assert job.status == ImportJob.FAILED and job.error.startswith("the broker did not acknowledge")
    assert [s[2] for s in seen] == [True] * 4  # the file is kept while the job is retried
    assert not Path(settings.IMPORT_DIR, "f1").exists()  # and deleted when it ends


class _Retry(Exception):
    pass


def test_an_entity_bomb_in_an_uploaded_xml_ends_failed_quickly_without_expanding(
        kafka_topics, patient_with_device, settings, tmp_path):
    """Uploads come from anyone with access: nested entities (a "billion laughs") are
    stopped by the XML parser's amplification limit, and the job fails saying where."""
    patient, _, _ = patient_with_device
    settings.IMPORT_DIR = tmp_path / "imports"
    entities = '<!ENTITY a0 "xxxxxxxxxx">' + "".join(
        f'<!ENTITY a{i} "{f"&a{i - 1};" * 10}">' for i in range(1, 10))
    bomb = tmp_path / "export.xml"
    bomb.write_text(f'<?xml version="1.0"?><!DOCTYPE HealthData [{entities}]><HealthData locale="en">'
                    '<Record type="HKQuantityTypeIdentifierHeartRate" unit="count/min" '
                    'startDate="2024-01-02 08:00:00 +0100" endDate="2024-01-02 08:00:00 +0100" value="&a9;"/>'
                    "</HealthData>")
    job = _job_for(patient, bomb, settings)
    started = time.monotonic()
    assert tasks.run_import_job.apply(args=[job.pk]).get() == "failed"
    assert time.monotonic() - started < 10
    job.refresh_from_db()
    assert job.error.startswith("export.xml: the XML is malformed or cut short at line 1, column")
    assert job.error.endswith("Nothing was sent.")
