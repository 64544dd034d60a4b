"""The care-team dashboard: server-rendered pages, htmx for the parts that update.

Pages: sign-in, the alert queue (polls itself for new rows), the patient list with
status, and the patient page (charts drawn by uPlot from /api/v1/patients/{id}/chart,
the patient's alerts with every action, advice, reported context, thresholds, timeline).
Clinicians only; a patient the clinician may not read is answered 404.
"""

from __future__ import annotations

import inspect
import re
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
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.http import require_GET, require_POST
from rest_framework import exceptions as drf_exceptions

from alerts import feedback, parameters, presentation, quality, queries, states, workflow
from alerts.models import Alert, AlertAction, DetectorThreshold
from api import care, query
from api.lookup import alert_or_404, patient_or_404
from api.throttling import LoginGuard, client_address
from api.views import patient_status_queryset
from care.access import (
    audit,
    audit_failed_login,
    audit_many,
    clinician_of,
    clinicians_with_access,
    teams_with_access,
)
from care.models import AuditEvent
from coaching import context as coaching_context
from coaching.models import ContextReport, Recommendation
from ingest import wear
from ingest.models import ImportJob
from streams.detectors.suite import DETECTORS, TUNABLE

QUEUE_PAGE = 50
SNOOZE_CHOICES = [(1, "1 hour"), (4, "4 hours"), (24, "1 day"), (72, "3 days")]
SORT_CHOICES = [("urgent", "most urgent"), ("oldest", "longest open"), ("newest", "most recent"),
                ("patient", "patient name")]
VERDICT_CHOICES = [(states.ACTIONABLE, "actionable"), (states.NOT_ACTIONABLE, "not actionable"),
                   (states.UNSURE, "unsure")]


_ID = re.compile(r"[0-9]{1,18}")


def _id(raw: str) -> int | None:
    """A row id from a form field: ASCII digits only, and small enough for a bigint.
    (``str.isdigit`` accepts "²" and Arabic-Indic digits, which ``int`` then refuses, and
    a 5,000-digit id is over Python's int-parsing limit: both used to answer 500.)"""
    return int(raw) if _ID.fullmatch(raw) else None


def _next(request) -> str | None:
    """The form's ``next`` when it is a dashboard page on this site, else None."""
    nxt = request.POST.get("next", "")
    if (nxt.startswith("/dashboard/") and "\\" not in nxt
            and url_has_allowed_host_and_scheme(nxt, allowed_hosts={request.get_host()},
                                                require_https=request.is_secure())):
        return nxt
    return None


def _refused_access(request, code: int, kwargs: dict) -> None:
    audit(request, None, "refused", outcome=AuditEvent.REFUSED, status=code, method=request.method,
          **{k: v for k, v in kwargs.items() if k in ("patient_id", "alert_id")})


def clinician_required(view):
    @login_required
    @wraps(view)
    def wrapper(request, *args, **kwargs):
        clinician = clinician_of(request.user)
        if clinician is None:
            _refused_access(request, 403, kwargs)
            raise PermissionDenied("the dashboard is for care teams")
        request.clinician = clinician
        try:
            return view(request, *args, **kwargs)
        except drf_exceptions.NotFound as exc:
            _refused_access(request, 404, kwargs)
            raise Http404(str(exc.detail)) from None
        except drf_exceptions.PermissionDenied as exc:
            _refused_access(request, 403, kwargs)
            raise PermissionDenied(str(exc.detail)) from None
        except workflow.NotAllowed as exc:
            _refused_access(request, 403, kwargs)
            raise PermissionDenied(exc.reason) from None
    return wrapper


class LoginView(auth_views.LoginView):
    """Django's sign-in (CSRF, hashed passwords) with a lock-out after repeated failures."""

    template_name = "dashboard/login.html"
    redirect_authenticated_user = True

    def post(self, request, *args, **kwargs):
        guard = LoginGuard(request.POST.get("username", ""), client_address(request))
        if wait := guard.blocked():
            audit_failed_login(request, request.POST.get("username", ""), "dashboard", locked=True)
            response = render(request, self.template_name,
                              {"form": self.get_form(), "locked": True}, status=429)
            response["Retry-After"] = str(wait)
            return response
        response = super().post(request, *args, **kwargs)
        if request.user.is_authenticated:
            guard.succeeded()
        else:
            guard.failed()
            audit_failed_login(request, request.POST.get("username", ""), "dashboard")
        return response


# -------------------------------------------------------------------- queue

