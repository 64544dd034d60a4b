"""System checks of this project (registered in api/apps.py)."""

from __future__ import annotations

from django.conf import settings
from django.core import checks


def secret_key_set(app_configs=None, **kwargs) -> list[checks.CheckMessage]:
    """``check --deploy`` fails, saying what to do, when no SECRET_KEY is set (DEBUG off)."""
    if settings.SECRET_KEY_SET:
        return []
    return [checks.Error(settings.SECRET_KEY_MISSING, id="healthstream.E001")]
