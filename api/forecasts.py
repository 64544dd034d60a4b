"""``GET /api/v1/patients/{id}/forecasts?metric=resting_hr``: the latest forecast.

No TensorFlow here: the view reads stored rows only.
"""

from __future__ import annotations

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import exceptions
from rest_framework.permissions import IsAuthenticated
from rest_framework.response import Response
from rest_framework.views import APIView

from api.errors import errors
from api.lookup import patient_or_404
from care.access import audit
from forecasting.features import TARGETS
from forecasting.models import Forecast


class PatientForecastsView(APIView):
    permission_classes = [IsAuthenticated]

    @extend_schema(
        parameters=[OpenApiParameter("metric", str, enum=list(TARGETS), required=True)],
        responses={200: OpenApiTypes.OBJECT, **errors(400, 404)},
        description="The latest forecast of one metric: per day ahead, the mean and the "
                    "10th/50th/90th percentiles (an 80% interval), with the model version.",
    )
    def get(self, request, patient_id: int):
        patient_id = patient_or_404(request, patient_id).pk
        metric = request.query_params.get("metric")
        if metric not in TARGETS:
            raise exceptions.ValidationError({"metric": f"must be one of {', '.join(TARGETS)}"})
        audit(request, patient_id, "read_forecasts", metric=metric)
        latest = (Forecast.objects.filter(patient_id=patient_id, metric=metric)
                  .order_by("-issued_on").values_list("issued_on", flat=True).first())
        rows = list(Forecast.objects.filter(patient_id=patient_id, metric=metric, issued_on=latest)
                    .select_related("model_version").order_by("target_date")) if latest else []
        mv = rows[0].model_version if rows else None
        return Response({
            "patient": patient_id,
            "metric": metric,
            "unit": TARGETS[metric],
            "issued_on": latest.isoformat() if latest else None,
            "model_version": None if mv is None else {
                "id": mv.pk, "version": mv.version, "kind": mv.kind, "label": mv.label,
                "trained_until": mv.train_end.isoformat() if mv.train_end else None,
                "code_version": mv.code_version,
            },
            "interval": "80% (p10 to p90)",
            "points": [
                {"date": r.target_date.isoformat(), "horizon_days": r.horizon_days,
                 "mean": round(r.mean, 2), "p10": round(r.p10, 2), "p50": round(r.p50, 2),
                 "p90": round(r.p90, 2), "model_version": r.model_version.version}
                for r in rows
            ],
        })
