"""The queue a nurse reads in ten seconds, and escalation and thresholds you can follow
(issue 12, items 1 and 2), in headless Chromium against a live server.

Screenshots go to the ``shots`` folder (temporary; ``make screenshots`` refreshes
docs/screenshots/)."""

from __future__ import annotations

from datetime import timedelta

import numpy as np
import pytest
from django.utils import timezone

from alerts.models import Alert, AlertAction, DetectorThreshold
from tests.api.factories import build_world, day_ms, put_samples
from tests.dashboard.conftest import requires_chromium
from tests.dashboard.test_dashboard import sign_in

pytestmark = [pytest.mark.browser, requires_chromium]

RAISED = {"baseline_bpm": 58.0, "baseline_nights": 21, "yellow_delta_bpm": 3.0, "red_delta_bpm": 4.0,
          "nights": [{"night": "N1", "resting_hr_bpm": 62.1, "delta_bpm": 4.1}]}
PEAK = {"baseline_bpm": 58.0, "baseline_nights": 22, "yellow_delta_bpm": 3.0, "red_delta_bpm": 4.0,
        "nights": [{"night": "N1", "resting_hr_bpm": 62.1, "delta_bpm": 4.1},
                   {"night": "N2", "resting_hr_bpm": 66.0, "delta_bpm": 8.0},
                   {"night": "N3", "resting_hr_bpm": 65.2, "delta_bpm": 7.2}]}
LATEST = {"baseline_bpm": 58.3, "baseline_nights": 23, "yellow_delta_bpm": 3.0, "red_delta_bpm": 4.0,
          "nights": [{"night": "N3", "resting_hr_bpm": 65.2, "delta_bpm": 7.2},
                     {"night": "N4", "resting_hr_bpm": 61.0, "delta_bpm": 2.7}]}


def _nights(start):
    return [(start + timedelta(days=i)).date().isoformat() for i in range(4)]


@pytest.fixture
def queue_world(transactional_db, settings):
    """The two-team world, and a five-day resting-heart-rate episode for ``pat`` with
    evidence at raise, peak and now (per-night values); hourly heart rate for ``pat``
    over the last 3 days (low wear), none for ``pat2``."""
    settings.DASHBOARD_POLL_S = 1
    w = build_world()
    start = timezone.now().replace(hour=1, minute=0, second=0, microsecond=0) - timedelta(days=5)
    names = _nights(start)

    def dated(ev):
        return {**ev, "nights": [{**n, "night": names[int(n["night"][1]) - 1]} for n in ev["nights"]]}

    w.episode = Alert.objects.create(
        patient=w.pat, detector="nightsignal_rhr", severity="red", latest_severity="yellow",
        window_start=start, window_end=start + timedelta(days=4, hours=5), raise_evidence=dated(RAISED),
        evidence=dated(PEAK), latest_evidence=dated(LATEST), opened_at=timezone.now() - timedelta(minutes=4))
    w.nights = names
    hours = day_ms(-2) + np.arange(3 * 24, dtype=np.int64) * 3_600_000
    hours = hours[hours < day_ms(0) + 12 * 3_600_000]
    put_samples(w.pat.pk, "heart_rate", hours, np.full(len(hours), 64.0))
    return w


def _wait_for_polls(page, n: int = 2) -> None:
    """Wait until the queue has refreshed itself ``n`` more times."""
    for _ in range(n):
        before = page.get_attribute("#queue-rows tr.stamp td", "data-updated")
        page.wait_for_function(
            "b => document.querySelector('#queue-rows tr.stamp td').dataset.updated !== b", arg=before)


def test_each_queue_row_says_what_who_since_when_how_bad_and_why(live_server, queue_world, page, shots):
    w = queue_world
    sign_in(page, live_server.url, "alice")
    row = page.locator(f"#alert-{w.episode.pk}")
    row.wait_for()
    # a plain-language title (from the evidence at the peak), the patient, the severity
    assert row.locator(".title").inner_text() == "Resting heart rate 8 bpm above usual for 3 nights"
    assert row.locator("a.patient").inner_text() == "Pat Example"
    assert row.locator(".badge").inner_text() == "red"
    # open since the window's start (five days), not since the row was made (4 minutes)
    start, end = w.episode.window_start, w.episode.window_end
    since = row.locator(".since").inner_text().replace("\xa0", " ")
    assert f"{start:%a} {start.day} {start:%b}" in since and "5 days" in since
    window = row.locator(".window").inner_text()
    assert f"{start.day} {start:%b} 01:00" in window and f"{end.day} {end:%b} 06:00" in window
    assert "raised 4 minutes ago" in row.locator(".raised").inner_text().replace("\xa0", " ")
    # a sparkline of the nights against the baseline
    assert row.locator("svg.spark circle.dot").count() == 4  # N1..N4 from raise, peak and now
    assert row.locator("svg.spark line.base").count() == 1
    assert "usual 58.3 bpm" in row.locator("td.signal").inner_text()
    # the evidence at raise, peak and now, with units and every night
    peak = row.locator("td.evidence > dl.ev").inner_text()
    assert "Usual resting heart rate" in peak and "58 bpm" in peak
    for night in w.nights[:3]:
        assert night in peak
    assert "66 bpm, 8 bpm above usual" in peak
    row.locator("details.ev-sets summary").click()
    sets = {s: row.locator(f"section[data-set={s}]").inner_text() for s in ("raised", "peak", "now")}
    assert "62.1 bpm" in sets["raised"] and w.nights[1] not in sets["raised"]
    assert "58.3 bpm" in sets["now"] and w.nights[3] in sets["now"]
    page.screenshot(path=str(shots / "queue.png"), full_page=True)


