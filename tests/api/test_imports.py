"""The upload endpoint for export files: who may upload and read, what is refused and
how (the API's error format, 400/413/415), what is stored (privately, then queued on
commit), and what the audit log and the devices list say. The import itself, by a real
Celery worker, is tests/ingest/test_import_jobs.py."""

from __future__ import annotations

import json
import stat
from pathlib import Path

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile

from care.models import AuditEvent
from ingest.models import ImportJob
from tests.ingest import exports


@pytest.fixture(autouse=True)
def import_dir(settings, tmp_path):
    settings.IMPORT_DIR = tmp_path / "imports"
    return settings.IMPORT_DIR


def fitbit_file(name: str = "heart_rate-2024-01-05.json") -> SimpleUploadedFile:
    return SimpleUploadedFile(name, json.dumps(exports.fitbit_heart_rate()).encode(), "application/json")


def upload(client, patient_id: int, **fields):
    return client.post(f"/api/v1/patients/{patient_id}/imports", fields, format="multipart")


def reason(response) -> tuple[str, str]:
    body = response.json()
    assert set(body) == {"errors"}
    return body["errors"][0]["field"], body["errors"][0]["reason"]


def test_a_patient_uploads_an_export_and_gets_202_with_the_queued_job_and_its_location(
        world, as_user, import_dir, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=False) as queued:
        r = upload(as_user(world.pat), world.pat.pk, file=fitbit_file("u42_heart_rate-2024-01-05.json"))
    assert r.status_code == 202, r.content
    job = ImportJob.objects.get()
    assert r["Location"] == f"/api/v1/patients/{world.pat.pk}/imports/{job.pk}"
    body = r.json()
    assert body["status"] == "queued" and body["format"] == "fitbit-heart-rate-json"
    assert body["original_name"] == "u42_heart_rate-2024-01-05.json" and body["read"] == 0
    assert job.uploaded_by == world.pat.user and job.tz == world.pat.timezone
    assert len(queued) == 1  # the Celery task, queued once the transaction commits
    stored = Path(job.stored_path)
    assert stored.parent.parent == import_dir and stored.name == "u42_heart_rate-2024-01-05.json"
    assert stat.S_IMODE(stored.stat().st_mode) == 0o600
    assert stat.S_IMODE(stored.parent.stat().st_mode) == 0o700
    event = AuditEvent.objects.get(action="import_uploaded")
    assert event.actor == world.pat.user and event.patient_id == world.pat.pk
    assert event.detail == {"job": job.pk, "format": "fitbit-heart-rate-json", "bytes": job.size_bytes}


def test_a_clinician_with_access_uploads_for_their_patient_and_apples_export_zip_is_recognised(
        world, as_user, tmp_path):
    path = exports.apple_export_zip(tmp_path / "export.zip", exports.apple_heart_rates(3))
    r = upload(as_user(world.alice), world.pat.pk,
               file=SimpleUploadedFile("export.zip", path.read_bytes(), "application/zip"), tz="Europe/Paris")
    assert r.status_code == 202, r.content
    job = ImportJob.objects.get()
    assert (job.format, job.uploaded_by, job.tz) == ("apple-health-xml", world.alice.user, "Europe/Paris")


@pytest.mark.parametrize(("who", "target"), [("pat2", "pat"), ("bob", "pat"), ("alice", "revoked")])
def test_anyone_without_access_is_answered_404_and_nothing_is_stored(world, as_user, import_dir, who, target):
    person = getattr(world, who)
    patient = getattr(world, target)
    r = upload(as_user(person), patient.pk, file=fitbit_file())
    assert r.status_code == 404
    assert reason(r)[1] == "no such patient, or no access to it"
    assert patient.display_name not in r.content.decode()
    assert not ImportJob.objects.exists()
    assert not import_dir.exists() or not any(import_dir.iterdir())


