"""Gathers what the rules need from the database, runs them, stores the advice.

``recommend(patient_id)`` is what the Celery tasks call, daily and when an alert opens.
It is idempotent per day: one recommendation per (patient, rule, day), updated in place.
"""

from __future__ import annotations

import logging
from datetime import date, timedelta

from django.db import transaction
from django.utils import timezone

from alerts.models import Alert
from coaching import rules
from coaching.features import BASELINE_DAYS, load_days
from coaching.models import ContextReport, Feedback, Recommendation
from forecasting.models import Forecast

log = logging.getLogger(__name__)

HISTORY_DAYS = BASELINE_DAYS + 7


def load_forecasts(patient_id: int, today: date, metric: str | None = None) -> list[rules.ForecastPoint]:
    qs = Forecast.objects.filter(patient_id=patient_id, target_date__gt=today,
                              target_date__lte=today + timedelta(days=14))
    if metric:
        qs = qs.filter(metric=metric)
    latest: dict[tuple[str, date], rules.ForecastPoint] = {}
    # The newest issue wins for each (metric, day).
    for f in qs.order_by("issued_on", "created_at"):
        p50 = f.p50 if f.p50 is not None else f.mean
        if p50 is None:
            continue
        latest[(f.metric, f.target_date)] = rules.ForecastPoint(
            f.metric, f.target_date, f.p10, float(p50), f.p90)
    return sorted(latest.values(), key=lambda p: (p.metric, p.target_date))


def gather(patient_id: int, today: date) -> rules.CoachingInput:
    days = load_days(patient_id, today - timedelta(days=HISTORY_DAYS), today)
    alerts = [
        rules.AlertInfo(a.id, a.detector, a.severity, a.status, a.window_start)
        for a in Alert.objects.active().filter(patient_id=patient_id).order_by("-opened_at")[:20]
    ]
    since = timezone.now() - timedelta(days=14)
    context = [
        rules.ContextInfo(tuple(c.tags), c.starts_at, c.ends_at)
        for c in ContextReport.objects.filter(patient_id=patient_id, ends_at__gte=since)
    ]
    feedback = [
        rules.FeedbackInfo(f.recommendation.rule, f.created_at.date(), f.dismissed, f.helpful)
        for f in Feedback.objects.filter(patient_id=patient_id, created_at__gte=since)
        .select_related("recommendation")
    ]
    return rules.CoachingInput(
        today=today, days=days, forecasts=load_forecasts(patient_id, today),
        open_alerts=alerts, context=context, feedback=feedback,
    )


def recommend(patient_id: int, today: date | None = None, trigger: str = "daily",
              alert_id: int | None = None) -> list[Recommendation]:
    """Make today's advice for one patient and retire what no longer applies."""
    today = today or timezone.now().date()
    advice = rules.evaluate(gather(patient_id, today))
    made: list[Recommendation] = []
    with transaction.atomic():
        for a in advice:
            rec, _ = Recommendation.objects.update_or_create(
                patient_id=patient_id, rule=a.rule, day=today,
                defaults=dict(
                    category=a.category, priority=a.priority, title=a.title, message=a.message,
                    reason=a.reason, guideline=a.guideline,
                    alert_id=a.alert_id,
                ),
                create_defaults=dict(
                    category=a.category, priority=a.priority, title=a.title, message=a.message,
                    reason=a.reason, guideline=a.guideline, trigger=trigger,
                    alert_id=a.alert_id,
                ),
            )
            made.append(rec)
        # Advice from earlier days, and today's advice whose rule stopped firing, expires.
        (Recommendation.objects.filter(patient_id=patient_id, status=Recommendation.ACTIVE)
         .exclude(pk__in=[r.pk for r in made]).update(status=Recommendation.EXPIRED))
    log.info("coaching: patient %s, %d recommendations (%s)", patient_id, len(made), trigger)
    return made
