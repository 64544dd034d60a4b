"""``python manage.py notify_demo --webhook-url URL --secret-file PATH``: for a local demo,
make every care team's red alerts reach someone: an email address for clinicians who
have none (``<username>@localhost``), an on-call shift for each team's lead (or first
member) covering the next week when nobody is on call, and one webhook endpoint per
team at URL signed with the secret in PATH. Idempotent."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError
from django.db import transaction
from django.utils import timezone

from alerts.notify import routing
from alerts.notify.models import OnCallShift, WebhookEndpoint, validate_webhook_url
from care.models import CareTeam, TeamMembership


class Command(BaseCommand):
    help = "Set up on-call shifts, emails and a webhook endpoint per team for a local demo."

    def add_arguments(self, parser):
        parser.add_argument("--webhook-url", required=True)
        parser.add_argument("--secret-file", required=True, type=Path)
        parser.add_argument("--days", type=int, default=7)

    @transaction.atomic
    def handle(self, *args, **opts):
        try:
            secret = opts["secret_file"].read_text().strip()
        except OSError as exc:
            raise CommandError(f"cannot read the secret file: {exc.strerror}") from None
        try:
            validate_webhook_url(opts["webhook_url"])
        except ValidationError as exc:
            raise CommandError(f"--webhook-url: {' '.join(exc.messages)}") from None
        now = timezone.now()
        shifts = hooks = emails = 0
        for team in CareTeam.objects.order_by("pk"):
            members = (TeamMembership.objects.filter(team=team).select_related("clinician__user")
                       .order_by("pk"))
            for m in members:
                if not m.clinician.user.email:
                    m.clinician.user.email = f"{m.clinician.user.username}@localhost"
                    m.clinician.user.save(update_fields=["email"])
                    emails += 1
            lead = next((m for m in members if m.role == "lead"), members.first())
            if lead is not None and not routing.on_call(team.pk, now):
                OnCallShift.objects.create(team=team, clinician=lead.clinician, starts_at=now,
                                           ends_at=now + timedelta(days=opts["days"]))
                shifts += 1
            hook, created = WebhookEndpoint.objects.get_or_create(
                team=team, url=opts["webhook_url"], defaults={"secret": secret})
            if not created and hook.secret != secret:
                hook.secret = secret
                hook.save(update_fields=["secret"])
            hooks += created
        self.stdout.write(f"notify_demo: {shifts} on-call shifts, {hooks} webhook endpoints, "
                          f"{emails} email addresses set")
