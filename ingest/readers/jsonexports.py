"""JSON exports: Fitbit's account export and Google Fit's Takeout ("All data").

Fitbit (``Physical Activity/`` and ``Sleep/`` of the account export, or Google
Takeout's ``Fitbit/Global Export Data``), one file a day or a month:

* heart rate, a list of ``{"dateTime": "MM/DD/YY HH:MM:SS", "value": {"bpm": 71,
  "confidence": 2}}``, in UTC;
* minute series such as steps, a list of ``{"dateTime": ..., "value": "12"}`` (a
  string), in UTC. Steps, calories, distance and the rest share this shape exactly,
  so the series is named by the word before the date in the file name
  (``steps-2024-01-05.json``, whatever precedes it); steps are stored, the others
  counted as skipped by type;
* sleep, a list of sessions whose ``levels.data`` are stages (``wake``, ``light``,
  ``deep``, ``rem``; ``asleep``, ``restless``, ``awake`` for classic logs) with a
  local start time and a length in seconds, read in ``--tz``. ``levels.shortData``
  (short wakes overlaid on the stages) is counted as skipped: storing it would
  count those minutes twice.

Google Fit: ``{"Data Source": ..., "Data Points": [{"dataTypeName": ...,
"startTimeNanos": ..., "endTimeNanos": ..., "fitValue": [{"value": {"fpVal": 62.0}}]}]}``;
heart rate, step deltas and sleep segments are stored, other data types skipped.

JSON is decoded whole (orjson; these files are per day, month or data source), then
converted column-wise with numpy and pandas.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import orjson
import pandas as pd

from ingest.readers import dates
from ingest.readers.base import Chunk, ReaderError, make_chunk, open_binary, skipped_only, to_ms

FITBIT_SLEEP_LEVELS = {"wake": "awake", "awake": "awake", "restless": "awake", "light": "light",
                       "deep": "deep", "rem": "rem", "asleep": "asleep"}
_SERIES_NAME = re.compile(r"([A-Za-z]+(?:_[A-Za-z]+)*)-\d{4}-\d{2}")
GOOGLE_SLEEP = {1: "awake", 2: "asleep", 4: "light", 5: "deep", 6: "rem"}  # 3 is "out of bed"


def load_json(path: Path) -> Any:
    with open_binary(path) as fh:
        raw = fh.read()
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise ReaderError(f"{path.name}: not valid JSON ({exc})") from None


def fitbit_series_name(path: Path) -> str | None:
    """The series a Fitbit minute-series file holds, from the word before its date."""
    found = _SERIES_NAME.findall(path.name)
    return found[-1].lower() if found else None


def _fitbit_times(path: Path, stamps: list, order: str | None) -> tuple[np.ndarray, np.ndarray]:
    col = pd.Series(stamps, dtype=object).astype(str)
    decided = dates.decide(path.name, [col], default="mdy", given=order)
    return to_ms(dates.to_iso(col, decided), "UTC")


def read_fitbit_heart_rate(path: Path, order: str | None) -> Iterator[Chunk]:
    data = load_json(path)
    if not isinstance(data, list):
        raise ReaderError(f"{path.name}: a Fitbit heart-rate file is a list of readings")
    stamps = [r.get("dateTime") if isinstance(r, dict) else None for r in data]
    bpm = [(r.get("value") or {}).get("bpm") if isinstance(r, dict) and isinstance(r.get("value"), dict)
           else None for r in data]
    ms, reasons = _fitbit_times(path, stamps, order)
    values = pd.to_numeric(pd.Series(bpm, dtype=object), errors="coerce").to_numpy(dtype=np.float64)
    reasons[np.isnan(values) & np.equal(reasons, None)] = "value.bpm is not a number"
    yield make_chunk("", "heart_rate", np.arange(1, len(data) + 1, dtype=np.int64), ms, reasons, values)


def read_fitbit_series(path: Path, order: str | None, series: str | None = None) -> Iterator[Chunk]:
    data = load_json(path)
    if not isinstance(data, list):
        raise ReaderError(f"{path.name}: a Fitbit series file is a list of readings")
    series = series or fitbit_series_name(path)
    if series is None:
        raise ReaderError(
            f"{path.name}: a Fitbit minute series (steps, calories, distance... all look alike) named "
            "by nothing in its file name; pass --format fitbit-steps-json for steps")
    if series != "steps" and not series.endswith("_steps"):
        yield skipped_only("", Counter({f"Fitbit {series}": len(data)}))
        return
    stamps = [r.get("dateTime") if isinstance(r, dict) else None for r in data]
    raw = [r.get("value") if isinstance(r, dict) else None for r in data]
    ms, reasons = _fitbit_times(path, stamps, order)
    values = pd.to_numeric(pd.Series(raw, dtype=object), errors="coerce").to_numpy(dtype=np.float64)
    reasons[np.isnan(values) & np.equal(reasons, None)] = "value is not a number"
    end = np.where(ms >= 0, ms + 60_000, -1)
    yield make_chunk("", "steps", np.arange(1, len(data) + 1, dtype=np.int64), ms, reasons, values, end)


def read_fitbit_sleep(path: Path, tz: str) -> Iterator[Chunk]:
    data = load_json(path)
    if not isinstance(data, list):
        raise ReaderError(f"{path.name}: a Fitbit sleep file is a list of sessions")
    stamps: list = []
    seconds: list = []
    levels: list = []
    skipped: Counter = Counter()
    for session in data:
        if not isinstance(session, dict):
            stamps.append(None)
            seconds.append(None)
            levels.append(None)
            continue
        lv = session.get("levels") if isinstance(session.get("levels"), dict) else {}
        entries = lv.get("data") if isinstance(lv.get("data"), list) else None
        short = lv.get("shortData") if isinstance(lv.get("shortData"), list) else []
        if short:
            skipped["Fitbit sleep shortData (short wakes overlaid on stages)"] += len(short)
        if entries is None:
            # A session logged by hand has no stages: one "asleep" interval.
            stamps.append(session.get("startTime"))
            ms_len = session.get("duration")
            seconds.append(ms_len / 1000 if isinstance(ms_len, (int, float)) else None)
            levels.append("asleep")
            continue
        for e in entries:
            ok = isinstance(e, dict)
            stamps.append(e.get("dateTime") if ok else None)
            seconds.append(e.get("seconds") if ok else None)
            levels.append(e.get("level") if ok else None)
    if skipped:
        yield skipped_only("", skipped)
    if not stamps:
        return
    col = pd.Series(stamps, dtype=object).astype(str).str.replace("T", " ", regex=False).str.slice(0, 19)
    ms, reasons = to_ms(col, tz)
    secs = pd.to_numeric(pd.Series(seconds, dtype=object), errors="coerce").to_numpy(dtype=np.float64)
    reasons[np.isnan(secs) & np.equal(reasons, None)] = "seconds is not a number"
    end = np.where((ms >= 0) & ~np.isnan(secs), ms + np.rint(np.nan_to_num(secs) * 1000), -1).astype(np.int64)
    stage = pd.Series(levels, dtype=object).map(FITBIT_SLEEP_LEVELS).to_numpy(dtype=object)
    unknown = pd.isna(stage)
    reasons[unknown & np.equal(reasons, None)] = "unknown sleep level"
    stage = np.where(unknown, None, stage)
    yield make_chunk("", "sleep_stage", np.arange(1, len(stamps) + 1, dtype=np.int64), ms, reasons,
                     np.full(len(stamps), np.nan), end, stage)


# ------------------------------------------------------------------- Google Fit

def _google_points(obj: Any) -> tuple[list, str]:
    """The data points, and the data type named by the file's data source (for points
    that do not name their own)."""
    if isinstance(obj, list):
        return obj, ""
    if isinstance(obj, dict):
        source = obj.get("Data Source") or obj.get("dataSourceId") or ""
        parts = source.split(":") if isinstance(source, str) else []
        kind = parts[1] if len(parts) > 1 else ""
        for key in ("Data Points", "dataPoints", "point", "points"):
            if isinstance(obj.get(key), list):
                return obj[key], kind
    raise ReaderError("a Google Fit JSON file holds a list of data points")


def _google_value(p: dict) -> Any:
    values = p.get("fitValue")
    if isinstance(values, list) and values and isinstance(values[0], dict):
        v = values[0].get("value", {})
    else:
        values = p.get("value")
        v = values[0] if isinstance(values, list) and values and isinstance(values[0], dict) else {}
    if not isinstance(v, dict):
        return None
    return v.get("fpVal", v.get("intVal"))


def read_google_fit_json(path: Path) -> Iterator[Chunk]:
    try:
        points, source = _google_points(load_json(path))
    except ReaderError as exc:
        raise ReaderError(f"{path.name}: {exc}") from None
    kinds = [p.get("dataTypeName", source) if isinstance(p, dict) else "(not a data point)" for p in points]
    frame = pd.DataFrame({
        "kind": kinds,
        "start": [p.get("startTimeNanos") if isinstance(p, dict) else None for p in points],
        "end": [p.get("endTimeNanos") if isinstance(p, dict) else None for p in points],
        "value": [_google_value(p) if isinstance(p, dict) else None for p in points],
    })
    frame["line"] = np.arange(1, len(frame) + 1, dtype=np.int64)
    start_ns = pd.to_numeric(frame["start"], errors="coerce")
    end_ns = pd.to_numeric(frame["end"], errors="coerce")
    frame["start_ms"] = np.where(start_ns.notna(), start_ns.fillna(0) // 1_000_000, -1).astype(np.int64)
    frame["end_ms"] = np.where(end_ns.notna(), end_ns.fillna(0) // 1_000_000, -1).astype(np.int64)
    frame["number"] = pd.to_numeric(frame["value"], errors="coerce")
    wanted = {"com.google.heart_rate.bpm": "heart_rate", "com.google.step_count.delta": "steps",
              "com.google.sleep.segment": "sleep_stage"}
    out_of_bed = (frame["kind"] == "com.google.sleep.segment") & (frame["number"] == 3)
    skipped = Counter(frame.loc[~frame["kind"].isin(list(wanted)), "kind"].tolist())
    if out_of_bed.any():
        skipped["com.google.sleep.segment out of bed"] += int(out_of_bed.sum())
    if skipped:
        yield skipped_only("", skipped)
    for kind, metric in wanted.items():
        f = frame[(frame["kind"] == kind) & ~out_of_bed]
        if f.empty:
            continue
        start = f["start_ms"].to_numpy()
        end = f["end_ms"].to_numpy()
        reasons = np.where(start < 0, "unreadable startTimeNanos", None).astype(object)
        values = f["number"].to_numpy(dtype=np.float64)
        lines = f["line"].to_numpy()
        if metric == "sleep_stage":
            stage = f["number"].map(GOOGLE_SLEEP).to_numpy(dtype=object)
            reasons[pd.isna(stage) & np.equal(reasons, None)] = "unknown sleep segment type"
            stage = np.where(pd.isna(stage), None, stage)
            yield make_chunk("", metric, lines, start, reasons, np.full(len(f), np.nan), end, stage)
            continue
        reasons[np.isnan(values) & np.equal(reasons, None)] = "value is not a number"
        if metric == "steps":
            end = np.where((start >= 0) & (end <= start), start + 1000, end)
            yield make_chunk("", metric, lines, start, reasons, values, end)
        else:
            yield make_chunk("", metric, lines, start, reasons, values)
