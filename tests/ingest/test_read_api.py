"""GET /api/v1/patients/{id}/samples: automatic resolution from the rollups, and access."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from django.contrib.auth import get_user_model

from care.models import AuditEvent, Patient
from ingest import storage
from ingest.schema import Batch
from lib import db

pytestmark = pytest.mark.django_db(transaction=True)
T0 = datetime(2025, 5, 1, tzinfo=UTC)


def write(patient_id: int, minutes: int) -> None:
    """Store minute heart rate the way the sink does (partitions, COPY, rollups)."""
    t0 = int(T0.timestamp() * 1000)
    samples = [{"metric": "heart_rate", "time": t0 + i * 60_000, "value": 60.0 + i % 10} for i in range(minutes)]
    samples += [{"metric": "sleep_stage", "time": t0 + 3_600_000, "end": t0 + 5_400_000, "stage": "deep", "value": None}]
    cols = storage.columns_from_batches([Batch("b", patient_id, None, samples, "d")])
    with db.connect(autocommit=False) as conn:
        storage.PartitionKeeper().ensure(conn, t0, t0 + minutes * 60_000)
        with conn.transaction(), conn.cursor() as cur:
            storage.copy_samples(cur, cols)
            storage.update_rollups(cur, cols)


@pytest.fixture
def owner(client):
    user = get_user_model().objects.create_user(f"reader-{datetime.now().timestamp()}", password="pw-12345678")
    patient = Patient.objects.create(user=user, display_name="reader")
    write(patient.pk, 3 * 24 * 60)
    client.force_login(user)
    return patient


def get(client, patient_id, **params):
    return client.get(f"/api/v1/patients/{patient_id}/samples", params)


@pytest.mark.parametrize(
    ("span", "resolution", "points"),
    [
        (timedelta(hours=10), "raw", 600),
        (timedelta(hours=20), "1h", 20),
        (timedelta(days=3), "1h", 72),
        (timedelta(days=60), "1d", 3),
    ],
)
def test_auto_resolution_serves_at_most_about_a_thousand_points(client, owner, span, resolution, points):
    r = get(client, owner.pk, metric="heart_rate", start=T0.isoformat(), end=(T0 + span).isoformat())
    assert r.status_code == 200, r.content
    body = r.json()
    assert body["resolution"] == resolution
    assert len(body["points"]) == points


def test_rollup_points_carry_mean_min_max_and_count(client, owner):
    r = get(client, owner.pk, metric="heart_rate", start=T0.isoformat(), end=(T0 + timedelta(days=1)).isoformat(),
            resolution="1h")
    first = r.json()["points"][0]
    assert first == {"time": T0.isoformat(), "local_time": T0.isoformat(), "mean": 64.5, "min": 60.0, "max": 69.0, "count": 60, "sum": 3870.0}


def test_sleep_is_served_as_minutes_per_stage_per_night(client, owner):
    r = get(client, owner.pk, metric="sleep_stage", start=(T0 - timedelta(days=1)).isoformat(),
            end=(T0 + timedelta(days=2)).isoformat(), resolution="1d")
    assert r.json()["points"] == [{"night": "2025-04-30", "stage": "deep", "minutes": 30.0}]


def test_a_read_writes_an_audit_event(client, owner):
    get(client, owner.pk, metric="heart_rate", start=T0.isoformat(), end=(T0 + timedelta(hours=1)).isoformat())
    event = AuditEvent.objects.filter(patient=owner, action="read_samples").get()
    assert event.actor == owner.user and event.detail["metric"] == "heart_rate"


def test_another_patient_and_anonymous_requests_get_no_data(client, owner):
    other = get_user_model().objects.create_user("someone-else", password="pw-12345678")
    Patient.objects.create(user=other, display_name="other")
    client.force_login(other)
    r = get(client, owner.pk, metric="heart_rate")
    assert r.status_code == 404 and "points" not in r.json()
    client.logout()
    assert get(client, owner.pk, metric="heart_rate").status_code in (401, 403)


@pytest.mark.parametrize(("params", "field"), [
    ({"metric": "glucose"}, "metric"),
    ({"metric": "heart_rate", "start": "tomorrow"}, "start"),
    ({"metric": "heart_rate", "start": "2025-05-02T00:00:00Z", "end": "2025-05-01T00:00:00Z"}, "end"),
    ({"metric": "heart_rate", "resolution": "5s"}, "resolution"),
])
def test_bad_query_parameters_are_named(client, owner, params, field):
    r = get(client, owner.pk, **params)
    assert r.status_code == 400
    assert r.json()["errors"][0]["field"] == field


def test_minute_points_are_binned_from_raw_rows(client, owner):
    r = get(client, owner.pk, metric="heart_rate", start=T0.isoformat(), end=(T0 + timedelta(hours=2)).isoformat(),
            resolution="1m")
    points = r.json()["points"]
    assert len(points) == 120
    assert points[3] == {"time": (T0 + timedelta(minutes=3)).isoformat(),
                         "local_time": (T0 + timedelta(minutes=3)).isoformat(), "mean": 63.0, "min": 63.0, "max": 63.0,
                         "count": 1, "sum": 63.0}


def test_an_end_with_an_impossible_offset_is_a_400_not_a_server_error(client, owner):
    r = get(client, owner.pk, metric="heart_rate", end="9999-12-31T23:59:59-23:59")
    assert r.status_code == 400
    assert r.json()["errors"][0]["field"] == "end"
