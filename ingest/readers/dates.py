"""Day/month order of slashed dates (``4/12/2016``, ``12/04/16``), decided once per file.

A spreadsheet that re-saves a Fitabase or Fitbit file may rewrite its dates day-first;
guessing each row on its own puts the 1st-12th of every month in the wrong month
while the 13th-31st land right. Here a whole file is read one way, from evidence in
the file, in this order:

1. a first number above 12 anywhere means day-first; a second number above 12 means
   month-first; both in one file is refused (the file mixes the two);
2. otherwise the rows' order: exports list readings in time order, so the reading
   whose consecutive dates jump less (by at least a factor of 3) is the file's;
3. otherwise the format's own writer when it has one fixed order and is never
   re-saved by spreadsheets (Fitbit's account export JSON writes MM/DD/YY);
4. otherwise the file is refused, naming ``--date-order``.

A file whose dates all read the same either way (4/4/2016) needs no decision.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np
import pandas as pd

from ingest.readers.base import ReaderError

ORDERS = ("mdy", "dmy")
_SLASHED = r"^\s*(\d{1,2})[/.](\d{1,2})[/.](\d{2}|\d{4})\b(.*)$"


def _parts(dates: pd.Series) -> pd.DataFrame:
    return dates.astype(str).str.extract(_SLASHED)


class DateOrder:
    """Collects the evidence of one file's date column (fed chunk by chunk) and decides."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.max_first = 0
        self.max_second = 0
        self.slashed = 0
        self.same_either_way = True
        self.jumps = {"mdy": 0, "dmy": 0}
        self._last: dict[str, int | None] = {"mdy": None, "dmy": None}
        self.example = ""

    def add(self, dates: pd.Series) -> None:
        parts = _parts(dates).dropna(subset=[0])
        if parts.empty:
            return
        a = parts[0].astype(np.int64).to_numpy()
        b = parts[1].astype(np.int64).to_numpy()
        y = parts[2].astype(np.int64).to_numpy()
        y = np.where(y < 100, y + 2000, y)
        if not self.example:
            self.example = str(dates.loc[parts.index[0]]).strip()
        self.slashed += len(a)
        self.max_first = max(self.max_first, int(a.max()))
        self.max_second = max(self.max_second, int(b.max()))
        self.same_either_way &= bool((a == b).all())
        # A day number that orders dates; exact calendars are not needed to compare jumps.
        for order, (month, day) in (("mdy", (a, b)), ("dmy", (b, a))):
            ordinal = y * 372 + (month - 1) * 31 + (day - 1)
            last = self._last[order]
            seq = ordinal if last is None else np.r_[last, ordinal]
            self.jumps[order] += int(np.abs(np.diff(seq)).sum())
            self._last[order] = int(ordinal[-1])

    def decide(self, default: str | None = None, given: str | None = None) -> str | None:
        """'mdy', 'dmy', or None when the file has no slashed dates. Raises ReaderError."""
        if not self.slashed:
            return given or default
        first_is_day = self.max_first > 12
        second_is_day = self.max_second > 12
        if first_is_day and second_is_day:
            raise ReaderError(
                f"{self.name}: its dates mix day-first and month-first (both numbers exceed 12 "
                "in different rows); re-export it without a spreadsheet")
        evidence = "dmy" if first_is_day else "mdy" if second_is_day else None
        if given:
            if evidence and evidence != given:
                raise ReaderError(f"{self.name}: --date-order {given} contradicts its dates "
                                  f"(for example {self.example!r} can only be {evidence})")
            return given
        if evidence:
            return evidence
        if self.same_either_way:
            return default or "mdy"
        small, large = sorted(self.jumps.values())
        if large >= 3 * max(small, 1):
            return min(self.jumps, key=self.jumps.__getitem__)
        if default:
            return default
        raise ReaderError(
            f"{self.name}: its dates (for example {self.example!r}) read as day/month and as "
            "month/day both fit; pass --date-order mdy or --date-order dmy")


def decide(name: str, columns: Iterable[pd.Series], default: str | None = None,
           given: str | None = None) -> str | None:
    order = DateOrder(name)
    for col in columns:
        order.add(col)
    return order.decide(default, given)


def to_iso(dates: pd.Series, order: str | None) -> pd.Series:
    """Rewrite slashed dates as ``YYYY-MM-DD`` + the rest, in the decided order; others as they are."""
    if order is None:
        return dates
    parts = _parts(dates)
    hit = parts[0].notna()
    if not hit.any():
        return dates
    month, day = (parts[0], parts[1]) if order == "mdy" else (parts[1], parts[0])
    year = parts[2].where(parts[2].str.len() == 4, "20" + parts[2])
    iso = year + "-" + month.str.zfill(2) + "-" + day.str.zfill(2) + parts[3]
    return dates.where(~hit, iso)
