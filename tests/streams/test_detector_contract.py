"""One contract for every detector: clone, pickle, determinism, replay equals live.

Each detector is run over a simulated patient whose history holds the episode that
detector is for, so every check below compares non-empty event lists.
"""

from __future__ import annotations

import pickle

import numpy as np
import pytest

from streams.detectors import DETECTORS, Detector, PatientMonitor, Samples
from tests.streams.conftest import patient_with

EPISODE_FOR = {
    "hr_high_at_rest": "high_hr_at_rest",
    "hr_low_at_rest": "high_hr_at_rest",  # its heart rate is mirrored below (see _history)
    "nightsignal_rhr": "elevated_rhr",
    "cusum_rhr": "elevated_rhr",
    "illness_rhr": "elevated_rhr",
    "wear_gap": "wear_gap",
    "sleep_debt": "short_sleep",
    "monitor": "elevated_rhr",
}
LATENESS_S = 600


def _make(name: str) -> Detector:
    if name == "monitor":
        return PatientMonitor(lateness_s=LATENESS_S)
    return DETECTORS[name](lateness_s=LATENESS_S)


def _history(cohort, name: str) -> Samples:
    frame = cohort.frames[patient_with(cohort, EPISODE_FOR[name])].copy()
    if name == "hr_low_at_rest":
        hr = frame["metric"] == "heart_rate"
        frame.loc[hr, "value"] = 170.0 - frame.loc[hr, "value"]  # 130 bpm becomes 40 bpm
    return Samples.from_frame(frame)


def _run_one_batch(det: Detector, s: Samples):
    return det.update(s) + det.advance_to(int(s.time.max()) + LATENESS_S * 1000)


def _live_batches(s: Samples, seed: int) -> list[Samples]:
    """Arrival = event time + up to 90% of the lateness; random batch sizes, shuffled inside."""
    rng = np.random.default_rng(seed)
    arrival = s.time + rng.integers(0, int(LATENESS_S * 1000 * 0.9), len(s))
    order = np.argsort(arrival, kind="stable")
    batches, i = [], 0
    while i < len(order):
        n = int(rng.integers(1, 400))
        part = order[i:i + n].copy()
        rng.shuffle(part)
        batches.append(s.take(part))
        i += n
    return batches


def _run_live(det: Detector, s: Samples, seed: int):
    events = []
    for b in _live_batches(s, seed):
        events += det.update(b)
    return events + det.advance_to(int(s.time.max()) + LATENESS_S * 1000)


NAMES = [*DETECTORS, "monitor"]


def by_detector(events) -> dict[str, list]:
    """Events per detector, in order (the monitor reports one batch detector by detector)."""
    out: dict[str, list] = {}
    for e in events:
        out.setdefault(e.detector, []).append(e)
    return out


@pytest.fixture(scope="module")
def one_batch(cohort):
    out = {}
    for name in NAMES:
        s = _history(cohort, name)
        out[name] = (s, _run_one_batch(_make(name), s))
    return out


@pytest.mark.parametrize("name", NAMES)
def test_the_history_raises_events_for_the_detector(one_batch, name):
    _, events = one_batch[name]
    assert any(e.state == "open" for e in events), f"{name} saw no episode to compare with"


@pytest.mark.parametrize("name", NAMES)
def test_a_clone_has_the_same_hyperparameters_and_none_of_the_learned_state(one_batch, name):
    s, events = one_batch[name]
    trained = _make(name)
    trained.update(s)
    twin = trained.clone()
    assert twin.get_params() == trained.get_params()
    assert twin.watermark_ is None
    assert _run_one_batch(twin, s) == events


@pytest.mark.parametrize("name", NAMES)
def test_pickling_in_the_middle_of_a_stream_changes_nothing(one_batch, name):
    s, events = one_batch[name]
    cut = int(np.searchsorted(np.sort(s.time), np.sort(s.time)[len(s) // 2]))
    order = np.argsort(s.time, kind="stable")
    first, second = s.take(order[:cut]), s.take(order[cut:])
    det = _make(name)
    got = det.update(first)
    det = pickle.loads(pickle.dumps(det))
    got += det.update(second) + det.advance_to(int(s.time.max()) + LATENESS_S * 1000)
    assert by_detector(got) == by_detector(events)


@pytest.mark.parametrize("name", NAMES)
def test_two_runs_over_the_same_history_give_the_same_events(one_batch, name):
    s, events = one_batch[name]
    assert _run_one_batch(_make(name), s) == events


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("seed", [1, 2])
def test_replaying_in_one_batch_equals_living_through_shuffled_small_batches(one_batch, name, seed):
    s, events = one_batch[name]
    det = _make(name)
    assert by_detector(_run_live(det, s, seed)) == by_detector(events)
    assert det.late_samples_ == 0


def test_a_sample_later_than_the_lateness_is_counted_and_ignored():
    from streams.detectors.base import HEART_RATE

    det = DETECTORS["hr_high_at_rest"](lateness_s=60)
    t0 = 1_700_000_040_000
    det.update(Samples.from_arrays(HEART_RATE, [t0 + 3_600_000], value=[60.0]))
    det.update(Samples.from_arrays(HEART_RATE, [t0], value=[60.0]))
    assert det.late_samples_ == 1