def test_the_snooze_choice_survives_the_refresh(live_server, queue_world, page):
    w = queue_world
    sign_in(page, live_server.url, "alice")
    select = f"#alert-{w.episode.pk} select[name=hours]"
    page.wait_for_selector(select)
    page.select_option(select, "24")
    _wait_for_polls(page, 3)
    assert page.input_value(select) == "24"
    page.click(f"#alert-{w.episode.pk} button[data-action=snooze]")
    page.wait_for_selector(f"#alert-{w.episode.pk}.st-snoozed")
    until = Alert.objects.get(pk=w.episode.pk).snoozed_until
    assert timedelta(hours=23, minutes=59) < until - timezone.now() <= timedelta(hours=24)


def test_a_snooze_can_be_undone_from_the_queue(live_server, queue_world, page):
    w = queue_world
    sign_in(page, live_server.url, "alice")
    page.click(f"#alert-{w.episode.pk} button[data-action=snooze]")
    page.wait_for_selector(f"#alert-{w.episode.pk}.st-snoozed")
    # the next refresh leaves the snoozed alert out; the snoozed filter finds it again
    page.goto(f"{live_server.url}/dashboard/?status=snoozed")
    page.click(f"#alert-{w.episode.pk} button[data-action=unsnooze]")
    # the row answers open (unless a refresh that no longer lists it lands first)
    page.wait_for_selector(f"#alert-{w.episode.pk}.st-open, #queue-rows:not(:has(#alert-{w.episode.pk}))")
    page.goto(f"{live_server.url}/dashboard/?status=active")
    page.wait_for_selector(f"#alert-{w.episode.pk}.st-open")
    row = Alert.objects.get(pk=w.episode.pk)
    assert (row.status, row.snoozed_until) == ("open", None)
    assert list(row.actions.values_list("action", flat=True)) == ["snooze", "unsnooze"]


def test_filters_search_and_sort_survive_a_reload(live_server, queue_world, page):
    w = queue_world
    sign_in(page, live_server.url, "alice")
    page.wait_for_selector(f"#alert-{w.episode.pk}")
    page.select_option("#filters select[name=severity]", "red")
    page.select_option("#filters select[name=sort]", "oldest")
    page.fill("#queue-search", "pat ex")
    page.wait_for_function("() => new URLSearchParams(location.search).get('q') === 'pat ex'")
    # red only, Pat's, the longest open first (the rows follow within a poll)
    page.wait_for_function("ids => [...document.querySelectorAll('#queue-rows tr[data-alert]')]"
                           ".map(r => +r.dataset.alert).join() === ids", arg=f"{w.episode.pk},{w.red.pk}")
    page.reload()
    page.wait_for_selector(f"#alert-{w.episode.pk}")
    assert page.input_value("#filters select[name=severity]") == "red"
    assert page.input_value("#filters select[name=sort]") == "oldest"
    assert page.input_value("#queue-search") == "pat ex"
    # the bare address brings the last filters back too
    page.goto(f"{live_server.url}/dashboard/")
    page.wait_for_function("() => location.search.includes('sort=oldest')")
    page.wait_for_selector(f"#alert-{w.episode.pk}")
    assert page.input_value("#filters select[name=severity]") == "red"
    assert page.locator(f"#alert-{w.yellow.pk}").count() == 0


def test_patient_search_narrows_the_queue_to_matching_patients(live_server, queue_world, page):
    w = queue_world
    from tests.api.factories import make_alert

    second = make_alert(w.pat2, "sleep_debt", "yellow", 60)
    sign_in(page, live_server.url, "alice")
    page.wait_for_selector(f"#alert-{second.pk}")
    page.fill("#queue-search", "second")
    page.wait_for_selector(f"#alert-{w.red.pk}", state="detached")
    names = page.eval_on_selector_all("#queue-rows a.patient", "as => as.map(a => a.textContent)")
    assert names == ["Second Patient"]


