"""Test data for the patient and care-team tests: a small world of two care teams.

``World``: team A (clinician ``alice``) is assigned patients ``pat`` and ``pat2`` who
consented, and ``revoked`` whose consent was revoked; team B (clinician ``bob``) has its
own patient ``other``. ``pat`` has an active and a revoked device, two open alerts and
advice; ``revoked`` and ``other`` have an alert each. Samples are written the way the
sink writes them (COPY into ``samples`` and the rollups, via ingest/storage.py).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import numpy as np
from django.contrib.auth import get_user_model
from django.db import connection
from django.utils import timezone

from alerts.models import Alert
from api.auth import issue
from care.models import Assignment, CareTeam, Clinician, Consent, Device, Patient, TeamMembership
from coaching.models import Recommendation
from ingest import storage
from ingest.schema import METRICS

PASSWORD = "correct-horse-battery-staple"


@dataclass
class World:
    team_a: CareTeam
    team_b: CareTeam
    alice: Clinician
    carol: Clinician
    bob: Clinician
    pat: Patient
    pat2: Patient
    revoked: Patient
    other: Patient
    device: Device
    device_token: str
    revoked_device: Device
    revoked_device_token: str
    red: Alert
    yellow: Alert
    revoked_alert: Alert
    other_alert: Alert
    advice: Recommendation

    def token(self, who) -> str:
        """An API token of this person (one per person and world, as one client)."""
        tokens = self.__dict__.setdefault("_tokens", {})
        if who.user.pk not in tokens:
            tokens[who.user.pk] = issue(who.user)[1]
        return tokens[who.user.pk]


def make_user(username: str):
    return get_user_model().objects.create_user(username=username, password=PASSWORD)


def make_clinician(username: str, name: str, team: CareTeam) -> Clinician:
    c = Clinician.objects.create(user=make_user(username), display_name=name)
    TeamMembership.objects.create(team=team, clinician=c)
    return c


def make_patient(username: str, name: str, team: CareTeam | None, consent: bool = True) -> Patient:
    p = Patient.objects.create(user=make_user(username), display_name=name)
    if team is not None:
        Assignment.objects.create(team=team, patient=p)
        if consent:
            Consent.objects.create(patient=p, team=team)
    return p


def make_alert(patient: Patient, detector: str = "hr_high_at_rest", severity: str = "red",
               minutes_ago: int = 30, **extra) -> Alert:
    start = timezone.now() - timedelta(minutes=minutes_ago)
    return Alert.objects.create(
        patient=patient, detector=detector, severity=severity, window_start=start,
        window_end=start + timedelta(minutes=10),
        evidence={"value": 142.0, "baseline": 64.0, "threshold": 120.0}, **extra)


def build_world() -> World:
    team_a = CareTeam.objects.create(name="Cardiology A")
    team_b = CareTeam.objects.create(name="Sleep clinic B")
    alice = make_clinician("alice", "Dr. Alice", team_a)
    carol = make_clinician("carol", "Nurse Carol", team_a)
    bob = make_clinician("bob", "Dr. Bob", team_b)
    pat = make_patient("pat", "Pat Example", team_a)
    pat2 = make_patient("pat2", "Second Patient", team_a)
    revoked = make_patient("rev", "Revoked Consent", team_a)
    Consent.objects.filter(patient=revoked).update(revoked_at=timezone.now())
    other = make_patient("other", "Other Team Patient", team_b)
    device, token = Device.issue(pat, "watch")
    revoked_device, revoked_token = Device.issue(pat, "old phone", kind="phone")
    revoked_device.revoke()
    red = make_alert(pat, "hr_high_at_rest", "red", 30)
    yellow = make_alert(pat, "nightsignal_rhr", "yellow", 90)
    revoked_alert = make_alert(revoked, "hr_high_at_rest", "red", 20)
    other_alert = make_alert(other, "hr_low_at_rest", "yellow", 10)
    advice = Recommendation.objects.create(
        patient=pat, rule="sleep_short", category="sleep", priority="medium",
        title="Aim for at least 7 hours of sleep", message="You slept about 6 h.",
        reason={"summary": "short sleep"}, guideline={"source": "AASM"},
        day=timezone.now().date())
    return World(team_a, team_b, alice, carol, bob, pat, pat2, revoked, other, device, token,
                 revoked_device, revoked_token, red, yellow, revoked_alert, other_alert, advice)


def put_samples(patient_id: int, metric: str, times: np.ndarray, values, *, ends=None,
                labels=None, levels=None) -> int:
    """Write samples as the sink does: COPY into ``samples`` and fold them into the rollups.
    ``times`` and ``ends`` are epoch milliseconds."""
    times = np.asarray(times, dtype=np.int64)
    n = len(times)
    cols = storage.Columns(
        patient=np.full(n, patient_id, dtype=np.int64), device=[None] * n,
        metric=np.full(n, METRICS[metric].code, dtype=np.int16), time_ms=times,
        end_ms=list(ends) if ends is not None else [None] * n,
        value=[None if v is None else float(v) for v in values] if values is not None else [None] * n,
        label=list(labels) if labels is not None else [None] * n,
        level=list(levels) if levels is not None else [None] * n,
    )
    connection.ensure_connection()
    raw = connection.connection
    storage.PartitionKeeper().ensure(raw, int(times.min()), int(times.max()))
    with raw.cursor() as cur:
        storage.copy_samples(cur, cols)
        storage.update_rollups(cur, cols)
    return n


def day_ms(day_offset: int, now: datetime | None = None) -> int:
    """Epoch ms of midnight UTC ``day_offset`` days from today (negative: the past)."""
    now = now or datetime.now(UTC)
    midnight = datetime(now.year, now.month, now.day, tzinfo=UTC) + timedelta(days=day_offset)
    return int(midnight.timestamp() * 1000)


def minute_heart_rate(patient_id: int, days: int, resting: float = 60.0, *, last_days_resting=None,
                      seed: int = 1) -> int:
    """``days`` whole days of minute heart rate ending today: a daily curve whose lowest
    hour is ``resting``; ``last_days_resting`` {offset: resting} overrides some days."""
    rng = np.random.default_rng(seed)
    now_ms = int(datetime.now(UTC).timestamp() * 1000)
    # Before 07:00 UTC today's night is still incomplete, and a resting rate read from
    # its first hours would not be the day's: then the data ends with yesterday, and
    # one more day is made so that ``days`` whole days remain (``days=1`` was empty).
    early = now_ms < day_ms(0) + 7 * 3_600_000
    days += early
    start = day_ms(-days + 1)
    t = start + np.arange(days * 1440, dtype=np.int64) * 60_000
    minute_of_day = np.arange(days * 1440) % 1440
    day_index = np.arange(days * 1440) // 1440
    base = np.full(len(t), resting, dtype=float)
    for offset, value in (last_days_resting or {}).items():
        base[day_index == days - 1 + offset] = value
    hour = minute_of_day // 60
    curve = np.where((hour >= 1) & (hour < 6), 0.0, 14.0 + 6 * np.sin(minute_of_day / 1440 * 2 * np.pi))
    hr = base + curve + rng.normal(0, 0.5, len(t))
    keep = t < day_ms(0) if early else t <= now_ms
    return put_samples(patient_id, "heart_rate", t[keep], hr[keep])
