"""Readers for real wearable exports, streamed in chunks (never loaded whole).

Each reader yields ``Chunk`` objects: one participant's rows of one metric as columns,
times in epoch milliseconds (UTC), with the source line (or record number) of every
row and, for rows that could not be read, the reason; records of types this project
does not store are counted in ``Chunk.skipped``. The importer (``import_samples``)
turns chunks into samples.v1 batches through the schema module; ``load_frames`` turns
them into DataFrames for the detectors' and forecasters' replays and backtests.

Formats are recognised by content (header, JSON keys, XML root), never by the file's
name, so any prefix an upload gives a file does not matter. Two exports carry facts
only in their names, and those are read from anywhere in the name: Google Fit's daily
CSVs (the date) and Fitbit's minute series (steps, calories... share one shape).

=========================  =====================================================
stanford-hr                Stanford phase-1 ``,user,datetime,heartrate`` (zip or csv)
stanford-steps             Stanford phase-1 ``,user,datetime,steps`` (one minute each)
applewatch-hr              Stanford phase-2 ``Device,Start_Date,Start_Time,Value``
healthkit-steps            Stanford phase-2 HealthKit step intervals (start and end)
fitbit-minute-steps        Stanford phase-2 Fitbit ``datetime,steps`` (one minute each)
fitabase-heartrate         Fitabase ``Id,Time,Value`` (5-second heart rate)
fitabase-hourly-steps      Fitabase ``Id,ActivityHour,StepTotal``
fitabase-daily-activity    Fitabase ``dailyActivity_merged`` (daily step totals)
fitabase-sleep             Fitabase ``sleepDay_merged`` (minutes asleep per day)
apple-health-xml           Apple Health ``export.xml``, or the Health app's ``export.zip``
fitbit-heart-rate-json     Fitbit account export ``heart_rate-*.json`` (UTC)
fitbit-steps-json          Fitbit account export ``steps-*.json`` (UTC)
fitbit-series-json         Fitbit account export's other minute series (skipped by type)
fitbit-sleep-json          Fitbit account export ``sleep-*.json`` (stages; local time)
google-fit-json            Google Fit Takeout ``All data/*.json`` (nanosecond epochs)
google-fit-daily-csv       Google Fit Takeout ``Daily activity metrics/YYYY-MM-DD.csv``
whoop-cycles               WHOOP ``physiological_cycles.csv`` (HRV, RMSSD)
whoop-sleeps               WHOOP ``sleeps.csv`` (minutes per stage per sleep)
whoop-workouts             WHOOP ``workouts.csv`` (activities)
=========================  =====================================================

Local times without an offset are read in the ``tz`` given (default UTC); a local
time that does not exist or is ambiguous (daylight-saving changes) is refused with
that reason rather than guessed. Slashed dates are read in one day/month order per
file (see ``ingest.readers.dates``).
"""

from __future__ import annotations

import zipfile
from collections.abc import Iterable, Iterator
from pathlib import Path

import numpy as np
import pandas as pd

from ingest.readers import apple, jsonexports, tables
from ingest.readers.base import (
    CHUNK_ROWS,
    Chunk,
    ReaderError,
    header_line,
    open_binary,
    participant_from_name,
)
from ingest.readers.dates import ORDERS as DATE_ORDERS

FORMATS = (
    "stanford-hr", "stanford-steps", "applewatch-hr", "healthkit-steps", "fitbit-minute-steps",
    "fitabase-heartrate", "fitabase-hourly-steps", "fitabase-daily-activity", "fitabase-sleep",
    "apple-health-xml", "fitbit-heart-rate-json", "fitbit-steps-json", "fitbit-series-json",
    "fitbit-sleep-json", "google-fit-json", "google-fit-daily-csv", "whoop-cycles", "whoop-sleeps",
    "whoop-workouts",
)
_SNIFF_BYTES = 64 * 1024
_CSV_HEADERS = {
    ("", "user", "datetime", "heartrate"): "stanford-hr",
    ("", "user", "datetime", "steps"): "stanford-steps",
    ("device", "start_date", "start_time", "value"): "applewatch-hr",
    ("device", "start_date", "start_time", "end_date", "end_time", "steps"): "healthkit-steps",
    ("datetime", "steps"): "fitbit-minute-steps",
    ("id", "time", "value"): "fitabase-heartrate",
    ("id", "activityhour", "steptotal"): "fitabase-hourly-steps",
}


