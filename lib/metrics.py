"""Prometheus metrics: every metric of the project is defined here (one chokepoint), and
each process exposes them one of two ways.

* The API (gunicorn, several workers) answers ``GET /metrics`` (``api.health.metrics``);
  with ``PROMETHEUS_MULTIPROC_DIR`` set, the workers' values are summed across processes.
* A long-running worker (sinks, detector worker, Celery) calls ``serve_if_configured()``:
  with ``METRICS_PORT`` set it serves its own ``/metrics`` on that port.

Labels never carry a patient, a device or any value: only names of routes, tasks,
outcomes and topics (bounded sets).
"""

from __future__ import annotations

import logging
import os

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
    multiprocess,
    start_http_server,
)
from prometheus_client import REGISTRY as DEFAULT_REGISTRY

log = logging.getLogger(__name__)

INGEST_BATCHES = Counter("healthstream_ingest_batches_total",
                         "device uploads answered by the API, by outcome", ["outcome"])
INGEST_SAMPLES = Counter("healthstream_ingest_samples_total",
                         "samples in uploads the API accepted (sent to Kafka)")
SAMPLES_STORED = Counter("healthstream_samples_stored_total", "samples written to the samples store (COPY)")
STORE_WRITE_SECONDS = Histogram("healthstream_store_write_seconds", "one COPY of a batch of samples",
                                buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10))
ALERTS_STORED = Counter("healthstream_alerts_stored_total", "alert rows written by the alert sink")
DEAD_LETTERS = Counter("healthstream_dead_letters_total", "messages sent to a dead-letter topic", ["topic"])
ALERT_LATENCY_SECONDS = Histogram("healthstream_alert_latency_seconds",
                                  "from the newest sample of an episode's window to its alert row",
                                  buckets=(0.5, 1, 2, 5, 10, 30, 60, 120, 300, 900))
DETECTOR_MESSAGES = Counter("healthstream_detector_messages_total", "samples.v1 messages the detector worker took")
DETECTOR_SAMPLES = Counter("healthstream_detector_samples_total", "samples the detectors judged")
DETECTOR_ALERTS = Counter("healthstream_detector_alerts_total", "alert events the detector worker sent to alerts.v1")
DETECTOR_REWINDS = Counter("healthstream_detector_rewinds_total",
                           "samples.v1 partitions read again from an offset the consumer did not deliver")
DETECTOR_BATCH_SECONDS = Histogram("healthstream_detector_batch_seconds",
                                   "one batch taken from samples.v1: detect, send alerts, write states",
                                   buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10))
CONSUMER_LAG = Gauge("healthstream_consumer_lag", "messages behind the partitions' ends, by consumer group",
                     ["group"], multiprocess_mode="max")
CELERY_TASK_SECONDS = Histogram("healthstream_celery_task_seconds", "Celery task run time",
                                ["task", "state"], buckets=(0.05, 0.1, 0.5, 1, 5, 15, 60, 300, 1800))


def _registry() -> CollectorRegistry:
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)
        return registry
    return DEFAULT_REGISTRY


def render() -> tuple[bytes, str]:
    """This process's metrics, or every process's when PROMETHEUS_MULTIPROC_DIR is set."""
    return generate_latest(_registry()), CONTENT_TYPE_LATEST


def serve_if_configured() -> int | None:
    """Serve /metrics on METRICS_PORT (for one worker process); the port, or None."""
    raw = os.environ.get("METRICS_PORT", "").strip()
    if not raw:
        return None
    port = int(raw)
    start_http_server(port, addr=os.environ.get("METRICS_ADDR", "0.0.0.0"), registry=_registry())
    log.info("metrics on :%d/metrics", port)
    return port