def test_signed_out_and_device_tokens_cannot_upload(world, api):
    assert upload(api, world.pat.pk, file=fitbit_file()).status_code == 401
    api.credentials(HTTP_AUTHORIZATION=f"Device {world.device_token}")
    assert upload(api, world.pat.pk, file=fitbit_file()).status_code in (401, 403)
    assert not ImportJob.objects.exists()


def test_an_upload_without_a_file_or_with_two_files_is_a_400_naming_the_field(world, as_user):
    client = as_user(world.pat)
    assert reason(upload(client, world.pat.pk, tz="UTC")) == ("file", "attach one export file in the field 'file'")
    r = client.post(f"/api/v1/patients/{world.pat.pk}/imports", {"file": [fitbit_file(), fitbit_file()]},
                    format="multipart")
    assert r.status_code == 400 and reason(r) == ("file", "one file per upload, 2 were sent")
    r = upload(client, world.pat.pk, other=fitbit_file())
    assert reason(r) == ("other", "unexpected file field; send one file in the field 'file'")
    assert not ImportJob.objects.exists()


def test_a_json_body_is_a_415_asking_for_multipart(world, as_user):
    r = as_user(world.pat).post(f"/api/v1/patients/{world.pat.pk}/imports", {"file": "x"}, format="json")
    assert r.status_code == 415
    assert reason(r) == ("(body)", "send the file as multipart/form-data in the field 'file'")


def test_a_file_over_the_limit_is_a_413_naming_the_limit_and_leaves_nothing(world, as_user, settings, import_dir):
    settings.IMPORT_MAX_BYTES = 1024
    r = upload(as_user(world.pat), world.pat.pk,
               file=SimpleUploadedFile("heart_rate-2024-01-05.json", b"[" + b" " * 2000 + b"]"))
    assert r.status_code == 413
    assert reason(r) == ("file", "the file is 2,002 bytes, over the limit of 1,024")
    assert not ImportJob.objects.exists()


def test_a_body_far_over_the_limit_is_refused_by_its_content_length_before_it_is_read(world, as_user, settings):
    settings.IMPORT_MAX_BYTES = 1024
    client = as_user(world.pat)
    r = client.generic("POST", f"/api/v1/patients/{world.pat.pk}/imports", b"x" * 10,
                       content_type="multipart/form-data; boundary=b", CONTENT_LENGTH="10000000")
    assert r.status_code == 413
    assert reason(r) == ("file", "the upload is 10,000,000 bytes, over the limit of 1,024")


def test_the_size_check_while_storing_also_refuses_with_413(world, settings, tmp_path):
    from ingest import uploads

    settings.IMPORT_MAX_BYTES = 1024
    with pytest.raises(uploads.UploadRefused) as refused:
        uploads.store(world.pat, world.pat.user, "big.json", [b"[" * 1000, b" " * 1000], tz="UTC",
                      date_order=None)
    assert (refused.value.field, refused.value.status) == ("file", 413)
    assert not any(Path(settings.IMPORT_DIR).iterdir())


@pytest.mark.parametrize(("name", "content", "expected"), [
    ("notes.txt", b"hello,world\n1,2\n", "notes.txt: unknown format (header 'hello,world'); send the field 'format'"),
    ("export_cda.xml", exports.CDA_XML.encode(), "clinical document"),
    ("empty.csv", b"", "the file is empty"),
    ("data.json", b'[{"foo": 1}]', "JSON that is no Fitbit or Google Fit export"),
])
def test_a_file_in_no_known_format_is_a_400_with_the_readers_reason_and_is_deleted(
        world, as_user, import_dir, name, content, expected):
    r = upload(as_user(world.pat), world.pat.pk, file=SimpleUploadedFile(name, content))
    assert r.status_code == 400, r.content
    field, why = reason(r)
    assert field == "file" and expected in why, why
    assert str(import_dir) not in why  # the server's folders are never shown
    assert not ImportJob.objects.exists() and not any(import_dir.iterdir())
    assert AuditEvent.objects.filter(action="import_refused", patient=world.pat, outcome="failed").count() == 1


