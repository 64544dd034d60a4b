"""The live path on the real database: features from rollups, the registry's promotion
rule, nightly training, daily forecasts, and the forecasts API."""

from __future__ import annotations

import subprocess
import sys
from datetime import timedelta

import numpy as np
import pytest
from django.contrib.auth import get_user_model
from rest_framework.test import APIClient

from care.models import AuditEvent, Patient
from forecasting import registry, service
from forecasting.features import daily_features, hourly_from_frame
from forecasting.forecasters import make
from forecasting.models import Forecast, ModelVersion
from forecasting.rollups import hourly_from_db
from ingest.simulator import simulate_cohort
from tests.forecasting.conftest import midnight_days_ago, store_frame

pytestmark = pytest.mark.django_db(transaction=True)
DAYS = 45


@pytest.fixture
def cohort_in_db(db):
    """Three simulated patients (with logins) whose last DAYS days are in the store."""
    start = midnight_days_ago(DAYS)
    cohort = simulate_cohort(3, DAYS, start=start, seed=5)
    User = get_user_model()
    patients = []
    for sim_id, frame in cohort.frames.items():
        user = User.objects.create_user(f"fc-patient-{sim_id}", password="x-very-long-pass")
        p = Patient.objects.create(user=user, display_name=f"Forecast test {sim_id}", timezone="UTC")
        store_frame(p.pk, frame)
        patients.append((p, frame))
    return patients


def test_features_from_the_rollups_equal_features_from_the_recording(cohort_in_db):
    patient, frame = cohort_in_db[0]
    start, end = midnight_days_ago(DAYS + 1), midnight_days_ago(-1)
    from_db = daily_features(hourly_from_db([patient.pk], start, end))[patient.pk]
    from_frame = daily_features(hourly_from_frame(patient.pk, frame))[patient.pk]
    assert len(from_db) == len(from_frame) >= DAYS - 1
    cols = ["resting_hr", "hr_mean", "hr_range", "steps", "active_minutes", "sleep_minutes", "hrv"]
    np.testing.assert_allclose(from_db[cols].to_numpy(), from_frame[cols].to_numpy(), rtol=1e-9,
                               equal_nan=True)
    assert from_frame["resting_hr"].notna().sum() >= DAYS - 3


def test_rollups_are_read_under_djangos_debug_cursor_as_make_run_uses(cohort_in_db):
    """DEBUG=1 (make run) gives Django's debug cursor, whose copy() takes no params: the
    COPY read once failed there, and with it the stack's demo set-up (seed_demo's advice)."""
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    patient, _ = cohort_in_db[0]
    start, end = midnight_days_ago(DAYS + 1), midnight_days_ago(-1)
    plain = hourly_from_db([patient.pk], start, end)
    with CaptureQueriesContext(connection):  # forces the debug cursor
        debug = hourly_from_db([patient.pk], start, end)
    assert len(debug.hours) == len(plain.hours) > 0


def _version(metric: str, mase: float, promoted: bool = False) -> ModelVersion:
    mv = registry.register(metric, make("seasonal_naive"), metrics={"mase": mase},
                           train_start=None, train_end=None, n_series=1)
    if promoted:
        assert registry.promote_if_better(mv, None)
    return mv


def test_promotion_keeps_a_worse_model_out(db):
    current = _version("resting_hr", 0.80, promoted=True)
    worse = _version("resting_hr", 0.90)
    assert registry.promote_if_better(worse, current_score=0.80) is False
    assert registry.promoted("resting_hr") == current
    better = _version("resting_hr", 0.70)
    assert registry.promote_if_better(better, current_score=0.80) is True
    assert registry.promoted("resting_hr") == better
    assert ModelVersion.objects.filter(metric="resting_hr", promoted=True).count() == 1
    assert [v.version for v in ModelVersion.objects.filter(metric="resting_hr")] == [3, 2, 1]


def test_a_model_without_a_score_is_never_promoted(db):
    mv = registry.register("steps", make("naive"), metrics={}, train_start=None, train_end=None,
                           n_series=0)
    assert registry.promote_if_better(mv, current_score=None) is False
    assert registry.promoted("steps") is None


