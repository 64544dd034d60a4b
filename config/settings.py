"""Django settings, all read from the environment (see lib/env.py).

Defaults match the embedded run mode: services on this machine, no configuration.
"""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

from django.core.exceptions import ImproperlyConfigured

from lib.env import env_bool, env_float, env_int, env_list, env_str, parse_database_url

BASE_DIR = Path(__file__).resolve().parent.parent
VAR_DIR = Path(env_str("HEALTHSTREAM_VAR_DIR", str(BASE_DIR / "var")))

# DEBUG=1 is the local run (make run, make test set it): plain HTTP, a built-in key.
# With DEBUG off (the default) this is production: HTTPS, HSTS and Secure cookies are on,
# and a SECRET_KEY is required: without one the API refuses to start (config/wsgi.py) and
# `check --deploy` fails (api/checks.py), both saying so. Commands that sign nothing
# (makemigrations, the sinks) still run; Django refuses the empty key at any first use.
DEBUG = env_bool("DEBUG", False)
SECRET_KEY = env_str("SECRET_KEY", "")
SECRET_KEY_MISSING = (
    "SECRET_KEY is not set and DEBUG is off: set SECRET_KEY (or SECRET_KEY_FILE) to 50 or "
    "more random characters for production, or DEBUG=1 for a local run")
if not SECRET_KEY and DEBUG:
    SECRET_KEY = "dev-only-insecure-key-never-used-with-debug-off-0123456789abcdef"
SECRET_KEY_SET = bool(SECRET_KEY)  # read instead of SECRET_KEY, which Django refuses when empty
ALLOWED_HOSTS = env_list("ALLOWED_HOSTS", "127.0.0.1,localhost,testserver,[::1]")
CSRF_TRUSTED_ORIGINS = env_list("CSRF_TRUSTED_ORIGINS", "")

# --- HTTPS and cookies (see docs/deploy.md) ---
HTTPS = env_bool("HTTPS", not DEBUG)
SECURE_SSL_REDIRECT = HTTPS
# load balancers' health checks and the metrics scrape come over plain HTTP inside the network
SECURE_REDIRECT_EXEMPT = [r"^healthz$", r"^metrics$"]
SECURE_HSTS_SECONDS = env_int("SECURE_HSTS_SECONDS", 31_536_000 if HTTPS else 0, minimum=0)
SECURE_HSTS_INCLUDE_SUBDOMAINS = env_bool("SECURE_HSTS_INCLUDE_SUBDOMAINS", True)
SECURE_HSTS_PRELOAD = env_bool("SECURE_HSTS_PRELOAD", True)
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
SESSION_COOKIE_SECURE = CSRF_COOKIE_SECURE = HTTPS
SESSION_COOKIE_HTTPONLY = True
SESSION_COOKIE_SAMESITE = CSRF_COOKIE_SAMESITE = "Lax"
X_FRAME_OPTIONS = "DENY"
# A dashboard session ends after SESSION_IDLE_TIMEOUT_S without a click (the queue's own
# polling does not count) and at most SESSION_MAX_AGE_S after sign-in.
SESSION_IDLE_TIMEOUT_S = env_int("SESSION_IDLE_TIMEOUT_S", 30 * 60, minimum=60)
SESSION_COOKIE_AGE = env_int("SESSION_MAX_AGE_S", 12 * 3600, minimum=300)
SESSION_PASSIVE_PATHS = ["/dashboard/queue/rows"]
# Client addresses: REMOTE_ADDR, unless it is one of these proxies (addresses or CIDR
# networks); then the nearest X-Forwarded-For hop that is not one (lib/clientip.py).
TRUSTED_PROXIES = env_list("TRUSTED_PROXIES", "")
if TRUSTED_PROXIES:
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")

