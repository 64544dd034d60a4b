"""evaluate_detectors on the simulator's ground truth and on the real Stanford recordings."""

from __future__ import annotations

import doctest
import importlib
import json
from io import StringIO

import pytest
from django.core.management import call_command

from tests.conftest import SHARED_DATA

PHASE1 = SHARED_DATA / "stanford-covid19-phase1"


def run(*args) -> dict:
    out = StringIO()
    call_command("evaluate_detectors", *args, "--json", stdout=out)
    return json.loads(out.getvalue())


@pytest.mark.parametrize("module", ["base", "heart_rate", "nightsignal", "cusum", "illness", "wear", "sleep", "suite"])
def test_the_docstring_examples_run(module):
    m = importlib.import_module(f"streams.detectors.{module}")
    result = doctest.testmod(m)
    assert result.failed == 0


def test_every_injected_episode_raises_exactly_one_alert_and_nuisance_at_most_one_a_month():
    sim = run("--simulate", "20", "--days", "30", "--seed", "3")["simulated"]
    assert sim["episodes_total"] >= 10
    assert [e for e in sim["episodes"] if e["alerts"] != 1] == []
    assert sim["controls"] >= 4  # nuisance only: late nights, alcohol, travel, exercise, noise
    assert sim["control_non_info_alerts_per_patient_month_max"] <= 1.0, sim["false_alerts"]


@pytest.mark.skipif(not PHASE1.exists(), reason=f"the real recordings are not at {PHASE1}")
def test_the_covid_positive_participant_is_alerted_before_symptom_onset(tmp_path):
    labels = tmp_path / "onsets.csv"
    labels.write_text("participant,symptom_onset\nAV2GF3B,2020-08-02\n")
    report = run("--data", str(PHASE1), "--labels", str(labels), "--plots", str(tmp_path / "plots"))
    assert {"participants", "sensitivity", "false_alert_days_per_month"} <= set(report)
    by_id = {p["id"]: p for p in report["participants"]}
    assert {"AV2GF3B", "AJ7TSV9"} <= set(by_id)
    positive = by_id["AV2GF3B"]
    assert positive["detected"] is True
    assert positive["lead_days"] > 0  # raised before symptoms began
    assert {"id", "detected", "lead_days", "false_alert_days_per_month"} <= set(positive)
    assert by_id["AJ7TSV9"]["detected"] is None  # no onset known in this date frame
    assert (tmp_path / "plots" / "AV2GF3B.png").stat().st_size > 10_000


def test_labels_without_the_needed_columns_are_refused(tmp_path):
    from django.core.management.base import CommandError

    bad = tmp_path / "bad.csv"
    bad.write_text("who,when\nx,2020-01-01\n")
    with pytest.raises(CommandError, match="participant, symptom_onset"):
        run("--data", str(tmp_path), "--labels", str(bad))


# -- the definitions, on a hand-made history ---------------------------------------------------

