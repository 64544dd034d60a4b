"""Each detector's published rule, on small hand-made histories."""

from __future__ import annotations

import numpy as np
import pytest

from streams.detectors import (
    CuSumRHR,
    HighHeartRateAtRest,
    LowHeartRateAtRest,
    NightSignal,
    PatientMonitor,
    Samples,
    SleepDebt,
    WearGap,
    validate_overrides,
)
from streams.detectors.base import ACTIVITY, HEART_RATE, SLEEP, STEPS

MIN = 60_000
HOUR = 3_600_000
DAY = 86_400_000
DAY0 = 20_454 * DAY  # 2026-01-01


def hr(times, values) -> Samples:
    times = np.asarray(times, np.int64)
    return Samples.from_arrays(HEART_RATE, times, value=np.broadcast_to(values, times.shape).astype(float))


def nights(deltas, base=60.0, jitter=0.0, seed=0) -> Samples:
    """One heart-rate sample a minute from 00:00 to 06:59 each night, ``base + delta``."""
    rng = np.random.default_rng(seed)
    parts = []
    for d, delta in enumerate(deltas):
        t = DAY0 + d * DAY + np.arange(420) * MIN
        parts.append(hr(t, base + delta + rng.normal(0, jitter, t.size)))
    return Samples.concat(parts)


def run(det, s: Samples, until_ms: int | None = None):
    out = det.update(s)
    if until_ms is not None:
        out += det.advance_to(until_ms)
    return out


# -- high and low heart rate at rest --------------------------------------------------------

def test_it_raises_yellow_after_ten_minutes_above_120_at_rest_and_red_after_thirty():
    t = DAY0 + np.arange(45) * MIN
    events = run(HighHeartRateAtRest(lateness_s=0), hr(t, np.where(np.arange(45) < 35, 128.0, 70.0)))
    assert [(e.state, e.severity) for e in events] == [("open", "yellow"), ("update", "red"), ("closed", "red")]
    assert events[0].window_start == DAY0
    assert events[0].evidence["minutes"] == 10
    assert events[-1].window_end == DAY0 + 35 * MIN


def _night_runs(walk_between: bool) -> Samples:
    """Three 20-minute runs at 130 bpm, 90 minutes apart (more than the cooldown), calm between."""
    t = DAY0 + np.arange(240) * MIN
    v = np.where((np.arange(240) % 110) < 20, 130.0, 70.0)
    parts = [hr(t, v)]
    if walk_between:  # 15 minutes of walking between the runs
        w = DAY0 + (np.r_[np.arange(50, 65), np.arange(160, 175)]) * MIN
        parts.append(Samples.from_arrays(STEPS, w, end=w + MIN, value=np.full(w.size, 80.0)))
    return Samples.concat(parts)


def test_runs_of_one_rest_period_are_one_episode():
    events = run(HighHeartRateAtRest(lateness_s=0), _night_runs(walk_between=False))
    assert len({e.window_start for e in events}) == 1
    assert [e.state for e in events][:3] == ["open", "closed", "update"]


def test_activity_between_runs_starts_a_new_episode():
    events = run(HighHeartRateAtRest(lateness_s=0, cooldown_min=60), _night_runs(walk_between=True))
    assert len({e.window_start for e in events if e.state == "open"}) == 3


def test_nine_minutes_above_the_threshold_is_not_enough():
    t = DAY0 + np.arange(30) * MIN
    assert run(HighHeartRateAtRest(lateness_s=0), hr(t, np.where(np.arange(30) < 9, 150.0, 70.0))) == []


def test_a_fast_heart_during_a_workout_is_not_at_rest():
    t = DAY0 + np.arange(40) * MIN
    workout = Samples.from_arrays(ACTIVITY, [DAY0], end=[DAY0 + 40 * MIN], value=[300.0])
    assert run(HighHeartRateAtRest(lateness_s=0), Samples.concat([hr(t, 150.0), workout])) == []


