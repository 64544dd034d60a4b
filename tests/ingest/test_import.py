"""Bulk import through Kafka, with a summary that accounts for every row."""

from __future__ import annotations

import io
import json
import os
import subprocess
import threading
import time
import zipfile
from collections import Counter

import pytest
from django.core.management import call_command
from django.db import connection

from ingest.readers import iter_chunks
from ingest.sink import Sink
from tests.conftest import SHARED_DATA, run_manage
from tests.ingest import exports

AV2GF3B_HR = SHARED_DATA / "stanford-covid19-phase1" / "AV2GF3B_hr.csv.zip"
needs_data = pytest.mark.skipif(not AV2GF3B_HR.exists(), reason="../shared/data is not present")
pytestmark = pytest.mark.django_db(transaction=True)


def import_json(*args) -> dict:
    out = io.StringIO()
    call_command("import_samples", *args, "--json", stdout=out)
    return json.loads(out.getvalue())


def sink_until(predicate, timeout=120):
    sink = Sink(group_id=f"import-sink-{time.time_ns()}", batch_seconds=0.3)
    thread = threading.Thread(target=sink.run, kwargs={"max_seconds": timeout})
    thread.start()
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and not predicate():
        time.sleep(0.3)
    time.sleep(1)
    sink.stopping = True
    thread.join(20)


def stored_rows(patient_id: int) -> tuple[int, int]:
    with connection.cursor() as cur:
        cur.execute("SELECT count(*), count(DISTINCT (time, value)) FROM samples WHERE patient_id = %s", [patient_id])
        return cur.fetchone()


@needs_data
def test_importing_av2gf3b_stores_every_distinct_reading_and_accounts_for_every_row(kafka_topics, patient_with_device):
    patient, _, _ = patient_with_device
    with zipfile.ZipFile(AV2GF3B_HR) as z:
        text = z.read(z.namelist()[0]).decode()
    lines = text.strip().splitlines()[1:]
    distinct = {tuple(line.split(",")[2:4]) for line in lines}

    summary = import_json(str(AV2GF3B_HR), "--patient", str(patient.pk))
    assert summary["read"] == len(lines)
    assert summary["read"] == summary["accepted"] + summary["duplicate"] + summary["already_imported"] + summary["refused"]
    assert summary["accepted"] == len(distinct) - summary["refused"]  # refused rows are not readings we store

    sink_until(lambda: stored_rows(patient.pk)[0] >= summary["accepted"])
    total, unique = stored_rows(patient.pk)
    assert total == unique == summary["accepted"]

    again = import_json(str(AV2GF3B_HR), "--patient", str(patient.pk))
    assert again["accepted"] == 0
    assert again["already_imported"] == summary["accepted"]


def test_refused_rows_are_counted_by_reason_and_good_rows_still_go_in(kafka_topics, patient_with_device, tmp_path):
    patient, _, _ = patient_with_device
    f = tmp_path / "X1_hr.csv"
    f.write_text(
        ",user,datetime,heartrate\n"
        "0,X1,2024-03-01 00:00:00,66\n"
        "1,X1,2024-03-01 00:01:00,0\n"
        "2,X1,not a date,70\n"
        "3,X1,2024-03-01 00:03:00,abc\n"
        "4,X1,2024-03-01 00:00:00,66\n"
        "5,X1,2024-03-01 00:05:00,71\n"
    )
    summary = import_json(str(f), "--patient", str(patient.pk), "--format", "stanford-hr")
    assert summary["read"] == 6
    assert summary["accepted"] == 2 and summary["duplicate"] == 1 and summary["refused"] == 3
    reasons = summary["refused_by_reason"]
    assert reasons["unreadable date-time"] == 1
    assert reasons["value is not a number"] == 1
    assert any("impossible for heart_rate" in r for r in reasons)


def test_an_unknown_format_or_patient_is_a_clear_error(kafka_topics, patient_with_device, tmp_path):
    from django.core.management.base import CommandError

    patient, _, _ = patient_with_device
    f = tmp_path / "weird.csv"
    f.write_text("a,b,c\n1,2,3\n")
    with pytest.raises(CommandError, match="unknown format"):
        call_command("import_samples", str(f), "--patient", str(patient.pk))
    with pytest.raises(CommandError, match="no patient with id"):
        call_command("import_samples", str(f), "--patient", "999999999")


def test_it_reads_apple_health_export_xml_streaming(tmp_path):
    xml = tmp_path / "export.xml"
    xml.write_text(
        '<?xml version="1.0" encoding="UTF-8"?>\n<HealthData locale="en_US">\n'
        '<Record type="HKQuantityTypeIdentifierHeartRate" unit="count/min" startDate="2024-01-02 08:00:00 +0100" endDate="2024-01-02 08:00:00 +0100" value="72"/>\n'
        '<Record type="HKQuantityTypeIdentifierStepCount" unit="count" startDate="2024-01-02 08:00:00 +0100" endDate="2024-01-02 08:05:00 +0100" value="310"/>\n'
        '<Record type="HKCategoryTypeIdentifierSleepAnalysis" startDate="2024-01-02 01:00:00 +0100" endDate="2024-01-02 01:40:00 +0100" value="HKCategoryValueSleepAnalysisAsleepDeep"/>\n'
        '<Record type="HKCategoryTypeIdentifierSleepAnalysis" startDate="2024-01-02 00:30:00 +0100" endDate="2024-01-02 07:00:00 +0100" value="HKCategoryValueSleepAnalysisInBed"/>\n'
        '<Record type="HKQuantityTypeIdentifierBodyMass" unit="kg" startDate="2024-01-02 08:00:00 +0100" endDate="2024-01-02 08:00:00 +0100" value="70"/>\n'
        "</HealthData>\n"
    )
    read = list(iter_chunks(xml, participant="me"))
    chunks = {c.metric: c for c in read if len(c)}
    assert set(chunks) == {"heart_rate", "steps", "sleep_stage"}
    assert sum((c.skipped for c in read), Counter()) == Counter(
        {"HKCategoryValueSleepAnalysisInBed": 1, "HKQuantityTypeIdentifierBodyMass": 1})
    assert chunks["heart_rate"].time.tolist() == [1_704_178_800_000]  # 07:00Z
    assert chunks["steps"].value.tolist() == [310.0]
    assert chunks["sleep_stage"].label.tolist() == ["deep"]  # "in bed" is not sleep


