"""Alert quality, live: for each care team and each detector, alert-days per
patient-month and the share of resolved alerts judged not actionable, over the last
30 and 90 days.

- A team's patients are those assigned to it with an active consent (what its
  clinicians can read); a patient-month is one patient for 30 days, so a team of 20
  has 20 patient-months over 30 days and 60 over 90.
- An alert-day is one patient-day on which an alert of that detector was open: each
  alert covers the days from its window's start to its window's end (clipped to the
  period); two alerts on the same patient-day count once. The "all detectors" row
  counts a patient-day once whatever the detectors.
- The not-actionable share is over the alerts resolved in the period with a verdict:
  not actionable / (actionable + not actionable + unsure); None when none was judged.
"""

from __future__ import annotations

from collections import defaultdict
from datetime import datetime, timedelta

from django.db.models import Q
from django.utils import timezone

from alerts import states
from alerts.models import Alert, AlertAction
from care.models import CareTeam, Consent

PERIODS = (30, 90)
ALL = None  # the detector of the "all detectors" row


def _days(start: datetime, end: datetime) -> list:
    d, last, out = start.date(), end.date(), []
    while d <= last:
        out.append(d)
        d += timedelta(days=1)
    return out


def team_quality(team: CareTeam, days: int, now: datetime | None = None) -> list[dict]:
    """One row per detector seen in the period, then an "all detectors" row (detector None)."""
    now = now or timezone.now()
    since = now - timedelta(days=days)
    patients = set(Consent.objects.filter(team=team, revoked_at__isnull=True,
                                          patient__assignment__team=team)
                   .values_list("patient_id", flat=True))
    patient_months = len(patients) * days / 30
    alerts = list(Alert.objects.filter(patient_id__in=patients, window_end__gte=since,
                                       window_start__lte=now)
                  .values_list("pk", "patient_id", "detector", "window_start", "window_end"))
    covered: dict[str | None, set] = defaultdict(set)
    count: dict[str | None, int] = defaultdict(int)
    for _, patient, detector, start, end in alerts:
        cells = {(patient, d) for d in _days(max(start, since), min(max(end, start), now))}
        for key in (detector, ALL):
            covered[key] |= cells
            count[key] += 1
    verdicts: dict[str | None, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    for detector, verdict in (AlertAction.objects.filter(alert__patient_id__in=patients, action=AlertAction.RESOLVE,
                                                         at__gte=since, at__lte=now)
                              .filter(~Q(verdict="")).values_list("alert__detector", "verdict")):
        for key in (detector, ALL):
            verdicts[key][verdict] += 1
    rows = []
    for detector in [*sorted(k for k in set(count) | set(verdicts) if k is not None), ALL]:
        judged = sum(verdicts[detector].values())
        not_actionable = verdicts[detector][states.NOT_ACTIONABLE]
        alert_days = len(covered[detector])
        rows.append({
            "team": {"id": team.pk, "name": team.name}, "detector": detector, "days": days,
            "patients": len(patients), "patient_months": round(patient_months, 2),
            "alerts": count[detector], "alert_days": alert_days,
            "alert_days_per_patient_month": round(alert_days / patient_months, 3) if patient_months else None,
            "judged": judged, "not_actionable": not_actionable,
            "not_actionable_share": round(not_actionable / judged, 3) if judged else None,
        })
    return rows


def quality(teams, now: datetime | None = None, periods=PERIODS) -> dict:
    """Every row for these teams and periods (what ``GET /api/v1/alerts/quality`` serves)."""
    now = now or timezone.now()
    return {"at": now, "periods": list(periods),
            "rows": [row for days in periods for team in teams for row in team_quality(team, days, now)]}
