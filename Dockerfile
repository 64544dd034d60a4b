# One image for every Python process of healthstream: the API, the ingest and alert sinks,
# the detector worker, Celery worker and beat, migrations. The role is the first argument
# (deploy/entrypoint.sh); deploy/compose.yaml runs a production-like deployment.
FROM python:3.11-slim-bookworm

ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1 \
    HEALTHSTREAM_VAR_DIR=/var/lib/healthstream \
    PROMETHEUS_MULTIPROC_DIR=/tmp/prometheus

# libpq for psycopg's pool; nothing else from the OS (Kafka, PostgreSQL and Redis are services)
RUN apt-get update && apt-get install -y --no-install-recommends libpq5 && rm -rf /var/lib/apt/lists/* \
    && useradd --system --create-home --home-dir /home/healthstream --uid 10001 healthstream

WORKDIR /app
COPY pyproject.toml README.md ./
COPY config ./config
COPY lib ./lib
COPY care ./care
COPY alerts ./alerts
COPY ingest ./ingest
COPY streams ./streams
COPY forecasting ./forecasting
COPY coaching ./coaching
COPY api ./api
COPY bench ./bench
COPY manage.py ./
COPY deploy/entrypoint.sh /usr/local/bin/healthstream
RUN pip install --no-compile . \
    && mkdir -p "$HEALTHSTREAM_VAR_DIR/imports" "$PROMETHEUS_MULTIPROC_DIR" \
    && chown healthstream "$HEALTHSTREAM_VAR_DIR" "$HEALTHSTREAM_VAR_DIR/imports" "$PROMETHEUS_MULTIPROC_DIR" \
    && chmod 0700 "$HEALTHSTREAM_VAR_DIR/imports" \
    && chmod 0755 /usr/local/bin/healthstream

USER healthstream
EXPOSE 8000 9100
ENTRYPOINT ["healthstream"]
CMD ["api"]
