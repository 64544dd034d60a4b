"""Shared fixtures: a real Apache Kafka broker, topics, subprocess env.

The broker (KRaft, one combined broker and controller) is started once per test
session from the jars ``make install`` copied, exactly as the stack launcher starts it,
with its log in a throw-away folder. PostgreSQL and Redis are private servers started by
tests/service_plugin.py before Django is set up (DATABASE_URL / REDIS_URL override them).
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SHARED_DATA = ROOT.parent / "shared" / "data"


def free_port() -> int:
    from config.services import free_port as below_the_ephemeral_range

    return below_the_ephemeral_range()


def wait_port(port: int, timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"nothing listens on 127.0.0.1:{port} after {timeout}s")


def wait_for(predicate, timeout: float, what: str):
    """Poll ``predicate`` every 0.3 s until it returns something truthy (returned);
    fail naming ``what`` after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.3)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


@pytest.fixture(scope="session")
def django_db_modify_db_settings(django_db_modify_db_settings_parallel_suffix):
    """One test database per pytest run, so that concurrent runs never share one."""
    from django.conf import settings

    suffix = os.environ.get("HS_TEST_DB_SUFFIX") or str(os.getpid())
    for db in settings.DATABASES.values():
        db.setdefault("TEST", {})["NAME"] = f"test_{db['NAME']}_{suffix}"


@pytest.fixture(scope="session")
def kafka_broker(tmp_path_factory):
    """Apache Kafka for the whole session; yields its bootstrap address."""
    from config.services import start_kafka, stop_process

    port = free_port()
    proc = start_kafka(port, tmp_path_factory.mktemp("kafka"),
                       log_path=ROOT / "var" / "log" / f"test-kafka-{port}.log")
    try:
        yield f"127.0.0.1:{port}"
    finally:
        stop_process(proc)


@pytest.fixture(scope="module")
def kafka_cluster(tmp_path_factory):
    """Three combined broker+controller nodes (KRaft, replication factor 3, min ISR 2)
    for one test module, since its tests kill and stop brokers; yields the
    ``config.services.KafkaCluster`` (``bootstrap``, ``kill``, ``start``)."""
    from config.services import start_kafka_cluster

    folder = tmp_path_factory.mktemp("kafka-cluster")
    cluster = start_kafka_cluster(folder, ROOT / "var" / "log" / f"test-cluster-{folder.name}")
    try:
        yield cluster
    finally:
        cluster.stop()


def delete_topics(bootstrap: str, marker: str) -> None:
    """Delete every topic whose name contains ``marker`` (a test's own suffix)."""
    from kafka import KafkaAdminClient

    admin = KafkaAdminClient(bootstrap_servers=bootstrap, client_id="healthstream-test-cleanup")
    try:
        doomed = [t for t in admin.list_topics() if marker in t]
        if doomed:
            admin.delete_topics(doomed)
    finally:
        admin.close()


@pytest.fixture
def kafka_topics(kafka_broker, settings):
    """Fresh topic names for one test, so tests never see each other's messages; every
    topic named with the test's suffix (the Faust app's too) is deleted afterwards."""
    suffix = uuid.uuid4().hex[:8]
    settings.KAFKA_BOOTSTRAP_SERVERS = kafka_broker
    settings.KAFKA_TOPIC_SAMPLES = f"samples.v1.{suffix}"
    settings.KAFKA_TOPIC_ALERTS = f"alerts.v1.{suffix}"
    from lib import kafka

    kafka.reset_producer()
    kafka.ensure_topics()
    try:
        yield {
            "bootstrap": kafka_broker,
            "samples": settings.KAFKA_TOPIC_SAMPLES,
            "alerts": settings.KAFKA_TOPIC_ALERTS,
            "dlq": kafka.dead_letter_topic(settings.KAFKA_TOPIC_SAMPLES),
            "suffix": suffix,
        }
    finally:
        kafka.reset_producer()
        delete_topics(kafka_broker, suffix)


@pytest.fixture
def subprocess_env(kafka_topics, settings):
    """Environment for a real worker process talking to this test's DB and topics."""
    db = settings.DATABASES["default"]
    url = f"postgresql://{db['USER'] or 'postgres'}@{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}/{db['NAME']}"
    env = dict(os.environ)
    env.update(
        DATABASE_URL=url,
        KAFKA_BOOTSTRAP_SERVERS=kafka_topics["bootstrap"],
        KAFKA_TOPIC_SAMPLES=kafka_topics["samples"],
        KAFKA_TOPIC_ALERTS=kafka_topics["alerts"],
        PYTHONUNBUFFERED="1",
        DJANGO_SETTINGS_MODULE="config.settings",
    )
    return env


def run_manage(args: list[str], env: dict, **kwargs) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, str(ROOT / "manage.py"), *args], env=env, cwd=ROOT, **kwargs)
