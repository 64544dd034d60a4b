"""The coaching rules as pure functions: plain values in, advice out."""

from __future__ import annotations

import re
from datetime import UTC, date, datetime, timedelta

import pytest

from coaching import rules
from coaching.features import DayFeatures
from coaching.rules import (
    AlertInfo,
    CoachingInput,
    ContextInfo,
    FeedbackInfo,
    ForecastPoint,
    evaluate,
)

TODAY = date(2026, 3, 1)


def days(n: int = 35, **fields) -> list[DayFeatures]:
    """n days ending TODAY; each field is a value or a function of the day offset (0 = today)."""
    out = []
    for k in range(n):
        offset = k - n + 1
        values = {name: (v(offset) if callable(v) else v) for name, v in fields.items()}
        out.append(DayFeatures(TODAY + timedelta(days=offset), **values))
    return out


def rules_of(advice) -> list[str]:
    return [a.rule for a in advice]


def test_too_little_activity_brings_advice_citing_the_who_guideline():
    advice = evaluate(CoachingInput(TODAY, days(7, active_minutes=10)))
    assert rules_of(advice) == ["activity_below_who"]
    a = advice[0]
    assert a.category == "activity" and a.priority == "medium"
    assert "WHO" in a.guideline["source"] and "150-300" in a.guideline["text"]
    assert a.reason["signals"][0]["value"] == 70


def test_enough_activity_brings_no_activity_warning_and_a_lot_brings_praise():
    assert rules_of(evaluate(CoachingInput(TODAY, days(7, active_minutes=25)))) == []
    assert rules_of(evaluate(CoachingInput(TODAY, days(7, active_minutes=50)))) == ["activity_on_track"]


def test_activity_advice_waits_while_the_patient_reports_being_ill():
    ill = ContextInfo(("illness",), datetime(2026, 2, 28, tzinfo=UTC), datetime(2026, 3, 1, tzinfo=UTC))
    assert evaluate(CoachingInput(TODAY, days(7, active_minutes=5), context=[ill])) == []


def test_short_sleep_brings_advice_citing_the_aasm_seven_hours():
    advice = evaluate(CoachingInput(TODAY, days(7, sleep_minutes=350)))
    assert rules_of(advice) == ["sleep_short"]
    assert advice[0].guideline["source"].startswith("AASM") and "7 or more hours" in advice[0].guideline["text"]
    assert advice[0].priority == "high"  # under 6 hours
    assert rules_of(evaluate(CoachingInput(TODAY, days(7, sleep_minutes=430)))) == []


def test_sleep_advice_mentions_jet_lag_after_reported_travel():
    travel = ContextInfo(("travel",), datetime(2026, 2, 27, tzinfo=UTC), datetime(2026, 3, 1, tzinfo=UTC))
    advice = evaluate(CoachingInput(TODAY, days(7, sleep_minutes=380), context=[travel]))
    assert "daylight" in advice[0].message and advice[0].reason["context"] == ["travel"]


def test_a_resting_heart_rate_above_the_patients_own_baseline_for_two_days_suggests_recovery():
    advice = evaluate(CoachingInput(TODAY, days(resting_hr=lambda o: 68.0 if o >= -1 else 58.0 + (o % 3) * 0.5)))
    assert rules_of(advice) == ["resting_hr_above_baseline"]
    a = advice[0]
    assert a.category == "recovery"
    assert a.reason["signals"][0]["baseline"] == pytest.approx(58.5, abs=0.6)
    assert a.reason["signals"][0]["value"] == 68.0


def test_one_high_day_is_not_enough_and_a_noisy_baseline_raises_the_bar():
    one_day = days(resting_hr=lambda o: 68.0 if o == 0 else 58.0)
    assert evaluate(CoachingInput(TODAY, one_day)) == []
    noisy = days(resting_hr=lambda o: 68.0 if o >= -1 else (52.0 if o % 2 else 64.0))
    assert evaluate(CoachingInput(TODAY, noisy)) == []


def test_reported_alcohol_changes_the_wording_of_recovery_advice():
    alcohol = ContextInfo(("alcohol",), datetime(2026, 2, 28, 20, tzinfo=UTC), datetime(2026, 3, 1, 2, tzinfo=UTC))
    advice = evaluate(CoachingInput(TODAY, days(resting_hr=lambda o: 70.0 if o >= -1 else 58.0), context=[alcohol]))
    assert "Alcohol" in advice[0].message and advice[0].reason["context"] == ["alcohol"]


