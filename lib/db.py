"""The database outside the ORM: psycopg connections to Django's default database.

The sinks write with COPY and upserts on their own connections, and the detector
workers read overrides from a thread; all of them connect through here.
"""

from __future__ import annotations

import psycopg
from django.conf import settings


def conninfo() -> str:
    """A libpq connection string for Django's default database (psycopg, not the ORM)."""
    db = settings.DATABASES["default"]
    parts = {"dbname": db["NAME"], "user": db.get("USER"), "password": db.get("PASSWORD"),
             "host": db.get("HOST"), "port": db.get("PORT")}
    parts.update(db.get("OPTIONS") or {})
    return psycopg.conninfo.make_conninfo(**{k: v for k, v in parts.items() if v})


def connect(**kwargs) -> psycopg.Connection:
    return psycopg.connect(conninfo(), **kwargs)
