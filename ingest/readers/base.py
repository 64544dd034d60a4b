"""What every reader shares: the Chunk it yields, opening files and zips, time parsing."""

from __future__ import annotations

import io
import re
import zipfile
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

import numpy as np
import pandas as pd

CHUNK_ROWS = 50_000
# Zip members that are never data: folders, macOS resource forks, hidden files.
_NOT_DATA = re.compile(r"(^|/)(__MACOSX/|\.)")


class ReaderError(ValueError):
    """The file as a whole cannot be read in the asked format.

    ``summary`` is set by the importer when the error stopped an import part-way, so
    the caller can say what had already been sent.
    """

    summary = None


@dataclass
class Chunk:
    """One participant's rows of one metric, as columns.

    ``skipped`` counts records of the file that were read but are of a type this
    project does not store (for example Apple's "in bed" or a Fitbit calories series),
    by type; a reader may yield a chunk with no rows that carries only those counts.
    ``participant`` is "" for single-person exports that name nobody inside them.
    """

    participant: str
    metric: str
    line: np.ndarray  # source line numbers (1 = header), or record numbers
    time: np.ndarray  # int64 epoch ms, or -1 where unreadable
    end: np.ndarray | None  # int64 epoch ms for interval metrics
    value: np.ndarray  # float64 (NaN where unreadable, or for sleep; energy for activity)
    label: np.ndarray | None = None  # sleep stage, or activity type
    error: np.ndarray | None = None  # object: reason per row, None when readable
    intensity: np.ndarray | None = None  # activity intensity (light, moderate, vigorous)
    skipped: Counter = field(default_factory=Counter)

    def __len__(self) -> int:
        return len(self.line)


def skipped_only(participant: str, counts: Counter) -> Chunk:
    """A chunk with no rows that reports records skipped by type."""
    empty = np.zeros(0, dtype=np.int64)
    return Chunk(participant, "", empty, empty, None, np.zeros(0), skipped=Counter(counts))


def make_chunk(participant: str, metric: str, lines: np.ndarray, ms: np.ndarray, reasons: np.ndarray,
               values: np.ndarray, end: np.ndarray | None = None, label: np.ndarray | None = None,
               intensity: np.ndarray | None = None) -> Chunk:
    return Chunk(participant, metric, lines, ms, end, values, label,
                 reasons if any(r is not None for r in reasons) else None, intensity)


def participant_from_name(path: Path) -> str:
    name = path.name.split(".")[0]
    return re.split(r"[-_]", name)[0] or name


# ------------------------------------------------------------------ opening files

def data_members(archive: zipfile.ZipFile) -> list[str]:
    return [m for m in archive.namelist() if not m.endswith("/") and not _NOT_DATA.search(m)]


def open_binary(path: Path, member: str | None = None) -> IO[bytes]:
    """The file, or one member of a zip (the only one when ``member`` is None)."""
    if zipfile.is_zipfile(path):
        archive = zipfile.ZipFile(path)
        if member is None:
            members = data_members(archive)
            if len(members) != 1:
                raise ReaderError(f"{path.name}: a zip must hold one data file or an Apple Health "
                                  f"export, it holds {len(members)} files; unzip it and import them")
            member = members[0]
        return archive.open(member)
    return open(path, "rb")  # noqa: SIM115 - closed by the caller


def open_text(path: Path) -> io.TextIOBase:
    return io.TextIOWrapper(open_binary(path), encoding="utf-8-sig", newline="")


def header_line(path: Path) -> tuple[str, int]:
    """The first non-blank line and how many blank lines precede it."""
    with open_text(path) as fh:
        skipped = 0
        try:
            for raw in fh:
                line = raw.strip()
                if line:
                    return line, skipped
                skipped += 1
        except UnicodeDecodeError:
            raise ReaderError(f"{path.name}: not a text file this importer reads") from None
    raise ReaderError(f"{path.name}: the file is empty")


# ------------------------------------------------------------------ time parsing

_FAST_FORMATS = ("%Y-%m-%d %H:%M:%S", "%Y-%m-%d %I:%M:%S %p", "%Y-%m-%d %H:%M", "%Y-%m-%d",
                 "%Y-%m-%dT%H:%M:%S")


def parse_naive(local: pd.Series) -> pd.Series:
    """Naive date-times; one explicit format for the whole column when one fits (fast),
    else element-wise. Day/month order must already be settled (see ``dates``)."""
    local = local.astype(str).str.strip()
    probe = local.iloc[0] if len(local) else ""
    for fmt in _FAST_FORMATS:
        try:
            pd.to_datetime(pd.Series([probe]), format=fmt)
        except (ValueError, TypeError):
            continue
        parsed = pd.to_datetime(local, format=fmt, errors="coerce")
        if not parsed.isna().any():
            return parsed
        break
    return pd.to_datetime(local, errors="coerce", format="mixed")


def to_ms(local: pd.Series, tz: str) -> tuple[np.ndarray, np.ndarray]:
    """Naive local datetimes -> epoch ms, plus a reason per row where that fails.

    A local time that does not exist or is ambiguous in ``tz`` (daylight-saving
    changes) is refused with that reason rather than guessed.
    """
    parsed = parse_naive(local.reset_index(drop=True))
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


def numbers(col: pd.Series, reasons: np.ndarray) -> np.ndarray:
    """Numeric column; a reason is recorded where a row has none yet and the value is not a number."""
    values = pd.to_numeric(col, errors="coerce").to_numpy(dtype=np.float64)
    bad = np.isnan(values) & np.equal(reasons, None)
    reasons[bad] = "value is not a number"
    return values


def first_reason(*reasons: np.ndarray) -> np.ndarray:
    out = reasons[0].copy()
    for r in reasons[1:]:
        out = np.where(np.equal(out, None), r, out)
    return out
