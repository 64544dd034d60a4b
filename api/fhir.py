"""FHIR R4: a patient's samples as coded Observations, searchable, with a
CapabilityStatement.

* ``GET /fhir/R4/metadata``: the CapabilityStatement (no sign-in needed; it holds no data).
* ``GET /fhir/R4/Observation?patient=&code=&date=&_count=&_offset=``: a searchset Bundle.
  ``patient`` is required (``123`` or ``Patient/123``); ``code`` is a token list
  (``http://loinc.org|8867-4,55423-8``); ``date`` may repeat, with the prefixes eq, ge,
  gt, le, lt on a year, month, day or date-time, and is matched against the
  observation's time (the start of an interval).
* ``GET /api/v1/patients/{id}/fhir/Observation?start=&end=&metric=``: the older export,
  the same Observations.

Codes: heart rate 8867-4, steps 55423-8, sleep 93832-4 and activity energy 41981-2 are
LOINC. LOINC has no term for RMSSD (80404-7 is SDNN, a different measure that is not
interchangeable with it), so HRV carries the project's own code system ``LOCAL_SYSTEM``
rather than a wrong LOINC code.

Observation ids are stable: ``<patient>-<metric>-<device>-<epoch ms>`` names the sample
itself, whatever page or query it comes back in. Identical rows (the same sample stored
twice by overlapping imports) come back once.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from urllib.parse import urlencode

from django.db import connection
from django.utils import timezone
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import exceptions
from rest_framework.permissions import AllowAny
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
MAX_OFFSET = 10_000_000
FHIR_VERSION = "4.0.1"
LOINC = "http://loinc.org"
UCUM_SYSTEM = "http://unitsofmeasure.org"
#: The project's code system, for what LOINC has no term for (HRV as RMSSD).
LOCAL_SYSTEM = "urn:healthstream:fhir:CodeSystem:metric"
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


def coding(metric: str) -> dict:
    """The Observation.code coding of a metric: LOINC where it has a term, else local."""
    spec = METRICS[metric]
    if spec.loinc:
        return {"system": LOINC, "code": spec.loinc, "display": spec.display}
    return {"system": LOCAL_SYSTEM, "code": metric, "display": spec.display}


#: (system, code) -> metric, for the ``code`` search parameter.
CODES = {(c["system"], c["code"]): m for m, c in ((m, coding(m)) for m in METRICS)}


class FHIRJSONRenderer(JSONRenderer):
    media_type = "application/fhir+json"
    format = "fhir"


def _instant(dt: datetime) -> str:
    return dt.astimezone(UTC).isoformat().replace("+00:00", "Z")


def observation_id(patient_id: int, metric_code: int, device_id: int | None, time: datetime) -> str:
    """A sample's own id: the same in every page and every query that returns it."""
    return f"{patient_id}-{metric_code}-{device_id or 0}-{round(time.timestamp() * 1000)}"


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
        "code": {"coding": [coding(metric)], "text": spec.display},
        "subject": {"reference": f"Patient/{patient_id}"},
    }
    if end is not None:
        obs["effectivePeriod"] = {"start": _instant(time), "end": _instant(end)}
    else:
        obs["effectiveDateTime"] = _instant(time)
    if metric == "sleep_stage":
        minutes = (end - time).total_seconds() / 60 if end else 0.0
        obs["valueQuantity"] = {"value": round(minutes, 2), "unit": unit, "system": UCUM_SYSTEM, "code": code}
        obs["component"] = [{"code": {"text": "sleep stage"}, "valueString": label or "asleep"}]
    elif value is not None:
        obs["valueQuantity"] = {"value": round(float(value), 3), "unit": unit, "system": UCUM_SYSTEM,
                                "code": code}
        if metric == "activity":
            comps = [{"code": {"text": "activity type"}, "valueString": label or "unknown"}]
            if level in INTENSITY_BY_LEVEL:
                comps.append({"code": {"text": "intensity"}, "valueString": INTENSITY_BY_LEVEL[level]})
            obs["component"] = comps
    else:
        obs["dataAbsentReason"] = {"text": "no value recorded"}
    return obs


@dataclass(frozen=True)
class Search:
    """What to fetch: one patient's samples of these metric codes in [start, end)."""

    patient_id: int
    codes: list[int]
    start: datetime | None
    end: datetime | None
    count: int
    offset: int


# One row per sample: identical rows (stored twice) collapse, so ids stay unique.
_SEARCH = """
SELECT DISTINCT ON (time, metric, device_id) metric, time, end_time, value, label, level, device_id
FROM samples WHERE patient_id = %s AND metric = ANY(%s) AND time >= %s AND time < %s
ORDER BY time, metric, device_id LIMIT %s OFFSET %s"""


