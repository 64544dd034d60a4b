"""The illness episode: NightSignal and CuSum combined into one patient-level alert.

``IllnessEpisode.combine`` is fed hand-made contributor events (a unit test of the
rule); the contract suite runs the detector itself over simulated histories.
"""

from __future__ import annotations

from streams.detectors import Event, IllnessEpisode, PatientMonitor

DAY = 86_400_000
T0 = 20_454 * DAY  # 2026-01-01


def ns(state: str, severity: str, day: float, seq: int, deltas=(5.0,), start_day: float = 0) -> Event:
    """A NightSignal event; ``deltas``: the rises of the nights of its streak, oldest first."""
    t = T0 + int(day * DAY)
    return Event("nightsignal_rhr", severity, state, T0 + int(start_day * DAY), t, seq,
                 {"red_delta_bpm": 4.0, "nights": [{"delta_bpm": d} for d in deltas]}, t)


def cu(state: str, severity: str, day: float, seq: int, start_day: float = 0) -> Event:
    t = T0 + int(day * DAY)
    return Event("cusum_rhr", severity, state, T0 + int(start_day * DAY), t, seq, {"cusum": 9.0}, t)


def states(events):
    return [(e.state, e.severity) for e in events if e.detector == "illness_rhr"]


def test_nightsignal_red_confirmed_by_cusum_is_one_alert_that_escalates_and_closes_once():
    ill = IllnessEpisode()
    out = ill.combine([ns("open", "red", 10, 1, (5, 5), start_day=9), cu("open", "yellow", 10.5, 1, start_day=9.4),
                       cu("update", "red", 11.5, 2, start_day=9.4), ns("closed", "red", 13, 2, start_day=9),
                       cu("closed", "red", 13.2, 3, start_day=9.4)], T0 + 14 * DAY)
    assert states(out) == [("open", "yellow"), ("update", "red"), ("closed", "red")]
    assert len({e.window_start for e in out}) == 1 and out[0].window_start == T0 + 9 * DAY
    assert set(out[1].evidence["contributors"]) == {"nightsignal_rhr", "cusum_rhr"}
    assert out[0].evidence["contributors"]["nightsignal_rhr"]["evidence"]["nights"][0]["delta_bpm"] == 5
    assert out[-1].time == T0 + int(13.2 * DAY)  # open while CuSum stayed red


def test_nightsignal_red_confirmed_over_a_third_night_opens_it_alone():
    ill = IllnessEpisode()
    assert ill.combine([ns("open", "red", 10, 1, (5, 5), start_day=9)], T0 + 10 * DAY) == []
    out = ill.combine([ns("update", "red", 11, 2, (5, 5, 4.5), start_day=9)], T0 + 11 * DAY)
    assert states(out) == [("open", "red")]


def test_a_cusum_alarm_alone_or_nightsignal_red_for_two_nights_alone_does_not_open_it():
    ill = IllnessEpisode()
    assert ill.combine([cu("open", "yellow", 5, 1), cu("update", "red", 6, 2), cu("closed", "red", 7, 3),
                        ns("open", "red", 20, 1, (6, 6), start_day=19), ns("closed", "red", 21, 2, start_day=19)],
                       T0 + 22 * DAY) == []


def test_it_closes_after_7_days_without_new_evidence_and_a_plateau_is_not_news():
    ill = IllnessEpisode()
    events = [ns("open", "red", 10, 1, (6, 6, 6), start_day=8)]
    events += [ns("update", "red", 10 + k, 1 + k, (6, 6, 5), start_day=8) for k in range(1, 30)]  # a plateau
    out = ill.combine(events, T0 + 40 * DAY)
    assert states(out)[0] == ("open", "red") and states(out)[-1] == ("closed", "red")
    closed = out[-1]
    assert closed.time - T0 == 17 * DAY  # day 10 + 7
    assert closed.evidence["closed_by"] == "no new evidence for 7 days"


def test_a_night_more_raised_than_any_before_is_news_and_keeps_it_open():
    ill = IllnessEpisode()
    events = [ns("open", "red", 10, 1, (5, 5, 5), start_day=8)]
    events += [ns("update", "red", 10 + k, 1 + k, (5, 5, 5 + k), start_day=8) for k in range(1, 20)]
    out = ill.combine(events, T0 + 30 * DAY)
    assert out and all(e.state != "closed" for e in out)


def test_a_second_onset_within_30_days_brings_back_the_same_alert_unless_more_severe():
    ill = IllnessEpisode()
    out = ill.combine([ns("open", "red", 5, 1, (5, 5), start_day=4), cu("open", "yellow", 5.5, 1, start_day=4),
                       ns("closed", "red", 7, 2, start_day=4), cu("closed", "yellow", 7.5, 2, start_day=4),
                       ns("open", "red", 15, 1, (5, 5), start_day=14), cu("open", "yellow", 15.5, 1, start_day=14),
                       ns("closed", "red", 17, 2, start_day=14), cu("closed", "yellow", 17.5, 2, start_day=14)],
                      T0 + 18 * DAY)
    assert states(out) == [("open", "yellow"), ("closed", "yellow"), ("update", "yellow"), ("closed", "yellow")]
    assert len({e.window_start for e in out}) == 1  # the second onset re-opened the first alert
    assert out[2].evidence["merged_by_budget"] == 1
    # a red onset (three red nights) is more severe than the yellow already raised: a new alert
    out = ill.combine([ns("open", "red", 25, 1, (5, 5), start_day=24), ns("update", "red", 26, 2, (5, 5, 5), start_day=24)],
                      T0 + 27 * DAY)
    assert states(out) == [("open", "red")] and out[0].window_start == T0 + 24 * DAY


def test_contributor_overrides_reach_them_inside_the_illness_episode():
    mon = PatientMonitor()
    mon.apply_overrides({"nightsignal_rhr": {"red_delta": 6}, "illness_rhr": {"open_score": 3}})
    assert mon.child("nightsignal_rhr").red_delta == 6 and mon.child("illness_rhr").open_score == 3
    mon.apply_overrides({})
    assert mon.child("nightsignal_rhr").red_delta == 4.0


def test_removing_an_override_restores_the_episodes_own_nightsignal_defaults_and_sweep_params():
    mon = PatientMonitor(params={"illness_rhr": {"stale_days": 5}})
    ns = mon.child("nightsignal_rhr")
    assert (ns.min_night_hours, ns.lapse_nights) == (2, 3)  # NIGHTSIGNAL_DEFAULTS, not the class's
    mon.apply_overrides({"nightsignal_rhr": {"min_night_hours": 4, "red_delta": 6}})
    assert (ns.min_night_hours, ns.red_delta) == (4, 6)
    mon.apply_overrides({})
    assert (ns.min_night_hours, ns.lapse_nights, ns.red_delta) == (2, 3, 4.0)
    assert mon.child("illness_rhr").stale_days == 5  # the monitor's params stay


def test_sweep_params_reach_a_contributor_through_the_monitor():
    mon = PatientMonitor(params={"cusum_rhr": {"rebaseline_days": 3}})
    assert mon.child("cusum_rhr").rebaseline_days == 3
    assert mon.clone().child("cusum_rhr").rebaseline_days == 3
