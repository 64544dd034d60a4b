"""Findings of the attacker's pass over `make run` (issue 15): each test failed before its fix.

1 snooze bound in the dashboard, 5 row limit on samples, 6 inputs that used to answer 500,
7 off-site `next`, 9 Swagger UI served from the package.
"""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.test import Client
from django.utils import timezone
from rest_framework.test import APIClient

from alerts.models import Alert
from tests.api.factories import PASSWORD, minute_heart_rate


def _signed_in(who) -> Client:
    c = Client()
    c.force_login(who.user)
    return c


def _nested(depth: int) -> bytes:
    return b"[" * depth + b"]" * depth


# ------------------------------------------------------------ 1: snooze bound

def test_the_dashboard_refuses_a_snooze_until_2099(world):
    r = _signed_in(world.alice).post(f"/dashboard/alerts/{world.red.pk}/snooze",
                                     {"until": "2099-01-01T00:00:00Z"}, follow=True)
    assert "at most 30 days" in r.content.decode()
    assert Alert.objects.get(pk=world.red.pk).snoozed_until is None


def test_the_dashboard_refuses_a_snooze_of_more_than_30_days_in_hours(world):
    r = _signed_in(world.alice).post(f"/dashboard/alerts/{world.red.pk}/snooze",
                                     {"hours": str(24 * 31)}, follow=True)
    assert "at most 30 days" in r.content.decode()
    assert Alert.objects.get(pk=world.red.pk).snoozed_until is None


def test_the_dashboard_snoozes_until_a_given_time_within_the_bound(world):
    until = (timezone.now() + timedelta(days=2)).replace(microsecond=0)
    _signed_in(world.alice).post(f"/dashboard/alerts/{world.red.pk}/snooze", {"until": until.isoformat()})
    assert Alert.objects.get(pk=world.red.pk).snoozed_until == until


# ------------------------------------------------------------ 5: samples row limit

def test_samples_at_one_minute_over_21_days_answer_400_naming_the_limit(world, as_user):
    start = (timezone.now() - timedelta(days=21)).isoformat()
    r = as_user(world.pat).get(f"/api/v1/patients/{world.pat.pk}/samples",
                               {"metric": "heart_rate", "resolution": "1m", "start": start})
    assert r.status_code == 400
    reason = r.json()["errors"][0]["reason"]
    assert "10000 points" in reason and "1m" in reason


def test_raw_samples_over_the_limit_answer_400(world, as_user, settings):
    settings.SAMPLES_MAX_POINTS = 100
    minute_heart_rate(world.pat.pk, days=1)
    start = (timezone.now() - timedelta(days=2)).isoformat()
    r = as_user(world.pat).get(f"/api/v1/patients/{world.pat.pk}/samples",
                               {"metric": "heart_rate", "resolution": "raw", "start": start})
    assert r.status_code == 400 and "100 points" in r.json()["errors"][0]["reason"]
    ok = as_user(world.pat).get(f"/api/v1/patients/{world.pat.pk}/samples",
                                {"metric": "heart_rate", "resolution": "1h", "start": start})
    assert ok.status_code == 200 and 0 < len(ok.json()["points"]) <= 100


# ------------------------------------------------------------ 6: no more 500s

@pytest.mark.parametrize("path", ["/api/v1/auth/token", "/api/v1/patients/{pat}/context",
                                  "/api/v1/alerts/{red}/notes"])
def test_deeply_nested_json_answers_400_not_500(world, as_user, path):
    client = APIClient() if "auth" in path else as_user(world.alice if "alerts" in path else world.pat)
    url = path.format(pat=world.pat.pk, red=world.red.pk)
    r = client.post(url, data=_nested(100_000), content_type="application/json")
    assert r.status_code == 400
    assert "nested" in r.json()["errors"][0]["reason"]


def test_json_nested_a_little_deeper_than_allowed_answers_400_and_shallow_json_passes(world):
    r = APIClient().post("/api/v1/auth/token", data=b'{"username": [[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[['
                         + b"]" * 34 + b"}", content_type="application/json")
    assert r.status_code == 400 and "nested" in r.json()["errors"][0]["reason"]
    r = APIClient().post("/api/v1/auth/token", {"username": "pat", "password": PASSWORD}, format="json")
    assert r.status_code == 200


def test_a_nul_byte_in_a_json_string_answers_400(world, as_user):
    r = as_user(world.alice).post(f"/api/v1/alerts/{world.red.pk}/notes",
                                  data=b'{"text": "a\\u0000b"}', content_type="application/json")
    assert r.status_code == 400 and "NUL" in r.json()["errors"][0]["reason"]


