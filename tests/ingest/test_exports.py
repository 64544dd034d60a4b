"""Readers of real export shapes: Apple export.zip, Fitbit account JSON, Google Fit Takeout,
WHOOP, and the day/month order of slashed dates. Files are made by the tests."""

from __future__ import annotations

from collections import Counter

import numpy as np
import pandas as pd
import pytest

from ingest.readers import ReaderError, detect_format, iter_chunks, load_frames
from tests.conftest import SHARED_DATA
from tests.ingest import exports

MS = 1000


def utc_ms(text: str) -> int:
    return int(pd.Timestamp(text).timestamp() * 1000)


def by_metric(chunks) -> dict:
    out = {}
    for c in chunks:
        if len(c):
            assert c.metric not in out
            out[c.metric] = c
    return out


def skipped(chunks) -> Counter:
    total: Counter = Counter()
    for c in chunks:
        total.update(c.skipped)
    return total


# ------------------------------------------------------------------------ Apple

def test_apple_export_zip_is_recognised_and_only_export_xml_is_read(tmp_path):
    path = exports.apple_export_zip(tmp_path / "upload-17_export.zip", exports.APPLE_MIXED)
    assert detect_format(path) == "apple-health-xml"
    chunks = list(iter_chunks(path))
    got = by_metric(chunks)
    assert set(got) == {"heart_rate", "steps", "sleep_stage"}
    assert got["heart_rate"].time.tolist() == [utc_ms("2024-01-02T07:00:00Z")]
    assert got["heart_rate"].value.tolist() == [72.0]
    assert got["steps"].end.tolist() == [utc_ms("2024-01-02T07:05:00Z")]
    assert got["sleep_stage"].label.tolist() == ["deep"]


def test_records_skipped_by_type_are_counted_by_type(tmp_path):
    path = tmp_path / "export.xml"
    path.write_text(exports.apple_export_xml(exports.APPLE_MIXED))
    counts = skipped(iter_chunks(path))
    assert counts == Counter({
        "HKCategoryValueSleepAnalysisInBed": 1,
        "HKQuantityTypeIdentifierBodyMass": 1,
        "HKQuantityTypeIdentifierHeartRateVariabilitySDNN": 1,
        "Workout": 1,
    })


@pytest.mark.parametrize("name", ["export_cda.xml", "export.xml", "data.bin"])
def test_apples_clinical_document_is_named_for_what_it_is_whatever_its_name(tmp_path, name):
    path = tmp_path / name
    path.write_text(exports.CDA_XML)
    with pytest.raises(ReaderError, match="clinical document"):
        detect_format(path)
    with pytest.raises(ReaderError, match="clinical document"):
        list(iter_chunks(path, fmt="apple-health-xml"))


def test_a_zip_with_only_the_clinical_document_says_where_the_samples_are(tmp_path):
    import zipfile

    path = tmp_path / "export.zip"
    with zipfile.ZipFile(path, "w") as z:
        z.writestr("apple_health_export/export_cda.xml", exports.CDA_XML)
        z.writestr("apple_health_export/other.txt", "x")
    with pytest.raises(ReaderError, match="no export.xml"):
        detect_format(path)


def test_a_truncated_export_xml_is_a_reader_error_naming_the_line(tmp_path):
    text = exports.apple_export_xml(exports.apple_heart_rates(10))
    cut = text.index('value="66"')  # inside the 7th record's start tag
    path = tmp_path / "export.xml"
    path.write_text(text[:cut])
    line = text[:cut].count("\n") + 1
    with pytest.raises(ReaderError, match=rf"cut short at line {line}, column \d+; 6 records before it"):
        list(iter_chunks(path))


def test_malformed_xml_in_the_middle_names_its_line(tmp_path):
    records = exports.apple_heart_rates(5)
    records[3] = records[3].replace("<MetadataEntry", "<MetadataEntry <")
    text = exports.apple_export_xml(records)
    path = tmp_path / "export.xml"
    path.write_text(text)
    line = text[:text.index("<MetadataEntry <")].count("\n") + 1
    with pytest.raises(ReaderError, match=rf"malformed or cut short at line {line},"):
        list(iter_chunks(path))