INSTALLED_APPS = [
    "django.contrib.admin",  # every model, audited (api/admin.py)
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "rest_framework",
    "knox",  # API tokens: hashed, expiring, one per client (api/auth.py)
    "drf_spectacular",
    "drf_spectacular_sidecar",  # Swagger UI's files, served from here (no CDN)
    "simple_history",
    # the layers, lowest first (lib is a plain package, not an app)
    "care",
    "alerts",
    "alerts.notify",
    "ingest",
    "streams",
    "forecasting",
    "coaching",
    "api",
    "api.dashboard",
]

# The API and the detector worker own no tables (care, alerts, ingest, forecasting and
# coaching do): they have no migrations.
MIGRATION_MODULES = {"api": None, "streams": None}

MIDDLEWARE = [
    "django_prometheus.middleware.PrometheusBeforeMiddleware",
    # outermost: a service outage anywhere below answers 503 + Retry-After, never 500
    "config.outage.ServiceUnavailableMiddleware",
    "api.middleware.RequestIdMiddleware",
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    # CSP and Cache-Control: no-store on everything WhiteNoise did not answer
    "api.middleware.SecurityHeadersMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "api.middleware.RejectNulMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "api.middleware.SessionIdleTimeoutMiddleware",
    # who changed a consent, device or team membership (django-simple-history's history_user)
    "simple_history.middleware.HistoryRequestMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    # request counts and latency by view (django_http_requests_latency_seconds_by_view_method)
    "django_prometheus.middleware.PrometheusAfterMiddleware",
]

ROOT_URLCONF = "config.urls"
WSGI_APPLICATION = "config.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

DATABASE_URL = env_str("DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/healthstream")
DATABASES = {"default": parse_database_url(DATABASE_URL)}
DATABASES["default"]["CONN_MAX_AGE"] = env_int("DB_CONN_MAX_AGE", 60, minimum=0)
DATABASES["default"]["CONN_HEALTH_CHECKS"] = True
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

REDIS_URL = env_str("REDIS_URL", "redis://127.0.0.1:6379/0")
CACHES = {
    "default": {
        "BACKEND": "django.core.cache.backends.redis.RedisCache",
        "LOCATION": REDIS_URL,
        "KEY_PREFIX": env_str("CACHE_KEY_PREFIX", "hs"),
    }
}
SESSION_ENGINE = "django.contrib.sessions.backends.cached_db"

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
]

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = False
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = VAR_DIR / "static"
LOGIN_URL = "/dashboard/login/"
# The dashboard's static files (vendored uPlot and htmx) are served by WhiteNoise straight
# from the apps' static folders, so no collectstatic step is needed to run.
WHITENOISE_USE_FINDERS = True

