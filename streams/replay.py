"""Replaying recordings: the same detector code as the worker, offline or through Kafka.

* ``replay_frame`` runs a ``PatientMonitor`` over one participant's DataFrame (the
  ``ingest.readers.load_frames`` shape) in event time and returns its events.
* ``frame_uploads`` cuts a DataFrame into samples.v1 uploads as a phone would send
  them (one per window of event time), for the integration tests and the benchmark.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import pandas as pd

from ingest.schema import Batch, digest_samples, to_message
from streams.detectors import Event, PatientMonitor, Samples
from streams.detectors.base import MINUTE_MS


def replay_frame(frame: pd.DataFrame, monitor: PatientMonitor | None = None,
                 batch_minutes: int | None = None) -> tuple[list[Event], PatientMonitor]:
    """Run a monitor over a recording; ``batch_minutes`` feeds it in event-time slices.

    The stream ends at its last sample: no time is invented after it (that would
    open a wear gap at the end of every recording).
    """
    monitor = monitor or PatientMonitor()
    samples = Samples.from_frame(frame)
    if len(samples) == 0:
        return [], monitor
    events: list[Event] = []
    if batch_minutes is None:
        events += monitor.update(samples)
    else:
        slot = samples.time // (batch_minutes * MINUTE_MS)
        order = np.argsort(slot, kind="stable")
        cuts = np.flatnonzero(np.diff(slot[order])) + 1
        for part in np.split(order, cuts):
            events += monitor.update(samples.take(part))
    events += monitor.advance_to(int(samples.time.max()) + int(monitor.lateness_s * 1000))
    return events, monitor


def frame_records(frame: pd.DataFrame) -> list[dict]:
    """Normalised samples.v1 sample dicts (epoch ms) from a replay DataFrame."""
    time_ms = frame["time"].to_numpy("datetime64[ms]").astype(np.int64).tolist()
    end_raw = frame["end"].to_numpy("datetime64[ms]")
    end_ms = np.where(np.isnat(end_raw), -1, end_raw.astype(np.int64)).tolist()
    metric = frame["metric"].tolist()
    value = frame["value"].tolist()
    label = frame["label"].tolist() if "label" in frame else [None] * len(frame)
    out: list[dict] = []
    for m, t, e, v, lab in zip(metric, time_ms, end_ms, value, label, strict=True):
        if m in ("heart_rate", "hrv_rmssd"):
            out.append({"metric": m, "time": t, "value": v})
        elif m == "steps":
            out.append({"metric": m, "time": t, "end": e if e > t else t + MINUTE_MS, "value": v})
        elif m == "sleep_stage":
            if e > t:
                out.append({"metric": m, "time": t, "end": e, "stage": lab or "asleep", "value": None})
        elif m == "activity" and e > t:
            kind = lab[0] if isinstance(lab, tuple) else (lab or "other")
            out.append({"metric": m, "time": t, "end": e, "type": kind, "intensity": "moderate",
                        "value": None if v != v else v})
    return out


def frame_uploads(frame: pd.DataFrame, window_ms: int = 15 * MINUTE_MS,
                  max_samples: int = 500) -> Iterator[list[dict]]:
    """One upload per ``window_ms`` of event time (split at ``max_samples``), in time order."""
    records = frame_records(frame)
    if not records:
        return
    times = np.fromiter((r["time"] for r in records), np.int64, len(records))
    order = np.argsort(times, kind="stable")
    slot = times[order] // window_ms
    cuts = np.flatnonzero(np.diff(slot)) + 1
    for part in np.split(order, cuts):
        idx = part.tolist()
        for i in range(0, len(idx), max_samples):
            yield [records[j] for j in idx[i:i + max_samples]]


def upload_message(patient: int, batch_id: str, samples: list[dict], received_ms: int = 0) -> bytes:
    """A samples.v1 message for already-normalised samples."""
    return to_message(Batch(batch_id=batch_id, patient=patient, device=None, samples=samples,
                            digest=digest_samples(samples), source="replay",
                            received_ms=received_ms))