def test_training_then_forecasting_gives_every_patient_forecasts_readable_through_the_api(
        cohort_in_db, settings):
    settings.FORECAST_BASELINES = ["naive", "seasonal_naive"]
    small = {"epochs": 2, "units": 8, "dense": 8, "window": 14}
    first = service.train_metric("resting_hr", days=DAYS - 1, holdout_days=10, lstm=small)
    assert first.version.promoted  # the LSTM, or the best baseline if the LSTM lost
    assert registry.promoted("resting_hr") is not None
    lstm = ModelVersion.objects.get(metric="resting_hr", kind="lstm")
    # train_end is the last day the candidate trained on: the first origin, after the cut.
    assert lstm.artifact and lstm.train_end == service.last_complete_day() - timedelta(days=9)
    assert set(lstm.metrics["compared"]) == {"candidate", "naive", "seasonal_naive"}
    # The same night again is a no-op (idempotent).
    again = service.train_metric("resting_hr", days=DAYS - 1, holdout_days=10, lstm=small)
    assert again.reused and ModelVersion.objects.filter(metric="resting_hr", kind="lstm").count() == 1

    old_day = service.last_complete_day() - timedelta(days=200)
    stale = Forecast.objects.create(
        patient=cohort_in_db[2][0], metric="resting_hr", issued_on=old_day,
        target_date=old_day + timedelta(days=1), horizon_days=1, mean=60, p10=58, p50=60, p90=62,
        model_version=registry.promoted("resting_hr"))
    written = service.forecast_metric("resting_hr")
    assert written == 3 * 14
    assert not Forecast.objects.filter(pk=stale.pk).exists()  # old issues are pruned
    assert service.forecast_metric("resting_hr") == written  # re-run replaces, never duplicates
    assert Forecast.objects.filter(metric="resting_hr").count() == written
    row = Forecast.objects.filter(metric="resting_hr", horizon_days=7).first()
    assert row.p10 <= row.p50 <= row.p90 and 40 < row.mean < 90

    patient = cohort_in_db[0][0]
    client = APIClient()
    client.force_authenticate(patient.user)
    resp = client.get(f"/api/v1/patients/{patient.pk}/forecasts", {"metric": "resting_hr"})
    assert resp.status_code == 200
    body = resp.json()
    assert len(body["points"]) == 14
    assert body["model_version"]["version"] == registry.promoted("resting_hr").version
    assert body["points"][0]["horizon_days"] == 1
    assert {"date", "mean", "p10", "p50", "p90"} <= set(body["points"][0])
    assert AuditEvent.objects.filter(patient=patient, action="read_forecasts").exists()

    other = cohort_in_db[1][0]
    assert client.get(f"/api/v1/patients/{other.pk}/forecasts", {"metric": "resting_hr"}).status_code == 404
    bad = client.get(f"/api/v1/patients/{patient.pk}/forecasts", {"metric": "weight"})
    assert bad.status_code == 400 and bad.json()["errors"][0]["field"] == "metric"


def test_the_api_process_never_imports_tensorflow():
    code = ("import django, sys; django.setup(); import config.urls, api.forecasts, "
            "forecasting.tasks, forecasting.service; print('tensorflow' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                         env={**__import__("os").environ, "DJANGO_SETTINGS_MODULE": "config.settings"})
    assert out.returncode == 0, out.stderr[-500:]
    assert out.stdout.strip() == "False"


def test_the_two_commands_train_then_forecast_for_every_active_patient(cohort_in_db, settings):
    import io

    from django.core.management import call_command

    settings.FORECAST_LSTM_UNITS = 8
    out = io.StringIO()
    call_command("train_forecasters", "--metric", "resting_hr", "--epochs", "1", "--days", str(DAYS - 1),
                 stdout=out)
    assert "resting_hr-v1-lstm" in out.getvalue()
    assert registry.promoted("resting_hr") is not None
    out = io.StringIO()
    call_command("forecast", "--metric", "resting_hr", stdout=out)
    assert "resting_hr: 42 forecast days written" in out.getvalue()
    patients = {p.pk for p, _ in cohort_in_db}
    assert set(Forecast.objects.values_list("patient_id", flat=True)) == patients


def test_a_fresh_install_with_two_weeks_of_data_still_forecasts_every_patient(db, settings):
    """Too little history for the LSTM: a baseline becomes the first version."""
    settings.FORECAST_BASELINES = ["naive", "seasonal_naive"]
    cohort = simulate_cohort(2, 12, start=midnight_days_ago(12), seed=9)
    for sim_id, frame in cohort.frames.items():
        p = Patient.objects.create(display_name=f"Fresh {sim_id}", timezone="UTC")
        store_frame(p.pk, frame)
    out = service.train_metric("resting_hr", lstm={"epochs": 1, "units": 8})
    assert out.promoted and out.version.kind in {"naive", "seasonal_naive"}
    assert not ModelVersion.objects.filter(kind="lstm").exists()
    assert service.forecast_metric("resting_hr") == 2 * 14


def test_the_start_up_task_trains_and_forecasts_once_when_nothing_is_promoted(cohort_in_db, settings):
    from forecasting.tasks import bootstrap_forecasts

    settings.FORECAST_BASELINES = ["naive", "seasonal_naive"]
    settings.FORECAST_LSTM_EPOCHS, settings.FORECAST_LSTM_UNITS = 1, 4
    out = bootstrap_forecasts.run(["resting_hr"])
    assert out["forecast"]["resting_hr"] > 0
    assert registry.promoted("resting_hr") is not None
    assert Forecast.objects.filter(metric="resting_hr").values("patient").distinct().count() == 3
    # Once a model is promoted, a restart does not train again.
    assert "skipped" in bootstrap_forecasts.run(["resting_hr"])
