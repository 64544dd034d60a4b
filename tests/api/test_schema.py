"""schemathesis against the OpenAPI schema: no generated request may cause a server error.

Runs in-process over WSGI as a signed-in clinician and as a signed-in patient, with the
two-team world loaded, so the generated requests reach the views' real code paths.
"""

from __future__ import annotations

import pytest
import schemathesis
from django.core.signals import request_finished, request_started
from django.db import close_old_connections
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error

from config.wsgi import application

# Loading the schema touches no database: it can happen at collection time.
schema = schemathesis.openapi.from_wsgi("/api/schema/?format=json", application)


@pytest.fixture(autouse=True)
def _keep_the_test_connection_open(db):
    """As Django's own test client does: a request must not close the test's connection
    (it sits in the test transaction, which Django's end-of-request check would close)."""
    request_started.disconnect(close_old_connections)
    request_finished.disconnect(close_old_connections)
    yield
    request_started.connect(close_old_connections)
    request_finished.connect(close_old_connections)


@pytest.fixture
def tokens(world):
    return {"clinician": world.token(world.alice), "patient": world.token(world.pat)}


SETTINGS = settings(max_examples=25, deadline=None, derandomize=True,
                    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow,
                                           HealthCheck.filter_too_much])


@pytest.mark.slow
@schema.parametrize()
@SETTINGS
def test_no_request_a_clinician_sends_causes_a_server_error(case, tokens):
    case.call_and_validate(headers={"Authorization": f"Token {tokens['clinician']}"},
                           checks=[not_a_server_error])


@pytest.mark.slow
@schema.parametrize()
@SETTINGS
def test_no_request_a_patient_sends_causes_a_server_error(case, tokens):
    case.call_and_validate(headers={"Authorization": f"Token {tokens['patient']}"},
                           checks=[not_a_server_error])