def test_steps_in_the_last_ten_minutes_mean_the_wearer_is_not_at_rest():
    t = DAY0 + np.arange(40) * MIN
    steps = Samples.from_arrays(STEPS, t[::8], end=t[::8] + MIN, value=np.full(5, 30.0))
    assert run(HighHeartRateAtRest(lateness_s=0), Samples.concat([hr(t, 150.0), steps])) == []


def test_a_clinician_threshold_of_100_catches_what_the_default_120_misses():
    t = DAY0 + np.arange(20) * MIN
    assert run(HighHeartRateAtRest(lateness_s=0), hr(t, 110.0)) == []
    assert [e.state for e in run(HighHeartRateAtRest(threshold=100, lateness_s=0), hr(t, 110.0))] == ["open"]


def test_it_raises_a_low_heart_rate_alert_below_40_at_rest():
    t = DAY0 + np.arange(15) * MIN
    events = run(LowHeartRateAtRest(lateness_s=0), hr(t, 36.0))
    assert [(e.detector, e.severity) for e in events] == [("hr_low_at_rest", "yellow")]
    assert events[0].evidence["peak_bpm"] == 36.0


def test_a_second_run_within_the_cooldown_reopens_the_same_alert():
    t = DAY0 + np.arange(80) * MIN
    v = np.full(80, 70.0)
    v[0:12] = 130
    v[40:55] = 130  # 28 minutes after the first closed: within the 60-minute cooldown
    events = run(HighHeartRateAtRest(lateness_s=0), hr(t, v))
    assert {e.window_start for e in events} == {DAY0}
    assert [e.state for e in events] == ["open", "closed", "update", "closed"]
    assert [e.seq for e in events] == [1, 2, 3, 4]


# -- NightSignal ---------------------------------------------------------------------------

def test_it_raises_a_red_alert_after_two_nights_4_bpm_over_baseline():
    det = NightSignal(lateness_s=0)
    events = run(det, nights([0] * 10 + [4.5, 4.5]), DAY0 + 12 * DAY)
    assert [(e.state, e.severity) for e in events] == [("open", "red")]
    assert events[0].evidence["baseline_bpm"] == 60.0
    assert events[0].window_start == DAY0 + 10 * DAY
    assert events[0].window_end == DAY0 + 11 * DAY + 7 * HOUR


def test_two_nights_3_to_4_bpm_over_baseline_are_yellow():
    events = run(NightSignal(lateness_s=0), nights([0] * 10 + [3.5, 3.5]), DAY0 + 12 * DAY)
    assert [(e.state, e.severity) for e in events] == [("open", "yellow")]


def test_one_elevated_night_alone_raises_nothing():
    assert run(NightSignal(lateness_s=0), nights([0] * 10 + [6, 0, 6]), DAY0 + 13 * DAY) == []


def test_the_night_is_judged_at_seven_not_before():
    det = NightSignal(lateness_s=0)
    s = nights([0] * 10 + [5, 5])
    assert run(det, s, DAY0 + 11 * DAY + 6 * HOUR + 59 * MIN) == []
    assert len(det.advance_to(DAY0 + 11 * DAY + 7 * HOUR)) == 1


def test_minutes_with_steps_do_not_count_toward_resting_heart_rate():
    s = nights([0] * 10 + [0, 0])
    # the last two nights: restless minutes at 100 bpm, each with steps
    t = DAY0 + np.repeat([10, 11], 60) * DAY + np.tile(np.arange(60), 2) * 5 * MIN + 30_000
    steps = Samples.from_arrays(STEPS, t, end=t + 20_000, value=np.full(t.size, 12.0))
    events = run(NightSignal(lateness_s=0), Samples.concat([s, hr(t, 100.0), steps]), DAY0 + 12 * DAY)
    assert events == []


def test_a_normal_night_closes_the_episode_and_each_further_raised_night_is_an_update():
    events = run(NightSignal(lateness_s=0), nights([0] * 10 + [5, 5, 5, 0]), DAY0 + 14 * DAY)
    assert [e.state for e in events] == ["open", "update", "closed"]
    assert events[1].evidence["nights"][-1]["night"] == "2026-01-13"  # the third raised night
    assert events[-1].window_end == DAY0 + 12 * DAY + 7 * HOUR  # the last elevated night
    assert events[-1].time == DAY0 + 13 * DAY + 7 * HOUR  # closed the morning after


