"""Export files uploaded for import: kept privately until their Celery job has read them.

``store`` writes the upload under ``IMPORT_DIR/<random>/`` (folders 0700, the file
0600), recognises its format by content (the readers' ``detect_format``; refused with
the reader's reason when unknown), creates the ``ImportJob`` and queues
``ingest.tasks.run_import_job`` once the transaction commits. The file keeps its
original base name, cleaned, because two exports carry facts only in their names (a
Google Fit daily CSV's date, a Fitbit minute series' kind). ``discard`` deletes it.
"""

from __future__ import annotations

import os
import re
import secrets
import shutil
from collections.abc import Iterable
from pathlib import Path

from django.conf import settings
from django.db import transaction

from care.models import Patient
from ingest.models import ImportJob
from ingest.readers import ReaderError, detect_format

_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")


class UploadRefused(ValueError):
    """The upload cannot be imported: ``field`` and the message say why; ``status`` is
    the HTTP answer (400, or 413 for a file over the limit)."""

    def __init__(self, field: str, reason: str, status: int = 400) -> None:
        super().__init__(reason)
        self.field, self.reason, self.status = field, reason, status


#: The readers' messages name import_samples' options; an upload has form fields instead.
_OPTIONS = (("pass --format", "send the field 'format'"), ("--date-order", "the field 'date_order'"),
            ("choose one with --participant", "import it with manage.py import_samples --participant"))


def for_upload(message: str) -> str:
    """A reader's or the importer's message, with command-line options named as the
    upload's form fields."""
    for option, field in _OPTIONS:
        message = message.replace(option, field)
    return message


def clean_name(name: str) -> str:
    """A safe base name: no folders, only letters, digits, dot, dash and underscore."""
    base = _UNSAFE.sub("_", Path(name.replace("\\", "/")).name).strip("._")[-120:]
    return base or "upload"


def _private_folder() -> Path:
    root = Path(settings.IMPORT_DIR)
    root.mkdir(parents=True, exist_ok=True, mode=0o700)
    folder = root / secrets.token_hex(12)
    folder.mkdir(mode=0o700)
    return folder


def store(patient: Patient, uploaded_by, name: str, chunks: Iterable[bytes], *, tz: str,
          date_order: str | None, fmt: str | None = None) -> ImportJob:
    """Save the file, recognise it (unless ``fmt`` is given), create its job and queue
    the import (on commit)."""
    folder = _private_folder()
    path = folder / clean_name(name)
    size = 0
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as out:
            for chunk in chunks:
                size += len(chunk)
                if size > settings.IMPORT_MAX_BYTES:
                    raise UploadRefused("file", f"the file is over the limit of {settings.IMPORT_MAX_BYTES:,} "
                                                "bytes", 413)
                out.write(chunk)
        if size == 0:
            raise UploadRefused("file", "the file is empty")
        try:
            fmt = fmt or detect_format(path)
        except ReaderError as exc:
            raise UploadRefused("file", for_upload(str(exc))) from None
        job = ImportJob.objects.create(
            patient=patient, uploaded_by=uploaded_by if getattr(uploaded_by, "pk", None) else None,
            original_name=name[:255], format=fmt, size_bytes=size, tz=tz, date_order=date_order or "",
            stored_path=str(path))
    except BaseException:
        shutil.rmtree(folder, ignore_errors=True)
        raise
    from ingest.tasks import run_import_job

    transaction.on_commit(lambda: run_import_job.delay(job.pk))
    return job


def discard(stored_path: str) -> None:
    """Delete an upload's file and its private folder (never anything outside IMPORT_DIR)."""
    if not stored_path:
        return
    folder = Path(stored_path).parent
    root = Path(settings.IMPORT_DIR).resolve()
    if folder.resolve().parent == root:
        shutil.rmtree(folder, ignore_errors=True)
