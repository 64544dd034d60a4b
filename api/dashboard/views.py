"""The care-team dashboard: server-rendered pages, htmx for the parts that update.

Pages: sign-in, the alert queue (polls itself for new rows), the patient list with
status, and the patient page (charts drawn by uPlot from /api/v1/patients/{id}/chart,
the patient's alerts with every action, advice, reported context, thresholds, timeline).
Clinicians only; a patient the clinician may not read is answered 404.
"""

from __future__ import annotations

from datetime import timedelta
from functools import wraps

from django.conf import settings
from django.contrib import messages
from django.contrib.auth import views as auth_views
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpResponse
from django.shortcuts import redirect, render
from django.utils import timezone
from django.utils.html import escape
from django.views.decorators.http import require_GET, require_POST
from rest_framework import exceptions as drf_exceptions

from alerts import queries, states, workflow
from alerts.models import Alert, DetectorThreshold
from api import care
from api.lookup import alert_or_404, patient_or_404
from api.throttling import LoginGuard, client_address
from api.views import patient_status_queryset
from care.access import audit, audit_many, clinician_of, clinicians_with_access, teams_with_access
from coaching import context as coaching_context
from coaching.models import ContextReport, Recommendation

QUEUE_PAGE = 50
SNOOZE_CHOICES = [(1, "1 hour"), (4, "4 hours"), (24, "1 day"), (72, "3 days")]


def clinician_required(view):
    @login_required
    @wraps(view)
    def wrapper(request, *args, **kwargs):
        clinician = clinician_of(request.user)
        if clinician is None:
            raise PermissionDenied("the dashboard is for care teams")
        request.clinician = clinician
        try:
            return view(request, *args, **kwargs)
        except drf_exceptions.NotFound as exc:
            raise Http404(str(exc.detail)) from None
        except drf_exceptions.PermissionDenied as exc:
            raise PermissionDenied(str(exc.detail)) from None
        except workflow.NotAllowed as exc:
            raise PermissionDenied(exc.reason) from None
    return wrapper


class LoginView(auth_views.LoginView):
    """Django's sign-in (CSRF, hashed passwords) with a lock-out after repeated failures."""

    template_name = "dashboard/login.html"
    redirect_authenticated_user = True

    def post(self, request, *args, **kwargs):
        guard = LoginGuard(request.POST.get("username", ""), client_address(request))
        if guard.blocked():
            return render(request, self.template_name,
                          {"form": self.get_form(), "locked": True}, status=429)
        response = super().post(request, *args, **kwargs)
        if request.user.is_authenticated:
            guard.succeeded()
        else:
            guard.failed()
        return response


# -------------------------------------------------------------------- queue

def _queue_context(request) -> dict:
    filters = request.GET
    try:
        qs = care.queue_queryset(request.user, filters)
    except (drf_exceptions.ValidationError, workflow.InvalidInput):
        qs = care.queue_queryset(request.user, {})
    alerts = list(qs[:QUEUE_PAGE])
    audit_many(request, [a.patient_id for a in alerts], "read_alert_queue")
    contexts = coaching_context.contexts_for(alerts)
    names = queries.assignee_names(a.assigned_to_id for a in alerts)
    for a in alerts:
        a.context_tags = sorted({t for c in contexts.get(a.pk, []) for t in c["tags"]})
        a.evidence_items = _evidence_items(a.evidence)
        a.assignee_name = names.get(a.assigned_to_id)
    now = timezone.now()
    return {"alerts": alerts, "now": now, "fresh_since": now - timedelta(seconds=15), "filters": filters,
            "snooze_choices": SNOOZE_CHOICES, "poll_s": settings.DASHBOARD_POLL_S}


def _evidence_items(evidence) -> list[tuple[str, str]]:
    if not isinstance(evidence, dict):
        return []
    items = []
    for key, value in list(evidence.items())[:6]:
        if isinstance(value, float):
            value = f"{value:.1f}"
        elif isinstance(value, list | dict):
            value = f"{len(value)} values" if isinstance(value, list) else "…"
        items.append((str(key), str(value)[:40]))
    return items


