"""HTTP edge of the spine: the device ingest endpoint (to ``ingest.service``) and the
samples read endpoint (from ``ingest.storage``)."""

from __future__ import annotations

import logging
import zoneinfo
from datetime import datetime, timedelta

import orjson
from django.conf import settings
from django.db import DatabaseError
from django.http import HttpResponse
from django.utils import timezone
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema, inline_serializer
from rest_framework import authentication, exceptions, parsers, renderers, serializers
from rest_framework.permissions import AllowAny, IsAuthenticated
from rest_framework.response import Response
from rest_framework.views import APIView

from api import query
from api.errors import error_response, errors
from api.lookup import patient_or_404
from api.query import instant
from care.access import audit
from care.models import Device, hash_token
from ingest import contract, openmhealth, service, storage
from ingest.schema import METRICS, BatchError, validate_upload
from lib import logs, ratelimit

log = logging.getLogger(__name__)


class DeviceTokenAuthentication(authentication.BaseAuthentication):
    """``Authorization: Device <token>``: a device may only push data for its patient."""

    keyword = "Device"

    def authenticate(self, request):
        header = authentication.get_authorization_header(request).split()
        if not header or header[0].lower() != self.keyword.lower().encode():
            return None
        if len(header) != 2:
            raise exceptions.AuthenticationFailed("malformed Device authorization header")
        raw = header[1].decode("latin-1")
        device = (
            Device.objects.select_related("patient").filter(token_hash=hash_token(raw)).first()
        )
        if device is None:
            raise exceptions.AuthenticationFailed("unknown device token")
        if device.revoked_at is not None:
            raise exceptions.AuthenticationFailed("this device token was revoked")
        if not device.patient.active:
            raise exceptions.AuthenticationFailed("the patient of this device is inactive")
        return (_DeviceUser(device), device)

    def authenticate_header(self, request):
        return self.keyword


class _DeviceUser:
    """A request principal that is a device, not a person: it can read nothing."""

    is_authenticated = True
    is_active = True
    is_staff = False
    is_superuser = False
    pk = None
    id = None

    def __init__(self, device: Device):
        self.device = device

    def __str__(self) -> str:
        return f"device {self.device.pk}"


class RawJSONParser(parsers.BaseParser):
    """Keeps the body as bytes: the view decodes it with orjson and reports errors itself."""

    media_type = "application/json"

    def parse(self, stream, media_type=None, parser_context=None):
        return stream.read()


class RawOpenMHealthParser(RawJSONParser):
    media_type = openmhealth.MEDIA_TYPE


class OpenMHealthRenderer(renderers.JSONRenderer):
    """``Accept: application/vnd.openmhealth+json``: the samples as OMH data points."""

    media_type = openmhealth.MEDIA_TYPE
    format = "omh"


class IsDevice(IsAuthenticated):
    def has_permission(self, request, view):
        return isinstance(request.user, _DeviceUser)


_accepted = inline_serializer(
    "IngestAccepted",
    {"batch_id": serializers.CharField(), "status": serializers.CharField(),
     "samples": serializers.IntegerField(), "duplicate": serializers.BooleanField()},
)


class IngestBatchView(APIView):
    authentication_classes = [DeviceTokenAuthentication]
    permission_classes = [IsDevice]
    parser_classes = [RawJSONParser, RawOpenMHealthParser]
    throttle_classes: list = []

    @extend_schema(
        request={"application/json": OpenApiTypes.OBJECT, openmhealth.MEDIA_TYPE: OpenApiTypes.ANY},
        responses={202: _accepted, **errors(400, 401, 409, 413, 415, 429, 503)},
        description="Push one device upload (samples.v1), or Open mHealth heart-rate and step-count "
                    "data points (one or a list) as application/vnd.openmhealth+json. Answers 202 "
                    "once Kafka acknowledged it.",
    )
    def post(self, request):
        device: Device = request.auth
        content_type = request.content_type.split(";")[0].strip().lower()
        if content_type not in ("application/json", openmhealth.MEDIA_TYPE):
            return error_response(
                [{"field": "Content-Type", "reason": f"must be application/json or {openmhealth.MEDIA_TYPE}, "
                                                     f"not {content_type or 'missing'}"}], 415)
        length = int(request.META.get("CONTENT_LENGTH") or 0)
        if length > settings.INGEST_MAX_BODY_BYTES:
            return error_response(
                [{"field": "(body)", "reason": f"{length} bytes is over the limit of {settings.INGEST_MAX_BODY_BYTES}"}], 413)
        wait = ratelimit.hit("ingest", device.pk, settings.INGEST_RATE_LIMIT_PER_MIN)
        if wait is not None:
            return error_response(
                [{"field": "(device)", "reason": f"rate limit of {settings.INGEST_RATE_LIMIT_PER_MIN} batches a minute reached"}],
                429, headers={"Retry-After": str(wait)})
        try:
            obj = orjson.loads(request.data)
        except orjson.JSONDecodeError as exc:
            return error_response([{"field": "(body)", "reason": f"malformed JSON: {exc}"}], 400)
        try:
            if content_type == openmhealth.MEDIA_TYPE:
                obj = openmhealth.to_upload(obj)
            batch = validate_upload(
                obj, patient=device.patient_id, device=device.pk,
                max_samples=settings.INGEST_MAX_SAMPLES, max_future_s=settings.INGEST_MAX_FUTURE_S,
            )
            logs.batch_id.set(logs.valid_id(batch.batch_id) or "")
            outcome = service.accept(batch)
            log.info("ingest batch %s from device %s: %s, %d samples", logs.batch_id.get(), device.pk,
                     "duplicate" if outcome.duplicate else "accepted", len(batch.samples))
        except BatchError as exc:
            return error_response(exc.errors, exc.status)
        except service.BrokerUnavailable as exc:
            log.warning("ingest batch %s from device %s: broker unavailable", logs.batch_id.get(), device.pk)
            return error_response([{"field": "(broker)", "reason": str(exc)}], 503,
                                  headers={"Retry-After": "5"})
        now = timezone.now()
        if device.last_seen_at is None or now - device.last_seen_at > timedelta(minutes=1):
            try:
                Device.objects.filter(pk=device.pk).update(last_seen_at=now)
            except DatabaseError as exc:  # accepted all the same: Kafka has the samples
                log.warning("device %s: last_seen_at not updated (%s)", device.pk, type(exc).__name__)
        return Response(outcome.as_json(), status=202)


