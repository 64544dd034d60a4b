"""Reads of the alert domain shared by the API, the dashboard and the coaching engine:
the alerts a user may read, the care team's queue, quiet periods, assignee names."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from django.contrib.auth import get_user_model
from django.db.models import Case, Exists, IntegerField, OuterRef, Q, QuerySet, Value, When
from django.utils import timezone

from alerts import states
from alerts.errors import InvalidInput
from alerts.models import Alert, DetectorQuiet
from care.access import readable_patients
from care.models import Clinician

#: Red first, then yellow, then info (for ``order_by``).
SEVERITY_RANK = Case(When(severity=states.RED, then=Value(0)),
                     When(severity=states.YELLOW, then=Value(1)),
                     default=Value(2), output_field=IntegerField())
ASSIGNED = ("me", "anyone", "nobody")
#: How the queue can be ordered: most urgent first (severity, then newest raised), or
#: by when the problem began (oldest or newest window start), or by patient.
SORTS = ("urgent", "oldest", "newest", "patient")
_ORDER = {"urgent": ("rank", "-opened_at", "-id"), "oldest": ("window_start", "id"),
          "newest": ("-window_start", "-id"), "patient": ("patient__display_name", "rank", "-window_start")}


def _one_of(values) -> str:
    """ "must be a, b or c" """
    values = list(values)
    return "must be " + (", ".join(values[:-1]) + " or " + values[-1] if len(values) > 1 else values[0])


def readable_alerts(user) -> QuerySet[Alert]:
    """Alerts of the patients this user may read (the rule of ``readable_patients``)."""
    if not user or not getattr(user, "is_authenticated", False) or getattr(user, "pk", None) is None:
        return Alert.objects.none()
    # The readable ids first (one small query), then a plain filter: the alert query
    # stays simple to plan however involved the access rule is.
    ids = list(readable_patients(user).values_list("pk", flat=True))
    return Alert.objects.filter(patient_id__in=ids)


def by_status(qs: QuerySet[Alert], wanted: str) -> QuerySet[Alert]:
    """Filter by one of ``states.STATUS_FILTERS`` ("active", a status, or "all")."""
    if wanted == states.ACTIVE:
        return qs.active()  # type: ignore[attr-defined]
    if wanted in states.STATUSES:
        return qs.filter(status=wanted)
    if wanted == states.ALL:
        return qs
    raise InvalidInput("status", _one_of(states.STATUS_FILTERS))


def quieted_q() -> Exists:
    """The alert's detector was quieted by the patient when the alert's window began."""
    return Exists(DetectorQuiet.objects.filter(
        patient_id=OuterRef("patient_id"), detector=OuterRef("detector"),
        starts_at__lte=OuterRef("window_start"), until__gt=OuterRef("window_start")))


def quieted_detectors(patient_id: int, at: datetime | None = None) -> set[str]:
    """Detectors the patient asked to quiet at that moment (the detectors may ask)."""
    at = at or timezone.now()
    return set(
        DetectorQuiet.objects.filter(patient_id=patient_id, starts_at__lte=at, until__gt=at)
        .values_list("detector", flat=True)
    )


@dataclass(frozen=True)
class QueueFilter:
    """What the care team's queue can be narrowed by (already parsed and bounded)."""

    status: str = states.ACTIVE
    severity: str | None = None
    detector: str | None = None
    patient: int | None = None
    team: int | None = None
    assigned: str = "anyone"
    since: datetime | None = None
    updated_since: datetime | None = None
    include_quieted: bool = False
    search: str = ""
    sort: str = "urgent"

    def __post_init__(self) -> None:
        if self.sort not in SORTS:
            raise InvalidInput("sort", _one_of(SORTS))
        if len(self.search) > 60:
            raise InvalidInput("q", "at most 60 characters")
        if self.status not in states.STATUS_FILTERS:
            raise InvalidInput("status", _one_of(states.STATUS_FILTERS))
        if self.severity is not None and self.severity not in states.SEVERITIES:
            raise InvalidInput("severity", _one_of(reversed(states.SEVERITIES)))
        if self.assigned not in ASSIGNED:
            raise InvalidInput("assigned", _one_of(ASSIGNED))


def queue(user, f: QueueFilter = QueueFilter()) -> QuerySet[Alert]:
    """The queue for a clinician: by default red first, then yellow, the most recently
    raised (opened) first; non-red alerts of quieted detectors hidden unless asked for."""
    qs = by_status(readable_alerts(user).select_related("patient"), f.status)
    if f.severity:
        qs = qs.filter(severity=f.severity)
    if f.detector:
        qs = qs.filter(detector=f.detector[:48])
    if f.patient:
        qs = qs.filter(patient_id=f.patient)
    if f.search.strip():
        qs = qs.filter(patient__display_name__icontains=f.search.strip())
    if f.team:
        qs = qs.filter(patient__assignment__team_id=f.team)
    if f.assigned == "me":
        qs = qs.filter(assigned_to=user)
    elif f.assigned == "nobody":
        qs = qs.filter(assigned_to__isnull=True)
    if f.since is not None:
        qs = qs.filter(opened_at__gte=f.since)
    if f.updated_since is not None:
        qs = qs.filter(updated_at__gte=f.updated_since)
    qs = qs.annotate(is_quieted=quieted_q())
    if not f.include_quieted:
        qs = qs.filter(Q(is_quieted=False) | Q(severity=states.RED))
    return qs.annotate(rank=SEVERITY_RANK).order_by(*_ORDER[f.sort])


def assignee_names(user_ids) -> dict[int, str]:
    """Display names of the users alerts are assigned to (clinician name, else username)."""
    ids = {i for i in user_ids if i is not None}
    if not ids:
        return {}
    names = dict(get_user_model().objects.filter(pk__in=ids).values_list("pk", "username"))
    names.update(Clinician.objects.filter(user_id__in=ids).values_list("user_id", "display_name"))
    return names
