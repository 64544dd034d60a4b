"""Apple Health: ``export.xml``, or the ``export.zip`` the Health app shares.

The zip holds ``apple_health_export/export.xml`` (the records), ``export_cda.xml`` (an
HL7 clinical document, not samples) and often ``workout-routes/*.gpx`` and
``electrocardiograms/*.csv``: the member whose root element is ``HealthData`` is read,
the rest ignored. The XML is streamed with ``iterparse`` and cleared as it goes (exports
reach gigabytes); times and values are converted a chunk at a time with pandas.

A malformed or truncated file stops with the line and column where the XML breaks.
Records before that point were read; rows still buffered are dropped, so a caller
only ever holds whole chunks (see the importer for what that means for batches).
"""

from __future__ import annotations

import zipfile
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import IO
from xml.etree import ElementTree

import numpy as np
import pandas as pd

from ingest.readers import base
from ingest.readers.base import Chunk, ReaderError, make_chunk, open_binary, skipped_only

HK_SLEEP = {
    "HKCategoryValueSleepAnalysisAsleep": "asleep",
    "HKCategoryValueSleepAnalysisAsleepUnspecified": "asleep",
    "HKCategoryValueSleepAnalysisAsleepCore": "light",
    "HKCategoryValueSleepAnalysisAsleepDeep": "deep",
    "HKCategoryValueSleepAnalysisAsleepREM": "rem",
    "HKCategoryValueSleepAnalysisAwake": "awake",
}
HK_IN_BED = "HKCategoryValueSleepAnalysisInBed"  # time in bed is not sleep: skipped by type
HK_TYPES = {
    "HKQuantityTypeIdentifierHeartRate": "heart_rate",
    "HKQuantityTypeIdentifierStepCount": "steps",
    "HKCategoryTypeIdentifierSleepAnalysis": "sleep_stage",
}
# Whole elements of the export that are records but not samples this project stores.
_OTHER_RECORDS = {"Workout", "ActivitySummary"}
CDA_ROOT = "ClinicalDocument"
APPLE_ROOT = "HealthData"


def xml_root(stream: IO[bytes], name: str) -> str:
    """The root element's tag (reads only up to it). Raises ReaderError when not XML."""
    try:
        for _event, elem in ElementTree.iterparse(stream, events=("start",)):
            return elem.tag.rsplit("}", 1)[-1]
    except ElementTree.ParseError as exc:
        line, col = exc.position
        raise ReaderError(f"{name}: not well-formed XML at line {line}, column {col}") from None
    raise ReaderError(f"{name}: the XML has no root element")


def apple_member(path: Path) -> str | None:
    """The zip member holding Apple's records, or None when ``path`` is not a zip.

    Raises ReaderError for a zip with several files and no Apple records in them.
    """
    if not zipfile.is_zipfile(path):
        return None
    with zipfile.ZipFile(path) as archive:
        members = base.data_members(archive)
        roots = {}
        for m in members:
            if m.lower().endswith(".xml"):
                with archive.open(m) as fh:
                    try:
                        roots[m] = xml_root(fh, m)
                    except ReaderError:
                        roots[m] = None
    health = [m for m, root in roots.items() if root == APPLE_ROOT]
    if len(health) == 1:
        return health[0]
    if len(health) > 1:
        raise ReaderError(f"{path.name}: holds {len(health)} Apple Health exports; import them one by one")
    if any(root == CDA_ROOT for root in roots.values()):
        raise ReaderError(f"{path.name}: holds Apple's clinical document (export_cda.xml) but no "
                          "export.xml; the samples are in export.xml")
    return None


def cda_error(name: str) -> ReaderError:
    return ReaderError(
        f"{name}: this is Apple's clinical document (export_cda.xml, HL7 CDA), which holds no "
        "samples this importer reads; import export.xml, or the whole export.zip")


class _Buffer:
    """Raw attribute strings of one metric's records until a chunk is full."""

    def __init__(self) -> None:
        self.rows: list[tuple[int, str | None, str | None, str | None]] = []


