"""Celery tasks of the ingest layer: scheduled storage upkeep (retention of old
partitions, TimescaleDB aggregate refreshes) and the import of uploaded export files."""

from __future__ import annotations

import logging
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from celery import shared_task
from django.conf import settings
from django.utils import timezone

from ingest import storage, uploads
from ingest.importer import ImportFailed, ImportSummary, run_import
from ingest.models import ImportJob
from lib import db

log = logging.getLogger(__name__)


@shared_task(autoretry_for=(Exception,), retry_backoff=True, max_retries=3)
def storage_maintenance() -> dict:
    """Drop plain-PostgreSQL partitions past retention; refresh queued TimescaleDB ranges."""
    with db.connect(autocommit=True) as conn:
        dialect = storage.installed_dialect(conn.cursor())
        if dialect == "timescale":
            return {"refreshed": storage.drain_timescale_refresh(conn)}
        cutoff = datetime.now(UTC) - timedelta(days=settings.SAMPLES_RETENTION_DAYS)
        dropped = []
        rows = conn.execute(
            """SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
               JOIN pg_class p ON p.oid = i.inhparent WHERE p.relname = 'samples'"""
        ).fetchall()
        for (name,) in rows:
            try:
                year, month = int(name[9:13]), int(name[14:16])
            except ValueError:
                continue
            end = datetime(year + (month == 12), month % 12 + 1, 1, tzinfo=UTC)
            if end <= cutoff:
                conn.execute(f"DROP TABLE {name}")
                dropped.append(name)
        if dropped:
            log.info("retention dropped %d partitions", len(dropped))
        return {"dropped": dropped}


MISSING_FILE = ("the uploaded file is not in IMPORT_DIR on this worker (deleted, or IMPORT_DIR is not "
                "shared with the API); upload it again")


@shared_task(bind=True, name="ingest.tasks.run_import_job", ignore_result=True, max_retries=3)
def run_import_job(self, job_id: int) -> str:
    """Import one uploaded export (``ingest.models.ImportJob``) with the same code as
    ``import_samples`` (``ingest.importer.run_import``): samples go to samples.v1 in
    batches whose ids are digests of their content, so a re-run (a retry, a worker that
    died) sends nothing twice. The job's counts are written as it goes, at most every
    ``IMPORT_PROGRESS_S``. An unreadable file ends ``failed`` with the reader's message;
    an unavailable broker is retried (30, 60, 120 s) before the job fails. The file is
    deleted when the job ends. Returns the job's status."""
    claimed = (ImportJob.objects.filter(pk=job_id).exclude(status__in=ImportJob.ENDED)
               .update(status=ImportJob.RUNNING, started_at=timezone.now()))
    if not claimed:
        return "gone"  # ended already (a duplicate delivery) or deleted with its patient
    job = ImportJob.objects.get(pk=job_id)
    log.info("import job %s started (%s, %d bytes)", job.pk, job.format, job.size_bytes)
    if not job.stored_path or not Path(job.stored_path).is_file():
        return _end(job, ImportJob.FAILED, None, MISSING_FILE)
    last_write = time.monotonic()

    def progress(_records: int, summary: ImportSummary) -> None:
        nonlocal last_write
        if time.monotonic() - last_write >= settings.IMPORT_PROGRESS_S:
            ImportJob.objects.filter(pk=job.pk).update(**_counts(summary))
            last_write = time.monotonic()

    try:
        summary = run_import([job.stored_path], patient_id=job.patient_id, fmt=job.format, tz=job.tz,
                             date_order=job.date_order or None, progress=progress)
    except ImportFailed as exc:
        if exc.retryable and self.request.retries < self.max_retries:
            wait = 30 * 2 ** self.request.retries
            ImportJob.objects.filter(pk=job.pk).update(
                status=ImportJob.QUEUED, error=f"{exc}; trying again in {wait} s")
            log.warning("import job %s: broker unavailable, retry in %d s", job.pk, wait)
            raise self.retry(countdown=wait) from None
        return _end(job, ImportJob.FAILED, exc.summary, uploads.for_upload(str(exc)))
    except Exception as exc:  # a bug: the job must still end, and the log holds no data
        log.error("import job %s stopped on %s", job.pk, type(exc).__name__)
        return _end(job, ImportJob.FAILED, None, f"the import stopped on an internal error ({type(exc).__name__})")
    if not summary.balanced():
        return _end(job, ImportJob.FAILED, summary, "the summary does not add up to the records read: a bug")
    return _end(job, ImportJob.DONE, summary, "")


def _counts(summary: ImportSummary) -> dict:
    return {"read": summary.read, "accepted": summary.accepted, "already_imported": summary.already_imported,
            "duplicate": summary.duplicate, "skipped": summary.skipped_total,
            "refused": summary.refused_total, "batches": summary.batches}


def _end(job: ImportJob, status: str, summary: ImportSummary | None, error: str) -> str:
    counts = _counts(summary) if summary is not None else {}
    ImportJob.objects.filter(pk=job.pk).update(status=status, error=error, finished_at=timezone.now(),
                                               stored_path="", **counts)
    uploads.discard(job.stored_path)
    log.info("import job %s %s: %s", job.pk, status, " ".join(f"{k}={v}" for k, v in counts.items()))
    return status
