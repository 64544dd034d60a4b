"""The model registry: register versions, load them, promote only a better one.

A version's artifact is stored in the database (a few hundred kilobytes of weights
for the LSTM; nothing for a baseline, whose config is its whole state), so every
Celery worker can load it without a shared disk. Loaded forecasters are cached per
process by version id (a version never changes once written), and ``load`` hands out
a ``Frozen`` view of the cached model: its ``fit`` keeps the stored state, so tonight's
training can never change the weights that later forecasts use under the old label,
and a promotion backtest scores the stored weights, never a refit.
"""

from __future__ import annotations

import hashlib
import logging
from datetime import date
from functools import lru_cache
from pathlib import Path

from django.db import transaction
from django.db.models import Max
from django.utils.timezone import now

from forecasting.forecasters import Forecaster, make
from forecasting.models import ModelVersion

log = logging.getLogger(__name__)
PROMOTION_KEY = "mase"  # lower is better: MASE at the 7-day horizon on the same origins


@lru_cache(maxsize=1)
def code_version() -> str:
    """A digest of the forecasting package's source: names the code that trained a model."""
    root = Path(__file__).resolve().parent
    digest = hashlib.sha256()
    for path in sorted(root.rglob("*.py")):
        if "migrations" in path.parts or "tests" in path.parts:
            continue
        digest.update(path.relative_to(root).as_posix().encode())
        digest.update(path.read_bytes())
    return "src-" + digest.hexdigest()[:12]


def artifact_of(forecaster: Forecaster) -> bytes | None:
    return forecaster.to_bytes() if hasattr(forecaster, "to_bytes") else None


@transaction.atomic
def register(metric: str, forecaster: Forecaster, *, metrics: dict, train_start: date | None,
             train_end: date | None, n_series: int) -> ModelVersion:
    """Store a new version (not promoted). Versions count up per metric."""
    blob = artifact_of(forecaster)
    last = (ModelVersion.objects.select_for_update().filter(metric=metric)
            .aggregate(v=Max("version"))["v"] or 0)
    mv = ModelVersion.objects.create(
        metric=metric, kind=forecaster.name, version=last + 1, config=forecaster.get_config(),
        artifact=blob, artifact_sha256=hashlib.sha256(blob).hexdigest() if blob else "",
        train_start=train_start, train_end=train_end, n_series=n_series, metrics=metrics,
        code_version=code_version(),
    )
    log.info("registered %s (%d series)", mv.label, n_series)
    return mv


def promoted(metric: str) -> ModelVersion | None:
    return ModelVersion.objects.filter(metric=metric, promoted=True).first()


def beats(candidate_score: float | None, current_score: float | None) -> bool:
    """Strictly better (lower) MASE; a candidate without a score never wins."""
    if candidate_score is None:
        return False
    return current_score is None or candidate_score < current_score


@transaction.atomic
def promote_if_better(candidate: ModelVersion, current_score: float | None) -> bool:
    """Promote ``candidate`` if its score beats ``current_score`` (the current version
    scored on the same backtest origins). The promoted row is locked, so two retrains
    racing cannot both win."""
    current = (ModelVersion.objects.select_for_update()
               .filter(metric=candidate.metric, promoted=True).first())
    score = (candidate.metrics or {}).get(PROMOTION_KEY)
    if current is not None and current.pk == candidate.pk:
        return True
    if current is not None and not beats(score, current_score):
        log.info("kept %s: %s scored %s, not below %s", current.label, candidate.label, score, current_score)
        return False
    if current is None and not beats(score, current_score):
        return False
    if current is not None:
        current.promoted = False
        current.save(update_fields=["promoted"])
    candidate.promoted = True
    candidate.promoted_at = now()
    candidate.save(update_fields=["promoted", "promoted_at"])
    log.info("promoted %s (%s %s)", candidate.label, PROMOTION_KEY, score)
    return True


class Frozen(Forecaster):
    """A stored version as it was trained: ``fit`` keeps its state (the backtest treats
    it as local), ``predict`` uses the stored weights. Other attributes (``window``,
    ``cqr_``) read through to the cached model; nothing here writes to it."""

    is_global = False

    def __init__(self, inner: Forecaster, label: str = "") -> None:
        self._inner = inner
        self.name = inner.name
        self.label = label
        self.max_horizon = inner.max_horizon

    def __getattr__(self, attr: str):
        if attr.startswith("__") or attr == "_inner":
            raise AttributeError(attr)
        return getattr(self._inner, attr)

    def _fit(self, histories: list) -> None:
        return None  # a stored version is never retrained

    def _predict(self, histories: list, horizon: int):
        return self._inner.predict(histories, horizon)

    def get_config(self) -> dict:
        return self._inner.get_config()

    def to_bytes(self) -> bytes | None:
        return artifact_of(self._inner)


def load(mv: ModelVersion) -> Frozen:
    """The stored version ``mv`` (cached per process), frozen: see ``Frozen``."""
    return Frozen(_load(mv.pk), mv.label)


@lru_cache(maxsize=16)
def _load(pk: int) -> Forecaster:
    mv = ModelVersion.objects.get(pk=pk)
    if mv.kind == "lstm":
        from forecasting.forecasters.lstm import LSTMForecaster

        return LSTMForecaster.from_bytes(bytes(mv.artifact))
    return make(mv.kind, **(mv.config or {}))
