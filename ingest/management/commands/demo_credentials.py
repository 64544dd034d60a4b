"""Print the demo logins and a fresh device token for the first simulated patient."""

from django.core.management import call_command, get_commands
from django.core.management.base import BaseCommand
from django.utils import timezone

from care.models import Device
from ingest.demo import SIM_PASSWORD, SIM_USER, register_cohort


class Command(BaseCommand):
    help = "Create the demo cohort if needed and print its logins and a device token."

    def add_arguments(self, parser):
        parser.add_argument("--patients", type=int, default=20)

    def handle(self, *args, **opts):
        cohort = register_cohort(opts["patients"])
        _, patient, _ = cohort[0]
        Device.objects.filter(patient=patient, name="demo phone", revoked_at__isnull=True).update(
            revoked_at=timezone.now())
        _, token = Device.issue(patient, "demo phone", kind="phone")
        self.stdout.write(f"Patient    {SIM_USER.format(1)} / {SIM_PASSWORD.format(1)}  (patient id {patient.pk})")
        self.stdout.write(f"Device     Authorization: Device {token}")
        if "seed_demo" in get_commands():
            call_command("seed_demo", stdout=self.stdout)
