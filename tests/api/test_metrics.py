"""Prometheus metrics (issue 15): the API's /metrics shows request latency by view, the
samples written to the store and the Celery task timings; no label names a patient."""

from __future__ import annotations

import re

import pytest
from django.test import Client
from prometheus_client.parser import text_string_to_metric_families

from config import celery as celery_module
from tests.api.factories import minute_heart_rate


def _scrape(client: Client | None = None, **headers) -> dict[str, float]:
    r = (client or Client()).get("/metrics", **headers)
    assert r.status_code == 200, r.status_code
    values: dict[str, float] = {}
    for family in text_string_to_metric_families(r.content.decode()):
        for s in family.samples:
            key = s.name + ("{" + ",".join(f"{k}={v}" for k, v in sorted(s.labels.items())) + "}" if s.labels else "")
            values[key] = s.value
    return values


def _total(values: dict[str, float], prefix: str) -> float:
    return sum(v for k, v in values.items() if k == prefix or k.startswith(prefix + "{"))


def test_the_api_scrape_shows_stored_samples_and_request_latency_by_view(world, as_user):
    before = _scrape()
    minute_heart_rate(world.pat.pk, days=1)
    assert as_user(world.pat).get(f"/api/v1/patients/{world.pat.pk}/chart?days=7").status_code == 200
    after = _scrape()
    assert _total(after, "healthstream_samples_stored_total") > _total(before, "healthstream_samples_stored_total")
    assert _total(after, "healthstream_store_write_seconds_count") > _total(before, "healthstream_store_write_seconds_count")
    views = [k for k in after if k.startswith("django_http_requests_latency_seconds_by_view_method_count")]
    assert any("view=patient-chart" in k for k in views), views[:5]
    text = Client().get("/metrics").content.decode()
    assert not re.search(r'patient(_id)?="?\d', text) and world.pat.display_name not in text


def test_celery_task_durations_are_recorded_by_task_and_state():
    class FakeTask:  # the signal's sender: only its name is read
        name = "coaching.tasks.daily"

    celery_module._task_started(task_id="t-1")
    celery_module._task_finished(task_id="t-1", task=FakeTask(), state="SUCCESS")
    values = _scrape()
    assert values["healthstream_celery_task_seconds_count{state=SUCCESS,task=coaching.tasks.daily}"] >= 1


@pytest.mark.parametrize("auth,code", [("", 403), ("Bearer wrong", 403), ("Bearer s3cret-scrape", 200)])
def test_with_a_metrics_token_only_the_scraper_may_read(settings, auth, code):
    settings.METRICS_TOKEN = "s3cret-scrape"
    headers = {"HTTP_AUTHORIZATION": auth} if auth else {}
    assert Client().get("/metrics", **headers).status_code == code
