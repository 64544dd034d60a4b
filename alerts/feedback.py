"""The clinician's verdict feeds back: when a patient's alerts of one detector are
judged not actionable again and again, that detector's threshold is moved for that
patient (one step, never past the rule's bound; ``alerts.parameters.FEEDBACK``).

The change is an ordinary ``DetectorThreshold`` save, so it is recorded in its history
with the reason and no user (the system made it), and a clinician reverses it like any
change (``workflow.revert_threshold_change``). Only verdicts given after the latest
change of that detector's thresholds count, so a reversal is not undone at once.
"""

from __future__ import annotations

from datetime import timedelta

from django.db import transaction
from django.utils import timezone

from alerts import parameters, states
from alerts.models import Alert, AlertAction, DetectorThreshold

AUTO_PREFIX = "automatic:"


def after_verdict(alert: Alert) -> DetectorThreshold | None:
    """Move the threshold if this verdict completes a run of not-actionable ones; the
    changed row, or None when nothing moved (no rule, too few verdicts, at the bound)."""
    rule = parameters.FEEDBACK.get(alert.detector)
    param = parameters.parameter(alert.detector, rule.parameter) if rule else None
    if rule is None or param is None:
        return None
    since = timezone.now() - timedelta(days=rule.days)
    last_change = (DetectorThreshold.history.filter(patient_id=alert.patient_id, detector=alert.detector)
                   .order_by("-history_date").values_list("history_date", flat=True).first())
    if last_change is not None and last_change > since:
        since = last_change
    judged = (AlertAction.objects.filter(alert__patient_id=alert.patient_id, alert__detector=alert.detector,
                                         action=AlertAction.RESOLVE, verdict=states.NOT_ACTIONABLE,
                                         at__gt=since).count())
    if judged < rule.after:
        return None
    with transaction.atomic():
        row = (DetectorThreshold.objects.select_for_update()
               .filter(patient_id=alert.patient_id, detector=alert.detector).first()
               or DetectorThreshold(patient_id=alert.patient_id, detector=alert.detector, params={}))
        current = float(row.params.get(rule.parameter, param.default))
        moved = current + rule.step
        moved = min(moved, rule.bound) if rule.step > 0 else max(moved, rule.bound)
        if moved == current:
            return None
        row.params = {**row.params, rule.parameter: moved}
        row.updated_by, row.updated_at = None, timezone.now()
        row._change_reason = (  # type: ignore[attr-defined]
            f"{AUTO_PREFIX} {judged} alerts judged not actionable; {param.label.lower()} "
            f"{current:g} -> {moved:g} {param.unit} (bound {rule.bound:g})")[:300]
        row.save()
    return row
