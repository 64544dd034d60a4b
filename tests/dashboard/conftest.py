"""Browser tests: Debian's Chromium driven by playwright against a real live server.

Skipped, saying so, only where Chromium is not installed (`make browser` installs it).
"""

from __future__ import annotations

import os
import shutil
from datetime import timedelta
from pathlib import Path

import numpy as np
import pytest
from django.utils import timezone

from tests.api.conftest import _fast_password_hashing, _fresh_rate_limits  # noqa: F401
from tests.api.factories import build_world, day_ms, minute_heart_rate, put_samples

# playwright's sync API keeps an event loop running in the test thread; the test's own ORM
# calls are still plain synchronous code, which Django must be told to allow there.
os.environ.setdefault("DJANGO_ALLOW_ASYNC_UNSAFE", "true")

CHROMIUM = os.environ.get("CHROMIUM_PATH") or shutil.which("chromium") or "/usr/bin/chromium"
HAVE_CHROMIUM = os.path.exists(CHROMIUM)
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--disable-sync", "--no-first-run"]

requires_chromium = pytest.mark.skipif(not HAVE_CHROMIUM, reason=f"Chromium is not installed at {CHROMIUM} (run `make browser`)")


@pytest.fixture(scope="session")
def shots(tmp_path_factory) -> Path:
    """Where the browser tests save screenshots: a temporary folder, or the folder named
    by SCREENSHOTS_DIR (``make screenshots`` points it at docs/screenshots)."""
    wanted = os.environ.get("SCREENSHOTS_DIR")
    folder = Path(wanted) if wanted else tmp_path_factory.mktemp("screenshots")
    folder.mkdir(parents=True, exist_ok=True)
    return folder


@pytest.fixture(scope="session")
def browser():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        try:
            yield b
        finally:
            b.close()


@pytest.fixture
def page(browser):
    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    pg = context.new_page()
    pg.set_default_timeout(15_000)
    yield pg
    context.close()


@pytest.fixture
def live_world(transactional_db, settings):
    """The two-team world, committed (the live server thread reads it), with 35 days of
    minute heart rate for ``pat`` (resting rate up the last two days), hourly steps,
    nightly sleep, and a forecast band when the forecasting app is installed."""
    settings.DASHBOARD_POLL_S = 1
    w = build_world()
    minute_heart_rate(w.pat.pk, days=35, resting=58.0, last_days_resting={0: 67.0, -1: 66.0, -2: 66.0})
    hours = day_ms(-34) + np.arange(35 * 24, dtype=np.int64) * 3_600_000
    hours = hours[hours < day_ms(0) + 12 * 3_600_000]
    walk = np.where((hours // 3_600_000) % 24 >= 8, 400 + (hours // 3_600_000) % 7 * 60, 0)
    put_samples(w.pat.pk, "steps", hours, walk, ends=(hours + 3_600_000).tolist())
    nights = [day_ms(-k) - 2 * 3_600_000 for k in range(34)]
    lengths = [int((6.2 + (k % 5) * 0.4) * 3_600_000) for k in range(34)]
    put_samples(w.pat.pk, "sleep_stage", nights, None, ends=[n + d for n, d in zip(nights, lengths, strict=True)],
                labels=["light"] * 34)
    from forecasting.models import Forecast, ModelVersion

    mv = ModelVersion.objects.create(metric="resting_hr", kind="ets", version=1)
    today = timezone.now().date()
    for d in range(1, 8):
        Forecast.objects.create(patient=w.pat, metric="resting_hr", issued_on=today,
                                target_date=today + timedelta(days=d), horizon_days=d,
                                mean=65.0 - d * 0.8, p10=61.0 - d, p50=65.0 - d * 0.8, p90=69.0 - d * 0.5,
                                model_version=mv)
    from coaching import engine

    engine.recommend(w.pat.pk)  # real advice from the data above, as the daily task makes it
    return w
