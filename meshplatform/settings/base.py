"""Settings shared by every environment, read from the environment (and `.env`) with django-environ."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import environ
from django.core.exceptions import ImproperlyConfigured

BASE_DIR = Path(__file__).resolve().parent.parent.parent

env = environ.Env()
if (BASE_DIR / ".env").exists():
    environ.Env.read_env(BASE_DIR / ".env")

DEBUG = env.bool("DEBUG", default=False)
# No secret has a default outside DEBUG: production refuses to start without one.
SECRET_KEY = env.str("SECRET_KEY", default="dev-only-insecure-secret" if DEBUG else environ.Env.NOTSET)
ALLOWED_HOSTS = env.list("ALLOWED_HOSTS", default=["127.0.0.1", "localhost", "[::1]"])
CSRF_TRUSTED_ORIGINS = env.list("CSRF_TRUSTED_ORIGINS", default=[])

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "meshplatform",
    "rest_framework",
    "drf_spectacular",
    "axes",
    "keys",
    "templates_app",
    "usage",
    "routing",
    "jobs",
    "responses_api",
]

# Only async-native middleware runs on every request. Django's browser middleware
# (sessions, CSRF, auth, messages) is MiddlewareMixin-based and costs a thread hop,
# so RequestScopeMiddleware runs it for admin pages only (see meshplatform/middleware.py).
MIDDLEWARE = [
    "meshplatform.middleware.RequestIdMiddleware",
    "meshplatform.middleware.RequestScopeMiddleware",
]
BROWSER_MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "meshplatform.middleware.AdminActorMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    # Last, as django-axes asks: it turns a lockout raised by its backend into the lockout page.
    "axes.middleware.AxesMiddleware",
]
# Paths served without the browser middleware (API clients carry bearer keys, not cookies).
API_PATH_PREFIXES = ("/v1/", "/healthz", "/readyz", "/metrics")
# The proxy's own paths: async end to end, no database connection to manage per request.
PROXY_PATHS = ("/v1/chat/completions", "/v1/models", "/v1/openapi.json", "/healthz", "/readyz")

# CORS for browser clients (the openai JS SDK with dangerouslyAllowBrowser, web playgrounds): off
# unless MESH_CORS_ALLOWED_ORIGINS lists origins ("https://app.example.com,http://localhost:3000",
# or "*" for any). Only /v1/* answers CORS; preflight OPTIONS is answered before authentication.
# django-cors-headers' middleware is async-native (no thread hop); when off it is not installed.
MESH_CORS_ALLOWED_ORIGINS = env.list("MESH_CORS_ALLOWED_ORIGINS", default=[])
if MESH_CORS_ALLOWED_ORIGINS:
    from corsheaders.defaults import default_headers

    INSTALLED_APPS.append("corsheaders")
    MIDDLEWARE.insert(1, "corsheaders.middleware.CorsMiddleware")  # inside RequestIdMiddleware
    CORS_ALLOW_ALL_ORIGINS = MESH_CORS_ALLOWED_ORIGINS == ["*"]
    CORS_ALLOWED_ORIGINS = [] if CORS_ALLOW_ALL_ORIGINS else MESH_CORS_ALLOWED_ORIGINS
    CORS_URLS_REGEX = r"^/v1/"
    CORS_ALLOW_CREDENTIALS = False  # bearer keys, never cookies
    # What browser SDKs send besides Authorization and Content-Type (openai's x-stainless-* set).
    CORS_ALLOW_HEADERS = (
        *default_headers,
        "openai-organization",
        "openai-project",
        "openai-beta",
        "x-stainless-arch",
        "x-stainless-async",
        "x-stainless-helper-method",
        "x-stainless-lang",
        "x-stainless-os",
        "x-stainless-package-version",
        "x-stainless-retry-count",
        "x-stainless-runtime",
        "x-stainless-runtime-version",
        "x-stainless-timeout",
        *env.list("MESH_CORS_EXTRA_HEADERS", default=[]),
    )
    CORS_EXPOSE_HEADERS = [
        "X-Request-Id",
        "Retry-After",
        "x-ratelimit-limit-requests",
        "x-ratelimit-remaining-requests",
        "x-ratelimit-reset-requests",
    ]
    CORS_PREFLIGHT_MAX_AGE = env.int("MESH_CORS_MAX_AGE_S", default=600)

ROOT_URLCONF = "meshplatform.urls"
ASGI_APPLICATION = "meshplatform.asgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "meshplatform" / "templates"],
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

DATABASES = {"default": env.db("DATABASE_URL", default=f"sqlite:///{BASE_DIR / 'db.sqlite3'}")}
# Under ASGI every sync view and db_call runs in a short-lived or pooled thread, so Django's
# per-thread persistent connections would leak or churn: PostgreSQL uses psycopg's pool instead
# (connections go back to it when Django closes them; CONN_MAX_AGE must then be 0).
DB_POOL_MAX_SIZE = env.int("DB_POOL_MAX_SIZE", default=10)
# A pooled connection is checked before use (one cheap round trip), so a PostgreSQL restart or a
# dropped connection costs a reconnect, not a failed request or task.
DATABASES["default"]["CONN_HEALTH_CHECKS"] = env.bool("DB_CONN_HEALTH_CHECKS", default=True)
if DATABASES["default"]["ENGINE"] == "django.db.backends.postgresql":
    DATABASES["default"]["CONN_MAX_AGE"] = 0
    DATABASES["default"].setdefault("OPTIONS", {})["pool"] = {
        "min_size": 1,
        "max_size": DB_POOL_MAX_SIZE,
        "timeout": env.float("DB_POOL_TIMEOUT_S", default=10.0),
    }
else:
    DATABASES["default"]["CONN_MAX_AGE"] = 60
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# Redis holds every shared counter, cache entry and lock. Empty means "embedded":
# an in-process fakeredis (with Lua), good for one `make run` process only.
REDIS_URL = env.str("REDIS_URL", default="")
REDIS_MAX_CONNECTIONS = env.int("REDIS_MAX_CONNECTIONS", default=16)
REDIS_POOL_TIMEOUT_S = env.float("REDIS_POOL_TIMEOUT_S", default=5.0)
# A Redis command (or a pipelined batch) slower than this counts as Redis being unreachable.
REDIS_COMMAND_TIMEOUT_S = env.float("REDIS_COMMAND_TIMEOUT_S", default=2.0)

# REDIS_URL names one node of a Redis Cluster (any primary; the others are discovered from it):
# the hot path's batches split per node, the other clients are redis-py's RedisCluster.
REDIS_CLUSTER = env.bool("REDIS_CLUSTER", default=False)
if REDIS_CLUSTER and not REDIS_URL:
    raise ImproperlyConfigured("REDIS_CLUSTER=true needs REDIS_URL (one node of the cluster)")
if REDIS_CLUSTER and env.str("CELERY_BROKER_URL", default="") in ("", REDIS_URL):
    # Kombu's Redis transport speaks to one Redis server only (celery/celery#2852 is still open).
    raise ImproperlyConfigured(
        "REDIS_CLUSTER=true needs CELERY_BROKER_URL: Celery's Redis broker does not support Redis "
        "Cluster, so the broker is a plain Redis (or RabbitMQ) of its own"
    )

CELERY_BROKER_URL = env.str("CELERY_BROKER_URL", default=REDIS_URL or "filesystem://")
CELERY_BROKER_TRANSPORT_OPTIONS: dict[str, object] = {}
if CELERY_BROKER_URL == "filesystem://":
    _broker_dir = BASE_DIR / ".run" / "broker"
    CELERY_BROKER_TRANSPORT_OPTIONS = {
        "data_folder_in": str(_broker_dir),
        "data_folder_out": str(_broker_dir),
        "processed_folder": str(_broker_dir / "processed"),
        "control_folder": str(_broker_dir / "control"),
        "store_processed": False,
    }
# Redis broker: an unacknowledged task (acks late) is redelivered after this many seconds; the
# jobs' own leases keep a redelivered task from running work twice, so it only bounds recovery.
if CELERY_BROKER_URL.startswith(("redis://", "rediss://")):
    CELERY_BROKER_TRANSPORT_OPTIONS = {
        "visibility_timeout": env.float("MESH_CELERY_VISIBILITY_TIMEOUT_S", default=3600.0)
    }
CELERY_TASK_ALWAYS_EAGER = env.bool("CELERY_TASK_ALWAYS_EAGER", default=False)
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TIMEZONE = "UTC"
# Celery's Django fixup would close the database connections (and psycopg's pool) around every
# task after this many; the worker tidies them itself instead (meshplatform/celery.py).
CELERY_DB_REUSE_MAX = 1_000_000_000

# Usage ledger (usage/recording.py): events are written ahead to a Redis stream, flushed to
# PostgreSQL by a beat task, and summed into daily rollups by another.
_usage_recording = env.str("MESH_USAGE_RECORDING", default="on").strip().lower()
if _usage_recording not in ("on", "off"):
    raise ImproperlyConfigured(f"MESH_USAGE_RECORDING must be 'on' or 'off', not {_usage_recording!r}")
# "off" exists only for `make bench` (hot path with vs without the ledger); nothing is billed then.
MESH_USAGE_RECORDING = _usage_recording == "on"
MESH_USAGE_FLUSH_INTERVAL_S = env.float("MESH_USAGE_FLUSH_INTERVAL_S", default=1.0)
MESH_USAGE_FLUSH_BATCH = env.int("MESH_USAGE_FLUSH_BATCH", default=1000)
MESH_USAGE_FLUSH_BUDGET_S = env.float("MESH_USAGE_FLUSH_BUDGET_S", default=10.0)
MESH_USAGE_CLAIM_IDLE_S = env.float("MESH_USAGE_CLAIM_IDLE_S", default=60.0)
MESH_USAGE_REDIS_RETRY_S = env.float("MESH_USAGE_REDIS_RETRY_S", default=1.0)
MESH_USAGE_ROLLUP_INTERVAL_S = env.float("MESH_USAGE_ROLLUP_INTERVAL_S", default=30.0)
# /readyz says "degraded" once the oldest event not yet flushed to PostgreSQL is older than this.
MESH_READYZ_MAX_LEDGER_LAG_S = env.float("MESH_READYZ_MAX_LEDGER_LAG_S", default=60.0)
MESH_READINESS_PROBES = {"ledger": "usage.health.ledger_readiness"}
# Streams: while one is open the relay brings its provisional ledger entry up to date (and renews
# its hard-cap hold) every MESH_STREAM_PROGRESS_INTERVAL_S; none lasts longer than MESH_STREAM_MAX_S
# (it then ends with a 504 error chunk). A provisional entry older than the longest stream plus
# MESH_STREAM_FINALISE_GRACE_S belongs to a stream whose worker died: beat finalises it (estimated).
MESH_STREAM_PROGRESS_INTERVAL_S = env.float("MESH_STREAM_PROGRESS_INTERVAL_S", default=5.0)
MESH_STREAM_MAX_S = env.float("MESH_STREAM_MAX_S", default=3600.0)
MESH_STREAM_FINALISE_GRACE_S = env.float("MESH_STREAM_FINALISE_GRACE_S", default=120.0)
MESH_STREAM_FINALISE_INTERVAL_S = env.float("MESH_STREAM_FINALISE_INTERVAL_S", default=60.0)

# The ledger's monthly partitions (PostgreSQL, usage/partitions.py): beat keeps the current month's
# and MESH_LEDGER_PARTITIONS_AHEAD more ready, and drops a month's events whole once
# MESH_LEDGER_RETENTION_MONTHS whole months have passed since it ended (0: keep everything). The
# daily rollups of dropped months are kept, so reports over them are unchanged.
MESH_LEDGER_RETENTION_MONTHS = env.int("MESH_LEDGER_RETENTION_MONTHS", default=0)
if MESH_LEDGER_RETENTION_MONTHS < 0:
    raise ImproperlyConfigured("MESH_LEDGER_RETENTION_MONTHS must be 0 (keep everything) or more")
MESH_LEDGER_PARTITIONS_AHEAD = env.int("MESH_LEDGER_PARTITIONS_AHEAD", default=3)
if MESH_LEDGER_PARTITIONS_AHEAD < 1:
    raise ImproperlyConfigured("MESH_LEDGER_PARTITIONS_AHEAD must be 1 or more")
# How long creating or dropping a partition waits for the ledger's lock before trying next run.
MESH_LEDGER_PARTITION_LOCK_TIMEOUT_S = env.float("MESH_LEDGER_PARTITION_LOCK_TIMEOUT_S", default=5.0)
MESH_LEDGER_PARTITIONS_INTERVAL_S = env.float("MESH_LEDGER_PARTITIONS_INTERVAL_S", default=3600.0)

CELERY_BEAT_SCHEDULE: dict[str, dict[str, object]] = {
    # Usage events from the Redis write-ahead stream into PostgreSQL; stale runs expire unrun.
    "usage-flush": {
        "task": "usage.flush",
        "schedule": MESH_USAGE_FLUSH_INTERVAL_S,
        "options": {"expires": max(5.0, 5 * MESH_USAGE_FLUSH_INTERVAL_S)},
    },
    # Daily rollups recomputed for every (day, tenant) that received events since the last run.
    "usage-rollups-refresh": {
        "task": "usage.rollups_refresh",
        "schedule": MESH_USAGE_ROLLUP_INTERVAL_S,
        "options": {"expires": max(30.0, 2 * MESH_USAGE_ROLLUP_INTERVAL_S)},
    },
    # Provisional entries of streams whose worker died, finalised as estimated (and billed).
    "usage-provisional-finalise": {
        "task": "usage.provisional_finalise",
        "schedule": MESH_STREAM_FINALISE_INTERVAL_S,
        "options": {"expires": max(30.0, MESH_STREAM_FINALISE_INTERVAL_S)},
    },
    # Keys' last-use times live in Redis on the hot path; this writes them to the database.
    "keys-flush-last-used": {"task": "keys.flush_last_used", "schedule": 60.0},
    # Async jobs and batches no live run holds are enqueued again; results past retention expire.
    "jobs-sweep": {
        "task": "jobs.sweep",
        "schedule": env.float("MESH_JOBS_SWEEP_INTERVAL_S", default=30.0),
        "options": {"expires": 60.0},
    },
    # The ledger's partitions: next months' created ahead, then months past retention dropped.
    "usage-ledger-partitions": {
        "task": "usage.ledger_partitions",
        "schedule": MESH_LEDGER_PARTITIONS_INTERVAL_S,
        "options": {"expires": MESH_LEDGER_PARTITIONS_INTERVAL_S},
    },
    # Heals spend counters after a Redis flush or outage (raises them to the ledger's totals).
    "usage-spend-counters-rebuild": {"task": "usage.spend_counters_rebuild", "schedule": 300.0},
}

# Admin login throttling (django-axes): after AXES_FAILURE_LIMIT failed logins for one username from
# one address, that pair is locked out for AXES_COOLOFF_MINUTES; a successful login resets it.
# Keyed by user AND address, so an attacker cannot lock a real admin out from elsewhere. Runs only
# in the browser middleware (never on /v1). Each failure and lockout is in the audit log.
AUTHENTICATION_BACKENDS = [
    "axes.backends.AxesStandaloneBackend",
    "django.contrib.auth.backends.ModelBackend",
]
AXES_FAILURE_LIMIT = env.int("AXES_FAILURE_LIMIT", default=5)
AXES_COOLOFF_TIME = env.float("AXES_COOLOFF_MINUTES", default=15.0) / 60  # hours
AXES_LOCKOUT_PARAMETERS = [["username", "ip_address"]]
AXES_RESET_ON_SUCCESS = True
AXES_VERBOSE = False
# The address is the connection's peer; behind a proxy run uvicorn with --proxy-headers and
# --forwarded-allow-ips so the client's address (X-Forwarded-For) becomes the peer.

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
]

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = False
USE_TZ = True

# Static files: `manage.py collectstatic --noinput` writes hashed, compressed copies to STATIC_ROOT
# (make run and every deploy do it); the ASGI handler serves them with WhiteNoise
# (meshplatform/static_files.py): hashed names get a year of `immutable` caching, the rest
# WHITENOISE_MAX_AGE. No CDN and no separate static server.
STATIC_URL = "static/"
STATIC_ROOT = env.path("STATIC_ROOT", default=BASE_DIR / "staticfiles")
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "whitenoise.storage.CompressedManifestStaticFilesStorage"},
}
WHITENOISE_MAX_AGE = env.int("WHITENOISE_MAX_AGE", default=0 if DEBUG else 3600)

# Logs go to stderr, one JSON object a line (MESH_LOG_FORMAT=json, structlog's formatter), or the
# plain text of old (MESH_LOG_FORMAT=plain). Every request that reached a key ends with one JSON
# access line on stdout (usage/observe.py); MESH_ACCESS_LOG=false silences it.
MESH_ACCESS_LOG = env.bool("MESH_ACCESS_LOG", default=True)
MESH_LOG_FORMAT = env.str("MESH_LOG_FORMAT", default="json").strip().lower()
if MESH_LOG_FORMAT not in ("json", "plain"):
    raise ImproperlyConfigured(f"MESH_LOG_FORMAT must be 'json' or 'plain', not {MESH_LOG_FORMAT!r}")
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {
        "plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"},
        "json": {"()": "meshplatform.logs.json_formatter"},
    },
    "handlers": {
        "console": {"class": "logging.StreamHandler", "formatter": MESH_LOG_FORMAT},
    },
    "root": {"handlers": ["console"], "level": env.str("LOG_LEVEL", default="INFO")},
    "loggers": {
        # httpx logs every upstream request at INFO: a synchronous write per call on the hot path.
        "httpx": {"level": "WARNING"},
        "httpcore": {"level": "WARNING"},
    },
}

# Prometheus (meshplatform/metrics.py): GET /metrics answers only with
# `Authorization: Bearer <MESH_METRICS_TOKEN>`, and is 404 while it is unset (no samples are taken
# then: nobody could read them). Every worker writes its samples to PROMETHEUS_MULTIPROC_DIR, one
# directory shared by the workers of one deployment (and emptied before it starts: `make run`
# does); unset, each process group gets its own under /tmp.
MESH_METRICS_TOKEN = env.str("MESH_METRICS_TOKEN", default="")
# Tenants (by name) that get their own `tenant` label; every other tenant is counted as "other",
# so the number of series cannot grow with the number of tenants.
MESH_METRICS_TENANTS = frozenset(env.list("MESH_METRICS_TENANTS", default=[]))
MESH_METRICS_CELERY_QUEUES = env.list("MESH_METRICS_CELERY_QUEUES", default=["celery"])
# Samples are summed in memory and written at most this many seconds after they were taken
# (meshplatform/metric_samples.py): a scrape sees them that much later, the hot path pays less.
MESH_METRICS_FLUSH_S = env.float("MESH_METRICS_FLUSH_S", default=1.0)
os.environ.setdefault(
    "PROMETHEUS_MULTIPROC_DIR", str(Path(tempfile.gettempdir()) / f"mesh-metrics-{os.getpgrp()}")
)
Path(os.environ["PROMETHEUS_MULTIPROC_DIR"]).mkdir(parents=True, exist_ok=True)

REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": ["keys.drf.ApiKeyAuthentication"],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
    "DEFAULT_PARSER_CLASSES": ["meshplatform.drf.BoundedJSONParser"],
    "EXCEPTION_HANDLER": "meshplatform.drf.exception_handler",
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "UNAUTHENTICATED_USER": None,
}
SPECTACULAR_SETTINGS = {
    "TITLE": "Mesh gateway API",
    "VERSION": "1.0.0",
    "OAS_VERSION": "3.1.0",
    "SERVE_INCLUDE_SCHEMA": False,
    "SERVE_PERMISSIONS": ["rest_framework.permissions.AllowAny"],
    "SERVE_AUTHENTICATION": [],
    "POSTPROCESSING_HOOKS": [
        "drf_spectacular.hooks.postprocess_schema_enums",
        "routing.openapi.add_proxy_endpoints",
    ],
}

# Upstream providers: a provider with no API key is "not configured" (503).
PROVIDERS = {
    "openai": {
        "api_key": env.str("OPENAI_API_KEY", default=""),
        "base_url": env.str("OPENAI_BASE_URL", default="https://api.openai.com/v1"),
    },
    "openrouter": {
        "api_key": env.str("OPENROUTER_API_KEY", default=""),
        "base_url": env.str("OPENROUTER_BASE_URL", default="https://openrouter.ai/api/v1"),
    },
    "anthropic": {
        "api_key": env.str("ANTHROPIC_API_KEY", default=""),
        "base_url": env.str("ANTHROPIC_BASE_URL", default="https://api.anthropic.com/v1"),
    },
    "gemini": {
        "api_key": env.str("GEMINI_API_KEY", default=""),
        "base_url": env.str("GEMINI_BASE_URL", default="https://generativelanguage.googleapis.com/v1beta"),
    },
    # Azure OpenAI: the resource endpoint (https://<resource>.openai.azure.com); model ids are
    # azure/<deployment>.
    "azure": {
        "api_key": env.str("AZURE_OPENAI_API_KEY", default=""),
        "base_url": env.str("AZURE_OPENAI_BASE_URL", default=""),
        "api_version": env.str("AZURE_OPENAI_API_VERSION", default="2024-10-21"),
    },
}
# Anthropic's API version header.
ANTHROPIC_VERSION = env.str("ANTHROPIC_VERSION", default="2023-06-01")

# Gateway behaviour.
MESH_MAX_BODY_BYTES = env.int("MESH_MAX_BODY_BYTES", default=10 * 1024 * 1024)
MESH_UPSTREAM_TIMEOUT_S = env.float("MESH_UPSTREAM_TIMEOUT_S", default=600.0)
MESH_UPSTREAM_CONNECT_TIMEOUT_S = env.float("MESH_UPSTREAM_CONNECT_TIMEOUT_S", default=10.0)
MESH_UPSTREAM_MAX_CONNECTIONS = env.int("MESH_UPSTREAM_MAX_CONNECTIONS", default=0)  # 0 = unbounded
# Retries on the same provider (within the request's timeout, jittered exponential backoff) for
# failures where the upstream certainly did not run the request (429, 5xx, 529, not connected).
MESH_UPSTREAM_RETRIES = env.int("MESH_UPSTREAM_RETRIES", default=1)
MESH_UPSTREAM_RETRY_BACKOFF_S = env.float("MESH_UPSTREAM_RETRY_BACKOFF_S", default=0.25)
MESH_UPSTREAM_RETRY_MAX_WAIT_S = env.float("MESH_UPSTREAM_RETRY_MAX_WAIT_S", default=4.0)
MESH_DEFAULT_MODEL = env.str("MESH_DEFAULT_MODEL", default="openai/gpt-4o")
MESH_KEY_CACHE_TTL_S = env.int("MESH_KEY_CACHE_TTL_S", default=300)
MESH_LIMITS_FAIL_OPEN = env.bool("MESH_LIMITS_FAIL_OPEN", default=True)
# A hard-cap hold whose request never settled (its worker died) is given back after three times
# the request's timeout plus this grace.
MESH_SPEND_HOLD_GRACE_S = env.float("MESH_SPEND_HOLD_GRACE_S", default=300.0)
# Soft caps count requests in flight at their expected cost; one that names no max_tokens is
# expected to produce this many output tokens (at most the model's limit).
MESH_SOFT_CAP_EXPECTED_OUTPUT_TOKENS = env.int("MESH_SOFT_CAP_EXPECTED_OUTPUT_TOKENS", default=1000)
# Idempotency-Key (routing/idempotency.py): an answer is kept this long for its retries (client
# retries come within seconds; every kept answer is Redis memory: size Redis for the rate of
# SDK POSTs times their answers' size times this); a claim whose request never settled (its
# worker died) lapses after PENDING_S, past the longest stream; an answer larger than MAX_BYTES
# is not kept (a retry is told the request ran).
MESH_IDEMPOTENCY_TTL_S = env.int("MESH_IDEMPOTENCY_TTL_S", default=3600)
MESH_IDEMPOTENCY_PENDING_S = env.int("MESH_IDEMPOTENCY_PENDING_S", default=4 * 3600)
MESH_IDEMPOTENCY_MAX_BYTES = env.int("MESH_IDEMPOTENCY_MAX_BYTES", default=256 * 1024)
DATA_UPLOAD_MAX_MEMORY_SIZE = MESH_MAX_BODY_BYTES
# A body must arrive within MESH_BODY_READ_GRACE_S plus its size at MESH_BODY_MIN_RATE_BPS
# (else 408): slow or truncated uploads cannot hold a connection open (meshplatform/asgi_handler.py).
MESH_BODY_READ_GRACE_S = env.float("MESH_BODY_READ_GRACE_S", default=5.0)
MESH_BODY_MIN_RATE_BPS = env.float("MESH_BODY_MIN_RATE_BPS", default=50_000.0)
# A web worker idle this long after serving requests gives freed memory back to the OS
# (meshplatform/memory.py); 0 turns it off.
MESH_IDLE_TRIM_S = env.float("MESH_IDLE_TRIM_S", default=10.0)
# A web worker told to stop (SIGTERM) drains (meshplatform/draining.py): /readyz answers 503 for
# MESH_DRAIN_NOTICE_S while it still serves (so a load balancer stops sending it requests), then it
# stops accepting connections and gives the requests and streams it holds up to MESH_DRAIN_TIMEOUT_S
# to finish (uvicorn's graceful shutdown); those still open then are cut and billed as they stand.
MESH_DRAIN_NOTICE_S = env.float("MESH_DRAIN_NOTICE_S", default=5.0)
MESH_DRAIN_TIMEOUT_S = env.float("MESH_DRAIN_TIMEOUT_S", default=30.0)
if MESH_DRAIN_NOTICE_S < 0 or MESH_DRAIN_TIMEOUT_S < 0:
    raise ImproperlyConfigured("MESH_DRAIN_NOTICE_S and MESH_DRAIN_TIMEOUT_S must not be negative")
# What else a draining worker waits for before it exits: each app's pending writes ("dotted.path"
# of an async callable), e.g. ledger events on their way to PostgreSQL while Redis is down.
MESH_DRAIN_HOOKS = ["usage.recording.usage_writes_drain", "meshplatform.metric_samples.samples_drain"]
# Bounded work per request (meshplatform/json_input.py, routing/schema.py): checked right after
# the JSON parse, before validation, on every JSON body the gateway accepts.
MESH_MAX_JSON_DEPTH = env.int("MESH_MAX_JSON_DEPTH", default=64)
MESH_MAX_JSON_ITEMS = env.int("MESH_MAX_JSON_ITEMS", default=200_000)
MESH_MAX_STRING_CHARS = env.int("MESH_MAX_STRING_CHARS", default=8 * 1024 * 1024)
MESH_MAX_MESSAGES = env.int("MESH_MAX_MESSAGES", default=2048)
MESH_MAX_CONTENT_PARTS = env.int("MESH_MAX_CONTENT_PARTS", default=256)
MESH_MAX_TOOLS = env.int("MESH_MAX_TOOLS", default=256)
MESH_MAX_STOP_SEQUENCES = env.int("MESH_MAX_STOP_SEQUENCES", default=4)
MESH_MAX_FALLBACK_MODELS = env.int("MESH_MAX_FALLBACK_MODELS", default=16)
MESH_MAX_TEMPLATE_VARIABLES = env.int("MESH_MAX_TEMPLATE_VARIABLES", default=256)
MESH_MAX_ERROR_DETAILS = env.int("MESH_MAX_ERROR_DETAILS", default=20)
# POST /v1/embeddings: inputs per request (OpenAI's bound) and tokens per token array.
MESH_MAX_EMBEDDING_INPUTS = env.int("MESH_MAX_EMBEDDING_INPUTS", default=2048)
MESH_MAX_EMBEDDING_TOKENS = env.int("MESH_MAX_EMBEDDING_TOKENS", default=8192)
if not 1 <= MESH_MAX_JSON_DEPTH <= 200:  # orjson writes at most 254 levels, envelopes add a few
    raise ImproperlyConfigured(f"MESH_MAX_JSON_DEPTH must be within 1..200, not {MESH_MAX_JSON_DEPTH}")
MESH_CATALOG_CHECK_INTERVAL_S = env.float("MESH_CATALOG_CHECK_INTERVAL_S", default=1.0)
# POST /v1/compare: how many models one comparison may run side by side (each is a request).
MESH_COMPARE_MAX_MODELS = env.int("MESH_COMPARE_MAX_MODELS", default=4)
if not 2 <= MESH_COMPARE_MAX_MODELS <= 16:
    raise ImproperlyConfigured(f"MESH_COMPARE_MAX_MODELS must be within 2..16, not {MESH_COMPARE_MAX_MODELS}")

# The admin's middleware is present, inside RequestScopeMiddleware (see MIDDLEWARE above).
# axes.W002 likewise: AxesMiddleware is in BROWSER_MIDDLEWARE, so it never runs on /v1.
SILENCED_SYSTEM_CHECKS = ["admin.E408", "admin.E409", "admin.E410", "axes.W002"]

# Async jobs, Files and Batches (the jobs app).
MESH_JOB_RETENTION_S = env.int("MESH_JOB_RETENTION_S", default=7 * 24 * 3600)
# A running job or batch renews a lease this long; a dead worker's work is taken over after it.
MESH_JOB_LEASE_S = env.float("MESH_JOB_LEASE_S", default=60.0)
MESH_BATCH_CONCURRENCY_PER_TENANT = env.int("MESH_BATCH_CONCURRENCY_PER_TENANT", default=8)
MESH_BATCH_MAX_LINES = env.int("MESH_BATCH_MAX_LINES", default=50_000)
MESH_FILES_MAX_BYTES = env.int("MESH_FILES_MAX_BYTES", default=200 * 1024 * 1024)
# Where uploaded and result files live: Django's storage API. Default: local disk under
# MESH_FILES_ROOT; any backend by dotted path + JSON options, e.g. django-storages' S3:
# MESH_FILES_STORAGE_BACKEND=storages.backends.s3.S3Storage
# MESH_FILES_STORAGE_OPTIONS='{"bucket_name": "mesh-files", "endpoint_url": "https://…"}'
STORAGES["mesh_files"] = {
    "BACKEND": env.str("MESH_FILES_STORAGE_BACKEND", default="django.core.files.storage.FileSystemStorage"),
    "OPTIONS": env.json(
        "MESH_FILES_STORAGE_OPTIONS",
        default={"location": env.str("MESH_FILES_ROOT", default=str(BASE_DIR / ".run" / "files"))},
    ),
}
# Webhooks: https only, to public addresses; http and loopback targets only where this is on
# (tests and dev). Tries back off exponentially from MESH_WEBHOOK_BACKOFF_S.
MESH_WEBHOOK_ALLOW_LOOPBACK = env.bool("MESH_WEBHOOK_ALLOW_LOOPBACK", default=DEBUG)
MESH_WEBHOOK_TIMEOUT_S = env.float("MESH_WEBHOOK_TIMEOUT_S", default=10.0)
MESH_WEBHOOK_MAX_ATTEMPTS = env.int("MESH_WEBHOOK_MAX_ATTEMPTS", default=8)
MESH_WEBHOOK_BACKOFF_S = env.float("MESH_WEBHOOK_BACKOFF_S", default=2.0)
MESH_WEBHOOK_MAX_BACKOFF_S = env.float("MESH_WEBHOOK_MAX_BACKOFF_S", default=600.0)
# OpenTelemetry traces (meshplatform/tracing.py): off unless this is set; where they go and how
# they are sampled is the standard OTEL_EXPORTER_OTLP_ENDPOINT / OTEL_TRACES_SAMPLER / OTEL_BSP_*.
MESH_OTEL_ENABLED = env.bool("MESH_OTEL_ENABLED", default=False)