REST_FRAMEWORK = {
    # The token class first: DRF takes the first class's authenticate_header for the
    # WWW-Authenticate header, and without one it answers 403 instead of 401.
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "api.auth.TokenAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "EXCEPTION_HANDLER": "api.errors.exception_handler",
    "DEFAULT_PARSER_CLASSES": [
        "api.parsers.SafeJSONParser",
        "rest_framework.parsers.FormParser",
        "rest_framework.parsers.MultiPartParser",
    ],
    "DEFAULT_PAGINATION_CLASS": "api.pagination.BoundedLimitOffsetPagination",
    "PAGE_SIZE": 50,
    "DEFAULT_THROTTLE_CLASSES": ["api.throttling.FixedWindowThrottle"],
}
# --- Patient and care-team API (api/, dashboard/) ---
API_RATE_LIMIT_PER_MIN = env_int("API_RATE_LIMIT_PER_MIN", 1200, minimum=1)
API_ANON_RATE_LIMIT_PER_MIN = env_int("API_ANON_RATE_LIMIT_PER_MIN", 120, minimum=1)
LOGIN_MAX_FAILURES_PER_USER = env_int("LOGIN_MAX_FAILURES_PER_USER", 5, minimum=1)
LOGIN_MAX_FAILURES_PER_ADDRESS = env_int("LOGIN_MAX_FAILURES_PER_ADDRESS", 30, minimum=1)
LOGIN_LOCKOUT_S = env_int("LOGIN_LOCKOUT_S", 900, minimum=1)
# A username failing this often (from any addresses) is slowed, not locked: one try per
# address per LOGIN_SLOW_S (see api.throttling.LoginGuard).
LOGIN_SLOW_AFTER = env_int("LOGIN_SLOW_AFTER", 20, minimum=1)
LOGIN_SLOW_S = env_int("LOGIN_SLOW_S", 60, minimum=1)
LOGIN_REDIRECT_URL = "/dashboard/"
# API tokens (api/auth.py): idle expiry, absolute expiry, live tokens per user.
API_TOKEN_IDLE_DAYS = env_int("API_TOKEN_IDLE_DAYS", 14, minimum=1)
API_TOKEN_MAX_DAYS = env_int("API_TOKEN_MAX_DAYS", 90, minimum=1)
API_TOKENS_PER_USER = env_int("API_TOKENS_PER_USER", 20, minimum=1)
REST_KNOX = {
    "TOKEN_TTL": timedelta(days=API_TOKEN_IDLE_DAYS),
    "AUTO_REFRESH": True,
    "AUTO_REFRESH_MAX_TTL": timedelta(days=API_TOKEN_MAX_DAYS),
    "MIN_REFRESH_INTERVAL": 3600,  # one expiry write an hour at most per token
    "TOKEN_PREFIX": "hsu_",
}
# GET patients/{id}/samples with an explicit resolution serves at most this many points
# (400 naming the limit beyond it); `auto` picks a resolution that stays near 1,000.
SAMPLES_MAX_POINTS = env_int("SAMPLES_MAX_POINTS", 10_000, minimum=100)
# GET /metrics: with a token set, only `Authorization: Bearer <token>` may scrape.
METRICS_TOKEN = env_str("METRICS_TOKEN", "")
DASHBOARD_POLL_S = env_int("DASHBOARD_POLL_S", 5, minimum=1)
SPECTACULAR_SETTINGS = {
    "TITLE": "healthstream API",
    "DESCRIPTION": "Wearable data ingest, patient advice and care-team alerts.",
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    "ENUM_NAME_OVERRIDES": {
        "AlertStatusEnum": "alerts.states.STATUSES",
        "RecommendationStatusEnum": ["active", "dismissed", "expired"],
        "ContextTagEnum": "coaching.models.CONTEXT_TAGS",
        "SeverityEnum": "alerts.states.SEVERITIES",
        "VerdictEnum": "alerts.states.VERDICTS",
        "InvitationKindEnum": ["patient", "clinician"],
        "TeamRoleEnum": "care.enrolment.ROLES",
    },
}

# --- Kafka (see lib/kafka.py, the one chokepoint to the broker) ---
KAFKA_BOOTSTRAP_SERVERS = env_str("KAFKA_BOOTSTRAP_SERVERS", "127.0.0.1:19092")
KAFKA_PARTITIONS = env_int("KAFKA_PARTITIONS", 6, minimum=1)
KAFKA_REPLICATION_FACTOR = env_int("KAFKA_REPLICATION_FACTOR", 1, minimum=1)
KAFKA_TOPIC_SAMPLES = env_str("KAFKA_TOPIC_SAMPLES", "samples.v1")
KAFKA_TOPIC_ALERTS = env_str("KAFKA_TOPIC_ALERTS", "alerts.v1")
# A sink that polls no more often than this leaves its group (kafka-python also uses it as
# the rebalance timeout). Kafka's default: a sink that waits out a database outage keeps
# its partitions; a dead sink is noticed by the session timeout instead.
KAFKA_MAX_POLL_INTERVAL_MS = env_int("KAFKA_MAX_POLL_INTERVAL_MS", 300_000, minimum=1000)
KAFKA_ACK_TIMEOUT_S = env_float("KAFKA_ACK_TIMEOUT_S", 10.0)