@require_GET
@clinician_required
def queue(request):
    ctx = _queue_context(request)
    ctx["detectors"] = sorted(set(queries.readable_alerts(request.user).values_list("detector", flat=True)
                                  .order_by().distinct()[:50]))
    ctx["teams"] = request.clinician.teams.order_by("name")
    ctx["status_filters"] = [(s, "needs attention" if s == states.ACTIVE else s)
                             for s in states.STATUS_FILTERS]
    ctx["severities"] = list(reversed(states.SEVERITIES))
    return render(request, "dashboard/queue.html", ctx)


@require_GET
@clinician_required
def queue_rows(request):
    return render(request, "dashboard/_queue_rows.html", _queue_context(request))


@require_POST
@clinician_required
def alert_action(request, alert_id: int, action: str):
    """Acknowledge, snooze, escalate, resolve or note, from the queue or the patient page.
    htmx requests get the updated row back; plain form posts are redirected."""
    if action not in ACTIONS:
        raise Http404("no such action")
    alert = alert_or_404(request, alert_id)
    try:
        ACTIONS[action](request, alert)
    except workflow.InvalidInput as exc:
        return _refused(request, f"{exc.field}: {exc.reason}" if exc.field != "(request)" else exc.reason)
    except workflow.AlreadyResolved as exc:
        return _refused(request, exc.reason)
    audit(request, alert.patient_id, f"alert_{action}", alert=alert.pk, via="dashboard")
    if request.headers.get("HX-Request") and request.POST.get("view") == "row":
        alert = care.queue_queryset(request.user, {"status": "all", "include_quieted": "true"}).get(pk=alert.pk)
        alert.context_tags = sorted({t for c in coaching_context.contexts_for([alert]).get(alert.pk, [])
                                     for t in c["tags"]})
        alert.evidence_items = _evidence_items(alert.evidence)
        alert.assignee_name = queries.assignee_names([alert.assigned_to_id]).get(alert.assigned_to_id)
        return render(request, "dashboard/_queue_row.html",
                      {"a": alert, "snooze_choices": SNOOZE_CHOICES, "now": timezone.now()})
    nxt = request.POST.get("next", "")
    if nxt.startswith("/dashboard/"):
        return redirect(nxt)
    return redirect("dashboard:queue")


def _reason(exc: drf_exceptions.ValidationError) -> str:
    detail = exc.detail
    if isinstance(detail, dict):
        return "; ".join(f"{k}: {v[0] if isinstance(v, list) else v}" for k, v in detail.items())
    if isinstance(detail, list):
        return "; ".join(str(d) for d in detail)
    return str(detail)


def _refused(request, reason: str) -> HttpResponse:
    if request.headers.get("HX-Request"):
        return HttpResponse(f"<span class='error'>{escape(reason)}</span>", status=200)
    messages.error(request, reason)
    nxt = request.POST.get("next", "")
    return redirect(nxt if nxt.startswith("/dashboard/") else "dashboard:queue")


def _acknowledge(request, alert: Alert) -> None:
    workflow.acknowledge(alert, request.user)


def _snooze(request, alert: Alert) -> None:
    """For a number of hours from now (the form offers a few); the workflow bounds it."""
    raw = request.POST.get("hours", "4")
    if not raw.isdigit() or int(raw) > 24 * 366:
        raise workflow.InvalidInput("hours", "must be a whole number of hours")
    workflow.snooze(alert, request.user, timezone.now() + timedelta(hours=int(raw)))


def _escalate(request, alert: Alert) -> None:
    kind, _, raw = request.POST.get("target", "").partition(":")
    if kind not in ("clinician", "team") or not raw.isdigit():
        raise workflow.InvalidInput("target", "choose a clinician or a team")
    target = {f"{kind}_id": int(raw)}
    workflow.escalate(alert, request.user, reason=request.POST.get("reason", ""), **target)


