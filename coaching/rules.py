"""The coaching rules: pure functions from what we know about a patient to advice.

Nothing here touches the database: ``coaching.engine`` gathers a ``CoachingInput``
and stores what ``evaluate`` returns, so every rule is testable with plain values.

Wording is safe by construction: every message is advice about habits or a pointer
to the care team, never a diagnosis, and ``DISCLAIMER`` goes with every answer.

>>> from datetime import date, timedelta
>>> days = [DayFeatures(date(2026, 1, 1) + timedelta(days=i), sleep_minutes=330) for i in range(7)]
>>> [a.rule for a in evaluate(CoachingInput(today=date(2026, 1, 7), days=days))]
['sleep_short']
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta

from alerts import states
from coaching.features import Baseline, DayFeatures, baseline

DISCLAIMER = (
    "This is general wellness advice based on your own data, not a diagnosis. "
    "If you feel unwell, for example chest pain, fainting or severe shortness of breath, "
    "call your local emergency number."
)

WHO_ACTIVITY = {
    "source": "WHO 2020 guidelines on physical activity and sedentary behaviour",
    "text": "Adults: 150-300 minutes of moderate-intensity aerobic activity a week "
            "(or 75-150 minutes of vigorous activity), and less sitting.",
    "url": "https://www.who.int/publications/i/item/9789240015128",
}
AASM_SLEEP = {
    "source": "AASM and Sleep Research Society consensus (2015)",
    "text": "Adults should sleep 7 or more hours per night on a regular basis.",
    "url": "https://doi.org/10.5664/jcsm.4758",
}
AHA_RESTING = {
    "source": "American Heart Association",
    "text": "A normal resting heart rate for adults is 60 to 100 beats a minute; what matters "
            "most is a lasting change from your own usual level.",
    "url": "https://www.heart.org/en/healthy-living/fitness/fitness-basics/target-heart-rates",
}
OWN_BASELINE = {
    "source": "Your own 28-day baseline",
    "text": "Day-to-day changes are judged against your own recent typical values, "
            "not against population averages.",
}
CARE_PATHWAY = {
    "source": "healthstream care pathway",
    "text": "Alerts are reviewed by your care team, who decide whether anything needs doing.",
}

PRIORITY_RANK = {"high": 0, "medium": 1, "low": 2}
# How long advice stays away after the patient dismissed it, or said it did not help.
COOLDOWN_DAYS = {"dismissed": 7, "not_helpful": 3}
RULE_COOLDOWN_DAYS = {"open_alert_care_team": 1}  # an ongoing alert may need saying again

WEEKLY_MODERATE_MIN = 150
WEEKLY_MODERATE_HIGH = 300
SLEEP_MIN_MINUTES = 7 * 60
RESTING_RISE_BPM = 5.0
HRV_DROP_FRACTION = 0.15


@dataclass(frozen=True, slots=True)
class ForecastPoint:
    metric: str
    target_date: date
    p10: float | None
    p50: float
    p90: float | None


@dataclass(frozen=True, slots=True)
class AlertInfo:
    id: int
    detector: str
    severity: str
    status: str
    window_start: datetime


@dataclass(frozen=True, slots=True)
class ContextInfo:
    tags: tuple[str, ...]
    starts_at: datetime
    ends_at: datetime


@dataclass(frozen=True, slots=True)
class FeedbackInfo:
    rule: str
    on: date  # the day the patient answered
    dismissed: bool
    helpful: bool | None


@dataclass(frozen=True, slots=True)
class CoachingInput:
    today: date
    days: Sequence[DayFeatures]  # ascending, the last one is today (or the latest day)
    forecasts: Sequence[ForecastPoint] = ()
    open_alerts: Sequence[AlertInfo] = ()
    context: Sequence[ContextInfo] = ()
    feedback: Sequence[FeedbackInfo] = ()


@dataclass(frozen=True, slots=True)
class Advice:
    rule: str
    category: str
    priority: str
    title: str
    message: str
    reason: dict
    guideline: dict
    alert_id: int | None = None


# ------------------------------------------------------------------ helpers

def _recent(days: Sequence[DayFeatures], today: date, n: int) -> list[DayFeatures]:
    since = today - timedelta(days=n - 1)
    return [d for d in days if since <= d.day <= today]


def _history(days: Sequence[DayFeatures], before: date, attr: str) -> Baseline | None:
    since = before - timedelta(days=28)
    return baseline(getattr(d, attr) for d in days if since <= d.day < before)


def active_tags(inp: CoachingInput, within_days: int = 2) -> set[str]:
    """Context the patient reported that touches the last ``within_days`` days."""
    horizon = inp.today - timedelta(days=within_days - 1)
    tags: set[str] = set()
    for c in inp.context:
        if c.ends_at.date() >= horizon and c.starts_at.date() <= inp.today:
            tags.update(c.tags)
    return tags


def _signal(name: str, value, unit: str, baseline_value=None, **extra) -> dict:
    out = {"name": name, "value": value, "unit": unit}
    if baseline_value is not None:
        out["baseline"] = baseline_value
    out.update(extra)
    return out


# -------------------------------------------------------------------- rules

def activity_below_who(inp: CoachingInput) -> Advice | None:
    week = [d for d in _recent(inp.days, inp.today, 7) if d.active_minutes is not None]
    if len(week) < 4:
        return None
    if "illness" in active_tags(inp, 3):
        return None  # rest first; activity advice waits until the patient is well
    total = sum(float(d.active_minutes or 0.0) for d in week)
    weekly = round(total * 7 / len(week))
    if weekly >= WEEKLY_MODERATE_MIN:
        return None
    per_day = max(10, round((WEEKLY_MODERATE_MIN - weekly) / 7 / 5) * 5)
    return Advice(
        rule="activity_below_who", category="activity",
        priority="medium" if weekly < WEEKLY_MODERATE_MIN / 2 else "low",
        title="A little more movement this week",
        message=(
            f"Over the last {len(week)} days you were moderately active for about {weekly} "
            f"minutes a week. Adults are advised 150 to 300 minutes a week. Adding a brisk "
            f"walk of about {per_day} minutes a day would close the gap; build up gradually "
            "and choose activities you enjoy."
        ),
        reason={"summary": f"about {weekly} moderate-equivalent minutes a week, below 150",
                "signals": [_signal("active_minutes_per_week", weekly, "min", None,
                                    days_with_data=len(week))]},
        guideline=WHO_ACTIVITY,
    )


def activity_on_track(inp: CoachingInput) -> Advice | None:
    week = [d for d in _recent(inp.days, inp.today, 7) if d.active_minutes is not None]
    if len(week) < 6:
        return None
    weekly = round(sum(float(d.active_minutes or 0.0) for d in week) * 7 / len(week))
    if weekly < WEEKLY_MODERATE_HIGH:
        return None
    return Advice(
        rule="activity_on_track", category="activity", priority="low",
        title="You are meeting the activity guideline",
        message=(
            f"About {weekly} minutes of moderate activity a week: that is at or above the "
            "300 minutes associated with extra benefit. Keep it up, and keep rest days in "
            "your week."
        ),
        reason={"summary": f"about {weekly} moderate-equivalent minutes a week",
                "signals": [_signal("active_minutes_per_week", weekly, "min")]},
        guideline=WHO_ACTIVITY,
    )


def sleep_short(inp: CoachingInput) -> Advice | None:
    nights = [d for d in _recent(inp.days, inp.today, 7) if d.sleep_minutes is not None]
    if len(nights) < 3:
        return None
    avg = sum(float(d.sleep_minutes or 0.0) for d in nights) / len(nights)
    if avg >= SLEEP_MIN_MINUTES:
        return None
    hours, minutes = divmod(round(avg), 60)
    tags = active_tags(inp, 3)
    tip = ("After travel, getting daylight in the morning at your destination helps your body "
           "clock adjust." if "travel" in tags else
           "A regular bedtime, a dark and cool bedroom, and no screens in the last hour "
           "before bed often help.")
    return Advice(
        rule="sleep_short", category="sleep",
        priority="medium" if avg >= 6 * 60 else "high",
        title="Aim for at least 7 hours of sleep",
        message=(f"You slept about {hours} h {minutes:02d} min a night over the last "
                 f"{len(nights)} nights. Adults are advised at least 7 hours. {tip}"),
        reason={"summary": f"average sleep {hours} h {minutes:02d} min, below 7 h",
                "signals": [_signal("sleep_per_night", round(avg), "min", None,
                                    nights=len(nights))],
                "context": sorted(tags & {"travel", "stress", "alcohol", "caffeine"})},
        guideline=AASM_SLEEP,
    )


def resting_hr_above_baseline(inp: CoachingInput) -> Advice | None:
    # The last two days with a value (today may not have enough data yet).
    recent = [d for d in _recent(inp.days, inp.today, 3) if d.resting_hr is not None][-2:]
    if len(recent) < 2:
        return None
    base = _history(inp.days, recent[0].day, "resting_hr")
    if base is None:
        return None
    limit = base.median + max(RESTING_RISE_BPM, 2 * base.mad)
    if not all((d.resting_hr or 0.0) > limit for d in recent):
        return None
    latest = float(recent[-1].resting_hr or 0.0)
    tags = active_tags(inp, 3)
    if "illness" in tags:
        why = "You told us you were feeling unwell; rest and fluids help recovery."
    elif "alcohol" in tags:
        why = "Alcohol often raises resting heart rate for a night or two."
    elif "stress" in tags:
        why = "Stress can keep your heart rate up; a short walk or breathing exercise may help."
    else:
        why = "Short sleep, alcohol, stress, a hard workout or a cold coming on are common reasons."
    return Advice(
        rule="resting_hr_above_baseline", category="recovery", priority="medium",
        title="Take it easy for a day or two",
        message=(f"Your resting heart rate has been about {latest:.0f} beats a minute for two "
                 f"days, above your usual {base.median:.0f}. {why} Consider a lighter day. If "
                 "it stays up for several more days, or you feel unwell, contact your care team."),
        reason={"summary": f"resting heart rate {latest:.0f} bpm vs baseline {base.median:.0f} bpm",
                "signals": [_signal("resting_hr", d.resting_hr, "beats/min", base.median,
                                    day=d.day.isoformat(), limit=round(limit, 1)) for d in recent],
                "context": sorted(tags & {"illness", "alcohol", "stress", "travel"})},
        guideline=AHA_RESTING,
    )


def hrv_below_baseline(inp: CoachingInput) -> Advice | None:
    recent = [d for d in _recent(inp.days, inp.today, 3) if d.hrv is not None][-2:]
    if len(recent) < 2:
        return None
    base = _history(inp.days, recent[0].day, "hrv")
    if base is None:
        return None
    limit = base.median - max(2 * base.mad, HRV_DROP_FRACTION * base.median)
    if not all((d.hrv or 0.0) < limit for d in recent):
        return None
    return Advice(
        rule="hrv_below_baseline", category="recovery", priority="low",
        title="Your body may need more recovery",
        message=(f"Your heart rate variability has been about {float(recent[-1].hrv or 0.0):.0f} ms, lower "
                 f"than your usual {base.median:.0f} ms. This often follows hard training, poor "
                 "sleep or stress. Prioritise sleep and keep today's exercise light."),
        reason={"summary": f"HRV {float(recent[-1].hrv or 0.0):.0f} ms vs baseline {base.median:.0f} ms",
                "signals": [_signal("hrv_rmssd", d.hrv, "ms", base.median, day=d.day.isoformat())
                            for d in recent]},
        guideline=OWN_BASELINE,
    )


def forecast_resting_hr_rising(inp: CoachingInput) -> Advice | None:
    ahead = [f for f in inp.forecasts if f.metric == "resting_hr"
             and inp.today < f.target_date <= inp.today + timedelta(days=7)]
    if not ahead:
        return None
    base = _history(inp.days, inp.today + timedelta(days=1), "resting_hr")
    if base is None:
        return None
    high = [f for f in ahead if f.p50 > base.median + RESTING_RISE_BPM]
    if len(high) < 2:
        return None
    peak = max(high, key=lambda f: f.p50)
    return Advice(
        rule="forecast_resting_hr_rising", category="recovery", priority="low",
        title="Plan some recovery this week",
        message=(f"Your trend suggests your resting heart rate may stay around {peak.p50:.0f} "
                 f"beats a minute in the coming days, above your usual {base.median:.0f}. "
                 "Planning lighter days and enough sleep may help it settle. This is a "
                 "projection, not a certainty."),
        reason={"summary": f"forecast {peak.p50:.0f} bpm on {peak.target_date.isoformat()} "
                           f"vs baseline {base.median:.0f} bpm",
                "signals": [_signal("resting_hr_forecast", round(f.p50, 1), "beats/min",
                                    base.median, day=f.target_date.isoformat(),
                                    p10=f.p10, p90=f.p90) for f in high]},
        guideline=OWN_BASELINE,
    )


DETECTOR_WORDS = {
    "hr_high_at_rest": "a high heart rate while at rest",
    "hr_low_at_rest": "a low heart rate while at rest",
    "nightsignal_rhr": "a rise in your night-time resting heart rate",
    "cusum_rhr": "a lasting shift in your resting heart rate",
    "illness_rhr": "a rise in your resting heart rate over several nights",
    "wear_gap": "a gap in the data from your device",
    "sleep_debt": "several short nights of sleep",
}


def open_alert_care_team(inp: CoachingInput) -> Advice | None:
    # ``open_alerts`` holds what ``Alert.objects.active()`` returned (engine.gather); a
    # resolved one can only come from a caller that built the input by hand.
    active = [a for a in inp.open_alerts if a.severity in (states.RED, states.YELLOW)
              and a.status != states.RESOLVED]
    if not active:
        return None
    top = min(active, key=lambda a: (a.severity != states.RED, -a.window_start.timestamp()))
    what = DETECTOR_WORDS.get(top.detector, "an unusual pattern")
    when = top.window_start.strftime("%d %b %H:%M UTC")
    return Advice(
        rule="open_alert_care_team", category="care_team",
        priority="high" if top.severity == states.RED else "medium",
        title="Your care team is looking at your data",
        message=(f"Your readings from {when} showed {what}, and your care team has been told. "
                 "They may get in touch with you. You do not need to do anything now; if you "
                 "feel unwell, contact them, or call your local emergency number if it is urgent."),
        reason={"summary": f"{top.severity} alert from detector {top.detector}",
                "signals": [{"name": "alert", "detector": a.detector, "severity": a.severity,
                             "window_start": a.window_start.isoformat(), "alert": a.id}
                            for a in active[:5]]},
        guideline=CARE_PATHWAY,
        alert_id=top.id,
    )


RULES: list[Callable[[CoachingInput], Advice | None]] = [
    open_alert_care_team,
    resting_hr_above_baseline,
    hrv_below_baseline,
    forecast_resting_hr_rising,
    sleep_short,
    activity_below_who,
    activity_on_track,
]


def quiet_rules(inp: CoachingInput) -> set[str]:
    """Rules the patient pushed away recently (dismissed or found unhelpful)."""
    quiet = set()
    for f in inp.feedback:
        if f.dismissed:
            days = COOLDOWN_DAYS["dismissed"]
        elif f.helpful is False:
            days = COOLDOWN_DAYS["not_helpful"]
        else:
            continue
        days = min(days, RULE_COOLDOWN_DAYS.get(f.rule, days))
        if inp.today < f.on + timedelta(days=days):
            quiet.add(f.rule)
    return quiet


def evaluate(inp: CoachingInput) -> list[Advice]:
    """Every rule's advice for today, minus what is cooling down, most urgent first."""
    quiet = quiet_rules(inp)
    out = [a for rule in RULES if rule.__name__ not in quiet and (a := rule(inp)) is not None]
    return sorted(out, key=lambda a: PRIORITY_RANK[a.priority])
