"""The care-team dashboard in headless Chromium: sign in, watch the queue fill by itself,
acknowledge an alert, open the patient page with its charts. Screenshots go to a
temporary folder (``make screenshots`` sends them to docs/screenshots)."""

from __future__ import annotations

import re

import pytest

from alerts.models import Alert, AlertAction
from coaching.models import Recommendation
from tests.api.factories import PASSWORD, make_alert
from tests.dashboard.conftest import requires_chromium

pytestmark = [pytest.mark.browser, requires_chromium]


def sign_in(page, base: str, username: str) -> None:
    page.goto(f"{base}/dashboard/")
    assert "/dashboard/login/" in page.url
    page.fill("input[name=username]", username)
    page.fill("input[name=password]", PASSWORD)
    page.click("button[type=submit]")


def test_a_clinician_signs_in_sees_new_alerts_arrive_acknowledges_one_and_opens_the_patient_page(
        live_server, live_world, page, shots):
    w = live_world
    page.goto(f"{live_server.url}/dashboard/")
    page.screenshot(path=str(shots / "login.png"))
    sign_in(page, live_server.url, "alice")
    page.wait_for_selector(f"#alert-{w.red.pk}")
    assert page.locator("#queue-rows tr[data-alert]").count() == 2
    assert "Other Team Patient" not in page.content()

    # A detector raises an alert: the queue shows it without a reload.
    fresh = make_alert(w.pat2, "sleep_debt", "yellow", 2)
    page.wait_for_selector(f"#alert-{fresh.pk}", timeout=10_000)
    page.screenshot(path=str(shots / "queue.png"), full_page=True)

    # Acknowledge the red alert in place (htmx swaps the row).
    page.click(f"#alert-{w.red.pk} button[data-action=acknowledge]")
    page.wait_for_selector(f"#alert-{w.red.pk}.st-acknowledged")
    assert AlertAction.objects.filter(alert=w.red, action="acknowledge", actor=w.alice.user).exists()
    assert Alert.objects.get(pk=w.red.pk).status == "acknowledged"

    # The patient page draws its charts from the chart endpoint.
    page.click(f"#alert-{w.red.pk} td.what a.patient")
    page.wait_for_selector("#charts[data-ready='1']")
    assert int(page.get_attribute("#charts", "data-points")) >= 29 * 24
    assert int(page.get_attribute("#charts", "data-alerts")) == 2
    assert page.locator("#chart-hr canvas").count() == 1
    assert page.locator("#chart-sleep canvas").count() == 1 and page.locator("#chart-steps canvas").count() == 1
    legend = page.inner_text("#chart-hr")
    assert "resting" in legend and "baseline" in legend
    page.screenshot(path=str(shots / "patient.png"), full_page=True)


def test_a_clinician_resolves_an_alert_with_a_reason_and_adds_a_note_from_the_patient_page(
        live_server, live_world, page):
    w = live_world
    sign_in(page, live_server.url, "alice")
    page.wait_for_selector(f"#alert-{w.red.pk}")
    page.goto(f"{live_server.url}/dashboard/patients/{w.pat.pk}/")
    card = page.locator(f"article#alert-{w.yellow.pk}")
    card.locator("summary").click()
    card.locator("form[action$='/note'] input[name=text]").fill("Phoned: feeling fine.")
    card.locator("form[action$='/note'] button").click()
    page.wait_for_selector(f"article#alert-{w.yellow.pk} li.note")
    card = page.locator(f"article#alert-{w.yellow.pk}")
    card.locator("form[action$='/resolve'] input[value=actionable]").check()  # resolving asks (issue 12)
    card.locator("form[action$='/resolve'] input[name=reason]").fill("rest after exercise")
    card.locator("form[action$='/resolve'] button").click()
    page.wait_for_selector(f"article#alert-{w.yellow.pk}.st-resolved")
    alert = Alert.objects.get(pk=w.yellow.pk)
    assert alert.status == "resolved" and alert.resolution_reason == "rest after exercise"
    assert "Phoned: feeling fine." in page.inner_text(f"article#alert-{w.yellow.pk}")


def test_the_patient_list_shows_status_and_leaves_out_other_teams_patients(live_server, live_world, page, shots):
    sign_in(page, live_server.url, "alice")
    page.wait_for_selector("#queue-rows")
    page.goto(f"{live_server.url}/dashboard/patients/")
    rows = page.locator("table.patients tbody tr")
    text = page.inner_text("table.patients")
    assert rows.count() == 2 and "Pat Example" in text and "Other Team Patient" not in text
    assert re.search(r"red\s+Pat Example", text)
    page.screenshot(path=str(shots / "patients.png"), full_page=True)


def test_a_patient_is_refused_the_dashboard_but_reads_their_advice_through_the_api(live_server, live_world, page,
                                                                                   shots):
    w = live_world
    sign_in(page, live_server.url, "pat")
    page.wait_for_load_state()
    assert page.locator("text=403").count() >= 1 or "Forbidden" in page.content()
    assert "Pat Example" not in page.content()
    page.goto(f"{live_server.url}/api/v1/patients/{w.pat.pk}/recommendations")
    text = page.inner_text("body")
    active = Recommendation.objects.filter(patient=w.pat, status="active")
    assert active.count() >= 2
    assert all(r.title in text for r in active) and "not a diagnosis" in text and '"guideline"' in text
    page.screenshot(path=str(shots / "patient_advice_api.png"), full_page=True)
    page.goto(f"{live_server.url}/api/v1/patients/{w.pat2.pk}/recommendations")
    assert w.pat2.display_name not in page.content() and "no access" in page.content()
