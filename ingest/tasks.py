"""Scheduled storage upkeep: retention of old partitions, TimescaleDB aggregate refreshes."""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta

from celery import shared_task
from django.conf import settings

from ingest import storage
from lib import db

log = logging.getLogger(__name__)


@shared_task(autoretry_for=(Exception,), retry_backoff=True, max_retries=3)
def storage_maintenance() -> dict:
    """Drop plain-PostgreSQL partitions past retention; refresh queued TimescaleDB ranges."""
    with db.connect(autocommit=True) as conn:
        dialect = storage.installed_dialect(conn.cursor())
        if dialect == "timescale":
            return {"refreshed": storage.drain_timescale_refresh(conn)}
        cutoff = datetime.now(UTC) - timedelta(days=settings.SAMPLES_RETENTION_DAYS)
        dropped = []
        rows = conn.execute(
            """SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
               JOIN pg_class p ON p.oid = i.inhparent WHERE p.relname = 'samples'"""
        ).fetchall()
        for (name,) in rows:
            try:
                year, month = int(name[9:13]), int(name[14:16])
            except ValueError:
                continue
            end = datetime(year + (month == 12), month % 12 + 1, 1, tzinfo=UTC)
            if end <= cutoff:
                conn.execute(f"DROP TABLE {name}")
                dropped.append(name)
        if dropped:
            log.info("retention dropped %d partitions", len(dropped))
        return {"dropped": dropped}