def bundle(search: Search, base: str, params: dict) -> dict:
    """A searchset Bundle for ``search``, with self and next links over ``base``."""
    rows: list = []
    if search.codes and (search.start is None or search.end is None or search.start < search.end):
        with connection.cursor() as cur:
            cur.execute(_SEARCH, [search.patient_id, search.codes, search.start or query.EARLIEST,
                                  search.end or query.LATEST, search.count + 1, search.offset])
            rows = cur.fetchall()
    entries = []
    root = base.split("/Observation")[0]
    for code, t, e, v, label, level, device in rows[:search.count]:
        key = observation_id(search.patient_id, code, device, t)
        entries.append({"fullUrl": f"{root}/Observation/{key}",
                        "resource": observation(search.patient_id, METRIC_BY_CODE[code].name, t, e, v,
                                                label, level, key),
                        "search": {"mode": "match"}})
    paged = {**params, "_count": search.count}
    links = [{"relation": "self", "url": f"{base}?{urlencode({**paged, '_offset': search.offset}, doseq=True)}"}]
    if len(rows) > search.count:
        links.append({"relation": "next",
                      "url": f"{base}?{urlencode({**paged, '_offset': search.offset + search.count}, doseq=True)}"})
    return {"resourceType": "Bundle", "type": "searchset", "timestamp": _instant(timezone.now()),
            "link": links, "entry": entries}


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
        description="A FHIR R4 searchset Bundle of coded Observations for a time range "
                    "(the same Observations, with the same ids, as /fhir/R4/Observation).")
    def get(self, request, patient_id: int):
        patient = patient_or_404(request, patient_id)
        end = query.instant(request.query_params.get("end"), "end", timezone.now()) or timezone.now()
        start = query.instant(request.query_params.get("start"), "start", end - timedelta(days=1)) \
            or end - timedelta(days=1)
        if end <= start:
            raise exceptions.ValidationError({"end": "must be after start"})
        if end - start > timedelta(days=366):
            raise exceptions.ValidationError({"start": "at most 366 days at a time"})
        metric = request.query_params.get("metric")
        if metric is not None and metric not in METRICS:
            raise exceptions.ValidationError({"metric": f"must be one of {', '.join(METRICS)}"})
        count = _int(request, "_count", DEFAULT_COUNT, 1, MAX_COUNT)
        offset = _int(request, "_offset", 0, 0, MAX_OFFSET)
        codes = [METRICS[metric].code] if metric else [m.code for m in METRICS.values()]
        audit(request, patient.pk, "export_fhir", start=start.isoformat(), end=end.isoformat(),
              metric=metric or "all")
        params = {"start": start.isoformat(), "end": end.isoformat(), **({"metric": metric} if metric else {})}
        body = bundle(Search(patient.pk, codes, start, end, count, offset),
                      request.build_absolute_uri(request.path), params)
        return Response(body, content_type="application/fhir+json")


# --- /fhir/R4: the search the FHIR specification defines --------------------------------

_DATE = re.compile(r"^(?P<prefix>eq|ne|gt|lt|ge|le|sa|eb|ap)?"
                   r"(?P<value>\d{4}(-\d{2}(-\d{2}(T.+)?)?)?)$")
SUPPORTED_PREFIXES = ("eq", "ge", "gt", "le", "lt")
SEARCH_PARAMS = {"patient", "code", "date", "_count", "_offset", "_format"}


def date_range(raw: str) -> tuple[datetime | None, datetime | None]:
    """The [low, high) instants a FHIR ``date`` search value allows; a 400 names what is wrong.

    A value stands for its whole precision (``2026-11`` is all of November, UTC):
    ``eq`` is inside it, ``ge`` from its start, ``gt`` after its end, ``le`` up to its
    end, ``lt`` before its start."""
    m = _DATE.match(raw)
    if m is None:
        raise exceptions.ValidationError({"date": f"{raw[:40]!r} is not a FHIR date (YYYY, YYYY-MM, "
                                                  "YYYY-MM-DD or a date-time), with an optional prefix"})
    prefix, value = m["prefix"] or "eq", m["value"]
    if prefix not in SUPPORTED_PREFIXES:
        raise exceptions.ValidationError({"date": f"the prefix {prefix!r} is not supported; "
                                                  f"use one of {', '.join(SUPPORTED_PREFIXES)}"})
    if len(value) == 4:
        low = datetime(int(value), 1, 1, tzinfo=UTC)
        high = low.replace(year=low.year + 1)
    elif len(value) == 7:
        low = datetime(int(value[:4]), int(value[5:7]), 1, tzinfo=UTC) if 1 <= int(value[5:7]) <= 12 else None
        if low is None:
            raise exceptions.ValidationError({"date": f"{value!r} has no such month"})
        high = (low + timedelta(days=32)).replace(day=1)
    elif len(value) == 10:
        low = datetime.combine(query.day(value, "date", query.EARLIEST.date()), datetime.min.time(), UTC)
        high = low + timedelta(days=1)
    else:
        if not re.search(r"(Z|[+-]\d{2}:\d{2})$", value):
            raise exceptions.ValidationError({"date": "a date-time needs a time zone (Z or ±hh:mm)"})
        low = query.instant(value, "date")
        assert low is not None
        high = low + (timedelta(microseconds=1) if "." in value else timedelta(seconds=1))
    return {"eq": (low, high), "ge": (low, None), "gt": (high, None),
            "le": (None, high), "lt": (None, low)}[prefix]