def _unknown(path: Path, what: str) -> ReaderError:
    return ReaderError(f"{path.name}: unknown format ({what}); pass --format, one of {', '.join(FORMATS)}")


def _sniff_json(path: Path, head: str) -> str:
    if '"startTimeNanos"' in head:
        return "google-fit-json"
    if '"logId"' in head and ('"levels"' in head or '"minutesAsleep"' in head):
        return "fitbit-sleep-json"
    if '"dateTime"' in head and '"bpm"' in head:
        return "fitbit-heart-rate-json"
    if '"dateTime"' in head and '"value"' in head:
        series = jsonexports.fitbit_series_name(path)
        return "fitbit-steps-json" if series and (series == "steps" or series.endswith("_steps")) else "fitbit-series-json"
    return ""


def _sniff_csv(path: Path) -> str:
    header, _ = header_line(path)
    cols = [c.strip().strip('"').lower() for c in header.split(",")]
    if tuple(cols) in _CSV_HEADERS:
        return _CSV_HEADERS[tuple(cols)]
    if cols[:3] == ["id", "activitydate", "totalsteps"]:
        return "fitabase-daily-activity"
    if cols[:2] == ["id", "sleepday"]:
        return "fitabase-sleep"
    if cols[:2] == ["start time", "end time"]:
        return "google-fit-daily-csv"
    if "cycle start time" in cols and "cycle timezone" in cols:
        if "workout start time" in cols:
            return "whoop-workouts"
        if "heart rate variability (ms)" in cols:
            return "whoop-cycles"
        if "sleep onset" in cols:
            return "whoop-sleeps"
    raise _unknown(path, f"header {header[:80]!r}")


def detect_format(path: str | Path) -> str:
    """The format of a file from its content. Raises ReaderError naming what was found."""
    path = Path(path)
    if not path.is_file():
        raise ReaderError(f"{path}: no such file")
    if apple.apple_member(path):
        return "apple-health-xml"
    with open_binary(path) as fh:
        head = fh.read(_SNIFF_BYTES).decode("utf-8-sig", errors="replace").lstrip()
    if not head:
        raise ReaderError(f"{path.name}: the file is empty")
    if head.startswith("<"):
        with open_binary(path) as fh:
            root = apple.xml_root(fh, path.name)
        if root == apple.APPLE_ROOT:
            return "apple-health-xml"
        if root == apple.CDA_ROOT:
            raise apple.cda_error(path.name)
        raise _unknown(path, f"an XML file whose root is <{root}>")
    if head[0] in "[{":
        fmt = _sniff_json(path, head)
        if not fmt:
            raise _unknown(path, "JSON that is no Fitbit or Google Fit export")
        return fmt
    return _sniff_csv(path)


