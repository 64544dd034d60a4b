"""python manage.py import_samples FILE... (--patient ID | --dry-run) [--format F] [--tz ZONE] [--json]"""

from __future__ import annotations

import json
import zoneinfo

from django.core.management.base import BaseCommand, CommandError
from tqdm import tqdm

from care.models import Patient
from ingest.importer import ImportFailed, ImportSummary, run_import
from ingest.readers import DATE_ORDERS, FORMATS


class Command(BaseCommand):
    help = ("Import wearable exports for one patient through Kafka (the same path as live data), "
            "or with --dry-run only read, validate and count them.")

    def add_arguments(self, parser):
        parser.add_argument("files", nargs="+")
        parser.add_argument("--patient", type=int, help="the patient's id (not needed with --dry-run)")
        parser.add_argument("--dry-run", action="store_true",
                            help="read, validate and count; send nothing (needs no database or broker)")
        parser.add_argument("--format", choices=FORMATS, help="recognised from the content when omitted")
        parser.add_argument("--tz", default="UTC", help="zone of local times without an offset")
        parser.add_argument("--date-order", choices=DATE_ORDERS,
                            help="day/month order of slashed dates, for a file whose dates fit both")
        parser.add_argument("--participant", help="the participant to take from a multi-person file")
        parser.add_argument("--batch-size", type=int, default=None)
        parser.add_argument("--json", action="store_true", help="print the summary as JSON")

    def handle(self, *args, **opts):
        try:
            zoneinfo.ZoneInfo(opts["tz"])
        except (zoneinfo.ZoneInfoNotFoundError, ValueError):
            raise CommandError(f"--tz {opts['tz']!r} is not an IANA time zone") from None
        dry_run = opts["dry_run"]
        if not dry_run:
            if opts["patient"] is None:
                raise CommandError("--patient is required (or --dry-run to only read and count)")
            if not Patient.objects.filter(pk=opts["patient"]).exists():
                raise CommandError(f"no patient with id {opts['patient']}")
        bar = tqdm(unit=" records", desc="dry run" if dry_run else "import", disable=opts["json"],
                   mininterval=0.5)
        try:
            summary = run_import(
                opts["files"], patient_id=opts["patient"], fmt=opts["format"], tz=opts["tz"],
                participant=opts["participant"], batch_size=opts["batch_size"],
                progress=lambda n, _summary: bar.update(n), dry_run=dry_run, date_order=opts["date_order"],
            )
        except ImportFailed as exc:
            raise CommandError(str(exc)) from exc
        finally:
            bar.close()
        if opts["json"]:
            self.stdout.write(json.dumps(summary.as_dict()))
        else:
            self._print(summary)
        if not summary.balanced():
            raise CommandError("the summary does not add up to the records read: this is a bug")

    def _print(self, summary: ImportSummary) -> None:
        w = self.stdout.write
        if summary.dry_run:
            w("dry run: nothing was sent")
        w(f"records read       {summary.read:>10,}")
        w(f"{'valid' if summary.dry_run else 'accepted':<18} {summary.accepted:>10,}")
        w(f"duplicate in input {summary.duplicate:>10,}")
        w(f"already imported   {summary.already_imported:>10,}")
        w(f"skipped by type    {summary.skipped_total:>10,}")
        for kind, count in summary.skipped.most_common():
            w(f"  {count:>8,}  {kind}")
        w(f"refused            {summary.refused_total:>10,}")
        for reason, count in summary.refused.most_common():
            w(f"  {count:>8,}  {reason}")
        w(f"batches            {summary.batches:>10,}")

