"""Readers for real wearable exports, streamed in chunks (never loaded whole).

Each reader yields ``Chunk`` objects: one participant's rows as columns, times in
epoch milliseconds (UTC), with the source line of every row and, for rows that
could not be read, the reason. The importer (``import_samples``) turns chunks into
samples.v1 batches through the schema module; ``load_frames`` turns them into
DataFrames for the detectors' and forecasters' replays and backtests.

Formats (``--format``; detected from the header when omitted):

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
apple-health-xml           Apple Health ``export.xml`` (heart rate, steps, sleep)
=========================  =====================================================

Local times without an offset are read in the ``tz`` given (default UTC); a local
time that does not exist or is ambiguous (daylight-saving changes) is refused with
that reason rather than guessed.
"""

from __future__ import annotations

import io
import re
import zipfile
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from xml.etree import ElementTree

import numpy as np
import pandas as pd

CHUNK_ROWS = 50_000
FORMATS = (
    "stanford-hr", "stanford-steps", "applewatch-hr", "healthkit-steps", "fitbit-minute-steps",
    "fitabase-heartrate", "fitabase-hourly-steps", "fitabase-daily-activity", "fitabase-sleep",
    "apple-health-xml",
)


class ReaderError(ValueError):
    """The file as a whole cannot be read in the asked format."""


@dataclass
class Chunk:
    participant: str
    metric: str
    line: np.ndarray  # source line numbers (1 = header)
    time: np.ndarray  # int64 epoch ms, or -1 where unreadable
    end: np.ndarray | None  # int64 epoch ms for interval metrics
    value: np.ndarray  # float64 (NaN where unreadable, or for sleep)
    label: np.ndarray | None = None  # sleep stage
    error: np.ndarray | None = None  # object: reason per row, None when readable

    def __len__(self) -> int:
        return len(self.line)


# ----------------------------------------------------------------- opening files

def _open_text(path: Path) -> io.TextIOBase:
    if path.suffix == ".zip":
        archive = zipfile.ZipFile(path)
        members = [m for m in archive.namelist() if not m.endswith("/") and not m.startswith("__MACOSX")]
        if len(members) != 1:
            raise ReaderError(f"{path.name}: a zip must hold exactly one file, it holds {len(members)}")
        return io.TextIOWrapper(archive.open(members[0]), encoding="utf-8-sig", newline="")
    return open(path, encoding="utf-8-sig", newline="")  # noqa: SIM115 - closed by the caller


def _header(path: Path) -> tuple[str, int]:
    """The first non-blank line and how many blank lines precede it."""
    with _open_text(path) as fh:
        skipped = 0
        for raw in fh:
            line = raw.strip()
            if line:
                return line, skipped
            skipped += 1
    raise ReaderError(f"{path.name}: the file is empty")


def detect_format(path: Path) -> str:
    if path.suffix == ".xml" or path.name.endswith(".xml.zip"):
        return "apple-health-xml"
    header, _ = _header(path)
    cols = [c.strip().lower() for c in header.split(",")]
    table = {
        ("", "user", "datetime", "heartrate"): "stanford-hr",
        ("", "user", "datetime", "steps"): "stanford-steps",
        ("device", "start_date", "start_time", "value"): "applewatch-hr",
        ("device", "start_date", "start_time", "end_date", "end_time", "steps"): "healthkit-steps",
        ("datetime", "steps"): "fitbit-minute-steps",
        ("id", "time", "value"): "fitabase-heartrate",
        ("id", "activityhour", "steptotal"): "fitabase-hourly-steps",
    }
    if tuple(cols) in table:
        return table[tuple(cols)]
    if cols[:3] == ["id", "activitydate", "totalsteps"]:
        return "fitabase-daily-activity"
    if cols[:2] == ["id", "sleepday"]:
        return "fitabase-sleep"
    raise ReaderError(f"{path.name}: unknown format (header {header[:80]!r}); pass --format, one of {', '.join(FORMATS)}")


def participant_from_name(path: Path) -> str:
    name = path.name.split(".")[0]
    return re.split(r"[-_]", name)[0] or name


# ------------------------------------------------------------------ time parsing

