"""The one schema module: what it accepts, and the precise errors it gives."""

from __future__ import annotations

import pytest

from ingest.schema import BatchError, parse_message, to_message, validate_upload

NOW = 1_764_000_000_000  # a fixed "now" (2025-11-24)


def upload(*samples, batch_id="b-1", **extra):
    return {"schema_version": 1, "batch_id": batch_id, "samples": list(samples), **extra}


def errors_of(obj, **kw) -> list[dict]:
    with pytest.raises(BatchError) as info:
        validate_upload(obj, patient=1, device=2, max_samples=kw.pop("max_samples", 100), now=NOW, **kw)
    return info.value.errors


def test_it_accepts_every_metric_and_both_time_forms():
    batch = validate_upload(
        upload(
            {"metric": "heart_rate", "time": "2025-11-24T15:00:00+01:00", "value": 61},
            {"metric": "steps", "time": NOW - 120_000, "end": NOW - 60_000, "value": 40},
            {"metric": "sleep_stage", "time": "2025-11-24T02:00:00Z", "end": "2025-11-24T02:30:00Z", "stage": "deep"},
            {"metric": "activity", "time": NOW - 3_600_000, "end": NOW - 1_800_000, "type": "running",
             "intensity": "vigorous", "energy": 300.5},
            {"metric": "hrv_rmssd", "time": NOW - 1000, "value": 45.2},
        ),
        patient=1, device=2, max_samples=10, now=NOW,
    )
    assert [s["metric"] for s in batch.samples] == ["heart_rate", "steps", "sleep_stage", "activity", "hrv_rmssd"]
    assert batch.samples[0]["time"] == 1_763_992_800_000  # 14:00Z
    assert batch.samples[2] == {"metric": "sleep_stage", "time": 1_763_949_600_000, "end": 1_763_951_400_000,
                                "stage": "deep", "value": None}
    assert batch.samples[3]["type"] == "running" and batch.samples[3]["value"] == 300.5


def test_the_same_samples_in_either_time_form_have_the_same_digest():
    a = validate_upload(upload({"metric": "heart_rate", "time": "2025-11-24T17:00:00+01:00", "value": 70}),
                        patient=1, device=2, max_samples=10, now=NOW)
    b = validate_upload(upload({"metric": "heart_rate", "time": NOW, "value": 70}),
                        patient=1, device=2, max_samples=10, now=NOW)
    c = validate_upload(upload({"metric": "heart_rate", "time": NOW, "value": 71}),
                        patient=1, device=2, max_samples=10, now=NOW)
    assert a.digest == b.digest
    assert c.digest != b.digest


@pytest.mark.parametrize(
    ("sample", "field", "reason_part"),
    [
        ({"metric": "heart_rate", "time": NOW, "value": 0}, "samples[0].value", "impossible"),
        ({"metric": "heart_rate", "time": NOW, "value": 400}, "samples[0].value", "impossible"),
        ({"metric": "heart_rate", "time": NOW, "value": "72"}, "samples[0].value", "must be a number"),
        ({"metric": "heart_rate", "time": NOW, "value": True}, "samples[0].value", "must be a number"),
        ({"metric": "blood_sugar", "time": NOW, "value": 5}, "samples[0].metric", "unknown metric"),
        ({"metric": "heart_rate", "time": NOW + 6 * 60_000, "value": 60}, "samples[0].time", "future"),
        ({"metric": "heart_rate", "time": "2025-11-24T10:00:00", "value": 60}, "samples[0].time", "UTC offset"),
        ({"metric": "heart_rate", "time": "yesterday", "value": 60}, "samples[0].time", "RFC 3339"),
        ({"metric": "heart_rate", "time": 1_700_000_000, "value": 60}, "samples[0].time", "before 1990"),
        ({"metric": "heart_rate", "value": 60}, "samples[0].time", "required"),
        ({"metric": "steps", "time": NOW - 60_000, "end": NOW - 120_000, "value": 5}, "samples[0].end", "after time"),
        ({"metric": "steps", "time": NOW - 60_000, "value": 5}, "samples[0].end", "required"),
        ({"metric": "steps", "time": NOW - 60_000, "end": NOW, "value": 5000}, "samples[0].value", "impossible"),
        ({"metric": "sleep_stage", "time": NOW - 60_000, "end": NOW, "stage": "dreaming"}, "samples[0].stage", "must be one of"),
        ({"metric": "activity", "time": NOW - 60_000, "end": NOW, "type": "", "intensity": "hard"}, "samples[0].type", "1 to 64"),
        ({"metric": "heart_rate", "time": NOW, "value": 60, "unit": "bpm"}, "samples[0].unit", "not a field"),
        ("60 bpm", "samples[0]", "must be an object"),
    ],
)
def test_it_names_the_bad_field_and_the_reason(sample, field, reason_part):
    errors = errors_of(upload(sample))
    assert any(e["field"] == field and reason_part in e["reason"] for e in errors), errors


def test_one_bad_sample_refuses_the_whole_batch_and_each_error_is_listed():
    errors = errors_of(upload(
        {"metric": "heart_rate", "time": NOW, "value": 60},
        {"metric": "heart_rate", "time": NOW, "value": 0},
        {"metric": "heart_rate", "time": NOW, "value": 999},
    ))
    assert [e["field"] for e in errors] == ["samples[1].value", "samples[2].value"]


@pytest.mark.parametrize(
    ("obj", "field"),
    [
        ([], "(body)"),
        ({"samples": []}, "batch_id"),
        ({"batch_id": "x y", "samples": [{"metric": "heart_rate", "time": NOW, "value": 60}]}, "batch_id"),
        ({"batch_id": "ok", "samples": "none"}, "samples"),
        ({"batch_id": "ok", "samples": []}, "samples"),
        ({"batch_id": "ok", "schema_version": 2, "samples": [{"metric": "heart_rate", "time": NOW, "value": 60}]}, "schema_version"),
        ({"batch_id": "ok", "patient": 7, "samples": [{"metric": "heart_rate", "time": NOW, "value": 60}]}, "patient"),
    ],
)
def test_it_refuses_a_malformed_upload(obj, field):
    assert field in [e["field"] for e in errors_of(obj)]


def test_too_many_samples_is_refused_with_413():
    with pytest.raises(BatchError) as info:
        validate_upload(upload(*[{"metric": "heart_rate", "time": NOW, "value": 60}] * 11),
                        patient=1, device=2, max_samples=10, now=NOW)
    assert info.value.status == 413
    assert "at most 10" in info.value.errors[0]["reason"]


def test_errors_are_capped_with_a_count_of_the_rest():
    errors = errors_of(upload(*[{"metric": "heart_rate", "time": NOW, "value": 0}] * 80), max_samples=100)
    assert len(errors) == 51
    assert errors[-1]["reason"] == "and 30 more errors"


def test_a_message_round_trips_and_garbage_is_refused():
    batch = validate_upload(upload({"metric": "heart_rate", "time": NOW, "value": 60}),
                            patient=3, device=None, max_samples=10, now=NOW)
    back = parse_message(to_message(batch))
    assert (back.patient, back.device, back.batch_id, back.samples, back.digest) == (
        3, None, "b-1", batch.samples, batch.digest)
    for raw in (b"not json", b"[]", b'{"schema_version": 1, "patient": "x", "batch_id": "a", "samples": [1]}'):
        with pytest.raises(BatchError):
            parse_message(raw)