RESOLUTIONS = ("raw", "1m", "1h", "1d")
MAX_POINTS = 1000
# Decimals served per metric: what the sensors resolve and a chart can show. Heart rate,
# HRV, energy and sleep minutes to 0.1; steps are counts, served as integers (an hourly
# mean of minute counts too).
DECIMALS = {"heart_rate": 1, "steps": 0, "sleep_stage": 1, "activity": 1, "hrv_rmssd": 1}


def rounder(metric: str):
    """A function rounding a number to the metric's decimals (None stays None)."""
    digits = DECIMALS[metric]
    if digits == 0:
        return lambda v: None if v is None else int(round(v))
    return lambda v: None if v is None else round(float(v), digits)


def choose_resolution(patient_id: int, code: int, start: datetime, end: datetime) -> str:
    """The finest resolution that serves at most about MAX_POINTS points."""
    span_ms = (end - start).total_seconds() * 1000
    if span_ms <= 0:
        return "raw"
    if storage.count_raw(patient_id, code, start, end, MAX_POINTS + 1) <= MAX_POINTS:
        return "raw"
    for res in ("1m", "1h"):
        if span_ms / storage.ROLLUPS[res][1] <= MAX_POINTS:
            return res
    return "1d"


def _check_points(patient_id: int, code: int, start: datetime, end: datetime, resolution: str) -> None:
    """Refuse an explicit resolution that would serve more than SAMPLES_MAX_POINTS points
    (21 days at 1m were 29,225 points, 2.7 MB), naming the limit and the widest range."""
    limit = settings.SAMPLES_MAX_POINTS
    if resolution == "raw":
        if storage.count_raw(patient_id, code, start, end, limit + 1) <= limit:
            return
        widest = "a shorter range"
    else:
        width_ms = storage.ROLLUPS[resolution][1]
        if (end - start).total_seconds() * 1000 / width_ms <= limit:
            return
        widest = f"at most {timedelta(milliseconds=width_ms * limit)} at a time"
    raise exceptions.ValidationError({"resolution": (
        f"resolution {resolution} serves at most {limit} points; ask for {widest}, "
        "a coarser resolution, or auto")})