# --- Ingest ---
INGEST_MAX_SAMPLES = env_int("INGEST_MAX_SAMPLES", 5000, minimum=1)
INGEST_MAX_BODY_BYTES = env_int("INGEST_MAX_BODY_BYTES", 2 * 1024 * 1024, minimum=1024)
INGEST_MAX_FUTURE_S = env_int("INGEST_MAX_FUTURE_S", 300, minimum=0)
INGEST_RATE_LIMIT_PER_MIN = env_int("INGEST_RATE_LIMIT_PER_MIN", 600, minimum=1)
SINK_BATCH_MESSAGES = env_int("SINK_BATCH_MESSAGES", 100, minimum=1)
SINK_BATCH_SECONDS = env_float("SINK_BATCH_SECONDS", 0.5)
SAMPLES_RETENTION_DAYS = env_int("SAMPLES_RETENTION_DAYS", 730, minimum=1)
# "auto" uses TimescaleDB when the extension can be created, else plain PostgreSQL.
STORAGE_DIALECT = env_str("STORAGE_DIALECT", "auto")
DATA_UPLOAD_MAX_MEMORY_SIZE = INGEST_MAX_BODY_BYTES
# Export files uploaded for import (POST /api/v1/patients/{id}/imports): at most
# IMPORT_MAX_BYTES each, kept in IMPORT_DIR (mode 0700) until their job ends; the job
# writes its progress at most every IMPORT_PROGRESS_S. The API and the Celery workers
# must share IMPORT_DIR (one machine, or a shared volume).
IMPORT_MAX_BYTES = env_int("IMPORT_MAX_BYTES", 200 * 1024 * 1024, minimum=1024)
IMPORT_DIR = Path(env_str("IMPORT_DIR", str(VAR_DIR / "imports")))
IMPORT_PROGRESS_S = env_float("IMPORT_PROGRESS_S", 1.0, minimum=0.0)
# Unfinished (queued or running) uploads a patient may have at once: 429 beyond.
IMPORT_MAX_PENDING = env_int("IMPORT_MAX_PENDING", 3, minimum=1)
FILE_UPLOAD_HANDLERS = [
    "api.parsers.OversizeUploadHandler",  # a body over IMPORT_MAX_BYTES is never read
    "django.core.files.uploadhandler.MemoryFileUploadHandler",
    "django.core.files.uploadhandler.TemporaryFileUploadHandler",
]

# --- Detectors (streams/) and the alert sink (alerts/) ---
DETECTOR_APP_ID = env_str("DETECTOR_APP_ID", "healthstream-detectors")
# "rocksdb://" (RocksDB through rocksdict) in production; "memory://" for tests.
DETECTOR_STORE = env_str("DETECTOR_STORE", "rocksdb://")
DETECTOR_DATA_DIR = env_str("DETECTOR_DATA_DIR", str(VAR_DIR / "faust"))
# Samples may arrive this late (event time) behind the newest one of the same patient.
DETECTOR_LATENESS_S = env_int("DETECTOR_LATENESS_S", 600, minimum=0)
# The agent takes up to this many messages (or what came within the time) at once: a
# patient's state is written to the table once per take, so bigger takes mean fewer
# changelog writes; the time bounds the added alert latency on a quiet stream.
DETECTOR_TAKE_MESSAGES = env_int("DETECTOR_TAKE_MESSAGES", 20000, minimum=1)
# 0.25 s: with 0.5 the worker took in more per take (72k samples/s against 58k in
# bench.detect) but an alert waited longer under load (p99 3.1 s against 2.3 s).
DETECTOR_TAKE_WITHIN_S = env_float("DETECTOR_TAKE_WITHIN_S", 0.25, minimum=0.0)
# Faust's consumer-group timing. The session timeout is how soon a dead worker's partitions
# move to another one; the rebalance timeout (Faust's default) bounds how long a rebalance
# waits for a live but busy member. The poll interval must stay long: a worker behind a
# burst pauses fetching while its buffers are full, and a short interval then makes it
# leave the group.
DETECTOR_REBALANCE_TIMEOUT_S = env_float("DETECTOR_REBALANCE_TIMEOUT_S", 60.0)
DETECTOR_SESSION_TIMEOUT_S = env_float("DETECTOR_SESSION_TIMEOUT_S", 10.0)
DETECTOR_MAX_POLL_INTERVAL_S = env_float("DETECTOR_MAX_POLL_INTERVAL_S", 300.0)
# Faust's processing guarantee. at_least_once (the default): state and alerts are acked
# before offsets commit, and re-deliveries are dropped by offset and batch id
# (streams/processor.py). exactly_once runs each partition in a Kafka transaction
# (docs/exactly-once.md has the trial on the 3-broker cluster and its cost).
DETECTOR_PROCESSING_GUARANTEE = env_str("DETECTOR_PROCESSING_GUARANTEE", "at_least_once")
if DETECTOR_PROCESSING_GUARANTEE not in ("at_least_once", "exactly_once"):
    raise ImproperlyConfigured(
        f"DETECTOR_PROCESSING_GUARANTEE must be at_least_once or exactly_once, not {DETECTOR_PROCESSING_GUARANTEE!r}")