def _resolve(request, alert: Alert) -> None:
    workflow.resolve(alert, request.user, request.POST.get("reason", ""))


def _note(request, alert: Alert) -> None:
    workflow.add_note(alert, request.user, request.POST.get("text", ""))


ACTIONS = {"acknowledge": _acknowledge, "snooze": _snooze, "escalate": _escalate,
           "resolve": _resolve, "note": _note}


# ----------------------------------------------------------------- patients

@require_GET
@clinician_required
def patients(request):
    try:
        qs = patient_status_queryset(request.user, request.GET)
    except drf_exceptions.ValidationError:
        qs = patient_status_queryset(request.user, {})
    rows = list(qs[:500])
    for p in rows:
        p.status = "red" if p.has_red else "yellow" if p.has_yellow else "ok"
    audit_many(request, [p.pk for p in rows], "read_patient_status")
    return render(request, "dashboard/patients.html", {"patients": rows, "q": request.GET.get("q", "")})


@require_GET
@clinician_required
def patient(request, patient_id: int):
    p = patient_or_404(request, patient_id)
    audit(request, p.pk, "read_patient_page")
    alerts = list(Alert.objects.filter(patient=p).select_related("assigned_to__clinician")
                  .prefetch_related("notes__author__clinician", "actions__actor__clinician")
                  .order_by("-opened_at")[:30])
    contexts = coaching_context.contexts_for(alerts)
    for a in alerts:
        a.context_tags = sorted({t for c in contexts.get(a.pk, []) for t in c["tags"]})
        a.evidence_items = _evidence_items(a.evidence)
    teams = teams_with_access(p.pk)
    targets = ([(f"clinician:{c.pk}", c.display_name) for c in
                clinicians_with_access(p.pk).exclude(pk=request.clinician.pk)]
               + [(f"team:{t.pk}", f"team {t.name}") for t in teams])
    return render(request, "dashboard/patient.html", {
        "p": p,
        "alerts": alerts,
        "targets": targets,
        "snooze_choices": SNOOZE_CHOICES,
        "recommendations": Recommendation.objects.filter(patient=p).order_by("-day", "id")[:10],
        "contexts": ContextReport.objects.filter(patient=p).order_by("-starts_at")[:10],
        "thresholds": DetectorThreshold.objects.filter(patient=p).order_by("detector"),
        "tunable": sorted(care.tunable_parameters().items()),
        "timeline": care.timeline(p.pk, limit=30),
        "now": timezone.now(),
        "chart_url": f"/api/v1/patients/{p.pk}/chart",
    })


@require_POST
@clinician_required
def threshold(request, patient_id: int):
    p = patient_or_404(request, patient_id, clinician_only=True)
    detector = request.POST.get("detector", "").strip()
    overrides = {}
    for key, value in zip(request.POST.getlist("param"), request.POST.getlist("value"), strict=False):
        key = key.strip()
        if not key:
            continue
        try:
            overrides[key] = float(value)
        except ValueError:
            messages.error(request, f"{key}: {value[:20]!r} is not a number")
            return redirect("dashboard:patient", patient_id=p.pk)
    body = care.ThresholdWriteSerializer(data={"params": overrides})
    if not detector or not body.is_valid():
        messages.error(request, "name a detector and at least one numeric parameter")
        return redirect("dashboard:patient", patient_id=p.pk)
    try:
        overrides = care.check_overrides(detector, body.validated_data["params"])
    except drf_exceptions.ValidationError as exc:
        messages.error(request, _reason(exc))
        return redirect("dashboard:patient", patient_id=p.pk)
    workflow.set_thresholds(p, detector, overrides, request.user)
    messages.success(request, f"thresholds of {detector} saved")
    return redirect("dashboard:patient", patient_id=p.pk)