# ------------------------------------------------- real export shapes (issue 16)

def test_a_truncated_export_sends_only_whole_batches_and_the_repaired_file_completes_it_once(
        kafka_topics, patient_with_device, tmp_path, monkeypatch):
    from django.core.management.base import CommandError

    from ingest.readers import base

    patient, _, _ = patient_with_device
    monkeypatch.setattr(base, "CHUNK_ROWS", 4)  # chunks of 4 records, so some arrive before the cut
    text = exports.apple_export_xml(exports.apple_heart_rates(10))
    cut = text.index('value="66"')  # inside the 7th record
    broken = tmp_path / "export.xml"
    broken.write_text(text[:cut])
    line = text[:cut].count("\n") + 1
    with pytest.raises(CommandError) as info:
        call_command("import_samples", str(broken), "--patient", str(patient.pk), "--batch-size", "2")
    message = str(info.value)
    assert f"cut short at line {line}" in message
    assert "2 whole batches (4 samples) were sent" in message

    broken.write_text(text)  # the repaired file
    summary = import_json(str(broken), "--patient", str(patient.pk), "--batch-size", "2")
    assert summary["read"] == 10
    assert summary["already_imported"] == 4 and summary["accepted"] == 6

    sink_until(lambda: stored_rows(patient.pk)[0] >= 10)
    assert stored_rows(patient.pk) == (10, 10)


def test_apples_clinical_document_is_a_clear_command_error(kafka_topics, patient_with_device, tmp_path):
    from django.core.management.base import CommandError

    patient, _, _ = patient_with_device
    cda = tmp_path / "export_cda.xml"
    cda.write_text(exports.CDA_XML)
    with pytest.raises(CommandError, match="clinical document"):
        call_command("import_samples", str(cda), "--patient", str(patient.pk))


def test_a_dry_run_reads_validates_and_counts_every_export_without_database_broker_or_patient(tmp_path):
    files = [
        exports.apple_export_zip(tmp_path / "7_export.zip", exports.APPLE_MIXED),
        exports.write_json(tmp_path / "x_heart_rate-2024-01-05.json",
                           [*exports.fitbit_heart_rate(), {"dateTime": "01/05/24 09:00:00", "value": {"bpm": 400}}]),
        exports.write_json(tmp_path / "steps-2024-01-05.json", exports.fitbit_steps()),
        exports.write_json(tmp_path / "sleep-2024-01-05.json", exports.FITBIT_SLEEP),
        exports.write_json(tmp_path / "google_fit.json", exports.google_fit_points()),
        tmp_path / "2024-01-05.csv",
        tmp_path / "physiological_cycles.csv",
        tmp_path / "sleeps.csv",
        tmp_path / "workouts.csv",
    ]
    files[5].write_text(exports.GOOGLE_FIT_DAILY)
    files[6].write_text(exports.WHOOP_CYCLES)
    files[7].write_text(exports.WHOOP_SLEEPS)
    files[8].write_text(exports.WHOOP_WORKOUTS)
    env = dict(os.environ, DATABASE_URL="postgresql://nobody@127.0.0.1:9/none",
               KAFKA_BOOTSTRAP_SERVERS="127.0.0.1:9", REDIS_URL="redis://127.0.0.1:9/0",
               DJANGO_SETTINGS_MODULE="config.settings")
    proc = run_manage(["import_samples", "--dry-run", "--json", *map(str, files)], env,
                      stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, err
    summary = json.loads(out)
    assert summary["dry_run"] is True
    # Apple 3 + 4 skipped; Fitbit 4 (and 1 refused) + 3 + 3 and 1 short wake skipped; Google Fit
    # JSON 3 + 2 skipped; daily CSV 3 + 13 skipped; WHOOP 1 + 20 skipped, 4 + 8 skipped, 1.
    assert summary["accepted"] == 3 + 4 + 3 + 3 + 3 + 3 + 1 + 4 + 1
    assert summary["refused"] == 1 and summary["refused_by_reason"] == {
        "value: N beats/min is impossible for heart_rate (allowed N to N)": 1}
    assert summary["skipped"] == 4 + 1 + 2 + 13 + 20 + 8
    assert summary["skipped_by_type"]["HKCategoryValueSleepAnalysisInBed"] == 1
    assert summary["read"] == summary["accepted"] + summary["skipped"] + summary["refused"] + summary["duplicate"]
    assert summary["batches"] == 1 and summary["already_imported"] == 0


def test_without_a_patient_only_a_dry_run_is_allowed(tmp_path):
    from django.core.management.base import CommandError

    f = tmp_path / "export.xml"
    f.write_text(exports.apple_export_xml(exports.APPLE_MIXED))
    with pytest.raises(CommandError, match="--patient is required"):
        call_command("import_samples", str(f))
    out = io.StringIO()
    call_command("import_samples", str(f), "--dry-run", stdout=out)
    text = out.getvalue()
    assert "nothing was sent" in text and "skipped by type" in text and "HKQuantityTypeIdentifierBodyMass" in text
