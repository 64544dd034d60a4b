"""The dashboard without a browser: templates carry no inline JavaScript (a strict
Content-Security-Policy can apply), and bulk acknowledge acts only on readable alerts."""

from __future__ import annotations

import re
from pathlib import Path

from django.test import Client

from alerts.models import Alert
from tests.api.conftest import _fast_password_hashing, _fresh_rate_limits, world  # noqa: F401

TEMPLATES = Path(__file__).resolve().parents[2] / "api" / "dashboard" / "templates"
INLINE_SCRIPT = re.compile(r"<script(?![^>]*\bsrc=)[^>]*>", re.I)
INLINE_HANDLER = re.compile(r"\s(?:on[a-z]+|hx-on[:-][\w:-]*)\s*=", re.I)
INLINE_URL = re.compile(r"javascript:", re.I)


def test_no_template_has_inline_javascript_or_inline_event_handlers():
    files = sorted(TEMPLATES.rglob("*.html"))
    assert len(files) >= 10
    for f in files:
        text = f.read_text()
        for pattern in (INLINE_SCRIPT, INLINE_HANDLER, INLINE_URL):
            assert not pattern.search(text), f"{f.name}: {pattern.search(text).group(0)!r}"
    # the check itself catches each kind
    assert INLINE_SCRIPT.search("<script>alert(1)</script>") and not INLINE_SCRIPT.search('<script src="/a.js">')
    assert INLINE_HANDLER.search('<button onclick="x()">') and INLINE_HANDLER.search('<b hx-on:click="x()">')
    assert INLINE_URL.search('<a href="javascript:x()">')


def _signed_in(who) -> Client:
    c = Client()
    c.force_login(who.user)
    return c


def test_bulk_acknowledge_acts_only_on_alerts_the_clinician_may_read(world):  # noqa: F811
    r = _signed_in(world.bob).post("/dashboard/alerts/acknowledge",
                                   {"alert": [world.red.pk, world.other_alert.pk]})
    assert r.status_code == 302
    statuses = dict(Alert.objects.values_list("pk", "status"))
    assert statuses[world.red.pk] == "open" and statuses[world.other_alert.pk] == "acknowledged"
    assert _signed_in(world.pat).post("/dashboard/alerts/acknowledge", {"alert": [world.red.pk]}).status_code == 403
    assert Client().post("/dashboard/alerts/acknowledge", {"alert": [world.red.pk]})["Location"].startswith(
        "/dashboard/login/")
    assert Alert.objects.get(pk=world.red.pk).status == "open"


def test_the_quality_page_shows_only_the_clinicians_teams(world):  # noqa: F811
    page = _signed_in(world.alice).get("/dashboard/quality/").content.decode()
    assert "Cardiology A" in page and "Sleep clinic B" not in page
    assert _signed_in(world.pat).get("/dashboard/quality/").status_code == 403
