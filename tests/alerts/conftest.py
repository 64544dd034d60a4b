"""The alert tests use the API tests' two-team world (tests/api/factories.py)."""

from tests.api.conftest import (  # noqa: F401
    _fast_password_hashing,
    _fresh_rate_limits,
    api,  # noqa: F401,E402
    as_user,
    world,
)