def _to_ms(local: pd.Series, tz: str) -> tuple[np.ndarray, np.ndarray]:
    """Naive local datetimes -> epoch ms, plus a reason per row where that fails."""
    parsed = pd.to_datetime(local, errors="coerce", format="mixed")
    reasons = np.full(len(parsed), None, dtype=object)
    bad_parse = parsed.isna().to_numpy()
    reasons[bad_parse] = "unreadable date-time"
    if tz != "UTC":
        localized = parsed.dt.tz_localize(tz, ambiguous="NaT", nonexistent="NaT")
        dst = localized.isna().to_numpy() & ~bad_parse
        reasons[dst] = f"local time does not exist or is ambiguous in {tz}"
    else:
        localized = parsed.dt.tz_localize("UTC")
    ms = np.full(len(parsed), -1, dtype=np.int64)
    ok = ~localized.isna().to_numpy()
    ms[ok] = localized[ok].dt.tz_convert(None).to_numpy().astype("datetime64[ms]").astype(np.int64)
    return ms, reasons


def _values(col: pd.Series, reasons: np.ndarray) -> np.ndarray:
    values = pd.to_numeric(col, errors="coerce").to_numpy(dtype=np.float64)
    bad = np.isnan(values) & np.equal(reasons, None)
    reasons[bad] = "value is not a number"
    return values


def _chunk(participant: str, metric: str, lines: np.ndarray, ms: np.ndarray, reasons: np.ndarray,
           values: np.ndarray, end: np.ndarray | None = None, label: np.ndarray | None = None) -> Chunk:
    return Chunk(participant, metric, lines, ms, end, values, label,
                 reasons if any(r is not None for r in reasons) else None)


# ------------------------------------------------------------------ CSV readers

def _csv_chunks(path: Path, skip_blank: int = 0) -> Iterator[tuple[pd.DataFrame, np.ndarray]]:
    with _open_text(path) as fh:
        first_line = 2 + skip_blank
        for frame in pd.read_csv(fh, chunksize=CHUNK_ROWS, dtype=str, skip_blank_lines=True,
                                 keep_default_na=False):
            lines = np.arange(first_line, first_line + len(frame), dtype=np.int64)
            first_line += len(frame)
            yield frame, lines


def _read_stanford(path: Path, tz: str, metric: str) -> Iterator[Chunk]:
    column = "heartrate" if metric == "heart_rate" else "steps"
    for frame, lines in _csv_chunks(path):
        if "datetime" not in frame or column not in frame:
            raise ReaderError(f"{path.name}: expected columns user, datetime, {column}")
        ms, reasons = _to_ms(frame["datetime"], tz)
        values = _values(frame[column], reasons)
        users = frame["user"].to_numpy() if "user" in frame else np.full(len(frame), participant_from_name(path))
        for user in pd.unique(users):
            sel = users == user
            end = np.where(ms[sel] >= 0, ms[sel] + 60_000, -1) if metric == "steps" else None
            yield _chunk(str(user) or participant_from_name(path), metric, lines[sel], ms[sel],
                         reasons[sel], values[sel], end)


def _read_applewatch_hr(path: Path, tz: str) -> Iterator[Chunk]:
    who = participant_from_name(path)
    for frame, lines in _csv_chunks(path):
        ms, reasons = _to_ms(frame["Start_Date"] + " " + frame["Start_Time"], tz)
        yield _chunk(who, "heart_rate", lines, ms, reasons, _values(frame["Value"], reasons))


def _read_healthkit_steps(path: Path, tz: str) -> Iterator[Chunk]:
    who = participant_from_name(path)
    for frame, lines in _csv_chunks(path):
        ms, reasons = _to_ms(frame["Start_Date"] + " " + frame["Start_Time"], tz)
        end, end_reasons = _to_ms(frame["End_Date"] + " " + frame["End_Time"], tz)
        reasons = np.where(np.equal(reasons, None), end_reasons, reasons)
        values = _values(frame["Steps"], reasons)
        # HealthKit writes zero-length intervals for instant counts: give them one second.
        end = np.where((end >= 0) & (end <= ms), ms + 1000, end)
        yield _chunk(who, "steps", lines, ms, reasons, values, end)


def _read_fitbit_minute_steps(path: Path, tz: str) -> Iterator[Chunk]:
    who = participant_from_name(path)
    _, blank = _header(path)
    for frame, lines in _csv_chunks(path, skip_blank=blank):
        ms, reasons = _to_ms(frame["datetime"], tz)
        end = np.where(ms >= 0, ms + 60_000, -1)
        yield _chunk(who, "steps", lines, ms, reasons, _values(frame["steps"], reasons), end)


def _per_id(frame: pd.DataFrame, lines: np.ndarray, build) -> Iterator[Chunk]:
    ids = frame["Id"].to_numpy()
    for pid in pd.unique(ids):
        sel = ids == pid
        yield build(str(pid), frame[sel], lines[sel])


