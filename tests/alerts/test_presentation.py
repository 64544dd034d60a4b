"""Alert titles, evidence and sparklines in words: unit tests of alerts.presentation
(pure) on the evidence today's detectors write and on an illness episode's nested
contributor evidence."""

from __future__ import annotations

from alerts import presentation as pr

NIGHTSIGNAL = {
    "baseline_bpm": 58.0, "baseline_nights": 21, "yellow_delta_bpm": 3.0, "red_delta_bpm": 4.0,
    "nights": [{"night": "2026-11-26", "resting_hr_bpm": 63.2, "delta_bpm": 5.2},
               {"night": "2026-11-27", "resting_hr_bpm": 66.0, "delta_bpm": 8.0},
               {"night": "2026-11-28", "resting_hr_bpm": 65.1, "delta_bpm": 7.1}],
    "window": "01:00-05:59 local, zero-step minutes",
}
ILLNESS = {
    "contributors": {
        "nightsignal_rhr": {"baseline_bpm": 58.0, "threshold_bpm": 61.0,
                            "nights": [{"night": "2026-11-27", "resting_hr_bpm": 66.0, "delta_bpm": 8.0},
                                       {"night": "2026-11-28", "resting_hr_bpm": 64.0, "delta_bpm": 6.0}]},
        "cusum_rhr": {"cusum": 9.1, "threshold": 5.5, "baseline_bpm": 58.4, "alarm_hours": 30},
    },
}


def test_a_nightsignal_alert_reads_as_the_rise_over_usual_and_its_nights():
    assert pr.title("nightsignal_rhr", NIGHTSIGNAL) == "Resting heart rate 8 bpm above usual for 3 nights"


def test_each_detector_has_a_plain_title_and_an_unknown_one_falls_back_to_its_name_in_words():
    assert pr.title("cusum_rhr", {"hour_resting_hr_bpm": 67.4, "baseline_bpm": 59.1, "alarm_hours": 30}) \
        == "Resting heart rate 8 bpm above usual for 30 hours"
    assert pr.title("hr_high_at_rest", {"peak_bpm": 142.0, "minutes": 14, "threshold_bpm": 120.0}) \
        == "Heart rate high at rest: 142 bpm for 14 minutes (above 120)"
    assert pr.title("wear_gap", {"gap_hours": 26.5}) == "Watch not worn for 26.5 hours"
    assert pr.title("sleep_debt", {"short_nights_in_a_row": 3, "debt_hours": 4.5}) \
        == "3 short nights in a row, 4.5 h of sleep missed"
    assert pr.title("illness_rhr", ILLNESS) == "Possible illness: resting heart rate 8 bpm above usual for 2 nights"
    assert pr.title("brand_new_detector", {"x": 1}) == "Brand new detector"
    assert pr.title("cusum_rhr", {}) == "Cusum rhr"


def test_every_evidence_value_is_shown_labelled_with_its_unit_and_lists_as_per_night_values():
    fields = {f.key: f for f in pr.fields(NIGHTSIGNAL)}
    assert set(fields) == set(NIGHTSIGNAL)  # nothing left out (the old view showed 6)
    assert (fields["baseline_bpm"].label, fields["baseline_bpm"].value) == ("Usual resting heart rate", "58 bpm")
    assert fields["baseline_nights"].value == "21 nights"
    assert fields["nights"].items == [("2026-11-26", "63.2 bpm, 5.2 bpm above usual"),
                                      ("2026-11-27", "66 bpm, 8 bpm above usual"),
                                      ("2026-11-28", "65.1 bpm, 7.1 bpm above usual")]


def test_an_illness_episode_shows_each_contributors_evidence_as_a_nested_group():
    (contributors,) = pr.fields(ILLNESS)
    groups = {f.key: f for f in contributors.children}
    night = {f.key: f for f in groups["nightsignal_rhr"].children}
    assert night["threshold_bpm"].value == "61 bpm"
    assert [d for d, _ in night["nights"].items] == ["2026-11-27", "2026-11-28"]
    assert {f.key: f.value for f in groups["cusum_rhr"].children}["alarm_hours"] == "30 h"


def test_the_sparkline_draws_the_nights_against_the_baseline_merging_raise_peak_and_now():
    raised = {"baseline_bpm": 58.0, "nights": [{"night": "2026-11-26", "resting_hr_bpm": 63.0}]}
    now = {"baseline_bpm": 58.5, "nights": [{"night": "2026-11-27", "resting_hr_bpm": 66.0},
                                            {"night": "2026-11-28", "resting_hr_bpm": 65.0}]}
    spark = pr.spark(raised, now, now)
    assert spark.values == [63.0, 66.0, 65.0] and spark.baseline == 58.5 and spark.unit == "bpm"
    svg = spark.svg_points()
    ys = [d["y"] for d in svg["dots"]]
    assert svg["baseline_y"] > max(ys)  # the baseline is below every night (SVG y grows down)
    assert ys[1] == min(ys)  # the highest night is drawn highest


def test_without_per_night_values_the_sparkline_shows_raise_peak_and_now_and_none_without_a_signal():
    spark = pr.spark({"peak_bpm": 125.0}, {"peak_bpm": 142.0}, {"peak_bpm": 131.0})
    assert spark.values == [125.0, 142.0, 131.0] and spark.labels == ["raised", "peak", "now"]
    assert pr.spark({"r": 0.5}, {}, {}) is None
