"""Readers of real exports, and the simulator's cohort."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from ingest.readers import FORMATS, ReaderError, detect_format, iter_chunks, load_frames
from ingest.schema import BatchError, validate_upload
from ingest.simulator import (
    EPISODE_KINDS,
    iter_uploads,
    make_profiles,
    plan_episodes,
    simulate_cohort,
    simulate_patient,
)
from tests.conftest import SHARED_DATA

needs_data = pytest.mark.skipif(not SHARED_DATA.exists(), reason="../shared/data is not present")

EXPECTED = {
    "stanford-covid19-phase1/AV2GF3B_hr.csv.zip": ("stanford-hr", "AV2GF3B", "heart_rate"),
    "stanford-covid19-phase1/AV2GF3B_steps.csv.zip": ("stanford-steps", "AV2GF3B", "steps"),
    "stanford-covid19-phase2/P355472-AppleWatch-hr.csv": ("applewatch-hr", "P355472", "heart_rate"),
    "stanford-covid19-phase2/P355472-AppleWatch-st.csv": ("healthkit-steps", "P355472", "steps"),
    "stanford-covid19-phase2/P682517-Fitbit-st.csv": ("fitbit-minute-steps", "P682517", "steps"),
    "fitbit-fitabase-2016/heartrate_seconds_merged__SUBSET.csv": ("fitabase-heartrate", "2022484408", "heart_rate"),
    "fitbit-fitabase-2016/hourlySteps_merged__resaved_mdyy.csv": ("fitabase-hourly-steps", "1503960366", "steps"),
    "fitbit-fitabase-2016/dailyActivity_merged.csv": ("fitabase-daily-activity", "1503960366", "steps"),
    "fitbit-fitabase-2016/sleepDay_merged.csv": ("fitabase-sleep", "1503960366", "sleep_stage"),
}


@needs_data
@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_it_detects_and_reads_each_real_export(name):
    fmt, participant, metric = EXPECTED[name]
    path = SHARED_DATA / name
    assert detect_format(path) == fmt
    frames = load_frames([path])
    assert participant in frames
    frame = frames[participant]
    assert set(frame["metric"]) == {metric}
    assert frame["time"].is_monotonic_increasing
    assert str(frame["time"].dt.tz) == "UTC"
    if metric != "heart_rate":
        assert (frame["end"] > frame["time"]).all()


@needs_data
def test_every_row_of_a_file_is_either_readable_or_has_a_reason():
    path = SHARED_DATA / "stanford-covid19-phase2" / "P355472-AppleWatch-hr.csv"
    rows = sum(1 for line in path.read_text().splitlines()[1:] if line.strip())
    chunks = list(iter_chunks(path))
    assert sum(len(c) for c in chunks) == rows
    for c in chunks:
        unreadable = c.time < 0
        if c.error is not None:
            assert all(c.error[unreadable] != None)  # noqa: E711 - elementwise


def test_local_times_that_do_not_exist_are_refused_not_guessed(tmp_path):
    f = tmp_path / "Z9_hr.csv"
    f.write_text(",user,datetime,heartrate\n0,Z9,2024-03-31 02:30:00,60\n1,Z9,2024-03-31 03:30:00,61\n")
    (chunk,) = iter_chunks(f, tz="Europe/Berlin")
    assert chunk.time[0] == -1 and "does not exist or is ambiguous" in chunk.error[0]
    assert chunk.time[1] == 1_711_848_600_000  # 01:30Z


def test_an_unknown_format_name_is_refused(tmp_path):
    f = tmp_path / "a.csv"
    f.write_text("x\n1\n")
    with pytest.raises(ReaderError, match="unknown format"):
        list(iter_chunks(f, fmt="nonsense"))
    assert "apple-health-xml" in FORMATS


def test_the_simulated_cohort_is_deterministic_and_has_controls_and_every_episode_kind():
    a = simulate_cohort(12, 30, start=pd.Timestamp("2025-01-01", tz="UTC").to_pydatetime(), seed=3)
    b = simulate_cohort(12, 30, start=pd.Timestamp("2025-01-01", tz="UTC").to_pydatetime(), seed=3)
    assert set(a.episodes["kind"]) == set(EPISODE_KINDS)
    controls = {p.patient for p in a.profiles} - set(a.episodes["patient"])
    assert controls == {4, 8, 12}
    for pid in a.frames:
        pd.testing.assert_frame_equal(a.frames[pid], b.frames[pid])
    assert (a.episodes["start"] >= pd.Timestamp("2025-01-15", tz="UTC")).all()


def test_injected_episodes_show_in_the_data():
    start_ms = 1_735_689_600_000  # 2025-01-01
    profiles = make_profiles(8, 5)
    episodes = plan_episodes(profiles, start_ms, 30, 5)
    for e in episodes:
        f = simulate_patient(profiles[e.patient - 1], start_ms, 30, episodes, 5)
        inside = f[(f["time"] >= e.start_ms) & (f["time"] < e.end_ms)]
        hr = inside[inside["metric"] == "heart_rate"]["value"]
        if e.kind == "wear_gap":
            assert inside.empty
        elif e.kind == "high_hr_at_rest":
            assert hr.min() >= 110
            assert inside[inside["metric"] == "steps"].empty
        elif e.kind == "short_sleep":
            sleep = inside[inside["metric"] == "sleep_stage"]
            assert ((sleep["end"] - sleep["time"]).sum() / 3_600_000) < 3 * 5


def test_simulated_uploads_pass_the_schema_and_respect_the_size():
    start_ms = 1_735_689_600_000
    f = simulate_patient(make_profiles(1, 2)[0], start_ms, 3, [], 2)
    uploads = list(iter_uploads(f, max_samples=500, window_ms=15 * 60_000))
    assert sum(len(u) for u in uploads) == len(f)
    assert max(len(u) for u in uploads) <= 500
    for i, u in enumerate(uploads):
        try:
            validate_upload({"batch_id": f"u{i}", "samples": u}, patient=1, device=1, max_samples=500)
        except BatchError as exc:  # pragma: no cover - the message says what broke
            pytest.fail(str(exc))
    assert np.all(np.diff([u[0]["time"] for u in uploads]) >= 0)
