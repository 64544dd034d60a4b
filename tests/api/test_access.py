"""The access matrix: every endpoint and page, against everyone who must be refused.

For each route: the person it is for gets an answer (positive control, so a refusal
below can never pass because the route is simply broken), and another patient, a
clinician of another team, a clinician whose patient revoked consent, an anonymous
request, a revoked device token and an active device token each get a refusal that
carries none of the patient's data.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

import pytest
from django.test import Client
from django.urls import get_resolver
from django.utils import timezone
from rest_framework.test import APIClient

from care.models import AuditEvent
from ingest.models import ImportJob
from tests.api.factories import World


@dataclass(frozen=True)
class Route:
    name: str  # the URL name: the coverage test compares these with the URLconf
    method: str
    path: str  # format fields: p (patient), a (alert), d (device), c (consent), r (advice), j (import)
    for_whom: str  # "patient", "clinician" or "both"
    body: object = None
    page: bool = False


def _future() -> str:
    return (timezone.now() + timedelta(hours=3)).isoformat()


ROUTES = [
    Route("patient", "get", "/api/v1/patients/{p}", "both"),
    Route("patient", "patch", "/api/v1/patients/{p}", "patient", {"timezone": "Europe/Paris"}),
    Route("patient-devices", "get", "/api/v1/patients/{p}/devices", "patient"),
    Route("patient-devices", "post", "/api/v1/patients/{p}/devices", "patient", {"name": "new ring", "kind": "ring"}),
    Route("patient-device-revoke", "post", "/api/v1/patients/{p}/devices/{d}/revoke", "patient"),
    Route("patient-imports", "get", "/api/v1/patients/{p}/imports", "both"),
    Route("patient-import", "get", "/api/v1/patients/{p}/imports/{j}", "both"),
    Route("patient-consents", "get", "/api/v1/patients/{p}/consents", "patient"),
    Route("patient-consents", "post", "/api/v1/patients/{p}/consents", "patient", "TEAM_B"),
    Route("patient-consent-revoke", "post", "/api/v1/patients/{p}/consents/{c}/revoke", "patient"),
    Route("patient-daily", "get", "/api/v1/patients/{p}/daily", "both"),
    Route("patient-chart", "get", "/api/v1/patients/{p}/chart?days=7", "both"),
    Route("patient-samples", "get", "/api/v1/patients/{p}/samples?metric=heart_rate", "both"),
    Route("patient-recommendations", "get", "/api/v1/patients/{p}/recommendations", "both"),
    Route("patient-recommendation-feedback", "post", "/api/v1/patients/{p}/recommendations/{r}/feedback",
          "patient", {"helpful": False, "context": ["travel"]}),
    Route("patient-context", "get", "/api/v1/patients/{p}/context", "both"),
    Route("patient-context", "post", "/api/v1/patients/{p}/context", "patient", "CONTEXT"),
    Route("patient-alerts", "get", "/api/v1/patients/{p}/alerts", "both"),
    Route("patient-alert", "get", "/api/v1/patients/{p}/alerts/{a}", "both"),
    Route("patient-access-log", "get", "/api/v1/patients/{p}/access-log", "patient"),
    Route("patient-timeline", "get", "/api/v1/patients/{p}/timeline", "clinician"),
    Route("patient-thresholds", "get", "/api/v1/patients/{p}/thresholds", "clinician"),
    Route("patient-threshold", "put", "/api/v1/patients/{p}/thresholds/hr_high_at_rest", "clinician",
          {"params": {"threshold": 130}}),
    Route("patient-threshold", "delete", "/api/v1/patients/{p}/thresholds/hr_high_at_rest", "clinician"),
    Route("patient-fhir-observations", "get", "/api/v1/patients/{p}/fhir/Observation", "both"),
    Route("fhir-observation-search", "get", "/fhir/R4/Observation?patient={p}", "both"),
    Route("patient-forecasts", "get", "/api/v1/patients/{p}/forecasts?metric=resting_hr", "both"),
    Route("alert", "get", "/api/v1/alerts/{a}", "clinician"),
    Route("alert-acknowledge", "post", "/api/v1/alerts/{a}/acknowledge", "clinician", {}),
    Route("alert-snooze", "post", "/api/v1/alerts/{a}/snooze", "clinician", "SNOOZE"),
    Route("alert-escalate", "post", "/api/v1/alerts/{a}/escalate", "clinician", "ESCALATE"),
    Route("alert-resolve", "post", "/api/v1/alerts/{a}/resolve", "clinician", {"reason": "called, all fine"}),
    Route("alert-notes", "post", "/api/v1/alerts/{a}/notes", "clinician", {"text": "phoned the patient"}),
    Route("alert-escalation-targets", "get", "/api/v1/alerts/{a}/escalation-targets", "clinician"),
    Route("patient", "get", "/dashboard/patients/{p}/", "clinician", page=True),
    Route("threshold", "post", "/dashboard/patients/{p}/thresholds", "clinician",
          {"detector": "hr_high_at_rest", "p.threshold": "125", "reason": "runner, high at rest"}, page=True),
    Route("alert-action", "post", "/dashboard/alerts/{a}/acknowledge", "clinician", {}, page=True),
]
# Lists: they answer everyone who is signed in, with only what that person may read.
LISTS = [
    Route("patients", "get", "/api/v1/patients", "both"),
    Route("alerts", "get", "/api/v1/alerts", "clinician"),
    Route("queue", "get", "/dashboard/", "clinician", page=True),
    Route("queue-rows", "get", "/dashboard/queue/rows", "clinician", page=True),
    Route("patients", "get", "/dashboard/patients/", "clinician", page=True),
]
# Routes that serve no patient's data (sign-in, who am I, team names).
NOT_PATIENT_DATA = {"auth-token", "auth-logout", "auth-logout-all", "me", "teams", "login", "logout",
                    "ingest-batches", "fhir-metadata", "schemas"}
# Routes with their own access tests: team aggregates, the queue's bulk acknowledge, undoing
# a snooze and the team's audit export (tests/api/test_quality.py,
# tests/dashboard/test_queue_views.py, tests/alerts/test_workflow.py, tests/api/test_audit.py).
OWN_TESTS = {"alert-quality", "quality", "bulk-acknowledge", "alert-unsnooze", "team-audit",
             # enrolment and team members: tests/api/test_enrolment.py
             "team-invitations", "team-invitation-revoke", "invitation-accept", "team-members", "team-member"}
# Uploading an export (POST .../imports, multipart) has its access tests in tests/api/test_imports.py;
# its GET shares the route name and is in ROUTES.


def _body(route: Route, w: World):
    specials = {
        "TEAM_B": {"team": w.team_b.pk},
        "CONTEXT": {"tags": ["alcohol"], "starts_at": (timezone.now() - timedelta(hours=5)).isoformat(),
                    "ends_at": timezone.now().isoformat()},
        "SNOOZE": {"until": _future()},
        "ESCALATE": {"clinician": w.carol.pk, "reason": "second opinion"},
    }
    return specials.get(route.body, route.body) if isinstance(route.body, str) else route.body


def _path(route: Route, w: World, patient=None, alert=None) -> str:
    patient = patient or w.pat
    alert = alert or w.red
    consent = w.pat.consents.first()
    job = (ImportJob.objects.filter(patient=w.pat).first()
           or ImportJob.objects.create(patient=w.pat, original_name="export.zip", format="apple-health-xml"))
    return route.path.format(p=patient.pk, a=alert.pk, d=w.device.pk, c=consent.pk, r=w.advice.pk, j=job.pk)


def _client(w: World, who: str, page: bool):
    """A client signed in as ``who``: a token for the API, a session for pages."""
    if who in ("anonymous",):
        return APIClient() if not page else Client()
    if who in ("device", "revoked_device"):
        token = w.device_token if who == "device" else w.revoked_device_token
        client = APIClient() if not page else Client()
        if page:
            client.defaults["HTTP_AUTHORIZATION"] = f"Device {token}"
        else:
            client.credentials(HTTP_AUTHORIZATION=f"Device {token}")
        return client
    person = {"pat": w.pat, "pat2": w.pat2, "alice": w.alice, "bob": w.bob}[who]
    if page:
        client = Client()
        client.force_login(person.user)
        return client
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {w.token(person)}")
    return client


def _call(client, route: Route, path: str, body, page: bool):
    method = getattr(client, route.method)
    if body is None:
        return method(path)
    if page:
        return method(path, body)
    return method(path, body, format="json")


def _ids(routes):
    return [f"{r.method.upper()} {r.path}" for r in routes]


REFUSALS = [
    ("another patient", "pat2", None),
    ("a clinician of another team", "bob", None),
    ("a clinician whose patient revoked consent", "alice", "revoked"),
    ("an anonymous request", "anonymous", None),
    ("a revoked device token", "revoked_device", None),
    ("an active device token (devices only push)", "device", None),
]


def _assert_refused_without_data(response, w: World, page: bool, patient_name: str):
    assert response.status_code in (302, 401, 403, 404), (response.status_code, response.content[:300])
    if response.status_code == 302:
        assert response["Location"].startswith("/dashboard/login/")
    content = response.content.decode()
    assert patient_name not in content
    assert "142.0" not in content  # alert evidence
    if not page and response.status_code != 302:
        assert set(response.json()) == {"errors"}


@pytest.mark.parametrize("route", ROUTES, ids=_ids(ROUTES))
@pytest.mark.parametrize("label,who,target", REFUSALS, ids=[r[0] for r in REFUSALS])
def test_every_route_refuses_everyone_but_its_people_and_shows_them_nothing(world, route, label, who, target):
    patient = world.revoked if target == "revoked" else world.pat
    alert = world.revoked_alert if target == "revoked" else world.red
    client = _client(world, who, route.page)
    response = _call(client, route, _path(route, world, patient, alert), _body(route, world), route.page)
    _assert_refused_without_data(response, world, route.page, patient.display_name)


API_ROUTES = [r for r in ROUTES + LISTS if not r.page] + [
    Route("me", "get", "/api/v1/me", "both"), Route("teams", "get", "/api/v1/teams", "both"),
    Route("auth-logout", "post", "/api/v1/auth/logout", "both"),
]


@pytest.mark.parametrize("route", API_ROUTES, ids=_ids(API_ROUTES))
@pytest.mark.parametrize("who", ["anonymous", "revoked_device"])
def test_every_api_route_answers_401_with_www_authenticate_when_signed_out(world, route, who):
    client = _client(world, who, False)
    response = _call(client, route, _path(route, world), _body(route, world), False)
    assert response.status_code == 401, (response.status_code, response.content[:300])
    assert response["WWW-Authenticate"] == "Token"
    assert set(response.json()) == {"errors"}


@pytest.mark.parametrize("route", ROUTES, ids=_ids(ROUTES))
def test_every_route_answers_the_people_it_is_for(world, route):
    people = {"patient": ["pat"], "clinician": ["alice"], "both": ["pat", "alice"]}[route.for_whom]
    for who in people:
        client = _client(world, who, route.page)
        response = _call(client, route, _path(route, world), _body(route, world), route.page)
        ok = (302,) if route.page and route.method == "post" else (200, 201, 204)
        assert response.status_code in ok, (who, response.status_code, response.content[:300])


ONE_SIDED = [r for r in ROUTES if r.for_whom != "both"]


@pytest.mark.parametrize("route", ONE_SIDED, ids=_ids(ONE_SIDED))
def test_a_patient_is_refused_what_belongs_to_the_care_team_and_a_clinician_what_belongs_to_the_patient(world, route):
    who = "alice" if route.for_whom == "patient" else "pat"
    response = _call(_client(world, who, route.page), route, _path(route, world), _body(route, world), route.page)
    assert response.status_code == 403, (response.status_code, response.content[:300])


@pytest.mark.parametrize("route", LISTS, ids=_ids(LISTS))
def test_lists_show_a_clinician_of_another_team_none_of_our_patients(world, route):
    response = _call(_client(world, "bob", route.page), route, route.path, None, route.page)
    assert response.status_code == 200
    content = response.content.decode()
    assert world.other.display_name in content  # bob's own patient is there
    for name in (world.pat.display_name, world.pat2.display_name, world.revoked.display_name):
        assert name not in content


@pytest.mark.parametrize("route", LISTS, ids=_ids(LISTS))
def test_lists_leave_out_a_patient_who_revoked_consent(world, route):
    response = _call(_client(world, "alice", route.page), route, route.path, None, route.page)
    assert response.status_code == 200
    content = response.content.decode()
    assert world.pat.display_name in content
    assert world.revoked.display_name not in content


@pytest.mark.parametrize("route", LISTS, ids=_ids(LISTS))
@pytest.mark.parametrize("who", ["anonymous", "revoked_device", "device"])
def test_lists_refuse_anonymous_requests_and_device_tokens(world, route, who):
    response = _call(_client(world, who, route.page), route, route.path, None, route.page)
    _assert_refused_without_data(response, world, route.page, world.pat.display_name)


def test_a_patient_sees_only_themself_in_the_patient_list(world, as_user):
    body = as_user(world.pat).get("/api/v1/patients").json()
    assert [p["id"] for p in body["results"]] == [world.pat.pk]


def test_the_matrix_covers_every_route_of_the_api_and_the_dashboard():
    names = set()
    for prefix in ("api.urls", "api.dashboard.urls", "api.fhir_urls"):
        for pattern in get_resolver(prefix).url_patterns:
            names.add(pattern.name)
    covered = {r.name for r in ROUTES + LISTS}
    assert names - covered - NOT_PATIENT_DATA - OWN_TESTS == set()


def test_revoking_consent_cuts_a_clinicians_access_at_once(world, as_user):
    alice = as_user(world.alice)
    assert alice.get(f"/api/v1/patients/{world.pat.pk}/chart").status_code == 200
    consent = world.pat.consents.get(team=world.team_a)
    r = as_user(world.pat).post(f"/api/v1/patients/{world.pat.pk}/consents/{consent.pk}/revoke")
    assert r.status_code == 200 and r.json()["active"] is False
    assert alice.get(f"/api/v1/patients/{world.pat.pk}/chart").status_code == 404
    assert alice.get(f"/api/v1/alerts/{world.red.pk}").status_code == 404


READS = [r for r in ROUTES if r.method == "get" and not r.page]


@pytest.mark.parametrize("route", READS, ids=_ids(READS))
def test_every_read_of_a_patients_data_writes_an_audit_event(world, route):
    who = "pat" if route.for_whom in ("patient", "both") else "alice"
    person = world.pat if who == "pat" else world.alice
    before = AuditEvent.objects.filter(patient=world.pat, actor=person.user).count()
    response = _call(_client(world, who, False), route, _path(route, world), None, False)
    assert response.status_code == 200
    events = AuditEvent.objects.filter(patient=world.pat, actor=person.user).order_by("-at")
    assert events.count() == before + 1
    assert events.first().path == _path(route, world).split("?")[0]


def test_the_queue_and_the_patient_list_audit_each_patient_they_show(world, as_user):
    as_user(world.alice).get("/api/v1/alerts")
    assert AuditEvent.objects.filter(actor=world.alice.user, action="read_alert_queue", patient=world.pat).exists()
    as_user(world.alice).get("/api/v1/patients")
    shown = set(AuditEvent.objects.filter(actor=world.alice.user, action="read_patient_status")
                .values_list("patient_id", flat=True))
    assert shown == {world.pat.pk, world.pat2.pk}
