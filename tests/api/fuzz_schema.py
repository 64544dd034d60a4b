"""The randomized schemathesis run (``make fuzz``; not part of ``make test``, which keeps the
derandomized set in test_schema.py): FUZZ_EXAMPLES (200) random examples per operation, as
a clinician and as a patient, on the two-team world with a real broker.

Half of the examples keep what Hypothesis generated; in the other half the path ids are
the world's own (a readable patient, alert, device, consent, advice, team) and, where the
operation takes a body, a valid one: otherwise nearly every operation would only ever
answer 404 or 400. No request may answer 5xx, and every operation must answer 2xx at
least once; the per-operation status counts are written to var/fuzz-report.txt.
"""

from __future__ import annotations

import json
import os
import secrets
import time
from collections import Counter, defaultdict
from datetime import timedelta
from pathlib import Path

import pytest
import schemathesis
from django.core.signals import request_finished, request_started
from django.db import close_old_connections
from django.utils import timezone
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error

from api.auth import issue
from care.models import Device, TeamMembership
from config.wsgi import application
from tests.api.factories import PASSWORD
from tests.ingest import exports

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = int(os.environ.get("FUZZ_EXAMPLES", "200"))
schema = schemathesis.openapi.from_wsgi("/api/schema/?format=json", application)
STATUSES: dict[str, Counter] = defaultdict(Counter)
SETTINGS = settings(max_examples=EXAMPLES, deadline=None, derandomize=False, database=None,
                    suppress_health_check=list(HealthCheck))


@pytest.fixture(autouse=True)
def _keep_the_test_connection_open(db):
    request_started.disconnect(close_old_connections)
    request_finished.disconnect(close_old_connections)
    yield
    request_started.connect(close_old_connections)
    request_finished.connect(close_old_connections)


@pytest.fixture
def seeded(world, request):
    TeamMembership.objects.filter(team=world.team_a, clinician=world.alice).update(role=TeamMembership.LEAD)
    if "ingest" in request.node.name:
        request.getfixturevalue("kafka_topics")  # a real broker for the upload endpoint
    if "imports" in request.node.name:  # uploads wait in a folder of this test's own
        request.getfixturevalue("settings").IMPORT_DIR = request.getfixturevalue("tmp_path") / "imports"
    return world


def _ids(w) -> dict[str, object]:
    return {"patient_id": w.pat.pk, "alert_id": w.red.pk, "device_id": w.device.pk,
            "consent_id": w.pat.consents.values_list("pk", flat=True).first() or 1,
            "recommendation_id": w.advice.pk, "team_id": w.team_a.pk, "detector": "hr_high_at_rest",
            "clinician_id": w.carol.pk}  # a member of team A, whose lead alice is


def _body(method: str, path: str, w) -> object:
    now = timezone.now()
    bodies = {
        ("POST", "/acknowledge"): {"reason": "seen"},
        ("POST", "/escalate"): {"clinician": w.carol.pk, "reason": "second opinion"},
        ("POST", "/notes"): {"text": "called the patient"},
        ("POST", "/resolve"): {"reason": "resolved after a call", "verdict": "unsure"},
        ("POST", "/snooze"): {"until": (now + timedelta(hours=2)).isoformat()},
        ("POST", "/auth/token"): {"username": "pat", "password": PASSWORD},
        ("PATCH", "/{patient_id}"): {"timezone": "Europe/Paris"},
        ("POST", "/consents"): {"team": w.team_b.pk},
        ("POST", "/context"): {"tags": ["travel"], "starts_at": (now - timedelta(hours=3)).isoformat(),
                               "ends_at": now.isoformat()},
        ("POST", "/devices"): {"name": "ring", "kind": "ring"},
        ("POST", "/feedback"): {"helpful": True},
        ("PUT", "/{detector}"): {"params": {"threshold": 130}, "reason": "athlete"},
        ("POST", "/ingest/batches"): {"schema_version": 1, "batch_id": f"fuzz-{secrets.token_hex(6)}",
                                      "samples": [{"metric": "heart_rate", "value": 70,
                                                   "time": int(time.time() * 1000) - 60_000}]},
    }
    for (m, suffix), body in bodies.items():
        if m == method and path.endswith(suffix):
            return body
    return None


def _upload(case) -> None:
    """A Fitbit heart-rate export as the multipart field ``file`` (what the readers know)."""
    case.media_type = "multipart/form-data"
    case.body = {"file": json.dumps(exports.fitbit_heart_rate()).encode()}


def _run(case, w, role: str) -> None:
    op = f"{case.operation.method.upper()} {case.operation.path}"
    if secrets.randbelow(2):  # not `random`: Hypothesis pins its state for every example
        ids = _ids(w)
        case.path_parameters = {k: ids.get(k, v) for k, v in (case.path_parameters or {}).items()}
        body = _body(case.operation.method.upper(), case.operation.path, w)
        if body is not None:
            case.body = body
        elif case.operation.method.upper() == "POST" and case.operation.path.endswith("/imports"):
            _upload(case)
    who = w.alice if role == "clinician" else w.pat
    if case.operation.path.endswith("/ingest/batches"):
        device, raw = Device.issue(w.pat, "fuzz phone")
        auth = f"Device {raw}"
    else:
        # logout ends the token it is sent with: every call gets its own
        auth = f"Token {issue(who.user)[1]}" if "logout" in case.operation.path else f"Token {w.token(who)}"
    response = case.call(headers={"Authorization": auth})
    STATUSES[op][response.status_code] += 1
    case.validate_response(response, checks=[not_a_server_error])


@pytest.mark.slow
@schema.parametrize()
@SETTINGS
def test_no_random_request_of_a_clinician_causes_a_server_error(case, seeded):
    _run(case, seeded, "clinician")


@pytest.mark.slow
@schema.parametrize()
@SETTINGS
def test_no_random_request_of_a_patient_causes_a_server_error(case, seeded):
    _run(case, seeded, "patient")


def test_every_operation_answered_2xx_at_least_once():
    lines = [f"{op}: " + ", ".join(f"{code}x{n}" for code, n in sorted(c.items())) for op, c in sorted(STATUSES.items())]
    report = ROOT / "var" / "fuzz-report.txt"
    report.parent.mkdir(exist_ok=True)
    report.write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    total = sum(sum(c.values()) for c in STATUSES.values())
    errors = sum(n for c in STATUSES.values() for code, n in c.items() if code >= 500)
    print(f"{total} requests over {len(STATUSES)} operations, {errors} server errors")
    assert STATUSES, "run with the randomized tests of this module"
    assert errors == 0
    without = [op for op, c in STATUSES.items() if not any(200 <= code < 300 for code in c)]
    assert without == [], f"operations that never answered 2xx: {without}"
