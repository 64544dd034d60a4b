"""Bulk import: files -> schema validation -> samples.v1 batches -> Kafka (the live path).

Every record read is accounted for: accepted (produced in a batch Kafka acknowledged,
or, in a dry run, valid and ready to send), duplicate (the same reading twice in the
input), already imported (its batch had been acknowledged before: re-running an import
writes nothing twice), skipped by type (a record of a kind this project does not
store, such as Apple's "in bed"), or refused with the reason.

A file that breaks part-way (a truncated export.xml) leaves what was sent consistent:
batches are cut from the stream of valid samples at fixed sizes and sent only when
full, or at the very end of a run that read every file through; a batch's id is the
digest of its content. The batch being filled when the error comes is dropped. Run
again on the repaired file, the same leading batches come out identical and are
answered "already imported", and only the rest is sent: nothing is stored twice.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

from django.conf import settings

from ingest import service
from ingest.readers import Chunk, ReaderError, detect_format, iter_chunks
from ingest.schema import Batch, _Errors, digest_samples, now_ms, validate_sample
from lib import kafka


@dataclass
class ImportSummary:
    read: int = 0
    accepted: int = 0
    duplicate: int = 0
    already_imported: int = 0
    skipped: Counter = field(default_factory=Counter)
    refused: Counter = field(default_factory=Counter)
    batches: int = 0
    participants: set = field(default_factory=set)
    dry_run: bool = False
    formats: Counter = field(default_factory=Counter)

    @property
    def refused_total(self) -> int:
        return sum(self.refused.values())

    @property
    def skipped_total(self) -> int:
        return sum(self.skipped.values())

    def balanced(self) -> bool:
        return self.read == (self.accepted + self.duplicate + self.already_imported + self.skipped_total
                             + self.refused_total)

    def as_dict(self) -> dict:
        return {
            "dry_run": self.dry_run, "read": self.read, "accepted": self.accepted,
            "duplicate": self.duplicate, "already_imported": self.already_imported,
            "skipped": self.skipped_total, "skipped_by_type": dict(self.skipped.most_common()),
            "refused": self.refused_total, "refused_by_reason": dict(self.refused.most_common()),
            "batches": self.batches, "formats": dict(self.formats),
        }


_NUMBER = re.compile(r"-?\d+(?:\.\d+)?")


def _reason_key(error: dict) -> str:
    field_name = error["field"].rsplit(".", 1)[-1]
    return f"{field_name}: {_NUMBER.sub('N', error['reason'])}"


def _chunk_samples(chunk: Chunk, summary: ImportSummary, latest_ms: int) -> list[dict]:
    """Validate each row of a chunk with the schema module; count refusals by reason."""
    out = []
    metric = chunk.metric
    times = chunk.time.tolist()
    ends = chunk.end.tolist() if chunk.end is not None else None
    values = chunk.value.tolist()
    labels = chunk.label.tolist() if chunk.label is not None else None
    intensities = chunk.intensity.tolist() if chunk.intensity is not None else None
    errors_in = chunk.error.tolist() if chunk.error is not None else None
    for i in range(len(times)):
        if errors_in is not None and errors_in[i] is not None:
            summary.refused[errors_in[i]] += 1
            continue
        sample: dict = {"metric": metric, "time": times[i]}
        if ends is not None:
            sample["end"] = ends[i]
        if metric == "sleep_stage":
            sample["stage"] = labels[i]
        elif metric == "activity":
            sample["type"] = labels[i]
            sample["intensity"] = intensities[i]
            if values[i] == values[i]:  # energy is optional: NaN means the export had none
                sample["energy"] = values[i]
        else:
            v = values[i]
            sample["value"] = v if v == v else None  # NaN -> missing, the schema says why
            if sample["value"] is None:
                del sample["value"]
        errors = _Errors()
        normalised = validate_sample(sample, "row", errors, latest_ms)
        if normalised is None:
            summary.refused[_reason_key(errors.items[0])] += 1
            continue
        out.append(normalised)
    return out


#: Called after each chunk with the records it held and the running summary.
Progress = Callable[[int, "ImportSummary"], None]


def import_files(
    paths: Iterable[str | Path], *, patient_id: int | None, fmt: str | None = None, tz: str = "UTC",
    participant: str | None = None, batch_size: int | None = None,
    progress: Progress | None = None, dry_run: bool = False, date_order: str | None = None,
) -> ImportSummary:
    """Import files for one patient through Kafka, or only read, validate and count them
    (``dry_run``: no database, broker or patient needed).

    Raises ReaderError for an unreadable file; its ``summary`` then says what had been
    sent before the error (whole batches only, see the module's docstring).
    ``run_import`` is what callers use: it also turns failures into one message.
    """
    if not dry_run and patient_id is None:
        raise ValueError("a patient is needed unless dry_run")
    batch_size = min(batch_size or settings.INGEST_MAX_SAMPLES, settings.INGEST_MAX_SAMPLES)
    summary = ImportSummary(dry_run=dry_run)
    seen: set[tuple] = set()
    pending: list[dict] = []

    def flush() -> None:
        nonlocal pending
        if not pending:
            return
        summary.batches += 1
        if dry_run:
            summary.accepted += len(pending)
            pending = []
            return
        digest = digest_samples(pending)
        batch = Batch(batch_id=f"import:{digest[:40]}", patient=patient_id, device=None,
                      samples=pending, digest=digest, source="import", received_ms=now_ms())
        outcome = service.accept(batch)
        if outcome.duplicate:
            summary.already_imported += len(pending)
        else:
            summary.accepted += len(pending)
        pending = []

    latest = now_ms() + settings.INGEST_MAX_FUTURE_S * 1000
    named: set[str] = set()
    try:
        for path in paths:
            summary.formats[fmt or detect_format(path)] += 1
            for chunk in iter_chunks(path, fmt, tz, date_order=date_order):
                # A single-person export names nobody (""): it is always the patient's.
                if participant and chunk.participant and chunk.participant != participant:
                    continue
                if chunk.participant:
                    named.add(chunk.participant)
                    summary.participants.add(chunk.participant)
                if len(named) > 1 and not participant:
                    raise ReaderError(
                        f"{Path(path).name} holds several participants ({', '.join(sorted(named))}); "
                        "choose one with --participant"
                    )
                summary.read += len(chunk) + sum(chunk.skipped.values())
                summary.skipped.update(chunk.skipped)
                for s in _chunk_samples(chunk, summary, latest):
                    key = (s["metric"], s["time"], s.get("end"), s.get("value"), s.get("stage"), s.get("type"))
                    if key in seen:
                        summary.duplicate += 1
                        continue
                    seen.add(key)
                    pending.append(s)
                    if len(pending) >= batch_size:
                        flush()
                if progress:
                    progress(len(chunk), summary)
    except ReaderError as exc:
        # The batch being filled is dropped, never sent half: see the module's docstring.
        exc.summary = summary
        raise
    flush()
    return summary


class ImportFailed(Exception):
    """An import that stopped. The message says why and what had been sent before it;
    ``summary`` holds the counts so far (None if nothing was read); ``retryable`` is True
    when the broker was unavailable (trying again later may succeed)."""

    def __init__(self, message: str, summary: ImportSummary | None, *, retryable: bool = False) -> None:
        super().__init__(message)
        self.summary = summary
        self.retryable = retryable


def sent_before(summary: ImportSummary | None) -> str:
    """What an import that stopped had already sent, as the end of a sentence."""
    if summary is None or summary.dry_run:
        return ""
    sent = summary.accepted + summary.already_imported
    if not sent:
        return ". Nothing was sent."
    return (f". Before it, {summary.batches:,} whole batches ({sent:,} samples) were sent; their ids are "
            "digests of their content, so importing the repaired file sends only the rest.")


def run_import(
    paths: Iterable[str | Path], *, patient_id: int | None, fmt: str | None = None, tz: str = "UTC",
    participant: str | None = None, batch_size: int | None = None,
    progress: Progress | None = None, dry_run: bool = False, date_order: str | None = None,
) -> ImportSummary:
    """One import as ``import_samples`` and the upload job (``ingest.tasks.run_import_job``)
    both run it: the topics made sure of (unless a dry run), ``import_files``, and any
    failure raised as ``ImportFailed`` with the reader's message (file, line, column) and
    what had been sent before it."""
    if not dry_run:
        kafka.ensure_topics()
    try:
        summary = import_files(paths, patient_id=patient_id, fmt=fmt, tz=tz, participant=participant,
                               batch_size=batch_size, progress=progress, dry_run=dry_run,
                               date_order=date_order)
    except ReaderError as exc:
        raise ImportFailed(f"{exc}{sent_before(exc.summary)}", exc.summary) from exc
    except service.BrokerUnavailable as exc:
        raise ImportFailed(f"{exc}: nothing after the last acknowledged batch was sent", None,
                           retryable=True) from exc
    return summary


def participants_in(paths: Iterable[str | Path], fmt: str | None = None) -> list[str]:
    found: set[str] = set()
    for path in paths:
        for chunk in iter_chunks(path, fmt):
            if chunk.participant:
                found.add(chunk.participant)
    return sorted(found)


__all__ = ["ImportFailed", "ImportSummary", "ReaderError", "import_files", "participants_in", "run_import",
           "sent_before"]