def _decorate(alerts: list[Alert]) -> list[Alert]:
    """What the templates show of each alert: its title, evidence at raise, peak and now
    (labelled, with units), the sparkline, context tags, assignee, escalation target."""
    contexts = coaching_context.contexts_for(alerts)
    names = queries.assignee_names(a.assigned_to_id for a in alerts)
    escalated = {a.pk for a in alerts if a.status == states.ESCALATED}
    targets: dict[int, str] = {}
    for x in (AlertAction.objects.filter(alert_id__in=escalated, action=AlertAction.ESCALATE)
              .select_related("escalated_to_clinician", "escalated_to_team").order_by("at", "id")):
        targets[x.alert_id] = _target_name(x)
    for a in alerts:
        a.context_tags = sorted({t for c in contexts.get(a.pk, []) for t in c["tags"]})
        a.assignee_name = names.get(a.assigned_to_id)
        a.escalated_to = targets.get(a.pk)
        a.title = presentation.title(a.detector, a.evidence)
        a.evidence_sets = [(label, presentation.fields(ev)) for label, ev in
                           (("Raised", a.raise_evidence), ("Peak", a.evidence), ("Now", a.latest_evidence))
                           if ev]
        a.peak_fields = presentation.fields(a.evidence)
        sp = presentation.spark(a.raise_evidence, a.evidence, a.latest_evidence)
        a.spark = sp.svg_points() if sp is not None and sp.values else None
        a.spark_unit = sp.unit if sp is not None else ""
        a.spark_baseline = sp.baseline if sp is not None else None
    return alerts


def _target_name(x: AlertAction) -> str:
    if x.escalated_to_clinician is not None:
        return x.escalated_to_clinician.display_name
    if x.escalated_to_team is not None:
        return f"team {x.escalated_to_team.name}"
    return "someone no longer on file"


def _queue_context(request) -> dict:
    filters = request.GET
    try:
        qs = care.queue_queryset(request.user, filters)
    except (drf_exceptions.ValidationError, workflow.InvalidInput):
        qs = care.queue_queryset(request.user, {})
    alerts = _decorate(list(qs[:QUEUE_PAGE]))
    audit_many(request, [a.patient_id for a in alerts], "read_alert_queue")
    now = timezone.now()
    return {"alerts": alerts, "now": now, "fresh_since": now - timedelta(seconds=15), "filters": filters,
            "snooze_choices": SNOOZE_CHOICES, "poll_s": settings.DASHBOARD_POLL_S}


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
    ctx["sorts"] = SORT_CHOICES
    return render(request, "dashboard/queue.html", ctx)


@require_POST
@clinician_required
def bulk_acknowledge(request):
    """Acknowledge the alerts ticked in the queue (each through the workflow)."""
    ids = [i for i in map(_id, request.POST.getlist("alert")[:200]) if i is not None]
    readable = list(queries.readable_alerts(request.user).filter(pk__in=ids).values_list("pk", flat=True))
    done, refused = workflow.acknowledge_many(readable, request.user)
    for pk in done:
        audit(request, None, "alert_acknowledge", alert=pk, via="dashboard-bulk")
    if done:
        messages.success(request, f"acknowledged {len(done)} alert{'s' if len(done) != 1 else ''}")
    if refused or len(readable) < len(ids):
        messages.error(request, f"{len(refused) + len(ids) - len(readable)} could not be acknowledged")
    if not ids:
        messages.error(request, "tick the alerts to acknowledge first")
    return redirect(_next(request) or "dashboard:queue")


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
    if action == "escalate" and request.POST.get("confirm") != "yes":
        return _confirm_escalation(request, alert)
    try:
        ACTIONS[action](request, alert)
    except workflow.InvalidInput as exc:
        return _refused(request, f"{exc.field}: {exc.reason}" if exc.field != "(request)" else exc.reason)
    except workflow.AlreadyResolved as exc:
        return _refused(request, exc.reason)
    except drf_exceptions.ValidationError as exc:
        return _refused(request, _reason(exc))
    audit(request, alert.patient_id, f"alert_{action}", alert=alert.pk, via="dashboard")
    if action == "escalate":
        step = workflow.escalated_to(alert)
        messages.success(request, f"escalated to {_target_name(step) if step else 'the target'}")
    if request.headers.get("HX-Request") and request.POST.get("view") == "row":
        alert = care.queue_queryset(request.user, {"status": "all", "include_quieted": "true"}).get(pk=alert.pk)
        _decorate([alert])
        return render(request, "dashboard/_queue_row.html",
                      {"a": alert, "snooze_choices": SNOOZE_CHOICES, "now": timezone.now()})
    return redirect(_next(request) or "dashboard:queue")