def test_a_large_export_comes_in_whole_chunks(tmp_path, monkeypatch):
    from ingest.readers import base

    monkeypatch.setattr(base, "CHUNK_ROWS", 4)
    path = tmp_path / "export.xml"
    path.write_text(exports.apple_export_xml(exports.apple_heart_rates(10)))
    sizes = [len(c) for c in iter_chunks(path) if len(c)]
    assert sizes == [4, 4, 2]


# ----------------------------------------------------------------------- Fitbit

def test_fitbit_heart_rate_json_is_read_as_utc_whatever_the_file_is_called(tmp_path):
    for name in ("heart_rate-2024-01-05.json", "u7_a1b2_heart_rate-2024-01-05.json", "upload.bin"):
        path = exports.write_json(tmp_path / name, exports.fitbit_heart_rate())
        assert detect_format(path) == "fitbit-heart-rate-json"
        (chunk,) = [c for c in iter_chunks(path) if len(c)]
        assert chunk.metric == "heart_rate"
        assert chunk.time.tolist() == [utc_ms("2024-01-05T08:00:00Z") + i * 5 * MS for i in range(4)]
        assert chunk.value.tolist() == [70.0, 71.0, 72.0, 73.0]


def test_fitbit_steps_json_with_string_values_becomes_minute_intervals(tmp_path):
    path = exports.write_json(tmp_path / "export-3_steps-2024-01-05.json", exports.fitbit_steps())
    assert detect_format(path) == "fitbit-steps-json"
    (chunk,) = list(iter_chunks(path))
    start = utc_ms("2024-01-05T08:00:00Z")
    assert chunk.time.tolist() == [start, start + 60 * MS, start + 120 * MS]
    assert (chunk.end - chunk.time).tolist() == [60 * MS] * 3
    assert chunk.value.tolist() == [0.0, 12.0, 95.0]


def test_other_fitbit_series_are_counted_as_skipped_and_an_unnamed_series_is_refused(tmp_path):
    calories = exports.write_json(tmp_path / "calories-2024-01-05.json", exports.fitbit_steps())
    assert detect_format(calories) == "fitbit-series-json"
    assert skipped(iter_chunks(calories)) == Counter({"Fitbit calories": 3})
    unnamed = exports.write_json(tmp_path / "upload.json", exports.fitbit_steps())
    with pytest.raises(ReaderError, match="pass --format fitbit-steps-json"):
        list(iter_chunks(unnamed))
    (chunk,) = list(iter_chunks(unnamed, fmt="fitbit-steps-json"))
    assert chunk.value.tolist() == [0.0, 12.0, 95.0]