class PatientSamplesView(APIView):
    permission_classes = [IsAuthenticated]
    renderer_classes = [renderers.JSONRenderer, OpenMHealthRenderer]

    @extend_schema(
        parameters=[
            OpenApiParameter("metric", str, enum=list(METRICS), required=True),
            OpenApiParameter("start", OpenApiTypes.DATETIME),
            OpenApiParameter("end", OpenApiTypes.DATETIME),
            OpenApiParameter("resolution", str, enum=["auto", *RESOLUTIONS]),
            OpenApiParameter("limit", int, description="at most this many points (1 to "
                             "SAMPLES_MAX_POINTS); `next_start` is where the rest begins"),
        ],
        responses={200: OpenApiTypes.OBJECT, **errors(400, 403, 404)},
        description="A patient's samples of one metric; `auto` serves at most about 1,000 points, "
                    "an explicit resolution at most SAMPLES_MAX_POINTS (10,000; 400 beyond).",
    )
    def get(self, request, patient_id: int):
        patient = patient_or_404(request, patient_id)
        patient_id = patient.pk
        zone = zoneinfo.ZoneInfo(patient.timezone or "UTC")
        metric = request.query_params.get("metric")
        if metric not in METRICS:
            raise exceptions.ValidationError({"metric": f"must be one of {', '.join(METRICS)}"})
        end = instant(request.query_params.get("end"), "end", timezone.now())
        start = instant(request.query_params.get("start"), "start", end - timedelta(days=1))
        if end <= start:
            raise exceptions.ValidationError({"end": "must be after start"})
        if end - start > timedelta(days=3660):
            raise exceptions.ValidationError({"start": "the range is longer than ten years"})
        resolution = request.query_params.get("resolution", "auto")
        if resolution not in ("auto", *RESOLUTIONS):
            raise exceptions.ValidationError({"resolution": f"must be auto or one of {', '.join(RESOLUTIONS)}"})
        limit = query.integer(request.query_params.get("limit"), "limit", settings.SAMPLES_MAX_POINTS,
                              1, settings.SAMPLES_MAX_POINTS)
        omh = isinstance(getattr(request, "accepted_renderer", None), OpenMHealthRenderer)
        if omh and metric not in openmhealth.METRIC_SCHEMA:
            raise exceptions.NotAcceptable(
                f"Open mHealth is served for {', '.join(openmhealth.METRIC_SCHEMA)}; not for {metric}")
        code = METRICS[metric].code
        if resolution == "auto":
            resolution = choose_resolution(patient_id, code, start, end)
        else:
            _check_points(patient_id, code, start, end, resolution)
        audit(request, patient_id, "read_samples", metric=metric, start=start.isoformat(),
              end=end.isoformat(), resolution=resolution)
        r = rounder(metric)
        next_start = None
        if metric == "sleep_stage" and resolution != "raw":
            rows = storage.read_sleep(patient_id, start, end)
            if len(rows) > limit:
                next_start = rows[limit][0].isoformat()
            points = [{"night": b.date().isoformat(), "stage": st, "minutes": r(m)} for b, st, m in rows[:limit]]
        else:
            rows = storage.read_series(patient_id, code, start, end, resolution, raw_limit=limit + 1)
            if len(rows) > limit:
                next_start = rows[limit][0].isoformat()
            rows = rows[:limit]
            if omh:
                return Response(_omh_points(patient_id, metric, resolution, rows, r),
                                headers={"X-Next-Start": next_start} if next_start else None)
            if resolution == "raw":
                points = [
                    {k: v for k, v in (("time", t.isoformat()), ("local_time", t.astimezone(zone).isoformat()),
                                       ("end", e.isoformat() if e else None),
                                       ("local_end", e.astimezone(zone).isoformat() if e else None),
                                       ("value", r(val)), ("label", lab)) if v is not None}
                    for t, e, val, lab, *_ in rows
                ]
            else:
                points = [
                    {"time": t.isoformat(), "local_time": t.astimezone(zone).isoformat(), "mean": r(mean),
                     "min": r(lo), "max": r(hi), "count": n, "sum": r(total)}
                    for t, _, mean, _, n, lo, hi, total in rows
                ]
        return Response({
            "patient": patient_id, "metric": metric, "unit": METRICS[metric].unit,
            "decimals": DECIMALS[metric], "resolution": resolution, "timezone": patient.timezone,
            "start": start.isoformat(), "end": end.isoformat(), "start_local": start.astimezone(zone).isoformat(),
            "end_local": end.astimezone(zone).isoformat(), "limit": limit, "next_start": next_start, "points": points,
        })


def _omh_points(patient_id: int, metric: str, resolution: str, rows, r) -> list[dict]:
    """Rows of read_series as OMH data points: raw samples as measured; a rollup bucket as
    the average heart rate, or the step count summed, over the bucket's interval."""
    if resolution == "raw":
        return [openmhealth.data_point(patient_id, metric, t, e, r(val))
                for t, e, val, *_ in rows if val is not None]
    width = timedelta(milliseconds=storage.ROLLUPS[resolution][1])
    if metric == "heart_rate":
        return [openmhealth.data_point(patient_id, metric, t, t + width, r(mean), statistic="average")
                for t, _, mean, _, n, lo, hi, total in rows if mean is not None]
    return [openmhealth.data_point(patient_id, metric, t, t + width, r(total))
            for t, _, mean, _, n, lo, hi, total in rows if total is not None]


class SampleSchemaView(APIView):
    """The samples.v1 contract as JSON Schema (``ingest.contract``): the device upload and
    the Kafka message. Public: it holds no data."""

    authentication_classes: list = []
    permission_classes = [AllowAny]

    @extend_schema(responses={(200, "application/schema+json"): OpenApiTypes.OBJECT, **errors(404, 429)},
                   description="`samples.v1.upload` (what POST ingest/batches takes) or "
                               "`samples.v1.message` (the value on the samples.v1 Kafka topic).")
    def get(self, request, name: str):
        if name not in contract.SCHEMAS:
            raise exceptions.NotFound(f"no schema {name[:40]!r}; known: {', '.join(contract.SCHEMAS)}")
        body = (contract.upload_schema(settings.INGEST_MAX_SAMPLES) if name == "samples.v1.upload"
                else contract.SCHEMAS[name]())
        return HttpResponse(orjson.dumps(body), content_type="application/schema+json")