@pytest.mark.parametrize("param", ["q", "detector"])
def test_a_nul_byte_in_a_query_parameter_answers_400_in_the_api(world, as_user, param):
    r = as_user(world.alice).get("/api/v1/alerts", {param: "a\x00b"})
    assert r.status_code == 400
    assert r.json()["errors"][0] == {"field": param, "reason": "must not contain NUL (0x00) characters"}
    assert as_user(world.alice).get("/api/v1/patients", {"q": "a\x00"}).status_code == 400


@pytest.mark.parametrize("url", ["/dashboard/", "/dashboard/queue/rows", "/dashboard/patients/"])
def test_a_nul_byte_in_a_query_parameter_answers_400_in_the_dashboard(world, url):
    for param in ("q", "detector"):
        r = _signed_in(world.alice).get(url, {param: "x\x00"})
        assert r.status_code == 400 and b"NUL" in r.content


@pytest.mark.parametrize("target", ["clinician:\u0661\u0662", "clinician:\u00b2", "clinician:" + "9" * 5000,
                                    "team:" + "1" * 30])
def test_escalate_with_odd_digits_or_a_huge_id_is_refused_not_500(world, target):
    c = _signed_in(world.alice)
    for confirm in ("", "yes"):
        r = c.post(f"/dashboard/alerts/{world.red.pk}/escalate", {"target": target, "confirm": confirm},
                   follow=True)
        assert r.status_code == 200
        assert "target: " in r.content.decode()
    assert Alert.objects.get(pk=world.red.pk).status == "open"


@pytest.mark.parametrize("field", ["hours", "revert", "alert"])
def test_other_dashboard_ids_with_odd_digits_are_refused_not_500(world, field):
    c = _signed_in(world.alice)
    if field == "hours":
        r = c.post(f"/dashboard/alerts/{world.red.pk}/snooze", {"hours": "\u00b2"})
    elif field == "revert":
        r = c.post(f"/dashboard/patients/{world.pat.pk}/thresholds", {"revert": "\u0661", "reason": "why not"})
    else:
        r = c.post("/dashboard/alerts/acknowledge", {"alert": ["\u0661", "9" * 5000]})
    assert r.status_code == 302
    assert Alert.objects.get(pk=world.red.pk).status == "open"


def test_the_dashboard_refuses_an_impossible_snooze_date_with_a_message(world):
    r = _signed_in(world.alice).post(f"/dashboard/alerts/{world.red.pk}/snooze",
                                     {"until": "2026-02-30"}, follow=True)
    assert r.status_code == 200
    assert "until: " in r.content.decode() and "is not an ISO 8601 date-time" in r.content.decode()
    assert Alert.objects.get(pk=world.red.pk).snoozed_until is None


def test_the_api_refuses_an_impossible_snooze_date_with_400(world, as_user):
    r = as_user(world.alice).post(f"/api/v1/alerts/{world.red.pk}/snooze", {"until": "2026-02-30"},
                                  format="json")
    assert r.status_code == 400 and r.json()["errors"][0]["field"] == "until"


# ------------------------------------------------------------ 7: off-site next

@pytest.mark.parametrize("nxt", ["https://other.example/", "//other.example/dashboard/",
                                 "/\\other.example/", "/dashboard/\\\\other.example"])
def test_a_failed_dashboard_action_never_redirects_off_site(world, nxt):
    c = _signed_in(world.alice)
    for url, data in ((f"/dashboard/alerts/{world.red.pk}/resolve", {"reason": "", "next": nxt}),
                      (f"/dashboard/alerts/{world.red.pk}/acknowledge", {"next": nxt}),
                      ("/dashboard/alerts/acknowledge", {"next": nxt})):
        r = c.post(url, data)
        assert r.status_code == 302
        location = r["Location"]
        assert location.startswith("/dashboard/") and "other.example" not in location, location


def test_a_failed_action_still_returns_to_a_dashboard_page(world):
    r = _signed_in(world.alice).post(f"/dashboard/alerts/{world.red.pk}/resolve",
                                     {"reason": "", "next": f"/dashboard/patients/{world.pat.pk}/"})
    assert r["Location"] == f"/dashboard/patients/{world.pat.pk}/"


# ------------------------------------------------------------ 9: Swagger UI offline

def test_swagger_ui_loads_its_javascript_from_this_server(world):
    r = Client().get("/api/docs/")
    assert r.status_code == 200
    page = r.content.decode()
    assert "cdn.jsdelivr" not in page and "unpkg" not in page
    assert "/static/drf_spectacular_sidecar/swagger-ui-dist/swagger-ui-bundle.js" in page
    assert "<style" not in page and "<script>" not in page, "inline code a strict CSP would block"
    js = Client().get("/static/drf_spectacular_sidecar/swagger-ui-dist/swagger-ui-bundle.js")
    assert js.status_code == 200
    init = Client().get("/api/docs/?script=")
    assert init.status_code == 200 and "SwaggerUIBundle" in init.content.decode()
