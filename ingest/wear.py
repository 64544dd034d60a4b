"""A patient's data quality for the care team's patient list: how many of the last
7 days' hours have heart rate (the watch was worn), and when the last data arrived.

One query over the hourly rollup (``samples_1h``) for every patient on the page.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from django.db import connection
from django.utils import timezone

from ingest.schema import METRICS

DAYS = 7
STALE_AFTER = timedelta(hours=24)
#: Below this share of the period's hours worn, the status is "low wear".
LOW_WEAR = 0.5

_SQL = """
SELECT patient_id, count(*), max(bucket) FROM samples_1h
WHERE patient_id = ANY(%s) AND metric = %s AND bucket >= %s AND n > 0
GROUP BY 1
"""

NO_DATA, STALE, LOW, GAP, GOOD = "no data", "stale", "low wear", "wear gap", "good"


@dataclass(frozen=True)
class Quality:
    status: str
    worn_share: float
    last_data: datetime | None

    @property
    def level(self) -> str:
        """ok / warn / bad, for the badge's colour."""
        return {GOOD: "ok", NO_DATA: "bad", STALE: "bad"}.get(self.status, "warn")


def quality(patient_ids: list[int], last_seen: dict[int, datetime | None], gaps: set[int],
            now: datetime | None = None) -> dict[int, Quality]:
    """Each patient's status: no data, stale (nothing for 24 h), wear gap (an open
    wear-gap alert), low wear (under half the hours worn), or good."""
    now = now or timezone.now()
    ids = [int(p) for p in patient_ids]
    rows = {}
    if ids:
        with connection.cursor() as cur:
            cur.execute(_SQL, [ids, METRICS["heart_rate"].code, now - timedelta(days=DAYS)])
            rows = {int(p): (int(n), last) for p, n, last in cur.fetchall()}
    out = {}
    for p in ids:
        hours, last_hour = rows.get(p, (0, None))
        candidates = [t for t in (last_seen.get(p), last_hour) if t is not None]
        last = max(candidates) if candidates else None
        share = min(hours / (DAYS * 24), 1.0)
        if last is None:
            status = NO_DATA
        elif now - last > STALE_AFTER:
            status = STALE
        elif p in gaps:
            status = GAP
        elif share < LOW_WEAR:
            status = LOW
        else:
            status = GOOD
        out[p] = Quality(status, share, last)
    return out