def test_a_night_with_under_the_minimum_coverage_does_not_count():
    # two raised nights, each a 90-minute burst of readings (every minute): 9 slots, not 12
    base = nights([0] * 10)
    t = np.concatenate([DAY0 + d * DAY + 5 * HOUR + np.arange(90) * MIN for d in (10, 11)])
    s = Samples.concat([base, hr(t, np.full(t.size, 80.0))])
    assert run(NightSignal(lateness_s=0, min_night_hours=2), s, DAY0 + 12 * DAY) == []
    # the same nights pass with 1.5 hours required, and readings 5 minutes apart over
    # 2 hours (an Apple Watch at rest) fill every 10-minute slot
    assert [e.severity for e in run(NightSignal(lateness_s=0, min_night_hours=1.5), s, DAY0 + 12 * DAY)] == ["red"]
    t = np.concatenate([DAY0 + d * DAY + 3 * HOUR + np.arange(24) * 5 * MIN for d in (10, 11)])
    s = Samples.concat([base, hr(t, np.full(t.size, 80.0))])
    assert [e.severity for e in run(NightSignal(lateness_s=0, min_night_hours=2), s, DAY0 + 12 * DAY)] == ["red"]


def test_a_raised_episode_lapses_after_nights_without_an_alerting_night():
    # raised nights 10-11, then no data for nights 12-14: the alert closes the morning
    # after the third night without an alert, with the nights counted in its evidence
    s = Samples.concat([nights([0] * 10 + [6, 6]),
                        hr(np.array([DAY0 + 15 * DAY + 12 * HOUR]), np.array([60.0]))])
    events = run(NightSignal(lateness_s=0, lapse_nights=3), s, DAY0 + 16 * DAY)
    assert [e.state for e in events] == ["open", "closed"]
    assert events[1].time == DAY0 + 14 * DAY + 7 * HOUR
    assert events[1].evidence["lapsed_nights"] == 3
    # without the rule it stays open through the missing nights
    assert [e.state for e in run(NightSignal(lateness_s=0), s, DAY0 + 16 * DAY)] == ["open"]


def test_the_night_follows_the_patients_time_zone():
    # nights at 00:00-07:00 in UTC+2 are 22:00-05:00 UTC the day before
    s = nights([0] * 10 + [5, 5])
    shifted = Samples(s.metric, s.time - 2 * HOUR, s.end - 2 * HOUR, s.value, s.asleep)
    events = run(NightSignal(lateness_s=0, tz_offset_min=120), shifted, DAY0 + 12 * DAY)
    assert [e.severity for e in events] == ["red"]
    assert events[0].window_start == DAY0 + 10 * DAY - 2 * HOUR  # local midnight
    assert events[0].evidence["nights"][0]["resting_hr_bpm"] == 65.0  # the whole local night


# -- CuSum -------------------------------------------------------------------------------

def _cusum_days(n_days, shift_from=None, shift=0.0, seed=3):
    rng = np.random.default_rng(seed)
    t = DAY0 + np.arange(0, n_days * 1440, 3) * MIN
    v = 62 + 3 * np.sin(2 * np.pi * (t % DAY) / DAY) + rng.normal(0, 2, t.size)
    if shift_from is not None:
        v = v + np.where(t >= DAY0 + shift_from * DAY, shift, 0.0)
    return hr(t, v)


def test_cusum_stays_quiet_on_a_stable_resting_heart_rate():
    assert run(CuSumRHR(lateness_s=0), _cusum_days(45)) == []


def test_cusum_raises_yellow_after_a_day_of_alarm_and_red_after_48_hours():
    events = run(CuSumRHR(lateness_s=0), _cusum_days(40, shift_from=34, shift=6))
    assert [(e.state, e.severity) for e in events] == [("open", "yellow"), ("update", "red")]
    assert events[0].window_start >= DAY0 + 34 * DAY
    assert events[1].evidence["alarm_hours"] > 48


