"""Bookkeeping of device uploads. The samples themselves live in ingest/storage.py."""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.utils import timezone

from care.models import Device, Patient


class IngestBatch(models.Model):
    """One client upload, identified by (patient, batch_id).

    The row is written before the batch is produced to Kafka, marked accepted once the
    broker acknowledged it, and marked stored by the sink in the same transaction that
    copies its samples: that makes storage exactly-once per batch.
    """

    PENDING, ACCEPTED, FAILED = "pending", "accepted", "failed"

    patient = models.ForeignKey(Patient, on_delete=models.CASCADE, related_name="+")
    device = models.ForeignKey(
        Device, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    batch_id = models.CharField(max_length=128)
    digest = models.CharField(max_length=64)
    n_samples = models.PositiveIntegerField()
    source = models.CharField(max_length=16, default="api")
    status = models.CharField(max_length=16, default=PENDING)
    received_at = models.DateTimeField(default=timezone.now)
    accepted_at = models.DateTimeField(null=True, blank=True)
    stored_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["patient", "batch_id"], name="ingest_batch_once")
        ]
        indexes = [models.Index(fields=["stored_at"])]


class ImportJob(models.Model):
    """One export file uploaded for a patient and imported by a Celery job
    (``ingest.tasks.run_import_job``). The counts are the importer's own
    (``ingest.importer.ImportSummary``), written as the job goes; ``error`` is the
    reader's message when it failed (file, line, column, and what was sent before).
    The file itself lives under ``IMPORT_DIR`` until the job ends, then is deleted."""

    QUEUED, RUNNING, DONE, FAILED = "queued", "running", "done", "failed"
    STATUSES = [(s, s) for s in (QUEUED, RUNNING, DONE, FAILED)]
    ENDED = (DONE, FAILED)

    patient = models.ForeignKey(Patient, on_delete=models.CASCADE, related_name="import_jobs")
    uploaded_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL,
                                    related_name="+")
    original_name = models.CharField(max_length=255)
    format = models.CharField(max_length=40, help_text="recognised from the content at upload")
    size_bytes = models.PositiveBigIntegerField(default=0)
    tz = models.CharField(max_length=64, default="UTC", help_text="zone of local times without an offset")
    date_order = models.CharField(max_length=3, blank=True)
    stored_path = models.CharField(max_length=500, blank=True, help_text="emptied when the file is deleted")
    status = models.CharField(max_length=16, choices=STATUSES, default=QUEUED)
    read = models.PositiveIntegerField(default=0)
    accepted = models.PositiveIntegerField(default=0)
    already_imported = models.PositiveIntegerField(default=0)
    duplicate = models.PositiveIntegerField(default=0)
    skipped = models.PositiveIntegerField(default=0)
    refused = models.PositiveIntegerField(default=0)
    batches = models.PositiveIntegerField(default=0)
    error = models.TextField(blank=True)
    created_at = models.DateTimeField(default=timezone.now)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-pk"]
        indexes = [models.Index(fields=["patient", "-created_at"])]

    def __str__(self) -> str:
        return f"import {self.pk} of patient {self.patient_id} ({self.status})"