def _escalation_targets(patient_id: int, me) -> list[tuple[str, str]]:
    return ([(f"clinician:{c.pk}", c.display_name) for c in
             clinicians_with_access(patient_id).exclude(pk=me.pk)]
            + [(f"team:{t.pk}", f"team {t.name}") for t in teams_with_access(patient_id)])


def _confirm_escalation(request, alert: Alert) -> HttpResponse:
    """Escalation names its target and asks once more before handing the alert over."""
    target = request.POST.get("target", "")
    names = dict(_escalation_targets(alert.patient_id, request.clinician))
    if target not in names:
        return _refused(request, "target: choose who to escalate to")
    _decorate([alert])
    return render(request, "dashboard/confirm_escalate.html", {
        "a": alert, "target": target, "target_name": names[target],
        "reason": request.POST.get("reason", "")[:300], "next": _next(request) or ""})


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
    return redirect(_next(request) or "dashboard:queue")


def _acknowledge(request, alert: Alert) -> None:
    workflow.acknowledge(alert, request.user)


def _snooze(request, alert: Alert) -> None:
    """Until a date-time (``until``, as in the API) or for a number of hours from now (the
    form offers a few); the workflow bounds both to 30 days."""
    if raw_until := request.POST.get("until", ""):
        until = query.instant(raw_until, "until")
    else:
        hours = _id(request.POST.get("hours", "4"))
        if hours is None or hours > 24 * 366:
            raise workflow.InvalidInput("hours", "must be a whole number of hours")
        until = timezone.now() + timedelta(hours=hours)
    workflow.snooze(alert, request.user, until)


def _unsnooze(request, alert: Alert) -> None:
    workflow.unsnooze(alert, request.user)


def _escalate(request, alert: Alert) -> None:
    kind, _, raw = request.POST.get("target", "").partition(":")
    pk = _id(raw)
    if kind not in ("clinician", "team") or pk is None:
        raise workflow.InvalidInput("target", "choose a clinician or a team")
    target = {f"{kind}_id": pk}
    workflow.escalate(alert, request.user, reason=request.POST.get("reason", ""), **target)


def _resolve(request, alert: Alert) -> None:
    workflow.resolve(alert, request.user, request.POST.get("reason", ""), request.POST.get("verdict", ""))


def _note(request, alert: Alert) -> None:
    workflow.add_note(alert, request.user, request.POST.get("text", ""))