def iter_chunks(path: str | Path, fmt: str | None = None, tz: str = "UTC",
                participant: str | None = None, date_order: str | None = None) -> Iterator[Chunk]:
    """Stream one file as chunks. ``participant`` overrides the id found in the file;
    ``date_order`` ('mdy' or 'dmy') settles slashed dates the file leaves ambiguous."""
    path = Path(path)
    if not path.is_file():
        raise ReaderError(f"{path}: no such file")
    if fmt is not None and fmt not in FORMATS:
        raise ReaderError(f"unknown format {fmt!r}; use one of {', '.join(FORMATS)}")
    if date_order is not None and date_order not in DATE_ORDERS:
        raise ReaderError(f"unknown date order {date_order!r}; use mdy or dmy")
    fmt = fmt or detect_format(path)
    if fmt == "apple-health-xml":
        source = apple.read_apple_health(path, participant)
    elif fmt in {"stanford-hr", "stanford-steps"}:
        source = tables.read_stanford(path, tz, "heart_rate" if fmt == "stanford-hr" else "steps", date_order)
    elif fmt == "applewatch-hr":
        source = tables.read_applewatch_hr(path, tz, date_order)
    elif fmt == "healthkit-steps":
        source = tables.read_healthkit_steps(path, tz, date_order)
    elif fmt == "fitbit-minute-steps":
        source = tables.read_fitbit_minute_steps(path, tz, date_order)
    elif fmt.startswith("fitabase-"):
        source = tables.read_fitabase(path, tz, fmt, date_order)
    elif fmt == "fitbit-heart-rate-json":
        source = jsonexports.read_fitbit_heart_rate(path, date_order)
    elif fmt == "fitbit-steps-json":
        source = jsonexports.read_fitbit_series(path, date_order, series="steps")
    elif fmt == "fitbit-series-json":
        source = jsonexports.read_fitbit_series(path, date_order)
    elif fmt == "fitbit-sleep-json":
        source = jsonexports.read_fitbit_sleep(path, tz)
    elif fmt == "google-fit-json":
        source = jsonexports.read_google_fit_json(path)
    elif fmt == "google-fit-daily-csv":
        source = tables.read_google_fit_daily(path)
    else:
        source = tables.read_whoop(path, fmt)
    try:
        for chunk in source:
            if participant:
                chunk.participant = participant
            yield chunk
    except (KeyError, zipfile.BadZipFile) as exc:
        raise ReaderError(f"{path.name}: not a {fmt} file ({type(exc).__name__}: {exc})") from None
    except UnicodeDecodeError:
        raise ReaderError(f"{path.name}: not a text file this importer reads") from None


FRAME_COLUMNS = ["metric", "time", "end", "value", "label"]


def chunk_frame(chunk: Chunk) -> pd.DataFrame:
    """The readable rows of a chunk as a DataFrame (the replay/backtest shape)."""
    ok = chunk.time >= 0
    if chunk.error is not None:
        ok &= np.equal(chunk.error, None)
    ok &= ~np.isnan(chunk.value) | np.isin(chunk.metric, ["sleep_stage", "activity"])
    times = pd.to_datetime(chunk.time[ok], unit="ms", utc=True)
    ends = (pd.to_datetime(chunk.end[ok], unit="ms", utc=True) if chunk.end is not None
            else pd.Series(pd.NaT, index=range(int(ok.sum())), dtype="datetime64[ns, UTC]"))
    if chunk.metric == "activity" and chunk.label is not None and chunk.intensity is not None:
        label = np.empty(int(ok.sum()), dtype=object)
        label[:] = list(zip(chunk.label[ok], chunk.intensity[ok], strict=True))
    else:
        label = chunk.label[ok] if chunk.label is not None else None
    return pd.DataFrame({
        "metric": chunk.metric,
        "time": times,
        "end": np.asarray(ends),
        "value": chunk.value[ok],
        "label": label,
    })


def load_frames(paths: Iterable[str | Path], fmt: str | None = None, tz: str = "UTC",
                date_order: str | None = None) -> dict[str, pd.DataFrame]:
    """Read whole recordings into one DataFrame per participant, sorted by time.

    Columns: metric (str), time and end (datetime64[ns, UTC]; end is NaT for point
    metrics), value (float64; NaN for sleep), label (sleep stage, or (type, intensity)
    for activity, else None). Exact duplicate rows are dropped. Single-person exports
    that name nobody are keyed by their file name's first word.
    """
    parts: dict[str, list[pd.DataFrame]] = {}
    for path in paths:
        for chunk in iter_chunks(path, fmt, tz, date_order=date_order):
            if not len(chunk):
                continue
            frame = chunk_frame(chunk)
            if len(frame):
                parts.setdefault(chunk.participant or participant_from_name(Path(path)), []).append(frame)
    out = {}
    for who, frames in parts.items():
        frame = pd.concat(frames, ignore_index=True)
        frame["end"] = pd.to_datetime(frame["end"], utc=True)
        frame = frame.drop_duplicates(subset=["metric", "time", "end", "value", "label"])
        out[who] = frame.sort_values(["time", "metric"], kind="stable").reset_index(drop=True)
    return out


__all__ = [
    "CHUNK_ROWS", "Chunk", "DATE_ORDERS", "FORMATS", "ReaderError", "chunk_frame", "detect_format",
    "iter_chunks", "load_frames", "participant_from_name",
]
