"""What patients report about their lives, as the rest of the system reads it.

* ``contexts_for(alerts)``: the context reports overlapping each alert's window, to
  annotate alerts in the queue and the alert page (tags and dates; never free text).
* ``covering(...)``: a report that already holds the given tags over a period.
* ``report(...)``: record a context report, and quiet detectors for a stated time
  (``alerts.models.DetectorQuiet``; ``alerts.queries.quieted_detectors`` reads them).
"""

from __future__ import annotations

from collections import defaultdict
from datetime import datetime, timedelta

from django.db import transaction
from django.utils import timezone

from alerts.models import DetectorQuiet
from coaching.models import ContextReport

MAX_QUIET = timedelta(days=7)
MAX_CONTEXT_SPAN = timedelta(days=31)


def contexts_for(alerts) -> dict[int, list[dict]]:
    """{alert id: [{"tags", "starts_at", "ends_at"}]} in one query for a page of alerts."""
    alerts = list(alerts)
    if not alerts:
        return {}
    # One indexed query over the page's patients and time span; exact overlap in Python.
    by_patient = defaultdict(list)
    rows = ContextReport.objects.filter(
        patient_id__in={a.patient_id for a in alerts},
        starts_at__lte=max(a.window_end for a in alerts),
        ends_at__gte=min(a.window_start for a in alerts),
    ).order_by("starts_at").only("id", "patient_id", "tags", "starts_at", "ends_at")
    for c in rows:
        by_patient[c.patient_id].append(c)
    out: dict[int, list[dict]] = {}
    for a in alerts:
        out[a.pk] = [
            {"id": c.pk, "tags": c.tags, "starts_at": c.starts_at.isoformat(),
             "ends_at": c.ends_at.isoformat()}
            for c in by_patient.get(a.patient_id, [])
            if c.starts_at <= a.window_end and c.ends_at >= a.window_start
        ]
    return out


def covering(patient_id: int, tags: list[str], starts_at: datetime, ends_at: datetime) -> ContextReport | None:
    """The patient's newest report that already holds every tag and overlaps the period,
    so that feedback repeating reported context does not report it twice."""
    wanted = sorted(set(tags))
    return (ContextReport.objects.filter(patient_id=patient_id, starts_at__lte=ends_at, ends_at__gte=starts_at,
                                         tags__contains=wanted)
            .order_by("-created_at", "-id").first())


def report(patient_id: int, tags: list[str], starts_at: datetime, ends_at: datetime,
           note: str = "", quiet: list[str] | None = None, quiet_hours: float | None = None,
           source: str = "patient") -> ContextReport:
    """Store a context report; quiet the named detectors from now for ``quiet_hours``."""
    with transaction.atomic():
        ctx = ContextReport.objects.create(
            patient_id=patient_id, tags=sorted(set(tags)), starts_at=starts_at, ends_at=ends_at,
            note=note, source=source,
        )
        if quiet and quiet_hours:
            start = timezone.now()
            until = start + min(timedelta(hours=quiet_hours), MAX_QUIET)
            quiets = DetectorQuiet.objects.bulk_create(
                DetectorQuiet(patient_id=patient_id, detector=d, starts_at=start, until=until)
                for d in sorted(set(quiet))
            )
            ctx.quiets.add(*quiets)
    return ctx