ACTIONS = {"acknowledge": _acknowledge, "snooze": _snooze, "unsnooze": _unsnooze, "escalate": _escalate,
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
    gaps = set(Alert.objects.active().filter(patient_id__in=[p.pk for p in rows], detector="wear_gap")
               .values_list("patient_id", flat=True))
    data = wear.quality([p.pk for p in rows], {p.pk: p.last_seen_at for p in rows}, gaps)
    for p in rows:
        p.status = "red" if p.has_red else "yellow" if p.has_yellow else "ok"
        p.data_quality = data[p.pk]
    audit_many(request, [p.pk for p in rows], "read_patient_status")
    return render(request, "dashboard/patients.html", {"patients": rows, "q": request.GET.get("q", "")})


@require_GET
@clinician_required
def patient(request, patient_id: int):
    p = patient_or_404(request, patient_id)
    audit(request, p.pk, "read_patient_page")
    alerts = list(Alert.objects.filter(patient=p).select_related("assigned_to__clinician")
                  .prefetch_related("notes__author__clinician", "actions__actor__clinician",
                                    "actions__escalated_to_clinician", "actions__escalated_to_team")
                  .order_by("-opened_at")[:30])
    _decorate(alerts)
    mine = set(request.clinician.teams.values_list("pk", flat=True))
    for a in alerts:
        step = workflow.escalated_to(a) if a.status == states.ESCALATED else None
        a.resolvable = step is None or (step.escalated_to_clinician_id == request.clinician.pk
                                        or step.escalated_to_team_id in mine)
    targets = _escalation_targets(p.pk, request.clinician)
    return render(request, "dashboard/patient.html", {
        "p": p,
        "alerts": alerts,
        "targets": targets,
        "snooze_choices": SNOOZE_CHOICES,
        "verdicts": VERDICT_CHOICES,
        "recommendations": Recommendation.objects.filter(patient=p).order_by("-day", "id")[:10],
        "contexts": ContextReport.objects.filter(patient=p).order_by("-starts_at")[:10],
        "threshold_forms": threshold_forms(p),
        "threshold_history": threshold_history(p),
        "timeline": care.timeline(p.pk, limit=30),
        "imports": ImportJob.objects.filter(patient=p)[:10],
        "now": timezone.now(),
        "chart_url": f"/api/v1/patients/{p.pk}/chart",
    })


def _defaults(detector: str) -> dict[str, float]:
    sig = inspect.signature(DETECTORS[detector].__init__).parameters.values()
    return {x.name: x.default for x in sig if x.default is not inspect.Parameter.empty}


def threshold_forms(p) -> list[dict]:
    """Per detector: each tunable parameter with its label, unit, current and default
    values and allowed range (``alerts.parameters``; defaults from the detector)."""
    overrides = {t.detector: t for t in DetectorThreshold.objects.filter(patient=p).select_related("updated_by")}
    forms = []
    for detector, names in sorted(TUNABLE.items()):
        defaults, row = _defaults(detector), overrides.get(detector)
        fields = []
        for name in names:
            meta = parameters.parameter(detector, name)
            default = defaults.get(name, meta.default if meta else None)
            current = row.params.get(name, default) if row else default
            fields.append({"name": name, "label": meta.label if meta else name.replace("_", " "),
                           "unit": meta.unit if meta else "", "default": default, "current": current,
                           "changed": current != default, "low": meta.low if meta else None,
                           "high": meta.high if meta else None})
        forms.append({"detector": detector, "title": presentation.title(detector, {}), "fields": fields,
                      "overridden": row is not None, "by": row})
    return forms


def threshold_history(p, limit: int = 20) -> list[dict]:
    """Every recorded change of the patient's thresholds, newest first, before -> after."""
    out = []
    for h in (DetectorThreshold.history.filter(patient_id=p.pk).select_related("history_user__clinician")
              .order_by("-history_date", "-history_id")[:limit]):
        before = h.prev_record
        old = {} if before is None or before.history_type == "-" else dict(before.params)
        new = {} if h.history_type == "-" else dict(h.params)
        changes = [(k, old.get(k, "default"), new.get(k, "default")) for k in sorted(set(old) | set(new))
                   if old.get(k) != new.get(k)]
        who = getattr(h.history_user, "clinician", None) if h.history_user else None
        out.append({"id": h.history_id, "at": h.history_date, "detector": h.detector,
                    "by": who.display_name if who else (h.history_user.username if h.history_user else None),
                    "automatic": (h.history_change_reason or "").startswith(feedback.AUTO_PREFIX),
                    "reason": h.history_change_reason or "", "changes": changes,
                    "kind": {"+": "set", "~": "changed", "-": "cleared"}[h.history_type]})
    return out


@require_POST
@clinician_required
def threshold(request, patient_id: int):
    """The threshold form: one detector's parameters (the values differing from the
    defaults become the override) and a reason; or a revert of a recorded change."""
    p = patient_or_404(request, patient_id, clinician_only=True)
    back = redirect(f"/dashboard/patients/{p.pk}/#thresholds")
    reason = request.POST.get("reason", "").strip()
    if len(reason) < 3:
        messages.error(request, "reason: say why, in 3 to 300 characters")
        return back
    try:
        if revert := request.POST.get("revert", ""):
            change = _id(revert)
            if change is None:
                raise workflow.InvalidInput("change", "no such threshold change")
            workflow.revert_threshold_change(p, change, request.user, reason)
            messages.success(request, "threshold change reverted")
            return back
        detector = request.POST.get("detector", "").strip()
        if detector not in TUNABLE:
            raise workflow.InvalidInput("detector", "choose a detector")
        defaults, overrides = _defaults(detector), {}
        for name in TUNABLE[detector]:
            raw = request.POST.get(f"p.{name}", "").strip()
            if not raw:
                continue
            try:
                value = float(raw)
            except ValueError:
                raise workflow.InvalidInput(name, f"{raw[:20]!r} is not a number") from None
            if value != defaults.get(name):
                overrides[name] = int(value) if value.is_integer() and isinstance(defaults.get(name), int) else value
        if not overrides:
            workflow.clear_thresholds(p, detector, request.user, reason)
            messages.success(request, f"{detector}: defaults apply again")
            return back
        overrides = care.check_overrides(detector, overrides)
        workflow.set_thresholds(p, detector, overrides, request.user, reason)
    except workflow.InvalidInput as exc:
        messages.error(request, f"{exc.field}: {exc.reason}")
        return back
    except drf_exceptions.ValidationError as exc:
        messages.error(request, _reason(exc))
        return back
    audit(request, p.pk, "thresholds_changed", detector=detector, via="dashboard")
    messages.success(request, f"thresholds of {detector} saved")
    return back


@require_GET
@clinician_required
def alert_quality(request):
    """Alert quality for the clinician's teams (what GET /api/v1/alerts/quality serves)."""
    data = quality.quality(request.clinician.teams.order_by("name"))
    return render(request, "dashboard/quality.html", {"q": data, "periods": data["periods"]})