def test_fitbit_sleep_json_gives_stages_in_local_time_and_counts_short_wakes_as_skipped(tmp_path):
    path = exports.write_json(tmp_path / "sleep-2024-01-05.json", exports.FITBIT_SLEEP)
    assert detect_format(path) == "fitbit-sleep-json"
    chunks = list(iter_chunks(path, tz="Europe/Berlin"))
    (chunk,) = [c for c in chunks if len(c)]
    assert chunk.label.tolist() == ["awake", "light", "deep"]
    assert chunk.time[0] == utc_ms("2024-01-05T22:10:00Z")
    assert ((chunk.end - chunk.time) // MS).tolist() == [600, 1800, 3600]
    assert skipped(chunks) == Counter({"Fitbit sleep shortData (short wakes overlaid on stages)": 1})


def test_a_single_fitbit_day_uses_fitbits_month_first_order(tmp_path):
    path = exports.write_json(tmp_path / "heart_rate-2024-01-05.json", exports.fitbit_heart_rate("01/05/24"))
    (chunk,) = list(iter_chunks(path))
    assert pd.Timestamp(int(chunk.time[0]), unit="ms").month == 1


# ------------------------------------------------------------------- Google Fit

def test_google_fit_takeout_json_reads_nanosecond_epochs_and_skips_other_types(tmp_path):
    path = exports.write_json(tmp_path / "derived_com.google.heart_rate.bpm.json", exports.google_fit_points())
    assert detect_format(path) == "google-fit-json"
    chunks = list(iter_chunks(path))
    got = by_metric(chunks)
    t0 = utc_ms("2024-01-05T08:00:00Z")
    assert got["heart_rate"].time.tolist() == [t0] and got["heart_rate"].value.tolist() == [64.0]
    assert got["steps"].end.tolist() == [t0 + 60 * MS] and got["steps"].value.tolist() == [80.0]
    assert got["sleep_stage"].label.tolist() == ["deep"]
    assert skipped(chunks) == Counter({"com.google.calories.expended": 1, "com.google.sleep.segment out of bed": 1})


def test_google_fit_daily_csv_takes_its_date_from_the_name_whatever_the_prefix(tmp_path):
    path = tmp_path / "a9f_2024-01-05.csv"
    path.write_text(exports.GOOGLE_FIT_DAILY)
    assert detect_format(path) == "google-fit-daily-csv"
    chunks = list(iter_chunks(path))
    got = by_metric(chunks)
    assert got["steps"].time.tolist() == [utc_ms("2024-01-05T07:00:00Z"), utc_ms("2024-01-05T22:45:00Z")]
    assert got["steps"].end.tolist() == [utc_ms("2024-01-05T07:15:00Z"), utc_ms("2024-01-05T23:00:00Z")]
    assert got["heart_rate"].time.tolist() == [utc_ms("2024-01-05T07:07:30Z")]
    assert got["heart_rate"].value.tolist() == [92.5]
    assert sum(skipped(chunks).values()) == 13  # the other filled measures of the three rows
    undated = tmp_path / "daily.csv"
    undated.write_text(exports.GOOGLE_FIT_DAILY)
    with pytest.raises(ReaderError, match="date only in its file name"):
        list(iter_chunks(undated))


# ------------------------------------------------------------------------ WHOOP

def test_whoop_cycles_give_rmssd_at_wake_onset_in_the_cycles_zone(tmp_path):
    path = tmp_path / "physiological_cycles.csv"
    path.write_text(exports.WHOOP_CYCLES)
    assert detect_format(path) == "whoop-cycles"
    chunks = list(iter_chunks(path))
    got = by_metric(chunks)
    assert got["hrv_rmssd"].time.tolist() == [utc_ms("2024-03-11T11:50:00Z")]
    assert got["hrv_rmssd"].value.tolist() == [48.0]
    counts = skipped(chunks)
    assert counts["WHOOP Resting heart rate (bpm)"] == 1 and counts["WHOOP Recovery score %"] == 1
    assert sum(counts.values()) == 20  # the 21 measures of the row, less the HRV


def test_whoop_sleeps_lay_the_nights_stage_minutes_out_from_onset(tmp_path):
    path = tmp_path / "sleeps.csv"
    path.write_text(exports.WHOOP_SLEEPS)
    assert detect_format(path) == "whoop-sleeps"
    chunks = [c for c in iter_chunks(path) if len(c)]
    labels = [c.label[0] for c in chunks]
    minutes = [int((c.end[0] - c.time[0]) // 60_000) for c in chunks]
    assert labels == ["light", "deep", "rem", "awake"] and minutes == [200, 90, 130, 48]
    assert chunks[0].time[0] == utc_ms("2024-03-11T04:02:11Z")
    assert all(a.end[0] == b.time[0] for a, b in zip(chunks, chunks[1:], strict=False))


def test_whoop_workouts_become_activities_with_strain_intensity(tmp_path):
    path = tmp_path / "workouts.csv"
    path.write_text(exports.WHOOP_WORKOUTS)
    assert detect_format(path) == "whoop-workouts"
    (chunk,) = list(iter_chunks(path))
    assert chunk.metric == "activity"
    assert chunk.label.tolist() == ["running"] and chunk.intensity.tolist() == ["vigorous"]
    assert chunk.value.tolist() == [620.0]
    assert chunk.time.tolist() == [utc_ms("2024-03-11T22:00:00Z")]


# ------------------------------------------------------------ day/month order

SLEEP_HEADER = "Id,SleepDay,TotalSleepRecords,TotalMinutesAsleep,TotalTimeInBed\n"


def fitabase_sleep(days: list[tuple[int, int]], day_first: bool) -> str:
    rows = [f"1503960366,{d}/{m}/2016 12:00:00 AM,1,400,420" if day_first
            else f"1503960366,{m}/{d}/2016 12:00:00 AM,1,400,420" for m, d in days]
    return SLEEP_HEADER + "\n".join(rows) + "\n"


def test_a_fitabase_file_rewritten_day_first_lands_every_row_on_its_date(tmp_path):
    days = [(4, d) for d in range(8, 17)]
    original = tmp_path / "sleepDay_merged.csv"
    original.write_text(fitabase_sleep(days, day_first=False))
    rewritten = tmp_path / "sleepDay_resaved.csv"
    rewritten.write_text(fitabase_sleep(days, day_first=True))
    (a,) = list(iter_chunks(original))
    (b,) = list(iter_chunks(rewritten))
    assert a.time.tolist() == b.time.tolist()
    assert [pd.Timestamp(int(t), unit="ms").strftime("%m-%d") for t in b.time] == [f"04-{d:02d}" for _, d in days]


def test_a_file_whose_dates_fit_both_orders_is_refused_unless_the_order_is_given(tmp_path):
    path = tmp_path / "sleepDay_merged.csv"
    path.write_text(fitabase_sleep([(2, 1), (1, 2)], day_first=False))  # 2/1 then 1/2
    with pytest.raises(ReaderError, match="--date-order"):
        list(iter_chunks(path))
    (chunk,) = list(iter_chunks(path, date_order="dmy"))
    assert [pd.Timestamp(int(t), unit="ms").strftime("%m-%d") for t in chunk.time] == ["01-02", "02-01"]


def test_a_file_mixing_day_first_and_month_first_is_refused(tmp_path):
    path = tmp_path / "sleepDay_merged.csv"
    path.write_text(SLEEP_HEADER + "1,13/4/2016 12:00:00 AM,1,400,420\n1,4/14/2016 12:00:00 AM,1,400,420\n")
    with pytest.raises(ReaderError, match="mix day-first and month-first"):
        list(iter_chunks(path))


def test_a_date_order_that_contradicts_the_file_is_refused(tmp_path):
    path = tmp_path / "sleepDay_merged.csv"
    path.write_text(fitabase_sleep([(4, 13)], day_first=False))
    with pytest.raises(ReaderError, match="contradicts"):
        list(iter_chunks(path, date_order="dmy"))


@pytest.mark.skipif(not SHARED_DATA.exists(), reason="../shared/data is not present")
def test_the_real_fitabase_sleep_file_rewritten_day_first_reads_the_same(tmp_path):
    real = SHARED_DATA / "fitbit-fitabase-2016" / "sleepDay_merged.csv"
    frame = pd.read_csv(real, dtype=str)
    parts = frame["SleepDay"].str.extract(r"^(\d+)/(\d+)/(\d+)(.*)$")
    frame["SleepDay"] = parts[1] + "/" + parts[0] + "/" + parts[2] + parts[3]
    rewritten = tmp_path / "sleepDay_resaved.csv"
    frame.to_csv(rewritten, index=False)
    before, after = load_frames([real]), load_frames([rewritten])
    assert before.keys() == after.keys()
    for who in before:
        pd.testing.assert_frame_equal(before[who], after[who])
    rows = int(np.sum([len(f) for f in after.values()]))
    assert rows == 410  # 413 rows less 3 exact duplicates, as in the original