def test_cusum_days_in_alarm_stay_out_of_the_baseline_until_the_re_baseline():
    det = CuSumRHR(lateness_s=0)
    run(det, _cusum_days(40, shift_from=34, shift=6))
    assert det.alarm_since_ >= 0  # 6 days in alarm: not yet re-baselined (7)
    assert bin(det.excluded_).count("1") >= 5  # the alarm days are kept out
    assert abs(float(np.nanmean(det.mu_)) - 62) < 1  # the baseline is the old level


def test_cusum_re_baselines_after_a_lasting_change_and_lets_go():
    events = run(CuSumRHR(lateness_s=0), _cusum_days(60, shift_from=30, shift=6))
    states = [(e.state, e.severity) for e in events]
    assert states[:3] == [("open", "yellow"), ("update", "red"), ("closed", "red")]
    closed = events[2]
    assert closed.evidence == {"rebaselined": True, "alarm_days": 7}
    assert closed.time - closed.window_start <= 8 * DAY  # open 7 days, not weeks
    assert all(e.state == "closed" for e in events[2:] if e.state != "open") or len(events) <= 5


def test_cusum_state_keeps_the_baseline_in_half_bpm_steps_and_derives_the_rest():
    import pickle

    det = CuSumRHR(lateness_s=0)
    run(det, _cusum_days(30))
    twin = pickle.loads(pickle.dumps(det))
    assert np.array_equal(twin.mu_, det.mu_, equal_nan=True) and twin.threshold_ == det.threshold_
    assert len(pickle.dumps(det)) < 1500  # with its own minute bins (in a monitor, the monitor bins)


# -- wear gaps ----------------------------------------------------------------------------

def _worn_every_5_min(days, drop=None):
    t = DAY0 + np.arange(0, days * 1440, 5) * MIN
    if drop is not None:
        t = t[(t < drop[0]) | (t >= drop[1])]
    return hr(t, 70.0)


def test_a_daytime_gap_of_six_hours_raises_a_wear_gap_alert():
    gap = (DAY0 + 10 * DAY + 9 * HOUR, DAY0 + 10 * DAY + 15 * HOUR)
    events = run(WearGap(lateness_s=0), _worn_every_5_min(12, gap))
    assert [e.state for e in events] == ["open", "closed"]
    assert abs(events[-1].window_start - gap[0]) <= 5 * MIN
    assert events[-1].window_end == gap[1]


def test_a_gap_in_hours_the_patient_never_wears_the_watch_is_quiet():
    t = DAY0 + np.arange(0, 14 * 1440, 5) * MIN
    daytime = (t % DAY) >= 8 * HOUR
    # off every night from 00:00 to 08:00, and one night also until 10:00
    t = t[daytime | ((t >= DAY0 + 12 * DAY) & (t < DAY0 + 13 * DAY) & ((t % DAY) >= 10 * HOUR))]
    events = run(WearGap(lateness_s=0), hr(t, 70.0))
    assert events == []


def test_a_gap_of_two_hours_is_below_the_three_hour_threshold():
    gap = (DAY0 + 10 * DAY + 9 * HOUR, DAY0 + 10 * DAY + 11 * HOUR)
    assert run(WearGap(lateness_s=0), _worn_every_5_min(12, gap)) == []


def test_an_open_gap_is_reported_while_the_clock_moves_on():
    det = WearGap(lateness_s=0)
    det.update(_worn_every_5_min(12, (DAY0 + 11 * DAY + 9 * HOUR, DAY0 + 13 * DAY)))
    events = det.advance_to(DAY0 + 11 * DAY + 13 * HOUR)
    assert [(e.state, e.severity) for e in events] == [("open", "info")]


# -- sleep debt ---------------------------------------------------------------------------

def sleep_nights(hours, start_h=23.0):
    starts = DAY0 + np.arange(len(hours)) * DAY + int(start_h * HOUR)
    ends = starts + (np.asarray(hours) * HOUR).astype(np.int64)
    return Samples.from_arrays(SLEEP, starts, ends, asleep=np.ones(len(hours), bool))