# The worker's event loop: "uvloop" (libuv, the default) or "asyncio" (the standard
# library's). Faust spends ~0.2 ms of Python per message on tasks, futures and queues, as
# much as the detectors themselves; uvloop runs that loop machinery in C.
DETECTOR_EVENT_LOOP = env_str("DETECTOR_EVENT_LOOP", "uvloop")
if DETECTOR_EVENT_LOOP not in ("uvloop", "asyncio"):
    raise ImproperlyConfigured(f"DETECTOR_EVENT_LOOP must be uvloop or asyncio, not {DETECTOR_EVENT_LOOP!r}")
# How often workers re-read clinicians' per-patient overrides (DetectorThreshold rows).
DETECTOR_THRESHOLDS_REFRESH_S = env_float("DETECTOR_THRESHOLDS_REFRESH_S", 10.0)
ALERT_SINK_BATCH_MESSAGES = env_int("ALERT_SINK_BATCH_MESSAGES", 500, minimum=1)
ALERT_SINK_BATCH_SECONDS = env_float("ALERT_SINK_BATCH_SECONDS", 0.1)

# --- Notifications (alerts/notify): Django's SMTP email backend and signed webhooks ---
EMAIL_BACKEND = env_str("EMAIL_BACKEND", "django.core.mail.backends.smtp.EmailBackend")
EMAIL_HOST, EMAIL_PORT = env_str("EMAIL_HOST", "127.0.0.1"), env_int("EMAIL_PORT", 1025, minimum=1)
EMAIL_HOST_USER, EMAIL_HOST_PASSWORD = env_str("EMAIL_HOST_USER", ""), env_str("EMAIL_HOST_PASSWORD", "")
EMAIL_USE_TLS, EMAIL_TIMEOUT = env_bool("EMAIL_USE_TLS", False), env_int("EMAIL_TIMEOUT", 10, minimum=1)
DEFAULT_FROM_EMAIL = env_str("DEFAULT_FROM_EMAIL", "healthstream <alerts@localhost>")
NOTIFY_SWEEP_S = env_float("NOTIFY_SWEEP_S", 10.0, minimum=1.0)
NOTIFY_MAX_ATTEMPTS = env_int("NOTIFY_MAX_ATTEMPTS", 6, minimum=1)
NOTIFY_RETRY_BASE_S = env_float("NOTIFY_RETRY_BASE_S", 30.0, minimum=0.0)
NOTIFY_BASE_URL = env_str("NOTIFY_BASE_URL", "http://127.0.0.1:8000")
# Webhooks go to public addresses only (no SSRF): refused at configuration and at each
# delivery (alerts/notify/targets.py). On for a receiver on this machine (make run's).
NOTIFY_WEBHOOK_ALLOW_PRIVATE = env_bool("NOTIFY_WEBHOOK_ALLOW_PRIVATE", False)

