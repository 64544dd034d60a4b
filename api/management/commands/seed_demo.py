"""``python manage.py seed_demo``: a demo care team, clinician logins, and the simulated
patients linked to the team (assignment + consent), with a patient login each.

Idempotent: run it again after the simulator registered more patients and only what
is missing is created. Passwords come from options or the environment
(DEMO_CLINICIAN_PASSWORD, DEMO_PATIENT_PASSWORD); the defaults are for a local demo only.
"""

from __future__ import annotations

import os

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand
from django.db import transaction

from care.models import Assignment, CareTeam, Clinician, Consent, Patient, TeamMembership

TEAM = "Demo care team"
CLINICIANS = [("clinician", "Dr. Demo Clinician", "lead"), ("nurse", "Nurse Demo", "clinician")]


class Command(BaseCommand):
    help = "Create (idempotently) a demo care team and clinician logins, and link the patients."

    def add_arguments(self, parser):
        parser.add_argument("--clinician-password",
                            default=os.environ.get("DEMO_CLINICIAN_PASSWORD", "demo-clinician"))
        parser.add_argument("--patient-password",
                            default=os.environ.get("DEMO_PATIENT_PASSWORD", "demo-patient"))
        parser.add_argument("--create-patients", type=int, default=0, metavar="N",
                            help="also create demo patients until there are at least N")
        parser.add_argument("--no-coaching", action="store_true",
                            help="do not run the coaching engine for the linked patients")

    @transaction.atomic
    def handle(self, *args, **opts):
        User = get_user_model()
        team, _ = CareTeam.objects.get_or_create(name=TEAM)
        for username, name, role in CLINICIANS:
            user, created = User.objects.get_or_create(username=username)
            if created or not user.has_usable_password():
                user.set_password(opts["clinician_password"])
                user.save()
            clinician, _ = Clinician.objects.get_or_create(user=user, defaults={"display_name": name})
            TeamMembership.objects.get_or_create(team=team, clinician=clinician, defaults={"role": role})
        missing = opts["create_patients"] - Patient.objects.count()
        for _ in range(max(0, missing)):
            Patient.objects.create(display_name=f"Demo patient {Patient.objects.count() + 1}")
        linked = created_logins = 0
        for patient in Patient.objects.filter(active=True):
            Assignment.objects.get_or_create(team=team, patient=patient)
            if not Consent.objects.filter(patient=patient, team=team, revoked_at__isnull=True).exists():
                Consent.objects.create(patient=patient, team=team)
            if patient.user_id is None:
                username = f"patient{patient.pk}"
                user = User.objects.filter(username=username).first()
                if user is None:
                    user = User.objects.create_user(username=username, password=opts["patient_password"])
                    created_logins += 1
                if not Patient.objects.filter(user=user).exists():
                    patient.user = user
                    patient.save(update_fields=["user"])
            linked += 1
        if not opts["no_coaching"]:
            from coaching import engine

            for pk in Patient.objects.filter(active=True).values_list("pk", flat=True):
                engine.recommend(pk, trigger="daily")
        self.stdout.write(
            f"seed_demo: team {team.name!r}, clinicians {', '.join(c[0] for c in CLINICIANS)}, "
            f"{linked} patients linked to the team, {created_logins} patient logins created "
            f"(patient<ID>); clinician logins: clinician, nurse"
        )
