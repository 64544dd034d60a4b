"""Who is told, by which channel: on-call routing, preferences and quiet hours.

The rules (they are the product's, so they are stated here once):

* **Red alerts** go, for every care team that may read the patient, to the team's
  clinician(s) on call now (``OnCallShift``). A team with nobody on call tells every
  member: a red alert must reach someone. Members who asked for red alerts when off
  call (``red_when_off_call``) get them too, except in their quiet hours.
* **Escalations** go to the clinician they name, or to the on-call clinician(s) of the
  team they name (every member when nobody is on call).
* **Quiet hours never hold back a red alert or an escalation to someone on call or
  named by it**: being on call overrides them. They hold back what can wait: red
  alerts for off-call clinicians and the yellow digest.
* A clinician who turned email off (``email=False``) gets no email; the team's
  webhooks still fire. A clinician without an email address gets none either.
* Webhooks: the active endpoints of the teams concerned (for an escalation, the named
  team's, or the teams the named clinician belongs to that may read the patient).
"""

from __future__ import annotations

from datetime import datetime

from alerts.models import Alert, AlertAction
from alerts.notify.models import NotificationPreference, OnCallShift, WebhookEndpoint
from care.access import teams_with_access
from care.models import Clinician


def preference(clinician: Clinician) -> NotificationPreference:
    """The clinician's saved preferences, or the defaults (not saved)."""
    return (NotificationPreference.objects.filter(clinician=clinician).first()
            or NotificationPreference(clinician=clinician))


def on_call(team_id: int, at: datetime) -> list[Clinician]:
    """The team's clinicians on call at ``at`` (several shifts may overlap)."""
    ids = OnCallShift.objects.filter(team_id=team_id, starts_at__lte=at, ends_at__gt=at).values("clinician_id")
    return list(Clinician.objects.filter(pk__in=ids).select_related("user").order_by("pk"))


def _on_call_or_everyone(team_id: int, at: datetime) -> list[Clinician]:
    return on_call(team_id, at) or list(
        Clinician.objects.filter(teams__pk=team_id).select_related("user").order_by("pk"))


def _emailable(clinicians: dict[int, Clinician]) -> list[Clinician]:
    return [c for c in clinicians.values() if c.user.email and preference(c).email]


def red_email_recipients(alert: Alert, at: datetime) -> list[Clinician]:
    chosen: dict[int, Clinician] = {}
    for team in teams_with_access(alert.patient_id):
        for c in _on_call_or_everyone(team.pk, at):
            chosen.setdefault(c.pk, c)
        for c in Clinician.objects.filter(teams__pk=team.pk).select_related("user"):
            pref = preference(c)
            if c.pk not in chosen and pref.red_when_off_call and not pref.in_quiet_hours(at):
                chosen[c.pk] = c
    return _emailable(chosen)


def red_endpoints(alert: Alert) -> list[WebhookEndpoint]:
    teams = teams_with_access(alert.patient_id).values("pk")
    return list(WebhookEndpoint.objects.filter(team__in=teams, active=True).order_by("pk"))


def escalation_email_recipients(step: AlertAction, at: datetime) -> list[Clinician]:
    if step.escalated_to_clinician_id is not None:
        target = Clinician.objects.select_related("user").get(pk=step.escalated_to_clinician_id)
        return _emailable({target.pk: target})
    if step.escalated_to_team_id is not None:
        return _emailable({c.pk: c for c in _on_call_or_everyone(step.escalated_to_team_id, at)})
    return []


def escalation_endpoints(step: AlertAction, patient_id: int) -> list[WebhookEndpoint]:
    teams = teams_with_access(patient_id)
    if step.escalated_to_team_id is not None:
        teams = teams.filter(pk=step.escalated_to_team_id)
    elif step.escalated_to_clinician_id is not None:
        teams = teams.filter(members__pk=step.escalated_to_clinician_id)
    else:
        return []
    return list(WebhookEndpoint.objects.filter(team__in=teams.values("pk"), active=True).order_by("pk"))
