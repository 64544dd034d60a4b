"""Late and imported data give the alerts that living through them would have given.

The processor's step, without Faust: samples.v1 messages in, alerts out. The samples
store is a list that receives each processed batch, as the ingest sink would write it
(a fake for this one step; the worker on the real broker is in test_worker.py).
"""

from __future__ import annotations

import numpy as np
import pytest

from alerts.messages import AlertMessage
from streams.detectors import Samples
from streams.processor import DetectorProcessor
from streams.replay import frame_records, upload_message
from tests.streams.conftest import patient_with

DAY = 86_400_000


class Store:
    """What the ingest sink has written: every batch the processor saw before this one."""

    def __init__(self) -> None:
        self.parts: list[Samples] = []

    def write(self, records: list[dict]) -> None:
        self.parts.append(Samples.from_records(records))

    def history(self, patient: int, since: int, until: int) -> Samples:
        s = Samples.concat(self.parts)
        return s.take(np.flatnonzero((s.time >= since) & (s.time < until)))


def alerts(messages: list[AlertMessage]) -> dict[tuple[str, int], str]:
    """Each queue item (detector, window start) with the highest severity it reached."""
    rank = {"info": 0, "yellow": 1, "red": 2}
    out: dict[tuple[str, int], str] = {}
    for m in messages:
        k = (m.detector, m.window_start)
        if rank[m.severity] >= rank[out.get(k, "info")]:
            out[k] = m.severity
    return out


def run(uploads: list[list[dict]], patient: int, store: Store | None) -> tuple[dict, DetectorProcessor]:
    proc = DetectorProcessor(lateness_s=600, history=None if store is None else store.history)
    table: dict[bytes, bytes] = {}
    sent: list[AlertMessage] = []
    for i, up in enumerate(uploads):
        out = proc.process([(str(patient).encode(), i, upload_message(patient, f"b{i}", up))], table.get)
        table.update(out.states)
        sent += out.alerts
        if store is not None:
            store.write(up)
    return alerts(sent), proc


def cut(records: list[dict], window_ms: int) -> list[list[dict]]:
    """Uploads of ``window_ms`` of event time each, in time order."""
    records = sorted(records, key=lambda r: r["time"])
    out: dict[int, list[dict]] = {}
    for r in records:
        out.setdefault(r["time"] // window_ms, []).append(r)
    return [out[k] for k in sorted(out)]


@pytest.fixture(scope="module")
def history(cohort):
    pid = patient_with(cohort, "elevated_rhr")
    return pid, frame_records(cohort.frames[pid])


@pytest.fixture(scope="module")
def live(history):
    pid, records = history
    got, proc = run(cut(records, 15 * 60_000), pid, None)
    assert any(d == "illness_rhr" for d, _ in got), "the history holds an illness episode"
    assert proc.stats.late == 0
    return got


def test_a_phone_that_syncs_its_steps_half_a_day_late_gives_the_alerts_of_live(history, live):
    pid, records = history
    t0 = min(r["time"] for r in records)
    held = [r for r in records if r["metric"] == "steps" and t0 + 20 * DAY <= r["time"] < t0 + 22 * DAY]
    ids = {id(r) for r in held}
    uploads = cut([r for r in records if id(r) not in ids], 15 * 60_000)
    sync_at = t0 + 22 * DAY + 12 * 3_600_000  # the phone reaches the network two days late
    k = next(i for i, up in enumerate(uploads) if up[0]["time"] >= sync_at)
    uploads.insert(k, held)
    store = Store()
    got, proc = run(uploads, pid, store)
    assert proc.stats.late > 0 and proc.stats.rebuilds == 1
    assert got == live


def test_a_history_imported_after_live_data_gives_the_alerts_of_live(history, live):
    pid, records = history
    t0 = min(r["time"] for r in records)
    start_live = t0 + 25 * DAY
    recent = cut([r for r in records if r["time"] >= start_live], 15 * 60_000)
    old = [r for r in records if r["time"] < start_live]
    imported = [old[i:i + 5000] for i in range(0, len(old), 5000)]  # the importer's batches
    got, proc = run(recent + imported, pid, Store())
    assert proc.stats.rebuilds >= 1
    assert got == live


def test_without_a_store_late_samples_are_counted_and_dropped(history):
    pid, records = history
    t0 = min(r["time"] for r in records)
    recent = cut([r for r in records if r["time"] >= t0 + 25 * DAY], 60 * 60_000)
    old = [r for r in records if r["time"] < t0 + 25 * DAY]
    got, proc = run([*recent, old], pid, None)
    assert proc.stats.late > 0 and proc.stats.rebuilds == 0
    assert not any(d == "illness_rhr" for d, _ in got)  # the episode lies in the dropped part


def test_a_store_behind_the_detectors_is_not_used_to_rebuild(history):
    pid, records = history
    t0 = min(r["time"] for r in records)
    recent = cut([r for r in records if r["time"] >= t0 + 25 * DAY], 60 * 60_000)
    old = [r for r in records if r["time"] < t0 + 25 * DAY]
    empty = Store()
    empty.write = lambda records: None  # the ingest sink has written nothing yet
    _, proc = run([*recent, old], pid, empty)
    assert proc.stats.late > 0 and proc.stats.rebuilds == 0

