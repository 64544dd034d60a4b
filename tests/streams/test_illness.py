"""The illness episode: NightSignal and CuSum combined into one patient-level alert.

``IllnessEpisode.combine`` is fed hand-made contributor events (a unit test of the
rule); the contract suite runs the detector itself over simulated histories.
"""

from __future__ import annotations

from streams.detectors import Event, IllnessEpisode, PatientMonitor

DAY = 86_400_000
T0 = 20_454 * DAY  # 2026-01-01


def ns(state: str, severity: str, day: float, seq: int, delta: float = 5.0, start_day: float = 0) -> Event:
    t = T0 + int(day * DAY)
    return Event("nightsignal_rhr", severity, state, T0 + int(start_day * DAY), t, seq,
                 {"nights": [{"delta_bpm": delta}]}, t)


def cu(state: str, severity: str, day: float, seq: int, start_day: float = 0) -> Event:
    t = T0 + int(day * DAY)
    return Event("cusum_rhr", severity, state, T0 + int(start_day * DAY), t, seq, {"cusum": 9.0}, t)


def states(events):
    return [(e.state, e.severity) for e in events if e.detector == "illness_rhr"]


def test_nightsignal_and_cusum_agreeing_make_one_alert_that_escalates_and_closes_once():
    ill = IllnessEpisode()
    out = ill.combine([ns("open", "red", 10, 1, start_day=9), cu("open", "yellow", 10.5, 1, start_day=9.4),
                       cu("update", "red", 11.5, 2, start_day=9.4), ns("closed", "red", 13, 2, start_day=9),
                       cu("closed", "red", 13.2, 3, start_day=9.4)], T0 + 14 * DAY)
    assert states(out) == [("open", "yellow"), ("update", "red"), ("update", "red"), ("closed", "red")]
    assert len({e.window_start for e in out}) == 1
    assert set(out[1].evidence["contributors"]) == {"nightsignal_rhr", "cusum_rhr"}
    assert out[0].evidence["contributors"]["nightsignal_rhr"]["evidence"]["nights"][0]["delta_bpm"] == 5.0


def test_a_cusum_alarm_alone_or_a_nightsignal_yellow_alone_does_not_open_it():
    ill = IllnessEpisode()
    assert ill.combine([cu("open", "yellow", 5, 1), cu("closed", "yellow", 6, 2),
                        ns("open", "yellow", 20, 1, start_day=19)], T0 + 21 * DAY) == []


def test_it_closes_after_14_days_without_new_evidence_and_a_plateau_is_not_news():
    ill = IllnessEpisode()
    events = [ns("open", "red", 10, 1, delta=6.0, start_day=9)]
    events += [ns("update", "red", 10 + k, 1 + k, delta=5.0, start_day=9) for k in range(1, 30)]  # a plateau
    out = ill.combine(events, T0 + 40 * DAY)
    assert states(out)[0] == ("open", "yellow") and states(out)[-1] == ("closed", "yellow")
    closed = out[-1]
    assert closed.time - T0 == 24 * DAY  # day 10 + 14
    assert closed.evidence["closed_by"] == "no new evidence for 14 days"


def test_a_night_more_raised_than_any_before_is_news_and_keeps_it_open():
    ill = IllnessEpisode()
    events = [ns("open", "red", 10, 1, delta=5.0, start_day=9)]
    events += [ns("update", "red", 10 + k, 1 + k, delta=5.0 + k, start_day=9) for k in range(1, 20)]
    out = ill.combine(events, T0 + 30 * DAY)
    assert all(e.state != "closed" for e in out)


def test_a_second_onset_within_30_days_brings_back_the_same_alert_unless_more_severe():
    ill = IllnessEpisode(cusum_weight=0.5)  # CuSum red alone (1) does not open
    out = ill.combine([ns("open", "red", 5, 1, start_day=4), ns("closed", "red", 7, 2, start_day=4),
                       ns("open", "red", 20, 1, start_day=19), ns("closed", "red", 22, 2, start_day=19)],
                      T0 + 23 * DAY)
    assert len({e.window_start for e in out}) == 1  # the second onset re-opened the first alert
    assert out[2].state == "update" and out[2].evidence["merged_by_budget"] == 1
    # an onset that is red from the start (CuSum red already, then NightSignal red) is more
    # severe than the yellow raised on day 5: a new alert despite the budget
    out = ill.combine([cu("open", "yellow", 27, 1, start_day=26), cu("update", "red", 28, 2, start_day=26),
                       ns("open", "red", 29, 1, start_day=28)], T0 + 30 * DAY)
    assert [(e.state, e.severity) for e in out] == [("open", "red")]
    assert out[0].window_start == T0 + 26 * DAY


def test_contributor_overrides_reach_them_inside_the_illness_episode():
    mon = PatientMonitor()
    mon.apply_overrides({"nightsignal_rhr": {"red_delta": 6}, "illness_rhr": {"open_score": 3}})
    assert mon.child("nightsignal_rhr").red_delta == 6 and mon.child("illness_rhr").open_score == 3
    mon.apply_overrides({})
    assert mon.child("nightsignal_rhr").red_delta == 4.0


def test_sweep_params_reach_a_contributor_through_the_monitor():
    mon = PatientMonitor(params={"cusum_rhr": {"rebaseline_days": 3}})
    assert mon.child("cusum_rhr").rebaseline_days == 3
    assert mon.clone().child("cusum_rhr").rebaseline_days == 3