@pytest.mark.parametrize(("fields", "expected"), [
    ({"tz": "Mars/Olympus"}, ("tz", "'Mars/Olympus' is not an IANA time zone")),
    ({"date_order": "ymd"}, ("date_order", "use one of mdy, dmy")),
    ({"format": "csv"}, ("format", "unknown format; use one of stanford-hr, stanford-steps, applewatch-hr, "
                                   "healthkit-steps, fitbit-minute-steps, fitabase-heartrate, fitabase-hourly-steps, "
                                   "fitabase-daily-activity, fitabase-sleep, apple-health-xml, fitbit-heart-rate-json, "
                                   "fitbit-steps-json, fitbit-series-json, fitbit-sleep-json, google-fit-json, "
                                   "google-fit-daily-csv, whoop-cycles, whoop-sleeps, whoop-workouts")),
])
def test_a_bad_time_zone_or_date_order_is_a_400_naming_it(world, as_user, fields, expected):
    r = upload(as_user(world.pat), world.pat.pk, file=fitbit_file(), **fields)
    assert r.status_code == 400 and reason(r) == expected
    assert not ImportJob.objects.exists()


def test_a_file_name_with_folders_is_stored_under_a_clean_base_name():
    from ingest.uploads import clean_name

    assert clean_name("../../etc/passwd") == "passwd"
    assert clean_name("C:\\Users\\me\\export (1).zip") == "export_1_.zip"
    assert clean_name("..") == "upload"


def test_the_patient_and_their_clinician_read_the_jobs_with_progress_and_others_get_404(world, as_user):
    job = ImportJob.objects.create(patient=world.pat, original_name="export.zip", format="apple-health-xml",
                                   status=ImportJob.RUNNING, read=120, accepted=100, skipped=20)
    ImportJob.objects.create(patient=world.other, original_name="x.json", format="fitbit-steps-json")
    for person in (world.pat, world.alice):
        listed = as_user(person).get(f"/api/v1/patients/{world.pat.pk}/imports").json()
        assert [j["id"] for j in listed["results"]] == [job.pk]
        one = as_user(person).get(f"/api/v1/patients/{world.pat.pk}/imports/{job.pk}").json()
        assert (one["status"], one["read"], one["accepted"], one["skipped"]) == ("running", 120, 100, 20)
    assert as_user(world.bob).get(f"/api/v1/patients/{world.pat.pk}/imports").status_code == 404
    assert as_user(world.pat2).get(f"/api/v1/patients/{world.pat.pk}/imports/{job.pk}").status_code == 404
    other_job = ImportJob.objects.get(patient=world.other)
    assert as_user(world.pat).get(f"/api/v1/patients/{world.pat.pk}/imports/{other_job.pk}").status_code == 404
    assert AuditEvent.objects.filter(action="read_imports", patient=world.pat).count() == 2
    assert AuditEvent.objects.filter(action="read_import", patient=world.pat).count() == 2


def test_the_devices_list_points_at_the_imports(world, as_user):
    r = as_user(world.pat).get(f"/api/v1/patients/{world.pat.pk}/devices")
    assert r.status_code == 200 and isinstance(r.json(), list)
    assert r["Link"] == f'</api/v1/patients/{world.pat.pk}/imports>; rel="imports"'


def test_the_dashboard_patient_page_shows_the_imports_with_status_counts_and_error(world, client):
    ImportJob.objects.create(patient=world.pat, original_name="export.xml", format="apple-health-xml",
                             status=ImportJob.FAILED, read=7, accepted=4, batches=2,
                             error="export.xml: the XML is cut short at line 31, column 4")
    client.force_login(world.alice.user)
    page = client.get(f"/dashboard/patients/{world.pat.pk}/").content.decode()
    section = page[page.index('id="imports"'):]
    section = section[:section.index("</section>")]
    assert "export.xml" in section and "st-failed" in section
    assert "cut short at line 31, column 4" in section
    assert '<td data-label="Read">7</td><td data-label="Accepted">4</td>' in section


