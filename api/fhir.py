"""FHIR R4 export: a patient's samples as LOINC-coded Observations in a searchset Bundle.

``GET /api/v1/patients/{id}/fhir/Observation?start=&end=&metric=&_count=&_offset=``.
Heart rate carries the vital-signs category and UCUM unit ``/min``; interval metrics
(steps, sleep, activity) carry an ``effectivePeriod``. Paging follows FHIR: a ``next``
link while more rows remain.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from urllib.parse import urlencode

from django.db import connection
from django.utils import timezone
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import exceptions
from rest_framework.renderers import JSONRenderer
from rest_framework.response import Response
from rest_framework.views import APIView

from api import query
from api.errors import ERR
from api.lookup import patient_or_404
from care.access import audit
from ingest.schema import INTENSITY_BY_LEVEL, METRIC_BY_CODE, METRICS

MAX_COUNT = 1000
DEFAULT_COUNT = 200
UCUM = {  # unit, UCUM code
    "heart_rate": ("beats/minute", "/min"),
    "steps": ("steps", "{steps}"),
    "sleep_stage": ("min", "min"),
    "activity": ("kcal", "kcal"),
    "hrv_rmssd": ("ms", "ms"),
}
CATEGORY = {
    "heart_rate": ("vital-signs", "Vital Signs"),
    "hrv_rmssd": ("vital-signs", "Vital Signs"),
}
OBS_CATEGORY = "http://terminology.hl7.org/CodeSystem/observation-category"


class FHIRJSONRenderer(JSONRenderer):
    media_type = "application/fhir+json"
    format = "fhir"


def _instant(dt: datetime) -> str:
    return dt.astimezone(UTC).isoformat().replace("+00:00", "Z")


def observation(patient_id: int, metric: str, time: datetime, end: datetime | None,
                value: float | None, label: str | None, level: int | None, row_key: str) -> dict:
    spec = METRICS[metric]
    unit, code = UCUM[metric]
    cat_code, cat_display = CATEGORY.get(metric, ("activity", "Activity"))
    obs: dict = {
        "resourceType": "Observation",
        "id": row_key,
        "status": "final",
        "category": [{"coding": [{"system": OBS_CATEGORY, "code": cat_code, "display": cat_display}]}],
        "code": {"coding": [{"system": "http://loinc.org", "code": spec.loinc, "display": spec.display}],
                 "text": spec.display},
        "subject": {"reference": f"Patient/{patient_id}"},
    }
    if end is not None:
        obs["effectivePeriod"] = {"start": _instant(time), "end": _instant(end)}
    else:
        obs["effectiveDateTime"] = _instant(time)
    if metric == "sleep_stage":
        minutes = (end - time).total_seconds() / 60 if end else 0.0
        obs["valueQuantity"] = {"value": round(minutes, 2), "unit": unit,
                                "system": "http://unitsofmeasure.org", "code": code}
        obs["component"] = [{"code": {"text": "sleep stage"}, "valueString": label or "asleep"}]
    elif value is not None:
        obs["valueQuantity"] = {"value": round(float(value), 3), "unit": unit,
                                "system": "http://unitsofmeasure.org", "code": code}
        if metric == "activity":
            comps = [{"code": {"text": "activity type"}, "valueString": label or "unknown"}]
            if level in INTENSITY_BY_LEVEL:
                comps.append({"code": {"text": "intensity"}, "valueString": INTENSITY_BY_LEVEL[level]})
            obs["component"] = comps
    else:
        obs["dataAbsentReason"] = {"text": "no value recorded"}
    return obs


def _parse(request, name: str, default: datetime) -> datetime:
    value = query.instant(request.query_params.get(name), name, default)
    return value if value is not None else default


def _int(request, name: str, default: int, low: int, high: int) -> int:
    return query.integer(request.query_params.get(name), name, default, low, high)


class ObservationBundleView(APIView):
    renderer_classes = [FHIRJSONRenderer, JSONRenderer]

    @extend_schema(parameters=[
        OpenApiParameter("start", OpenApiTypes.DATETIME, description="default: 24 h before end"),
        OpenApiParameter("end", OpenApiTypes.DATETIME, description="default: now"),
        OpenApiParameter("metric", str, enum=list(METRICS), description="default: all metrics"),
        OpenApiParameter("_count", int, description=f"1 to {MAX_COUNT} (default {DEFAULT_COUNT})"),
        OpenApiParameter("_offset", int, description="rows to skip (paging)"),
    ], responses={200: OpenApiTypes.OBJECT, **ERR},
        description="A FHIR R4 searchset Bundle of LOINC-coded Observations for a time range.")
    def get(self, request, patient_id: int):
        patient = patient_or_404(request, patient_id)
        end = _parse(request, "end", timezone.now())
        start = _parse(request, "start", end - timedelta(days=1))
        if end <= start:
            raise exceptions.ValidationError({"end": "must be after start"})
        if end - start > timedelta(days=366):
            raise exceptions.ValidationError({"start": "at most 366 days at a time"})
        metric = request.query_params.get("metric")
        if metric is not None and metric not in METRICS:
            raise exceptions.ValidationError({"metric": f"must be one of {', '.join(METRICS)}"})
        count = _int(request, "_count", DEFAULT_COUNT, 1, MAX_COUNT)
        offset = _int(request, "_offset", 0, 0, 10_000_000)
        codes = [METRICS[metric].code] if metric else [m.code for m in METRICS.values()]
        audit(request, patient.pk, "export_fhir", start=start.isoformat(), end=end.isoformat(),
              metric=metric or "all")
        with connection.cursor() as cur:
            cur.execute(
                """SELECT metric, time, end_time, value, label, level FROM samples
                   WHERE patient_id = %s AND metric = ANY(%s) AND time >= %s AND time < %s
                   ORDER BY time, metric LIMIT %s OFFSET %s""",
                [patient.pk, codes, start, end, count + 1, offset],
            )
            rows = cur.fetchall()
        more = len(rows) > count
        entries = []
        base = request.build_absolute_uri(request.path)
        for i, (code, t, e, v, label, level) in enumerate(rows[:count]):
            name = METRIC_BY_CODE[code].name
            key = f"{patient.pk}-{code}-{int(t.timestamp() * 1000)}-{offset + i}"
            entries.append({"fullUrl": f"{base.rsplit('/', 1)[0]}/Observation/{key}",
                            "resource": observation(patient.pk, name, t, e, v, label, level, key),
                            "search": {"mode": "match"}})
        params = {"start": start.isoformat(), "end": end.isoformat(), "_count": count}
        if metric:
            params["metric"] = metric
        links = [{"relation": "self", "url": f"{base}?{urlencode({**params, '_offset': offset})}"}]
        if more:
            links.append({"relation": "next",
                          "url": f"{base}?{urlencode({**params, '_offset': offset + count})}"})
        bundle = {"resourceType": "Bundle", "type": "searchset",
                  "timestamp": _instant(timezone.now()), "link": links, "entry": entries}
        return Response(bundle, content_type="application/fhir+json")