# --- Celery ---
CELERY_BROKER_URL = env_str("CELERY_BROKER_URL", REDIS_URL)
CELERY_RESULT_BACKEND = env_str("CELERY_RESULT_BACKEND", REDIS_URL)
CELERY_TASK_ACKS_LATE = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_ALWAYS_EAGER = env_bool("CELERY_TASK_ALWAYS_EAGER", False)
# Two queues, each with workers of its own (run_stack, deploy/compose.yaml): "celery" for
# what a person waits on (alert notifications, advice after an alert), "bulk" for long
# jobs (training, the daily forecasts, the 06:00 advice fan-out, file imports, storage
# upkeep). A nightly retrain that holds every slot of its worker never delays a red
# alert's webhook.
CELERY_TASK_DEFAULT_QUEUE = "celery"
BULK_QUEUE = "bulk"
CELERY_TASK_ROUTES = {
    name: {"queue": BULK_QUEUE}
    for name in ("forecasting.tasks.*", "coaching.tasks.daily", "coaching.tasks.recommend_for_patient",
                 "ingest.tasks.run_import_job", "ingest.tasks.storage_maintenance")
}

# --- Forecasting (see forecasting/service.py) ---
FORECAST_METRICS = env_list("FORECAST_METRICS", "resting_hr,sleep_minutes,steps")
FORECAST_BASELINES = env_list("FORECAST_BASELINES", "naive,seasonal_naive")
FORECAST_TRAIN_DAYS = env_int("FORECAST_TRAIN_DAYS", 180, minimum=28)
FORECAST_HOLDOUT_DAYS = env_int("FORECAST_HOLDOUT_DAYS", 21, minimum=7)
FORECAST_HISTORY_DAYS = env_int("FORECAST_HISTORY_DAYS", 120, minimum=28)
FORECAST_LSTM_EPOCHS = env_int("FORECAST_LSTM_EPOCHS", 20, minimum=1)
FORECAST_LSTM_UNITS = env_int("FORECAST_LSTM_UNITS", 64, minimum=4)
FORECAST_KEEP_DAYS = env_int("FORECAST_KEEP_DAYS", 90, minimum=1)  # issues kept, for scoring

# LOG_FORMAT=json: one JSON object a line with request_id and batch_id (lib/logs.py);
# plain text stays the default. LOG_FILE adds a file, created with mode 0600.
LOG_FORMAT = env_str("LOG_FORMAT", "plain")
if LOG_FORMAT not in ("plain", "json"):
    raise ImproperlyConfigured(f"LOG_FORMAT={LOG_FORMAT!r}: use plain or json")
LOG_FILE = env_str("LOG_FILE", "")
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "filters": {"ids": {"()": "lib.logs.ContextFilter"}},
    "formatters": {
        "plain": {"format": "%(asctime)s %(levelname)s %(name)s: %(message)s"},
        "json": {"()": "lib.logs.JsonFormatter"},
    },
    "handlers": {
        "console": {"class": "logging.StreamHandler", "formatter": LOG_FORMAT, "filters": ["ids"]},
        **({"file": {"class": "lib.logs.PrivateFileHandler", "filename": LOG_FILE, "formatter": LOG_FORMAT,
                     "filters": ["ids"]}} if LOG_FILE else {}),
    },
    "root": {"handlers": ["console", *(["file"] if LOG_FILE else [])], "level": env_str("LOG_LEVEL", "INFO")},
    "loggers": {
        "kafka": {"level": "WARNING"},
        # one line per upload in the sinks and the detector worker, with its request and batch
        # ids: LOG_UPLOADS=INFO follows an upload from the API through Kafka into both
        "healthstream.uploads": {"level": env_str("LOG_UPLOADS", "WARNING")},
        "django.db.backends": {"level": "WARNING"},
    },
}