def _read_fitabase(path: Path, tz: str, fmt: str) -> Iterator[Chunk]:
    for frame, lines in _csv_chunks(path):
        def build(pid: str, f: pd.DataFrame, ln: np.ndarray) -> Chunk:
            if fmt == "fitabase-heartrate":
                ms, reasons = _to_ms(f["Time"], tz)
                return _chunk(pid, "heart_rate", ln, ms, reasons, _values(f["Value"], reasons))
            if fmt == "fitabase-hourly-steps":
                ms, reasons = _to_ms(f["ActivityHour"], tz)
                return _chunk(pid, "steps", ln, ms, reasons, _values(f["StepTotal"], reasons),
                              np.where(ms >= 0, ms + 3_600_000, -1))
            if fmt == "fitabase-daily-activity":
                ms, reasons = _to_ms(f["ActivityDate"], tz)
                return _chunk(pid, "steps", ln, ms, reasons, _values(f["TotalSteps"], reasons),
                              np.where(ms >= 0, ms + 86_400_000, -1))
            # fitabase-sleep: minutes asleep per day, with no clock time in the export; the
            # interval starts at the day's midnight so that it falls in the right night.
            ms, reasons = _to_ms(f["SleepDay"], tz)
            minutes = _values(f["TotalMinutesAsleep"], reasons)
            end = np.where((ms >= 0) & ~np.isnan(minutes), ms + np.nan_to_num(minutes) * 60_000, -1).astype(np.int64)
            labels = np.full(len(f), "asleep", dtype=object)
            return _chunk(pid, "sleep_stage", ln, ms, reasons, np.full(len(f), np.nan), end, labels)

        yield from _per_id(frame, lines, build)


# ------------------------------------------------------------- Apple Health XML

_HK_SLEEP = {
    "HKCategoryValueSleepAnalysisInBed": None,  # time in bed is not sleep
    "HKCategoryValueSleepAnalysisAsleep": "asleep",
    "HKCategoryValueSleepAnalysisAsleepUnspecified": "asleep",
    "HKCategoryValueSleepAnalysisAsleepCore": "light",
    "HKCategoryValueSleepAnalysisAsleepDeep": "deep",
    "HKCategoryValueSleepAnalysisAsleepREM": "rem",
    "HKCategoryValueSleepAnalysisAwake": "awake",
}
_HK_TYPES = {
    "HKQuantityTypeIdentifierHeartRate": "heart_rate",
    "HKQuantityTypeIdentifierStepCount": "steps",
    "HKQuantityTypeIdentifierHeartRateVariabilitySDNN": None,  # SDNN is not RMSSD
    "HKCategoryTypeIdentifierSleepAnalysis": "sleep_stage",
}


def _hk_time(text: str | None) -> int:
    if not text:
        return -1
    try:
        return int(datetime.strptime(text, "%Y-%m-%d %H:%M:%S %z").timestamp() * 1000)
    except ValueError:
        return -1


def _read_apple_health(path: Path, participant: str | None) -> Iterator[Chunk]:
    """Stream export.xml with iterparse, clearing elements as it goes (files reach GBs)."""
    who = participant or participant_from_name(path)
    rows: dict[str, list[list]] = {"heart_rate": [], "steps": [], "sleep_stage": []}
    opener = zipfile.ZipFile(path).open(
        next(n for n in zipfile.ZipFile(path).namelist() if n.endswith(".xml"))
    ) if path.suffix == ".zip" else open(path, "rb")  # noqa: SIM115
    with opener as fh:
        record_no = 0
        for _event, elem in ElementTree.iterparse(fh, events=("end",)):
            if elem.tag != "Record":
                if elem.tag in {"Workout", "ActivitySummary", "Correlation"}:
                    elem.clear()
                continue
            record_no += 1
            kind = elem.get("type")
            metric = _HK_TYPES.get(kind)
            if metric is not None:
                start, end = _hk_time(elem.get("startDate")), _hk_time(elem.get("endDate"))
                raw = elem.get("value")
                reason = None if start >= 0 else "unreadable startDate"
                if metric == "sleep_stage":
                    stage = _HK_SLEEP.get(raw or "", "skip")
                    if stage is None:
                        elem.clear()
                        continue
                    if stage == "skip":
                        reason = reason or f"unknown sleep value {raw!r}"
                        stage = None
                    rows[metric].append([record_no, start, end, np.nan, stage, reason])
                else:
                    try:
                        value = float(raw) if raw is not None else np.nan
                    except ValueError:
                        value, reason = np.nan, reason or "value is not a number"
                    if metric == "steps" and end >= 0 and start >= 0 and end <= start:
                        end = start + 1000
                    rows[metric].append([record_no, start, end, value, None, reason])
                if len(rows[metric]) >= CHUNK_ROWS:
                    yield _xml_chunk(who, metric, rows[metric])
                    rows[metric] = []
            elem.clear()
    for metric, pending in rows.items():
        if pending:
            yield _xml_chunk(who, metric, pending)


