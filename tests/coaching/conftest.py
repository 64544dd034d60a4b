"""Fixtures of the coaching tests: the two-team world of the API tests."""

from __future__ import annotations

from tests.api.conftest import _fast_password_hashing, _fresh_rate_limits, as_user, world  # noqa: F401
