"""docs/architecture.md names modules; each one it names must exist."""

from __future__ import annotations

import importlib
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PAGE = ROOT / "docs" / "architecture.md"
PACKAGES = ("lib", "care", "alerts", "ingest", "streams", "forecasting", "coaching", "api", "config")


ANY = "(?:" + "|".join(PACKAGES) + ")"


def _named():
    text = PAGE.read_text()
    paths = set(re.findall(r"`(" + ANY + r"/[\w/]*(?:\.py)?)`", text))
    paths |= set(re.findall(r"\b(" + ANY + r"/[\w/]+\.py)\b", text))
    topics = {"alerts.v1", "samples.v1"}  # Kafka topics, not modules
    dotted = set(re.findall(r"`(" + ANY + r"\.[\w.]+)`", text)) - topics
    return paths, dotted


def test_the_architecture_page_names_modules_at_all():
    paths, dotted = _named()
    assert len(paths) >= 30 and dotted


def test_every_module_the_architecture_page_names_exists():
    paths, dotted = _named()
    missing = sorted(p for p in paths if not (ROOT / p).exists())
    assert missing == []
    for name in sorted(dotted):
        module, _, attr = name.rpartition(".")
        try:
            importlib.import_module(name)
        except ImportError:
            assert hasattr(importlib.import_module(module), attr), name
