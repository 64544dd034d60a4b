"""The embedded run mode's services start from pip-installed binaries."""

from __future__ import annotations

import os
import shutil
import signal
import tempfile
from pathlib import Path

import psycopg
import pytest
import redis

from config import services
from tests.conftest import free_port


def stop(proc):
    os.killpg(proc.pid, signal.SIGTERM)
    proc.wait(30)


@pytest.mark.slow
def test_embedded_postgres_runs_as_an_unprivileged_user_and_answers():
    # pytest's tmp_path is private to root; the server's own user must reach its folder.
    tmp_path = Path(tempfile.mkdtemp(prefix="hs-embedded-pg-"))
    tmp_path.chmod(0o755)
    port = free_port()
    proc = services.start_postgres(port, tmp_path / "pgdata", tmp_path / "pg.log")
    try:
        with psycopg.connect(f"postgresql://postgres@127.0.0.1:{port}/postgres") as conn:
            assert conn.execute("SELECT 1").fetchone() == (1,)
            if os.geteuid() == 0:
                owner = conn.execute("SELECT current_setting('data_directory')").fetchone()[0]
                assert owner.endswith("pgdata")
        if os.geteuid() == 0:
            import pwd

            assert pwd.getpwuid((tmp_path / "pgdata").stat().st_uid).pw_name == "embedded_postgres"
    finally:
        stop(proc)
        shutil.rmtree(tmp_path, ignore_errors=True)


def test_embedded_redis_answers(tmp_path):
    port = free_port()
    proc = services.start_redis(port, tmp_path / "redis", tmp_path / "redis.log")
    try:
        client = redis.Redis(port=port)
        client.set("k", "v")
        assert client.get("k") == b"v"
    finally:
        stop(proc)