def test_a_session_signed_body_over_the_limit_is_not_parsed_and_answers_413(world, client, settings):
    """A session client's POST is read by the CSRF check before the view runs: the first
    upload handler leaves a body over the limit unread, and the view answers 413."""
    settings.IMPORT_MAX_BYTES = 1024
    client.force_login(world.pat.user)
    body = (b"--b\r\nContent-Disposition: form-data; name=\"file\"; filename=\"x.json\"\r\n\r\n"
            + b"[" + b" " * 100_000 + b"]\r\n--b--\r\n")
    r = client.generic("POST", f"/api/v1/patients/{world.pat.pk}/imports", body,
                       content_type="multipart/form-data; boundary=b")
    assert r.status_code == 413, r.content
    assert r.json()["errors"][0]["field"] == "file"
    assert not ImportJob.objects.exists()


def test_the_first_upload_handler_leaves_an_oversize_body_unread(settings):
    from io import BytesIO

    from api.parsers import ENVELOPE_BYTES, OversizeUploadHandler

    settings.IMPORT_MAX_BYTES = 1024
    stream = BytesIO(b"x" * 10)
    handler = OversizeUploadHandler()
    post, files = handler.handle_raw_input(stream, {}, 1024 + ENVELOPE_BYTES + 1, b"b")
    assert (dict(post), dict(files), stream.tell()) == ({}, {}, 0)
    assert handler.handle_raw_input(stream, {}, 1024, b"b") is None


def test_a_patient_with_imports_still_in_progress_at_the_limit_is_answered_429(world, as_user, settings):
    settings.IMPORT_MAX_PENDING = 2
    for status in (ImportJob.QUEUED, ImportJob.RUNNING, ImportJob.DONE):
        ImportJob.objects.create(patient=world.pat, original_name="x.json", format="fitbit-steps-json",
                                 status=status)
    r = upload(as_user(world.pat), world.pat.pk, file=fitbit_file())
    assert r.status_code == 429 and r["Retry-After"] == "60"
    assert reason(r) == ("(request)", "2 imports are still in progress for this patient; "
                                      "upload again when one has ended")
    ImportJob.objects.filter(status=ImportJob.RUNNING).update(status=ImportJob.FAILED)
    assert upload(as_user(world.pat), world.pat.pk, file=fitbit_file()).status_code == 202


def test_a_waiting_upload_is_deleted_with_its_job_or_its_patient_once_that_commits(
        world, as_user, import_dir, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=False):
        assert upload(as_user(world.pat), world.pat.pk, file=fitbit_file()).status_code == 202
        assert upload(as_user(world.pat), world.pat.pk, file=fitbit_file()).status_code == 202
    first, second = (Path(j.stored_path) for j in ImportJob.objects.order_by("pk"))
    assert first.exists() and second.exists()
    with django_capture_on_commit_callbacks(execute=True):
        ImportJob.objects.order_by("pk").first().delete()
    assert not first.parent.exists() and second.exists()
    with django_capture_on_commit_callbacks(execute=False) as pending:
        world.pat.delete()  # the jobs go with the patient (CASCADE)
    assert second.exists()  # not before the deletion commits
    for callback in pending:
        callback()
    assert not second.parent.exists() and list(import_dir.iterdir()) == []


def test_the_schema_documents_the_upload_as_a_binary_file_part(client):
    """A FileField reads as ``format: uri`` in the schema: generated clients (and the fuzz
    run) then sent the export as a text field, which the endpoint refuses."""
    schema = client.get("/api/schema/?format=json").json()
    form = schema["paths"]["/api/v1/patients/{patient_id}/imports"]["post"]["requestBody"]["content"]
    ref = form["multipart/form-data"]["schema"]["$ref"].rsplit("/", 1)[1]
    assert schema["components"]["schemas"][ref]["properties"]["file"] == {
        "type": "string", "format": "binary",
        "description": schema["components"]["schemas"][ref]["properties"]["file"]["description"]}
