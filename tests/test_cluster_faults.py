"""Faults of a 3-broker Kafka cluster under a steady upload through the API.

The cluster (``kafka_cluster``: three combined KRaft nodes, replication factor 3, min
ISR 2, producers with acks=all) carries this module's topics; the API under gunicorn,
the ingest sink, the alert sink and the Faust detector worker run as processes on the
test database. Phones upload simulated histories and re-send a batch answered 503.
The scenario is bench/faults.py's (``python -m bench.faults`` runs it with a one-minute
outage; here the broker is down for ``DOWN_S``, to keep CI's budget).
"""

from __future__ import annotations

import uuid

import pytest
from kafka import KafkaAdminClient

from bench.faults import run_failover
from lib import kafka

pytestmark = [pytest.mark.slow, pytest.mark.timeout(900), pytest.mark.django_db(transaction=True)]

DOWN_S = 20.0


@pytest.fixture
def cluster_env(kafka_cluster, settings, tmp_path):
    """This test's topics on the cluster, and the environment of its processes."""
    suffix = uuid.uuid4().hex[:8]
    settings.KAFKA_BOOTSTRAP_SERVERS = kafka_cluster.bootstrap
    settings.KAFKA_REPLICATION_FACTOR = 3
    settings.KAFKA_TOPIC_SAMPLES = f"samples.v1.{suffix}"
    settings.KAFKA_TOPIC_ALERTS = f"alerts.v1.{suffix}"
    kafka.reset_producer()
    kafka.ensure_topics()
    db = settings.DATABASES["default"]
    url = f"postgresql://{db['USER'] or 'postgres'}@{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}/{db['NAME']}"
    import os

    env = dict(os.environ, DATABASE_URL=url, KAFKA_BOOTSTRAP_SERVERS=kafka_cluster.bootstrap,
               KAFKA_TOPIC_SAMPLES=settings.KAFKA_TOPIC_SAMPLES, KAFKA_TOPIC_ALERTS=settings.KAFKA_TOPIC_ALERTS)
    yield env, url
    kafka.reset_producer()


def test_the_topics_have_three_replicas_and_need_two_in_sync(kafka_cluster, cluster_env, settings):
    admin = KafkaAdminClient(bootstrap_servers=kafka_cluster.bootstrap)
    try:
        (desc,) = admin.describe_topics([settings.KAFKA_TOPIC_SAMPLES])
        from kafka.admin import ConfigResource, ConfigResourceType

        configs = admin.describe_configs([ConfigResource(ConfigResourceType.TOPIC, settings.KAFKA_TOPIC_SAMPLES)],
                                         config_filter="all")
    finally:
        admin.close()
    assert {len(p["replica_nodes"]) for p in desc["partitions"]} == {3}
    (by_name,) = configs.values()
    min_isr = by_name[settings.KAFKA_TOPIC_SAMPLES]["min.insync.replicas"]
    assert (min_isr.get("value") if isinstance(min_isr, dict) else min_isr) == "2", min_isr
    assert kafka.producer().config["acks"] == -1  # "all"


def test_the_leader_of_most_samples_partitions_killed_for_a_while_loses_and_doubles_nothing(
        kafka_cluster, cluster_env, tmp_path):
    env, url = cluster_env
    result = run_failover(env, kafka_cluster, url, tmp_path / "faults", patients=4, days=20,
                          down_s=DOWN_S, period_s=0.4)
    print(result)
    assert result["accepted"] > 100
    assert (result["lost"], result["duplicates"]) == (0, 0), result
    assert result["alerts_equal_replay"], result
    assert result["alert_rows"] > 0, result
    assert result["brokers"] == 3 and result["replication_factor"] == 3
