#!/bin/sh
# The image's entry point: one role per container (deploy/compose.yaml, docs/deploy.md).
# Every role is a command this repository already has; tests/test_deploy.py checks that.
set -eu
role="${1:-api}"
[ "$#" -gt 0 ] && shift
umask 077  # files a process creates (LOG_FILE, detector state) are its own
case "$role" in
  api)
    # gthread workers; metrics summed across them (PROMETHEUS_MULTIPROC_DIR)
    exec gunicorn config.wsgi:application --bind 0.0.0.0:8000 \
      --workers "${API_WORKERS:-4}" --worker-class gthread --threads "${API_THREADS:-8}" \
      --access-logfile - --access-logformat '%(m)s %(U)s %(s)s %(M)sms %({x-request-id}o)s' "$@" ;;
  migrate)      exec python manage.py migrate --noinput "$@" ;;
  topics)       exec python manage.py create_topics "$@" ;;
  ingest-sink)  exec python manage.py run_ingest_sink "$@" ;;
  alert-sink)   exec python manage.py run_alert_sink "$@" ;;
  detectors)    exec python manage.py run_detector_worker "$@" ;;
  # CELERY_QUEUES: "celery" (notifications, advice after an alert) and "bulk" (training,
  # forecasts, imports, upkeep); compose runs a worker for each so bulk jobs never delay alerts
  celery-worker) exec celery -A config worker --loglevel INFO -Q "${CELERY_QUEUES:-celery,bulk}" \
      --concurrency "${CELERY_CONCURRENCY:-2}" "$@" ;;
  celery-beat)  exec celery -A config beat --loglevel INFO --schedule "$HEALTHSTREAM_VAR_DIR/celerybeat-schedule" "$@" ;;
  # what CI runs (make deploy-check): Django's deployment checks with these settings
  check)        exec python manage.py check --deploy --fail-level WARNING "$@" ;;
  manage)       exec python manage.py "$@" ;;
  *) echo "unknown role: $role (api, migrate, topics, ingest-sink, alert-sink, detectors, celery-worker, celery-beat, check, manage)" >&2
     exit 64 ;;
esac