def _xml_chunk(who: str, metric: str, rows: list[list]) -> Chunk:
    cols = list(zip(*rows, strict=True))
    interval = metric != "heart_rate"
    reasons = np.array(cols[5], dtype=object)
    return _chunk(who, metric, np.array(cols[0], dtype=np.int64), np.array(cols[1], dtype=np.int64),
                  reasons, np.array(cols[3], dtype=np.float64),
                  np.array(cols[2], dtype=np.int64) if interval else None,
                  np.array(cols[4], dtype=object) if metric == "sleep_stage" else None)


# -------------------------------------------------------------------- public API

def iter_chunks(path: str | Path, fmt: str | None = None, tz: str = "UTC",
                participant: str | None = None) -> Iterator[Chunk]:
    """Stream one file as chunks. ``participant`` overrides the id found in the file."""
    path = Path(path)
    if not path.exists():
        raise ReaderError(f"{path}: no such file")
    fmt = fmt or detect_format(path)
    if fmt not in FORMATS:
        raise ReaderError(f"unknown format {fmt!r}; use one of {', '.join(FORMATS)}")
    if fmt == "apple-health-xml":
        source = _read_apple_health(path, participant)
    elif fmt in {"stanford-hr", "stanford-steps"}:
        source = _read_stanford(path, tz, "heart_rate" if fmt == "stanford-hr" else "steps")
    elif fmt == "applewatch-hr":
        source = _read_applewatch_hr(path, tz)
    elif fmt == "healthkit-steps":
        source = _read_healthkit_steps(path, tz)
    elif fmt == "fitbit-minute-steps":
        source = _read_fitbit_minute_steps(path, tz)
    else:
        source = _read_fitabase(path, tz, fmt)
    for chunk in source:
        if participant:
            chunk.participant = participant
        yield chunk


FRAME_COLUMNS = ["metric", "time", "end", "value", "label"]


def chunk_frame(chunk: Chunk) -> pd.DataFrame:
    """The readable rows of a chunk as a DataFrame (the replay/backtest shape)."""
    ok = chunk.time >= 0
    if chunk.error is not None:
        ok &= np.equal(chunk.error, None)
    ok &= ~np.isnan(chunk.value) | (chunk.metric == "sleep_stage")
    times = pd.to_datetime(chunk.time[ok], unit="ms", utc=True)
    ends = (pd.to_datetime(chunk.end[ok], unit="ms", utc=True) if chunk.end is not None
            else pd.Series(pd.NaT, index=range(int(ok.sum())), dtype="datetime64[ns, UTC]"))
    return pd.DataFrame({
        "metric": chunk.metric,
        "time": times,
        "end": np.asarray(ends),
        "value": chunk.value[ok],
        "label": chunk.label[ok] if chunk.label is not None else None,
    })


def load_frames(paths: Iterable[str | Path], fmt: str | None = None, tz: str = "UTC") -> dict[str, pd.DataFrame]:
    """Read whole recordings into one DataFrame per participant, sorted by time.

    Columns: metric (str), time and end (datetime64[ns, UTC]; end is NaT for point
    metrics), value (float64; NaN for sleep), label (sleep stage, else None). Exact
    duplicate rows are dropped.
    """
    parts: dict[str, list[pd.DataFrame]] = {}
    for path in paths:
        for chunk in iter_chunks(path, fmt, tz):
            frame = chunk_frame(chunk)
            if len(frame):
                parts.setdefault(chunk.participant, []).append(frame)
    out = {}
    for who, frames in parts.items():
        frame = pd.concat(frames, ignore_index=True)
        frame["end"] = pd.to_datetime(frame["end"], utc=True)
        frame = frame.drop_duplicates(subset=["metric", "time", "end", "value", "label"])
        out[who] = frame.sort_values(["time", "metric"], kind="stable").reset_index(drop=True)
    return out
