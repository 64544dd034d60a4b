from django.core.management.base import BaseCommand

from lib import kafka


class Command(BaseCommand):
    help = "Create the Kafka topics (co-partitioned by patient id) if they are missing."

    def handle(self, *args, **opts):
        kafka.ensure_topics()
        self.stdout.write("topics ready: " + ", ".join(kafka.patient_topics()))