def test_no_baseline_no_recovery_advice():
    assert evaluate(CoachingInput(TODAY, days(5, resting_hr=75.0))) == []


def test_low_heart_rate_variability_against_baseline_suggests_rest():
    advice = evaluate(CoachingInput(TODAY, days(hrv=lambda o: 30.0 if o >= -1 else 50.0)))
    assert rules_of(advice) == ["hrv_below_baseline"]


def test_a_forecast_well_above_baseline_suggests_planning_recovery():
    forecasts = [ForecastPoint("resting_hr", TODAY + timedelta(days=d), 62.0, 66.0, 70.0) for d in range(1, 8)]
    advice = evaluate(CoachingInput(TODAY, days(resting_hr=58.0), forecasts=forecasts))
    assert rules_of(advice) == ["forecast_resting_hr_rising"]
    assert "projection" in advice[0].message


def test_an_open_red_alert_points_the_patient_to_the_care_team_first():
    alert = AlertInfo(7, "hr_high_at_rest", "red", "open", datetime(2026, 3, 1, 3, tzinfo=UTC))
    advice = evaluate(CoachingInput(TODAY, days(7, sleep_minutes=350), open_alerts=[alert]))
    assert rules_of(advice) == ["open_alert_care_team", "sleep_short"]
    assert advice[0].category == "care_team" and advice[0].priority == "high" and advice[0].alert_id == 7
    resolved = AlertInfo(7, "hr_high_at_rest", "red", "resolved", datetime(2026, 3, 1, 3, tzinfo=UTC))
    assert evaluate(CoachingInput(TODAY, days(1), open_alerts=[resolved])) == []


def test_dismissed_advice_stays_away_for_a_week_and_unhelpful_advice_for_three_days():
    short = days(7, sleep_minutes=350)
    dismissed = FeedbackInfo("sleep_short", TODAY - timedelta(days=6), dismissed=True, helpful=None)
    assert evaluate(CoachingInput(TODAY, short, feedback=[dismissed])) == []
    old = FeedbackInfo("sleep_short", TODAY - timedelta(days=7), dismissed=True, helpful=None)
    assert rules_of(evaluate(CoachingInput(TODAY, short, feedback=[old]))) == ["sleep_short"]
    unhelpful = FeedbackInfo("sleep_short", TODAY - timedelta(days=2), dismissed=False, helpful=False)
    assert evaluate(CoachingInput(TODAY, short, feedback=[unhelpful])) == []
    helpful = FeedbackInfo("sleep_short", TODAY, dismissed=False, helpful=True)
    assert rules_of(evaluate(CoachingInput(TODAY, short, feedback=[helpful]))) == ["sleep_short"]


DIAGNOSTIC = re.compile(r"\byou have\b|diagnos(?!is\.)|\bdisease\b|\bdisorder\b|arrhythmi|fibrillation|"
                        r"infection|apnea|insomnia|covid", re.IGNORECASE)


def _every_advice():
    alert = AlertInfo(1, "cusum_rhr", "yellow", "open", datetime(2026, 3, 1, tzinfo=UTC))
    forecasts = [ForecastPoint("resting_hr", TODAY + timedelta(days=d), 60, 70.0, 80) for d in range(1, 8)]
    for tags in ((), ("illness",), ("alcohol",), ("stress",), ("travel",)):
        ctx = [ContextInfo(tags, datetime(2026, 2, 28, tzinfo=UTC), datetime(2026, 3, 1, tzinfo=UTC))] if tags else []
        for active in (5.0, 60.0):
            yield from evaluate(CoachingInput(
                TODAY, days(resting_hr=lambda o: 72.0 if o >= -1 else 58.0, hrv=lambda o: 20.0 if o >= -1 else 50.0,
                            sleep_minutes=340, active_minutes=active),
                forecasts=forecasts, open_alerts=[alert], context=ctx))


def test_every_piece_of_advice_is_worded_as_advice_and_carries_reason_guideline_category_and_priority():
    seen = set()
    for a in _every_advice():
        seen.add(a.rule)
        assert not DIAGNOSTIC.search(a.title + " " + a.message), a.message
        assert a.category in ("sleep", "activity", "recovery", "care_team")
        assert a.priority in ("high", "medium", "low")
        assert a.reason["summary"] and a.guideline["source"] and a.guideline["text"]
    assert seen == {r.__name__ for r in rules.RULES}


def test_the_disclaimer_says_it_is_not_a_diagnosis():
    assert "not a diagnosis" in rules.DISCLAIMER and "emergency" in rules.DISCLAIMER