def test_three_short_nights_in_a_row_are_yellow_and_five_are_red():
    det = SleepDebt(lateness_s=0)
    events = run(det, sleep_nights([7.5] * 10 + [4.5] * 5), DAY0 + 17 * DAY)
    assert [(e.state, e.severity) for e in events] == [("open", "yellow"), ("update", "red")]
    assert events[0].evidence["baseline_sleep_min"] == 450


def test_two_short_nights_are_not_sleep_debt():
    assert run(SleepDebt(lateness_s=0), sleep_nights([7.5] * 10 + [4.5] * 2 + [7.5]), DAY0 + 15 * DAY) == []


def test_a_night_without_a_record_does_not_break_a_streak():
    s = sleep_nights([7.5] * 10 + [4.5, 4.5, 0.0, 4.5])
    keep = s.end > s.time  # the 0-hour night: no record at all
    events = run(SleepDebt(lateness_s=0), s.take(keep), DAY0 + 16 * DAY)
    assert [e.state for e in events] == ["open"]


def test_sleep_that_arrives_the_next_morning_is_still_counted():
    det = SleepDebt(lateness_s=600)
    heart = hr(DAY0 + np.arange(0, 16 * 1440, 10) * MIN, 60.0)
    det.update(heart.take(heart.time < DAY0 + 15 * DAY))
    # the whole sleep log is uploaded late, long after the minutes it covers were final
    det.update(sleep_nights([7.5] * 10 + [4.5] * 3))
    events = det.update(heart.take(heart.time >= DAY0 + 15 * DAY))
    assert [e.severity for e in events] == ["yellow"]


# -- the monitor and overrides ----------------------------------------------------------------

def test_overrides_change_a_running_detector_and_can_be_taken_back():
    mon = PatientMonitor(lateness_s=0)
    t = DAY0 + np.arange(30) * MIN
    assert mon.apply_overrides({"hr_high_at_rest": {"threshold": 100}}) is True
    assert [e.detector for e in mon.update(hr(t, 110.0))] == ["hr_high_at_rest"]
    assert mon.apply_overrides({"hr_high_at_rest": {"threshold": 100}}) is False
    mon.apply_overrides({})
    assert mon.child("hr_high_at_rest").threshold == 120


@pytest.mark.parametrize("detector,params,reason", [
    ("nope", {}, "unknown detector"),
    ("hr_high_at_rest", {"lateness_s": 5}, "cannot be overridden"),
    ("nightsignal_rhr", {"red_delta": "four"}, "must be a number"),
])
def test_a_bad_override_is_refused_with_a_reason(detector, params, reason):
    with pytest.raises(ValueError, match=reason):
        validate_overrides(detector, params)


def test_a_frames_shared_answers_equal_the_direct_ones_and_depend_on_the_tail_asked_with():
    from streams.detectors.base import HR_SCALE, MinuteFrame, trailing_count

    rng = np.random.default_rng(3)
    n = 40
    frame = MinuteFrame(29_000_000, rng.integers(0, 3, n) * 70_000, rng.integers(0, 3, n).astype(np.int32),
                        np.where(rng.random(n) < 0.3, 12.0, 0.0), np.zeros(n, np.int32))
    moving = (frame.steps > 0) | (frame.activity > 0)
    assert np.array_equal(frame.moving, moving)
    quiet, busy = np.zeros(9, np.int8), np.ones(9, np.int8)
    for tail in (quiet, busy, quiet):
        counts, new_tail = frame.rest_counts(tail, 10)
        want_counts, want_tail = trailing_count(moving, tail, 10)
        assert np.array_equal(counts, want_counts) and np.array_equal(new_tail, want_tail)
    assert not np.array_equal(frame.rest_counts(quiet, 10)[0], frame.rest_counts(busy, 10)[0])
    has = frame.hr_n > 0
    assert np.allclose(frame.hr_mean()[has], frame.hr_sum[has] / frame.hr_n[has] / HR_SCALE)
    assert not frame.hr_mean()[~has].any()
    assert np.array_equal(frame.moving_cumsum(), np.cumsum(moving))
    assert np.array_equal(frame.local_minutes(-300), frame.minutes() - 300)
