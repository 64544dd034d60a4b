"""Query-parameter parsing shared by the API views: one place decides what a valid
date-time, date or integer is, and refuses the rest with the one error format."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

from rest_framework import exceptions

EARLIEST = datetime(1990, 1, 1, tzinfo=UTC)
LATEST = datetime(2100, 1, 1, tzinfo=UTC)
MAX_OFFSET = timedelta(hours=14)


def instant(raw: str | None, name: str, default: datetime | None = None) -> datetime | None:
    """An ISO 8601 date-time (UTC when no offset is given) between 1990 and 2100."""
    if raw is None or raw == "":
        return default
    try:
        value = datetime.fromisoformat(raw)
    except ValueError:
        raise exceptions.ValidationError({name: f"{raw[:40]!r} is not an ISO 8601 date-time"}) from None
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    offset = value.utcoffset()
    if offset is not None and abs(offset) > MAX_OFFSET:
        raise exceptions.ValidationError({name: "the UTC offset must be within ±14:00"})
    try:
        value = value.astimezone(UTC)
    except (OverflowError, ValueError):
        raise exceptions.ValidationError({name: "out of range"}) from None
    if not EARLIEST <= value <= LATEST:
        raise exceptions.ValidationError({name: "must be between 1990 and 2100"})
    return value


def day(raw: str | None, name: str, default: date) -> date:
    if raw is None or raw == "":
        return default
    try:
        value = date.fromisoformat(raw)
    except ValueError:
        raise exceptions.ValidationError({name: f"{raw[:40]!r} is not a date (YYYY-MM-DD)"}) from None
    if not EARLIEST.date() <= value < LATEST.date():
        raise exceptions.ValidationError({name: "must be between 1990 and 2100"})
    return value


def integer(raw: str | None, name: str, default: int, low: int, high: int) -> int:
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise exceptions.ValidationError({name: "must be an integer"}) from None
    if not low <= value <= high:
        raise exceptions.ValidationError({name: f"must be between {low} and {high}"})
    return value


def boolean(raw: str | None, name: str, default: bool = False) -> bool:
    if raw is None or raw == "":
        return default
    lowered = raw.lower()
    if lowered in ("1", "true", "yes"):
        return True
    if lowered in ("0", "false", "no"):
        return False
    raise exceptions.ValidationError({name: "must be true or false"})