def _ms(day: str, hour: int = 12) -> int:
    import pandas as pd

    return int(pd.Timestamp(day, tz="UTC").value // 1_000_000) + hour * 3_600_000


def _ev(detector, state, severity, start, at, seq):
    from streams.detectors import Event

    return Event(detector, severity, state, start, at, seq, {}, at)


def test_alert_days_count_only_days_with_heart_rate_and_the_windows_follow_the_definitions():
    from datetime import date, timedelta

    import pandas as pd

    from streams.evaluate import fold, score_participant

    onset = pd.Timestamp("2020-08-02", tz="UTC")
    o = onset.date()
    days = {o + timedelta(days=k) for k in range(-60, 40)} - {o - timedelta(days=40)}
    s1, s2, s3 = _ms("2020-06-20"), _ms("2020-07-12"), _ms("2020-08-24")
    events = [
        # 06-20 .. 06-24: five days before the window, one without heart rate (06-23)
        _ev("illness_rhr", "open", "yellow", s1, s1, 1),
        _ev("illness_rhr", "closed", "yellow", s1, _ms("2020-06-24"), 2),
        # 07-12 (onset - 21: the first day that detects) .. 07-13
        _ev("illness_rhr", "open", "red", s2, s2, 1),
        _ev("illness_rhr", "closed", "red", s2, _ms("2020-07-13"), 2),
        # 08-23 is onset + 21 (inside the excluded window); 08-24 .. 08-25 are after it
        _ev("illness_rhr", "open", "yellow", s3 - 86_400_000, s3 - 86_400_000, 1),
        _ev("hr_high_at_rest", "open", "red", s3, s3, 1),  # not an illness detector
    ]
    days.discard(date(2020, 6, 23))
    alerts = fold(events, last_ms=_ms("2020-08-25"))
    assert [a.closed for a in alerts if a.detector == "illness_rhr"] == [True, True, False]
    res = score_participant("X", alerts, days, pd.Timestamp("2020-06-03", tz="UTC"),
                            pd.Timestamp("2020-09-10", tz="UTC"), onset, ["illness_rhr"])
    assert res.group == "case" and res.detected is True
    assert res.lead_days == 21.0  # onset minus 07-12
    assert res.false_alert_days_before == 4  # 06-20, 06-21, 06-22, 06-24 (06-23 has no data)
    assert res.false_alert_days_after == 2  # 08-24, 08-25 (the last day of data: still open)
    lo, hi = o - timedelta(days=21), o + timedelta(days=21)
    clear = [d for d in days if d < lo or d > hi]
    assert res.clear_days == len(clear)
    assert res.false_alert_days_per_month == round(6 * 30 / len(clear), 3)
    assert res.false_alert_days_per_month_before == round(4 * 30 / len(clear), 3)


def test_detection_needs_an_alert_day_between_onset_minus_21_and_onset_plus_7():
    from datetime import timedelta

    import pandas as pd

    from streams.evaluate import fold, score_participant

    onset = pd.Timestamp("2020-08-02", tz="UTC")
    days = {onset.date() + timedelta(days=k) for k in range(-60, 40)}

    def detected(day: str) -> bool:
        t = _ms(day)
        alerts = fold([_ev("illness_rhr", "open", "red", t, t, 1),
                       _ev("illness_rhr", "closed", "red", t, t + 3_600_000, 2)], last_ms=_ms("2020-09-01"))
        return score_participant("X", alerts, days, onset - pd.Timedelta(days=60),
                                 onset + pd.Timedelta(days=40), onset, ["illness_rhr"]).detected

    assert [detected(d) for d in ("2020-07-11", "2020-07-12", "2020-08-09", "2020-08-10")] == \
        [False, True, True, False]


def test_a_positive_person_without_an_onset_is_reported_apart_and_out_of_the_mean():
    from datetime import date, timedelta

    import pandas as pd

    from streams.evaluate import Report, fold, score_participant

    days = {date(2020, 7, 1) + timedelta(days=k) for k in range(30)}
    t = _ms("2020-07-10")
    alerts = fold([_ev("illness_rhr", "open", "red", t, t, 1),
                   _ev("illness_rhr", "closed", "red", t, _ms("2020-07-12"), 2)], last_ms=_ms("2020-07-30"))
    first, last = pd.Timestamp("2020-07-01", tz="UTC"), pd.Timestamp("2020-07-30", tz="UTC")
    pos = score_participant("P", alerts, days, first, last, None, ["illness_rhr"], positive=True)
    ctl = score_participant("C", [], days, first, last, None, ["illness_rhr"])
    assert pos.group == "positive_no_onset" and pos.alert_days == 3 and pos.detected is None
    report = Report(participants=[pos, ctl]).as_dict()
    assert report["false_alert_days_per_month"] == 0.0  # the control alone
    assert report["positive_no_onset"][0]["alert_days"] == 3


def test_burden_counts_queue_items_and_alert_days_per_person_month_by_detector_and_severity():
    from datetime import date, timedelta

    from streams.evaluate import burden, fold

    days = {date(2020, 7, 1) + timedelta(days=k) for k in range(60)}
    t = _ms("2020-07-10")
    alerts = fold([_ev("illness_rhr", "open", "red", t, t, 1),
                   _ev("illness_rhr", "closed", "red", t, _ms("2020-07-11"), 2),
                   _ev("nightsignal_rhr", "open", "red", t, t, 1),  # a contributor: not a queue item
                   _ev("wear_gap", "open", "info", t, t, 1),
                   _ev("wear_gap", "closed", "info", t, t + 1, 2)], last_ms=_ms("2020-08-29"))
    b = burden({"A": alerts}, {"A": days})
    assert b["person_months"] == 2.0
    assert set(b["by_detector"]) == {"illness_rhr", "wear_gap"}
    assert b["by_detector"]["illness_rhr"]["red"] == {
        "episodes": 1, "episodes_per_person_month": 0.5, "alert_days_per_person_month": 1.0}
    assert b["non_info_episodes_per_person_month"] == 0.5


def test_an_empty_onset_in_the_labels_means_positive_with_the_date_unknown(tmp_path):
    from streams.management.commands.evaluate_detectors import _labels

    f = tmp_path / "l.csv"
    f.write_text("participant,symptom_onset,site\nA,2020-08-02,x\nB,,y\n")
    got = _labels(str(f))
    assert str(got["A"].date()) == "2020-08-02" and got["B"] is None


def test_a_sweep_replays_once_per_value_and_draws_the_operating_curve(tmp_path):
    out = run("--simulate", "8", "--days", "24", "--seed", "3", "--sweep",
              "illness_rhr.open_score=2,5", "--plots", str(tmp_path))
    assert [p["value"] for p in out["points"]] == [2, 5]
    low, high = (p["simulated"] for p in out["points"])
    assert low["detected"] == low["episodes"] >= 1
    assert high["detected"] == 0  # a score of 5 is out of reach (at most 3 + 1)
    assert (tmp_path / "curve_illness_rhr.open_score_simulated.png").stat().st_size > 5_000


@pytest.mark.parametrize(("spec", "message"), [("illness_rhr.open_score", "expected"),
                                               ("nope.x=1", "unknown detector"),
                                               ("illness_rhr.nope=1", "no parameter"),
                                               ("illness_rhr.open_score=a", "not a number")])
def test_a_bad_sweep_is_refused_with_its_reason(spec, message):
    from django.core.management.base import CommandError

    with pytest.raises(CommandError, match=message):
        run("--simulate", "2", "--sweep", spec)