def metric_codes(raw: str | None) -> list[int]:
    """The samples' metric codes a ``code`` token list names (unknown codes match nothing)."""
    if raw is None:
        return [m.code for m in METRICS.values()]
    found: list[int] = []
    for token in raw.split(","):
        system, bar, code = token.strip().rpartition("|")
        if not code:
            raise exceptions.ValidationError({"code": f"{token[:60]!r} is not a token (system|code or code)"})
        for (sys_, code_), metric in CODES.items():
            if code == code_ and (not bar or system in ("", sys_)):
                found.append(METRICS[metric].code)
    return sorted(set(found))


def _patient_param(raw: str | None) -> int:
    if not raw:
        raise exceptions.ValidationError({"patient": "required: Patient/<id> or <id>"})
    m = re.fullmatch(r"(?:Patient/)?([0-9]{1,18})", raw.strip())
    if m is None:
        raise exceptions.ValidationError({"patient": f"{raw[:40]!r} is not Patient/<id> or <id>"})
    return int(m[1])


class ObservationSearchView(APIView):
    renderer_classes = [FHIRJSONRenderer, JSONRenderer]

    @extend_schema(parameters=[
        OpenApiParameter("patient", str, required=True, description="Patient/<id> or <id>"),
        OpenApiParameter("code", str, description="token list: http://loinc.org|8867-4,55423-8"),
        OpenApiParameter("date", str, many=True,
                         description="eq|ge|gt|le|lt + YYYY[-MM[-DD[Thh:mm:ss±hh:mm]]], repeatable"),
        OpenApiParameter("_count", int, description=f"1 to {MAX_COUNT} (default {DEFAULT_COUNT})"),
        OpenApiParameter("_offset", int, description="rows to skip (paging)"),
    ], responses={200: OpenApiTypes.OBJECT, **ERR},
        description="FHIR R4 Observation search: a searchset Bundle with stable Observation ids.")
    def get(self, request):
        unknown = set(request.query_params) - SEARCH_PARAMS
        if unknown:
            raise exceptions.ValidationError({sorted(unknown)[0]: "not a supported search parameter; "
                                              f"use {', '.join(sorted(SEARCH_PARAMS))}"})
        patient = patient_or_404(request, _patient_param(request.query_params.get("patient")))
        codes = metric_codes(request.query_params.get("code"))
        dates = request.query_params.getlist("date")
        start: datetime | None = None
        end: datetime | None = None
        for raw in dates:
            low, high = date_range(raw)
            if low is not None:
                start = low if start is None else max(start, low)
            if high is not None:
                end = high if end is None else min(end, high)
        count = _int(request, "_count", DEFAULT_COUNT, 1, MAX_COUNT)
        offset = _int(request, "_offset", 0, 0, MAX_OFFSET)
        audit(request, patient.pk, "search_fhir_observations", code=request.query_params.get("code", ""),
              date=dates)
        params: dict = {"patient": f"Patient/{patient.pk}"}
        if "code" in request.query_params:
            params["code"] = request.query_params["code"]
        if dates:
            params["date"] = dates
        body = bundle(Search(patient.pk, codes, start, end, count, offset),
                      request.build_absolute_uri(request.path), params)
        return Response(body, content_type="application/fhir+json")


def capability_statement(base: str) -> dict:
    """What this server does, in FHIR's words: Observation search by patient, code, date."""
    return {
        "resourceType": "CapabilityStatement",
        "status": "active",
        "date": "2026-11-30",
        "publisher": "healthstream",
        "kind": "instance",
        "software": {"name": "healthstream"},
        "implementation": {"description": "healthstream FHIR R4 export", "url": base},
        "fhirVersion": FHIR_VERSION,
        "format": ["application/fhir+json", "json"],
        "rest": [{
            "mode": "server",
            "security": {"description": "Sign in with an API token (Authorization: Token ...) "
                                        "or a dashboard session; a patient reads their own data, "
                                        "a clinician the patients of their care teams."},
            "resource": [{
                "type": "Observation",
                "interaction": [{"code": "search-type"}],
                "searchParam": [
                    {"name": "patient", "type": "reference",
                     "documentation": "required: Patient/<id> or <id>"},
                    {"name": "code", "type": "token",
                     "documentation": f"LOINC ({LOINC}) or, for HRV (RMSSD), {LOCAL_SYSTEM}|hrv_rmssd"},
                    {"name": "date", "type": "date",
                     "documentation": "prefixes eq, ge, gt, le, lt; matched against the start time"},
                    {"name": "_count", "type": "number", "documentation": f"1 to {MAX_COUNT}"},
                    {"name": "_offset", "type": "number", "documentation": "paging (see the next link)"},
                ],
            }],
        }],
    }


class CapabilityStatementView(APIView):
    renderer_classes = [FHIRJSONRenderer, JSONRenderer]
    permission_classes = [AllowAny]

    @extend_schema(responses={200: OpenApiTypes.OBJECT}, description="The FHIR CapabilityStatement.")
    def get(self, request):
        base = request.build_absolute_uri(request.path).rsplit("/metadata", 1)[0]
        return Response(capability_statement(base), content_type="application/fhir+json")