def test_bulk_acknowledge_acknowledges_the_ticked_alerts_even_across_a_refresh(live_server, queue_world, page):
    w = queue_world
    sign_in(page, live_server.url, "alice")
    page.wait_for_selector(f"#alert-{w.episode.pk}")
    page.check(f"#alert-{w.episode.pk} input[name=alert]")
    page.check(f"#alert-{w.red.pk} input[name=alert]")
    _wait_for_polls(page, 2)
    assert page.is_checked(f"#alert-{w.red.pk} input[name=alert]")
    assert page.inner_text("#picked-count") == "(2)"
    page.click("button[data-action=bulk-acknowledge]")
    page.wait_for_selector("ul.messages li.success")
    assert "acknowledged 2 alerts" in page.inner_text("ul.messages")
    statuses = dict(Alert.objects.filter(patient=w.pat).values_list("pk", "status"))
    assert statuses == {w.episode.pk: "acknowledged", w.red.pk: "acknowledged", w.yellow.pk: "open"}
    assert AlertAction.objects.filter(action="acknowledge", actor=w.alice.user).count() == 2


def test_the_patient_list_shows_each_patients_data_quality(live_server, queue_world, page, shots):
    w = queue_world
    sign_in(page, live_server.url, "alice")
    page.wait_for_selector("#queue-rows")
    page.goto(f"{live_server.url}/dashboard/patients/")
    pat = page.locator(f"tr[data-patient='{w.pat.pk}'] td.data-quality")
    pat2 = page.locator(f"tr[data-patient='{w.pat2.pk}'] td.data-quality")
    assert pat.get_attribute("data-quality") == "low wear"  # 2.5 of 7 days with heart rate
    assert "worn 36% of 7 days" in pat.inner_text() and "last data" in pat.inner_text()
    assert pat2.get_attribute("data-quality") == "no data" and "no data yet" in pat2.inner_text()
    page.screenshot(path=str(shots / "patients.png"), full_page=True)


@pytest.mark.parametrize("path", ["/dashboard/", "/dashboard/patients/", "/dashboard/patients/{p}/",
                                  "/dashboard/quality/"])
def test_a_phone_at_414_px_shows_every_page_without_cutting_anything_off(live_server, queue_world, browser, shots,
                                                                         path):
    w = queue_world
    context = browser.new_context(viewport={"width": 414, "height": 896}, device_scale_factor=2)
    page = context.new_page()
    try:
        sign_in(page, live_server.url, "alice")
        page.wait_for_selector("#queue-rows")
        page.goto(live_server.url + path.format(p=w.pat.pk))
        page.wait_for_load_state()
        assert page.evaluate("document.documentElement.scrollWidth") <= 414
        if path == "/dashboard/":
            box = page.locator(f"#alert-{w.episode.pk}").bounding_box()
            assert box["x"] >= 0 and box["x"] + box["width"] <= 414
            assert page.locator(f"#alert-{w.episode.pk} button[data-action=acknowledge]").is_visible()
            page.screenshot(path=str(shots / "queue_phone.png"), full_page=True)
    finally:
        context.close()


def test_escalation_names_its_target_asks_to_confirm_and_the_history_says_who_to_whom(
        live_server, queue_world, page, shots):
    w = queue_world
    sign_in(page, live_server.url, "alice")
    page.wait_for_selector("#queue-rows")
    page.goto(f"{live_server.url}/dashboard/patients/{w.pat.pk}/")
    card = page.locator(f"article#alert-{w.episode.pk}")
    # no target is chosen for the nurse: the menu starts empty and is required
    assert card.locator("select[name=target]").input_value() == ""
    card.locator("select[name=target]").select_option(label="Nurse Carol")
    card.locator(".escalate-form input[name=reason]").fill("second opinion on the rise")
    card.locator(".escalate-form button").click()
    page.wait_for_selector("#confirm-escalation")
    assert "Escalate to Nurse Carol?" in page.inner_text("#confirm-escalation h1")
    assert not AlertAction.objects.filter(alert=w.episode).exists()  # nothing yet
    page.screenshot(path=str(shots / "escalate_confirm.png"), full_page=True)
    page.click("button[data-action=confirm-escalate]")
    page.wait_for_selector("ul.messages li.success")
    assert "escalated to Nurse Carol" in page.inner_text("ul.messages")
    alert = Alert.objects.get(pk=w.episode.pk)
    assert alert.status == "escalated" and alert.assigned_to_id == w.carol.user.pk
    card = page.locator(f"article#alert-{w.episode.pk}")
    assert "escalated to Nurse Carol" in card.locator(".status").inner_text().replace("escalated to", "escalated to")
    line = card.locator("ul.history li[data-action=escalate]").inner_text()
    assert "Dr. Alice escalated to Nurse Carol – second opinion on the rise" in line
    # the one who escalated cannot resolve it right after: it is Carol's now
    assert card.locator("form.resolve-form").count() == 0
    assert "Escalated to Nurse Carol: they resolve it." in card.inner_text()