def read_apple_health(path: Path, participant: str | None = None) -> Iterator[Chunk]:
    who = participant or ""
    member = apple_member(path)
    buffers = {m: _Buffer() for m in set(HK_TYPES.values())}
    skipped: Counter = Counter()
    record_no = 0
    depth = 0
    root = None
    with open_binary(path, member) as fh:
        try:
            for event, elem in ElementTree.iterparse(fh, events=("start", "end")):
                if event == "start":
                    if root is None:
                        root = elem
                        if elem.tag == CDA_ROOT or elem.tag.endswith("}" + CDA_ROOT):
                            raise cda_error(path.name)
                        if elem.tag != APPLE_ROOT:
                            raise ReaderError(f"{path.name}: an XML file whose root is <{elem.tag}>, "
                                              "not Apple Health's <HealthData>")
                    depth += 1
                    continue
                depth -= 1
                tag = elem.tag
                if tag == "Record":
                    record_no += 1
                    kind = elem.get("type") or "(no type)"
                    metric = HK_TYPES.get(kind)
                    raw = elem.get("value")
                    if metric is None:
                        skipped[kind] += 1
                    elif metric == "sleep_stage" and raw == HK_IN_BED:
                        skipped[HK_IN_BED] += 1
                    else:
                        buf = buffers[metric]
                        buf.rows.append((record_no, raw, elem.get("startDate"), elem.get("endDate")))
                        if len(buf.rows) >= base.CHUNK_ROWS:
                            if skipped:
                                yield skipped_only(who, skipped)
                                skipped = Counter()
                            yield _chunk(who, metric, buf.rows)
                            buf.rows = []
                elif tag in _OTHER_RECORDS and depth == 1:
                    record_no += 1
                    skipped[tag] += 1
                if depth == 1 and root is not None:
                    root.clear()  # drop finished top-level elements: memory stays flat
        except ElementTree.ParseError as exc:
            line, col = exc.position
            raise ReaderError(
                f"{path.name}{f' ({member})' if member else ''}: the XML is malformed or cut short "
                f"at line {line}, column {col}; {record_no:,} records before it were read") from None
    if skipped:
        yield skipped_only(who, skipped)
    for metric, buf in buffers.items():
        if buf.rows:
            yield _chunk(who, metric, buf.rows)


def _hk_times(col: pd.Series) -> np.ndarray:
    parsed = pd.to_datetime(col, format="%Y-%m-%d %H:%M:%S %z", utc=True, errors="coerce")
    ms = np.full(len(col), -1, dtype=np.int64)
    ok = parsed.notna().to_numpy()
    ms[ok] = parsed[ok].dt.tz_convert(None).to_numpy().astype("datetime64[ms]").astype(np.int64)
    return ms


def _chunk(who: str, metric: str, rows: list[tuple]) -> Chunk:
    frame = pd.DataFrame(rows, columns=["record", "value", "start", "end"])
    start = _hk_times(frame["start"])
    end = _hk_times(frame["end"])
    reasons = np.where(start < 0, "unreadable startDate", None).astype(object)
    lines = frame["record"].to_numpy(dtype=np.int64)
    if metric == "sleep_stage":
        stages = frame["value"].map(HK_SLEEP).to_numpy(dtype=object)
        unknown = pd.isna(stages) & np.equal(reasons, None)
        reasons[unknown] = [f"unknown sleep value {v!r}" for v in frame["value"][unknown]]
        stages = np.where(pd.isna(stages), None, stages)
        return make_chunk(who, metric, lines, start, reasons, np.full(len(frame), np.nan), end, stages)
    values = pd.to_numeric(frame["value"], errors="coerce").to_numpy(dtype=np.float64)
    reasons[np.isnan(values) & np.equal(reasons, None)] = "value is not a number"
    if metric == "steps":
        # HealthKit writes zero-length intervals for instant counts: give them one second.
        end = np.where((end >= 0) & (start >= 0) & (end <= start), start + 1000, end)
        return make_chunk(who, metric, lines, start, reasons, values, end)
    return make_chunk(who, metric, lines, start, reasons, values)
