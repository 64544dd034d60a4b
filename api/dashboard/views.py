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
from django.db import transaction
from django.http import Http404, HttpResponse
from django.shortcuts import redirect, render
from django.utils import timezone
from django.utils.dateparse import parse_datetime
from django.views.decorators.http import require_GET, require_POST
from rest_framework import exceptions as drf_exceptions

from api import care
from api.access import audit, audit_many, clinician_of, readable_alerts, readable_patient
from api.models import AlertAction, AlertNote, CareTeam, Clinician
from api.throttling import LoginGuard, client_address
from api.views import patient_status_queryset
from coaching import context as coaching_context
from coaching.models import ContextReport, Recommendation
from streams.models import Alert, DetectorThreshold

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
    params = request.GET
    try:
        qs = care.queue_queryset(request.user, params)
    except drf_exceptions.ValidationError:
        qs = care.queue_queryset(request.user, {})
    alerts = list(qs[:QUEUE_PAGE])
    audit_many(request, [a.patient_id for a in alerts], "read_alert_queue")
    contexts = coaching_context.contexts_for(alerts)
    names = care.assignee_names(a.assigned_to_id for a in alerts)
    for a in alerts:
        a.context_tags = sorted({t for c in contexts.get(a.pk, []) for t in c["tags"]})
        a.evidence_items = _evidence_items(a.evidence)
        a.assignee_name = names.get(a.assigned_to_id)
    now = timezone.now()
    return {"alerts": alerts, "now": now, "fresh_since": now - timedelta(seconds=15), "filters": params,
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
    ctx["detectors"] = sorted(set(readable_alerts(request.user).values_list("detector", flat=True)
                                  .order_by().distinct()[:50]))
    ctx["teams"] = request.clinician.teams.order_by("name")
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
    with transaction.atomic():
        alert = readable_alerts(request.user).select_for_update(of=("self",)).filter(pk=alert_id).first()
        if alert is None:
            raise Http404("no such alert, or no access to it")
        try:
            _apply(request, alert, action)
        except (drf_exceptions.ValidationError, drf_exceptions.APIException) as exc:
            if request.headers.get("HX-Request"):
                return HttpResponse(f"<span class='error'>{_reason(exc)}</span>", status=200)
            messages.error(request, _reason(exc))
            return redirect(request.POST.get("next") or "dashboard:queue")
    audit(request, alert.patient_id, f"alert_{action}", alert=alert.pk, via="dashboard")
    if request.headers.get("HX-Request") and request.POST.get("view") == "row":
        alert = care.queue_queryset(request.user, {"status": "all", "include_quieted": "true"}).get(pk=alert.pk)
        alert.context_tags = sorted({t for c in coaching_context.contexts_for([alert]).get(alert.pk, [])
                                     for t in c["tags"]})
        alert.evidence_items = _evidence_items(alert.evidence)
        alert.assignee_name = care.assignee_names([alert.assigned_to_id]).get(alert.assigned_to_id)
        return render(request, "dashboard/_queue_row.html",
                      {"a": alert, "snooze_choices": SNOOZE_CHOICES, "now": timezone.now()})
    nxt = request.POST.get("next", "")
    if nxt.startswith("/dashboard/"):
        return redirect(nxt)
    return redirect("dashboard:queue")


def _reason(exc) -> str:
    detail = getattr(exc, "detail", str(exc))
    if isinstance(detail, dict):
        return "; ".join(f"{k}: {v[0] if isinstance(v, list) else v}" for k, v in detail.items())
    if isinstance(detail, list):
        return "; ".join(str(d) for d in detail)
    return str(detail)


def _apply(request, alert: Alert, action: str) -> None:
    post = request.POST
    if action == "acknowledge":
        care.act(request, alert, AlertAction.ACKNOWLEDGE, Alert.ACKNOWLEDGED)
    elif action == "snooze":
        until = parse_datetime(post.get("until", "")) if post.get("until") else None
        if until is None:
            try:
                hours = int(post.get("hours", "4"))
            except ValueError:
                raise drf_exceptions.ValidationError({"hours": "must be a whole number"}) from None
            if not 1 <= hours <= 24 * 30:
                raise drf_exceptions.ValidationError({"hours": "between 1 hour and 30 days"})
            until = timezone.now() + timedelta(hours=hours)
        care.act(request, alert, AlertAction.SNOOZE, Alert.SNOOZED, snoozed_until=until)
    elif action == "escalate":
        target = post.get("target", "")
        kind, _, raw = target.partition(":")
        if kind not in ("clinician", "team") or not raw.isdigit():
            raise drf_exceptions.ValidationError({"target": "choose a clinician or a team"})
        body = care.EscalateSerializer(data={kind: int(raw), "reason": post.get("reason", "")[:300]})
        body.is_valid(raise_exception=True)
        care.EscalateView().perform(request, alert, body.validated_data)
    elif action == "resolve":
        body = care.ResolveSerializer(data={"reason": post.get("reason", "")})
        body.is_valid(raise_exception=True)
        care.act(request, alert, AlertAction.RESOLVE, Alert.RESOLVED, reason=body.validated_data["reason"])
    elif action == "note":
        text = post.get("text", "").strip()
        if not text or len(text) > 2000:
            raise drf_exceptions.ValidationError({"text": "write 1 to 2000 characters"})
        AlertNote.objects.create(alert=alert, author=request.user, text=text)
        Alert.objects.filter(pk=alert.pk).update(updated_at=timezone.now())
    else:
        raise Http404("no such action")


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
    p = readable_patient(request.user, patient_id)
    if p is None:
        raise Http404("no such patient, or no access to it")
    audit(request, p.pk, "read_patient_page")
    alerts = list(Alert.objects.filter(patient=p).select_related("assigned_to__clinician")
                  .prefetch_related("notes__author__clinician", "actions__actor__clinician")
                  .order_by("-opened_at")[:30])
    contexts = coaching_context.contexts_for(alerts)
    for a in alerts:
        a.context_tags = sorted({t for c in contexts.get(a.pk, []) for t in c["tags"]})
        a.evidence_items = _evidence_items(a.evidence)
    teams = CareTeam.objects.filter(assignment__patient=p, consents__patient=p,
                                    consents__revoked_at__isnull=True).distinct().order_by("name")
    targets = ([(f"clinician:{c.pk}", c.display_name) for c in
                Clinician.objects.filter(teams__in=teams).exclude(pk=request.clinician.pk)
                .distinct().order_by("display_name")]
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
    p = readable_patient(request.user, patient_id)
    if p is None:
        raise Http404("no such patient, or no access to it")
    detector = request.POST.get("detector", "").strip()
    params = {}
    for key, value in zip(request.POST.getlist("param"), request.POST.getlist("value"), strict=False):
        key = key.strip()
        if not key:
            continue
        try:
            params[key] = float(value)
        except ValueError:
            messages.error(request, f"{key}: {value[:20]!r} is not a number")
            return redirect("dashboard:patient", patient_id=p.pk)
    body = care.ThresholdWriteSerializer(data={"params": params})
    if not care.DETECTOR_RE.match(detector) or not body.is_valid():
        messages.error(request, "name a detector and at least one numeric parameter")
        return redirect("dashboard:patient", patient_id=p.pk)
    try:
        params = care.check_overrides(detector, body.validated_data["params"])
    except drf_exceptions.ValidationError as exc:
        messages.error(request, _reason(exc))
        return redirect("dashboard:patient", patient_id=p.pk)
    DetectorThreshold.objects.update_or_create(
        patient=p, detector=detector,
        defaults={"params": params, "updated_by": request.user,
                  "updated_at": timezone.now()})
    messages.success(request, f"thresholds of {detector} saved")
    return redirect("dashboard:patient", patient_id=p.pk)
