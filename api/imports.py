"""Export files uploaded for import, and their jobs' progress.

``POST /api/v1/patients/{id}/imports`` (multipart, one file in the field ``file``;
optional ``tz`` and ``date_order``): the patient themself or a clinician of a team the
patient consented to (``api.lookup.patient_or_404``: 404 for anyone else) uploads an
export in any format the readers recognise by content (Apple's export.zip included).
The file is kept privately, a job is created and queued, and the answer is 202 with
the job and its ``Location``. ``GET .../imports`` and ``GET .../imports/{job}`` show the
jobs with their status and counts, read by the same people.
"""

from __future__ import annotations

import zoneinfo

from django.conf import settings
from django.db import transaction
from django.urls import reverse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema, extend_schema_field
from rest_framework import exceptions, generics, serializers, status
from rest_framework.parsers import MultiPartParser
from rest_framework.response import Response
from rest_framework.views import APIView

from api.errors import error_response, errors
from api.lookup import patient_or_404
from api.parsers import ENVELOPE_BYTES
from care.access import audit
from care.models import AuditEvent
from ingest import uploads
from ingest.models import ImportJob
from ingest.readers import DATE_ORDERS, FORMATS


class ImportJobSerializer(serializers.ModelSerializer):
    class Meta:
        model = ImportJob
        fields = ["id", "patient", "original_name", "format", "size_bytes", "tz", "date_order", "status",
                  "read", "accepted", "already_imported", "duplicate", "skipped", "refused", "batches",
                  "error", "created_at", "started_at", "finished_at"]
        read_only_fields = fields


@extend_schema_field(OpenApiTypes.BINARY)
class UploadField(serializers.FileField):
    """A file part of a multipart body: binary in the schema (a FileField reads as a URI
    there, so clients and schemathesis sent the export as a text field)."""


class ImportUploadSerializer(serializers.Serializer):
    """The upload form (documents the multipart body; the view checks it itself)."""

    file = UploadField(help_text="one export file: Apple export.zip or export.xml, Fitbit, "
                                           "Google Fit, WHOOP, Fitabase... recognised by its content")
    tz = serializers.CharField(required=False, help_text="IANA zone of local times without an offset "
                                                         "(default: the patient's time zone)")
    date_order = serializers.ChoiceField(choices=list(DATE_ORDERS), required=False,
                                         help_text="day/month order of slashed dates the file leaves ambiguous")
    format = serializers.ChoiceField(choices=list(FORMATS), required=False,
                                     help_text="the export's format, for a file not recognised by its content")


def _refuse(field: str, reason: str, code: int = 400) -> Response:
    return error_response([{"field": field, "reason": reason}], code)


class ImportListView(generics.ListAPIView):
    serializer_class = ImportJobSerializer
    parser_classes = [MultiPartParser]

    @extend_schema(responses={200: ImportJobSerializer(many=True), **errors(400, 401, 403, 404, 429)},
                   description="The patient's uploaded imports, newest first, with status and counts.")
    def get(self, request, *args, **kwargs):
        return super().get(request, *args, **kwargs)

    def get_queryset(self):
        patient = patient_or_404(self.request, self.kwargs["patient_id"])
        audit(self.request, patient.pk, "read_imports")
        return ImportJob.objects.filter(patient=patient)

    @extend_schema(request={"multipart/form-data": ImportUploadSerializer},
                   responses={202: ImportJobSerializer, **errors(400, 401, 403, 404, 413, 415, 429)},
                   parameters=[OpenApiParameter("Location", str, OpenApiParameter.HEADER, response=[202],
                                                description="the job's URL")],
                   description="Upload one export file for import (multipart, the field `file`). It is "
                               "imported in the background through the same path as live data; follow "
                               "the job at its Location. At most IMPORT_MAX_BYTES (200 MiB by default): "
                               "413 over it.")
    def post(self, request, patient_id: int):
        patient = patient_or_404(request, patient_id)
        limit = settings.IMPORT_MAX_BYTES
        length = int(request.META.get("CONTENT_LENGTH") or 0)
        if length > limit + ENVELOPE_BYTES:  # not read (api.parsers.OversizeUploadHandler)
            return _refuse("file", f"the upload is {length:,} bytes, over the limit of {limit:,}", 413)
        if not (request.content_type or "").startswith("multipart/form-data"):
            return _refuse("(body)", "send the file as multipart/form-data in the field 'file'",
                           status.HTTP_415_UNSUPPORTED_MEDIA_TYPE)
        pending = ImportJob.objects.filter(patient=patient, status__in=[ImportJob.QUEUED, ImportJob.RUNNING])
        if pending.count() >= settings.IMPORT_MAX_PENDING:
            return error_response([{"field": "(request)", "reason": f"{settings.IMPORT_MAX_PENDING} imports are "
                                    "still in progress for this patient; upload again when one has ended"}],
                                  429, headers={"Retry-After": "60"})
        files = request.FILES.getlist("file")
        others = sorted(set(request.FILES) - {"file"})
        if others:
            return _refuse(others[0], "unexpected file field; send one file in the field 'file'")
        if len(files) != 1:
            return _refuse("file", "attach one export file in the field 'file'" if not files
                           else f"one file per upload, {len(files)} were sent")
        upload = files[0]
        if upload.size > limit:
            return _refuse("file", f"the file is {upload.size:,} bytes, over the limit of {limit:,}", 413)
        tz = request.data.get("tz") or patient.timezone or "UTC"
        try:
            zoneinfo.ZoneInfo(tz)
        except (zoneinfo.ZoneInfoNotFoundError, ValueError):
            return _refuse("tz", f"{tz[:64]!r} is not an IANA time zone")
        date_order = request.data.get("date_order") or None
        if date_order is not None and date_order not in DATE_ORDERS:
            return _refuse("date_order", f"use one of {', '.join(DATE_ORDERS)}")
        fmt = request.data.get("format") or None
        if fmt is not None and fmt not in FORMATS:
            return _refuse("format", f"unknown format; use one of {', '.join(FORMATS)}")
        try:
            with transaction.atomic():
                job = uploads.store(patient, request.user, upload.name or "upload", upload.chunks(), tz=tz,
                                    date_order=date_order, fmt=fmt)
                audit(request, patient.pk, "import_uploaded", job=job.pk, format=job.format,
                      bytes=job.size_bytes)
        except uploads.UploadRefused as exc:
            audit(request, patient.pk, "import_refused", outcome=AuditEvent.FAILED, status=exc.status)
            return _refuse(exc.field, exc.reason, exc.status)
        location = reverse("patient-import", kwargs={"patient_id": patient.pk, "job_id": job.pk})
        return Response(ImportJobSerializer(job).data, status=status.HTTP_202_ACCEPTED,
                        headers={"Location": location})


class ImportDetailView(APIView):
    @extend_schema(responses={200: ImportJobSerializer, **errors(400, 401, 403, 404, 429)},
                   description="One import job: status (queued, running, done, failed), counts, error.")
    def get(self, request, patient_id: int, job_id: int):
        patient = patient_or_404(request, patient_id)
        job = ImportJob.objects.filter(patient=patient, pk=job_id).first()
        if job is None:
            raise exceptions.NotFound("no such import")
        audit(request, patient.pk, "read_import", job=job.pk)
        return Response(ImportJobSerializer(job).data)
