"""Fixtures for the forecasting tests: write recordings into the samples store the way
the ingest sink does (COPY plus rollups), so the live path reads real rollups."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np
import pandas as pd
import pytest
from django.db import connection

from ingest import storage
from ingest.schema import INTENSITIES, METRICS

SHARED = __import__("pathlib").Path(__file__).resolve().parents[3] / "shared" / "data"


def store_frame(patient_id: int, frame: pd.DataFrame) -> int:
    """Write a simulator/readers frame for one patient through the storage write path."""
    n = len(frame)
    times = frame["time"].to_numpy(dtype="datetime64[ms]").astype(np.int64)
    ends = frame["end"].to_numpy(dtype="datetime64[ms]")
    end_ms = [None if np.isnat(e) else int(e.astype(np.int64)) for e in ends]
    metric = frame["metric"].to_numpy()
    values = [None if (m in ("sleep_stage",) or np.isnan(v)) else float(v)
              for m, v in zip(metric, frame["value"].to_numpy(), strict=True)]
    labels = [lab if isinstance(lab, str) else None for lab in frame["label"].to_numpy()]
    levels = [INTENSITIES["moderate"] if m == "activity" else None for m in metric]
    cols = storage.Columns(
        patient=np.full(n, patient_id, dtype=np.int64), device=[None] * n,
        metric=np.array([METRICS[m].code for m in metric], dtype=np.int16), time_ms=times,
        end_ms=end_ms, value=values, label=labels, level=levels,
    )
    connection.ensure_connection()
    raw = connection.connection
    storage.PartitionKeeper().ensure(raw, int(times.min()), int(times.max()))
    with raw.cursor() as cur:
        storage.copy_samples(cur, cols)
        storage.update_rollups(cur, cols)
    return n


def midnight_days_ago(days: int) -> datetime:
    now = datetime.now(UTC)
    return datetime(now.year, now.month, now.day, tzinfo=UTC) - timedelta(days=days)


@pytest.fixture
def shared_data():
    if not SHARED.exists():
        pytest.skip(f"the shared recordings are not at {SHARED}")
    return SHARED
