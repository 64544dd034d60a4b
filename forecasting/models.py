"""The model registry and the forecasts it produced.

``ModelVersion``: one trained (or configured) forecaster for one metric, with its
artifact, training range, backtest metrics and code version. At most one version per
metric is ``promoted``: the one the daily forecasts use. A new version is promoted
only if its backtest beats the current one on the same origins (forecasting.registry).

``Forecast``: one day of one patient's forecast (mean and 10th/50th/90th
percentiles), issued on ``issued_on`` by a model version. Re-running the daily job
replaces that day's rows (unique per patient, metric, issue date and target date).
"""

from __future__ import annotations

from django.db import models
from django.db.models import Q
from django.utils.timezone import now

from care.models import Patient


class ModelVersion(models.Model):
    metric = models.CharField(max_length=32)
    kind = models.CharField(max_length=32, help_text="lstm, ets, sarimax, seasonal_naive, naive")
    version = models.PositiveIntegerField(help_text="1, 2, ... per metric")
    config = models.JSONField(default=dict, blank=True)
    artifact = models.BinaryField(null=True, blank=True, help_text="weights (.npz), none for baselines")
    artifact_sha256 = models.CharField(max_length=64, blank=True)
    train_start = models.DateField(null=True, blank=True)
    train_end = models.DateField(null=True, blank=True)
    n_series = models.PositiveIntegerField(default=0)
    metrics = models.JSONField(default=dict, blank=True, help_text="backtest scores")
    code_version = models.CharField(max_length=64, blank=True)
    promoted = models.BooleanField(default=False)
    promoted_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(default=now)

    class Meta:
        ordering = ["metric", "-version"]
        constraints = [
            models.UniqueConstraint(fields=["metric", "version"], name="model_version_once"),
            models.UniqueConstraint(fields=["metric"], condition=Q(promoted=True),
                                    name="one_promoted_model_per_metric"),
        ]

    def __str__(self) -> str:
        return f"{self.metric} v{self.version} ({self.kind})"

    @property
    def label(self) -> str:
        return f"{self.metric}-v{self.version}-{self.kind}"


class Forecast(models.Model):
    patient = models.ForeignKey(Patient, on_delete=models.CASCADE, related_name="forecasts")
    metric = models.CharField(max_length=32)
    issued_on = models.DateField(help_text="the forecast origin: the last day of data used")
    target_date = models.DateField()
    horizon_days = models.PositiveSmallIntegerField()
    mean = models.FloatField()
    p10 = models.FloatField()
    p50 = models.FloatField()
    p90 = models.FloatField()
    model_version = models.ForeignKey(ModelVersion, on_delete=models.PROTECT, related_name="forecasts")
    created_at = models.DateTimeField(default=now)

    class Meta:
        ordering = ["patient", "metric", "target_date"]
        constraints = [
            models.UniqueConstraint(fields=["patient", "metric", "issued_on", "target_date"],
                                    name="forecast_once_per_issue"),
        ]
        indexes = [models.Index(fields=["patient", "metric", "-issued_on"])]

    def __str__(self) -> str:
        return f"Forecast {self.metric} for patient {self.patient_id} on {self.target_date}"