def test_resolving_asks_whether_the_alert_was_actionable(live_server, queue_world, page):
    w = queue_world
    sign_in(page, live_server.url, "alice")
    page.wait_for_selector("#queue-rows")
    page.goto(f"{live_server.url}/dashboard/patients/{w.pat.pk}/")
    form = page.locator(f"article#alert-{w.yellow.pk} form.resolve-form")
    assert form.locator("input[name=verdict]").count() == 3
    form.locator("input[name=reason]").fill("rest after a run")
    form.locator("button").click()  # no verdict: the browser keeps the form
    assert Alert.objects.get(pk=w.yellow.pk).status == "open"
    form.locator("input[value=not_actionable]").check()
    form.locator("button").click()
    page.wait_for_selector(f"article#alert-{w.yellow.pk}.st-resolved")
    assert Alert.objects.get(pk=w.yellow.pk).verdict == "not_actionable"
    assert "resolved as not actionable – rest after a run" in page.inner_text(f"article#alert-{w.yellow.pk} ul.history")


def test_the_threshold_form_shows_current_and_default_values_units_and_range_and_keeps_each_change(
        live_server, queue_world, page, shots):
    w = queue_world
    sign_in(page, live_server.url, "alice")
    page.wait_for_selector("#queue-rows")
    page.goto(f"{live_server.url}/dashboard/patients/{w.pat.pk}/")
    block = page.locator("details.threshold[data-detector=hr_high_at_rest]")
    block.locator("summary").click()
    row = block.locator("tr[data-param=threshold]")
    assert row.locator("input").input_value() == "120"
    assert row.locator(".unit").inner_text() == "bpm" and row.locator(".default").inner_text() == "120 bpm"
    assert row.locator(".range").inner_text() == "90–180 bpm"
    assert (row.locator("input").get_attribute("min"), row.locator("input").get_attribute("max")) == ("90.0", "180.0")
    row.locator("input").fill("130")
    block.locator("button").click()  # no reason: the browser keeps the form
    assert not DetectorThreshold.objects.exists()
    block.locator("input[name=reason]").fill("marathon runner")
    block.locator("button").click()
    page.wait_for_selector("ul.threshold-history li[data-change]")
    assert DetectorThreshold.objects.get(patient=w.pat).params == {"threshold": 130}
    change = page.locator("ul.threshold-history li[data-change]").first.inner_text()
    assert "Dr. Alice set hr_high_at_rest" in change and "threshold default → 130" in change
    assert "marathon runner" in change
    block = page.locator("details.threshold[data-detector=hr_high_at_rest]")
    assert block.locator("tr[data-param=threshold] input").input_value() == "130"
    assert block.locator("tr[data-param=threshold]").get_attribute("class") == "changed"
    assert "thresholds_changed" in page.inner_text("ul.timeline")
    page.locator("#thresholds").screenshot(path=str(shots / "thresholds.png"))
    # a clinician reverses it, with a reason
    first = page.locator("ul.threshold-history li[data-change]").first
    first.locator("input[name=reason]").fill("asked the patient: not a runner")
    first.locator("button").click()
    page.wait_for_selector("ul.threshold-history li[data-change] >> nth=1")
    assert not DetectorThreshold.objects.filter(patient=w.pat).exists()
    assert "cleared hr_high_at_rest" in page.locator("ul.threshold-history li[data-change]").first.inner_text()


def test_the_dashboard_shows_alert_quality_for_the_clinicians_teams(live_server, queue_world, page, shots):
    w = queue_world
    from alerts import workflow

    workflow.resolve(w.yellow, w.alice.user, "rest after a run", "not_actionable")
    sign_in(page, live_server.url, "alice")
    page.wait_for_selector("#queue-rows")
    page.click("header.top nav a:has-text('Quality')")
    row = page.locator("table.quality[data-days='30'] tr[data-detector=nightsignal_rhr]")
    assert "Cardiology A" in row.inner_text() and row.locator("td.share").inner_text() == "100%"
    assert "Sleep clinic B" not in page.inner_text("main")
    page.screenshot(path=str(shots / "quality.png"), full_page=True)
