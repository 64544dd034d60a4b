"""python manage.py import_samples FILE... --patient ID [--format F] [--tz ZONE]"""

from __future__ import annotations

import json
import zoneinfo

from django.core.management.base import BaseCommand, CommandError
from tqdm import tqdm

from care.models import Patient
from ingest.importer import import_files
from ingest.readers import FORMATS, ReaderError
from ingest.service import BrokerUnavailable
from lib import kafka


class Command(BaseCommand):
    help = "Import wearable exports for one patient through Kafka (the same path as live data)."

    def add_arguments(self, parser):
        parser.add_argument("files", nargs="+")
        parser.add_argument("--patient", type=int, required=True, help="the patient's id")
        parser.add_argument("--format", choices=FORMATS, help="detected from the header when omitted")
        parser.add_argument("--tz", default="UTC", help="zone of local times without an offset")
        parser.add_argument("--participant", help="the participant to take from a multi-person file")
        parser.add_argument("--batch-size", type=int, default=None)
        parser.add_argument("--json", action="store_true", help="print the summary as JSON")

    def handle(self, *args, **opts):
        try:
            zoneinfo.ZoneInfo(opts["tz"])
        except (zoneinfo.ZoneInfoNotFoundError, ValueError):
            raise CommandError(f"--tz {opts['tz']!r} is not an IANA time zone") from None
        if not Patient.objects.filter(pk=opts["patient"]).exists():
            raise CommandError(f"no patient with id {opts['patient']}")
        kafka.ensure_topics()
        bar = tqdm(unit=" rows", desc="import", disable=opts["json"], mininterval=0.5)
        try:
            summary = import_files(
                opts["files"], patient_id=opts["patient"], fmt=opts["format"], tz=opts["tz"],
                participant=opts["participant"], batch_size=opts["batch_size"], progress=bar.update,
            )
        except ReaderError as exc:
            raise CommandError(str(exc)) from exc
        except BrokerUnavailable as exc:
            raise CommandError(f"{exc}: nothing after the last acknowledged batch was sent") from exc
        finally:
            bar.close()
        if opts["json"]:
            self.stdout.write(json.dumps(summary.as_dict()))
            return
        w = self.stdout.write
        w(f"rows read          {summary.read:>10,}")
        w(f"accepted           {summary.accepted:>10,}")
        w(f"duplicate in input {summary.duplicate:>10,}")
        w(f"already imported   {summary.already_imported:>10,}")
        w(f"refused            {summary.refused_total:>10,}")
        for reason, count in summary.refused.most_common():
            w(f"  {count:>8,}  {reason}")
        w(f"batches            {summary.batches:>10,}")
        if not summary.balanced():
            raise CommandError("the summary does not add up to the rows read: this is a bug")
