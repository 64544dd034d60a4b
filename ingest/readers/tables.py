"""CSV exports: Stanford studies, Fitabase, Google Fit Takeout daily CSVs, WHOOP.

Read in chunks of ``CHUNK_ROWS`` with pandas, every column as text, converted column
by column (no per-row Python). Slashed dates are put in one day/month order per file
(``dates``) before they are parsed.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd

from ingest.readers import dates
from ingest.readers.base import (
    CHUNK_ROWS,
    Chunk,
    ReaderError,
    first_reason,
    header_line,
    make_chunk,
    numbers,
    open_text,
    participant_from_name,
    skipped_only,
    to_ms,
)

MINUTE_MS = 60_000


def csv_chunks(path: Path, skip_blank: int = 0, usecols: list[str] | None = None
               ) -> Iterator[tuple[pd.DataFrame, np.ndarray]]:
    with open_text(path) as fh:
        first_line = 2 + skip_blank
        for frame in pd.read_csv(fh, chunksize=CHUNK_ROWS, dtype=str, skip_blank_lines=True,
                                 keep_default_na=False, usecols=usecols):
            lines = np.arange(first_line, first_line + len(frame), dtype=np.int64)
            first_line += len(frame)
            yield frame, lines


def date_order(path: Path, columns: list[str], given: str | None, skip_blank: int = 0) -> str | None:
    """The file's day/month order: a pre-pass over its date columns only, and only when
    its first rows hold slashed dates (ISO files cost one peek)."""
    with open_text(path) as fh:
        peek = pd.read_csv(fh, nrows=200, dtype=str, keep_default_na=False, usecols=columns)
    if not any(peek[c].str.contains("/", regex=False).any() for c in columns):
        return None
    evidence = dates.DateOrder(path.name)
    for frame, _ in csv_chunks(path, skip_blank, usecols=columns):
        for c in columns:
            evidence.add(frame[c])
    return evidence.decide(given=given)


def local_ms(col: pd.Series, tz: str, order: str | None) -> tuple[np.ndarray, np.ndarray]:
    return to_ms(dates.to_iso(col.reset_index(drop=True), order), tz)


# ------------------------------------------------------------ Stanford studies

def read_stanford(path: Path, tz: str, metric: str, order: str | None) -> Iterator[Chunk]:
    column = "heartrate" if metric == "heart_rate" else "steps"
    order = date_order(path, ["datetime"], order)
    for frame, lines in csv_chunks(path):
        if "datetime" not in frame or column not in frame:
            raise ReaderError(f"{path.name}: expected columns user, datetime, {column}")
        ms, reasons = local_ms(frame["datetime"], tz, order)
        values = numbers(frame[column], reasons)
        users = frame["user"].to_numpy() if "user" in frame else np.full(len(frame), participant_from_name(path))
        for user in pd.unique(users):
            sel = users == user
            end = np.where(ms[sel] >= 0, ms[sel] + MINUTE_MS, -1) if metric == "steps" else None
            yield make_chunk(str(user) or participant_from_name(path), metric, lines[sel], ms[sel],
                             reasons[sel], values[sel], end)


def read_applewatch_hr(path: Path, tz: str, order: str | None) -> Iterator[Chunk]:
    who = participant_from_name(path)
    order = date_order(path, ["Start_Date"], order)
    for frame, lines in csv_chunks(path):
        ms, reasons = local_ms(frame["Start_Date"] + " " + frame["Start_Time"], tz, order)
        yield make_chunk(who, "heart_rate", lines, ms, reasons, numbers(frame["Value"], reasons))


def read_healthkit_steps(path: Path, tz: str, order: str | None) -> Iterator[Chunk]:
    who = participant_from_name(path)
    order = date_order(path, ["Start_Date", "End_Date"], order)
    for frame, lines in csv_chunks(path):
        ms, reasons = local_ms(frame["Start_Date"] + " " + frame["Start_Time"], tz, order)
        end, end_reasons = local_ms(frame["End_Date"] + " " + frame["End_Time"], tz, order)
        reasons = first_reason(reasons, end_reasons)
        values = numbers(frame["Steps"], reasons)
        # HealthKit writes zero-length intervals for instant counts: give them one second.
        end = np.where((end >= 0) & (end <= ms), ms + 1000, end)
        yield make_chunk(who, "steps", lines, ms, reasons, values, end)


def read_fitbit_minute_steps(path: Path, tz: str, order: str | None) -> Iterator[Chunk]:
    who = participant_from_name(path)
    _, blank = header_line(path)
    order = date_order(path, ["datetime"], order, skip_blank=blank)
    for frame, lines in csv_chunks(path, skip_blank=blank):
        ms, reasons = local_ms(frame["datetime"], tz, order)
        end = np.where(ms >= 0, ms + MINUTE_MS, -1)
        yield make_chunk(who, "steps", lines, ms, reasons, numbers(frame["steps"], reasons), end)


# ----------------------------------------------------------------- Fitabase

FITABASE_DATE = {
    "fitabase-heartrate": "Time",
    "fitabase-hourly-steps": "ActivityHour",
    "fitabase-daily-activity": "ActivityDate",
    "fitabase-sleep": "SleepDay",
}


def read_fitabase(path: Path, tz: str, fmt: str, order: str | None) -> Iterator[Chunk]:
    date_col = FITABASE_DATE[fmt]
    order = date_order(path, [date_col], order)
    for frame, lines in csv_chunks(path):
        ms_all, reasons_all = local_ms(frame[date_col], tz, order)
        ids = frame["Id"].to_numpy()
        for pid in pd.unique(ids):
            sel = ids == pid
            f, ln, ms, reasons = frame[sel], lines[sel], ms_all[sel], reasons_all[sel]
            if fmt == "fitabase-heartrate":
                yield make_chunk(str(pid), "heart_rate", ln, ms, reasons, numbers(f["Value"], reasons))
            elif fmt == "fitabase-hourly-steps":
                yield make_chunk(str(pid), "steps", ln, ms, reasons, numbers(f["StepTotal"], reasons),
                                 np.where(ms >= 0, ms + 3_600_000, -1))
            elif fmt == "fitabase-daily-activity":
                yield make_chunk(str(pid), "steps", ln, ms, reasons, numbers(f["TotalSteps"], reasons),
                                 np.where(ms >= 0, ms + 86_400_000, -1))
            else:
                # Minutes asleep per day, with no clock time in the export; the interval
                # starts at the day's midnight so that it falls in the right night.
                minutes = numbers(f["TotalMinutesAsleep"], reasons)
                end = np.where((ms >= 0) & ~np.isnan(minutes),
                               ms + np.nan_to_num(minutes) * MINUTE_MS, -1).astype(np.int64)
                labels = np.full(len(f), "asleep", dtype=object)
                yield make_chunk(str(pid), "sleep_stage", ln, ms, reasons, np.full(len(f), np.nan), end, labels)


# ------------------------------------------------- Google Fit Takeout daily CSV

GOOGLE_FIT_STEPS = "Step count"
GOOGLE_FIT_HR = "Average heart rate (bpm)"
_ISO_DATE = re.compile(r"(\d{4}-\d{2}-\d{2})")


def read_google_fit_daily(path: Path) -> Iterator[Chunk]:
    """Takeout/Fit/Daily activity metrics/YYYY-MM-DD.csv: 15-minute rows whose times
    carry an offset but no date; the date is only in the file's name.

    A record is one filled cell of a measure column. Steps become steps intervals, the
    15-minute average heart rate a heart_rate reading at the interval's middle (the
    export has no single readings); every other measure is counted as skipped by type.
    """
    found = _ISO_DATE.findall(path.name)
    if not found:
        raise ReaderError(f"{path.name}: a Google Fit daily CSV carries its date only in its file "
                          "name (YYYY-MM-DD.csv), and this name has none; rename it")
    day = found[-1]
    for frame, lines in csv_chunks(path):
        start = pd.to_datetime(day + "T" + frame["Start time"].str.strip(), utc=True, errors="coerce",
                               format="ISO8601")
        end = pd.to_datetime(day + "T" + frame["End time"].str.strip(), utc=True, errors="coerce",
                             format="ISO8601")
        bad = (start.isna() | end.isna()).to_numpy()
        s_ms = np.where(bad, -1, start.dt.tz_convert(None).to_numpy().astype("datetime64[ms]").astype(np.int64))
        e_ms = np.where(bad, -1, end.dt.tz_convert(None).to_numpy().astype("datetime64[ms]").astype(np.int64))
        e_ms = np.where(~bad & (e_ms <= s_ms), e_ms + 86_400_000, e_ms)  # the 23:45-00:00 row
        skipped: Counter = Counter()
        for col in frame.columns:
            if col in ("Start time", "End time", GOOGLE_FIT_STEPS, GOOGLE_FIT_HR):
                continue
            filled = int((frame[col].str.strip() != "").sum())
            if filled:
                skipped[f"Google Fit {col}"] += filled
        if skipped:
            yield skipped_only("", skipped)
        for col, metric in ((GOOGLE_FIT_STEPS, "steps"), (GOOGLE_FIT_HR, "heart_rate")):
            if col not in frame:
                continue
            filled = (frame[col].str.strip() != "").to_numpy()
            if not filled.any():
                continue
            reasons = np.where(bad[filled], "unreadable Start time or End time", None).astype(object)
            values = numbers(frame[col][filled], reasons)
            s, e = s_ms[filled], e_ms[filled]
            if metric == "steps":
                yield make_chunk("", metric, lines[filled], s, reasons, values, e)
            else:
                mid = np.where(s >= 0, s + (e - s) // 2, -1)
                yield make_chunk("", metric, lines[filled], mid, reasons, values)


# ----------------------------------------------------------------------- WHOOP

_UTC_OFFSET = r"^\s*(?:UTC|GMT)?\s*([+-])(\d{1,2}):?(\d{2})?\s*$"
WHOOP_TIME_COLUMNS = {"Cycle start time", "Cycle end time", "Cycle timezone", "Sleep onset", "Wake onset",
                      "Workout start time", "Workout end time", "Nap", "GPS enabled", "Activity name"}
WHOOP_STAGES = (("Light sleep duration (min)", "light"), ("Deep (SWS) duration (min)", "deep"),
                ("REM duration (min)", "rem"), ("Awake duration (min)", "awake"))
WHOOP_HRV = "Heart rate variability (ms)"
# WHOOP's own strain bands (0-21): light below 10, moderate 10-14, strenuous and above from 14.
_STRAIN_BANDS = np.array([10.0, 14.0])
_INTENSITY = np.array(["light", "moderate", "vigorous"], dtype=object)


def _whoop_ms(local: pd.Series, zone: pd.Series) -> tuple[np.ndarray, np.ndarray]:
    """WHOOP's local times with the cycle's ``UTC+01:00`` zone column, to epoch ms."""
    ms, reasons = to_ms(local, "UTC")
    parts = zone.reset_index(drop=True).astype(str).str.extract(_UTC_OFFSET)
    ok = parts[0].notna().to_numpy()
    sign = np.where(parts[0].to_numpy() == "-", -1, 1)
    hours = pd.to_numeric(parts[1], errors="coerce").fillna(0).to_numpy(dtype=np.int64)
    minutes = pd.to_numeric(parts[2], errors="coerce").fillna(0).to_numpy(dtype=np.int64)
    offset = sign * (hours * 3_600_000 + minutes * 60_000)
    reasons = np.where(np.equal(reasons, None) & ~ok, "unreadable Cycle timezone", reasons)
    ms = np.where((ms >= 0) & ok, ms - offset, -1)
    return ms, reasons


def _whoop_skipped(frame: pd.DataFrame, used: set[str]) -> Counter:
    skipped: Counter = Counter()
    for col in frame.columns:
        if col in WHOOP_TIME_COLUMNS or col in used:
            continue
        filled = int((frame[col].str.strip() != "").sum())
        if filled:
            skipped[f"WHOOP {col}"] += filled
    return skipped


def read_whoop(path: Path, fmt: str) -> Iterator[Chunk]:
    """WHOOP's app export (physiological_cycles.csv, sleeps.csv, workouts.csv).

    * cycles: HRV (WHOOP's is RMSSD, measured in sleep) as hrv_rmssd at wake onset;
      recovery, resting heart rate, strain and the rest are daily scores, skipped by
      type; the sleep columns are skipped here because sleeps.csv carries the same nights.
    * sleeps: each night's (or nap's) minutes of light, deep, REM and awake, laid out
      one after the other from sleep onset: the export has no hypnogram, so only the
      per-night totals are real, and those are what the sleep rollups use.
    * workouts: one activity per workout; intensity from WHOOP's strain bands, energy
      from its "Energy burned (cal)", which are kilocalories.
    """
    for frame, lines in csv_chunks(path):
        zone = frame["Cycle timezone"]
        if fmt == "whoop-cycles":
            yield skipped_only("", _whoop_skipped(frame, {WHOOP_HRV}))
            filled = (frame[WHOOP_HRV].str.strip() != "").to_numpy()
            if filled.any():
                ms, reasons = _whoop_ms(frame["Wake onset"][filled], zone[filled])
                reasons = np.where((ms < 0) & np.equal(reasons, None), "no Wake onset to time the HRV", reasons)
                yield make_chunk("", "hrv_rmssd", lines[filled], ms, reasons,
                                 numbers(frame[WHOOP_HRV][filled], reasons))
        elif fmt == "whoop-sleeps":
            yield skipped_only("", _whoop_skipped(frame, {c for c, _ in WHOOP_STAGES}))
            onset, reasons0 = _whoop_ms(frame["Sleep onset"], zone)
            cursor = onset.copy()
            for col, stage in WHOOP_STAGES:
                minutes = pd.to_numeric(frame[col], errors="coerce").to_numpy(dtype=np.float64)
                present = (frame[col].str.strip() != "").to_numpy() & ~(minutes == 0)
                reasons = reasons0.copy()
                reasons[np.isnan(minutes) & np.equal(reasons, None)] = "value is not a number"
                length = np.rint(np.nan_to_num(minutes) * MINUTE_MS).astype(np.int64)
                end = np.where(cursor >= 0, cursor + length, -1)
                if present.any():
                    yield make_chunk("", "sleep_stage", lines[present], cursor[present], reasons[present],
                                     np.full(int(present.sum()), np.nan), end[present],
                                     np.full(int(present.sum()), stage, dtype=object))
                cursor = np.where(present, end, cursor)
        else:
            start, r1 = _whoop_ms(frame["Workout start time"], zone)
            end, r2 = _whoop_ms(frame["Workout end time"], zone)
            reasons = first_reason(r1, r2)
            strain = pd.to_numeric(frame["Activity Strain"], errors="coerce").to_numpy(dtype=np.float64)
            intensity = _INTENSITY[np.searchsorted(_STRAIN_BANDS, np.nan_to_num(strain), side="right")]
            reasons = np.where(np.isnan(strain) & np.equal(reasons, None), "unreadable Activity Strain", reasons)
            energy = pd.to_numeric(frame["Energy burned (cal)"], errors="coerce").to_numpy(dtype=np.float64)
            kinds = frame["Activity name"].str.strip().str.lower().to_numpy(dtype=object)
            # The other columns (heart-rate zones, distance...) describe the same workout:
            # a workouts file holds one record per row.
            yield make_chunk("", "activity", lines, start, reasons, energy, end, kinds, intensity)
