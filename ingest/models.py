"""Bookkeeping of device uploads. The samples themselves live in ingest/storage.py."""

from __future__ import annotations

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
