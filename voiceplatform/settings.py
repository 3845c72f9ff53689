"""Settings: one file, environment first (DESIGN.md convention 8).

Every value that differs between machines comes from the environment through the
typed helpers in ``voiceplatform.env``. Secrets have no production default: with
``DEBUG`` off, a missing ``SECRET_KEY`` or ``FIELD_ENCRYPTION_KEYS`` stops the
process. With ``DEBUG`` on (``make run``/``make test``), development secrets are
generated once and kept under ``var/`` so sessions and encrypted rows survive
restarts.
"""
from __future__ import annotations

import ipaddress
import json
import os
import re
import secrets
import sys
from collections.abc import Callable
from pathlib import Path

import dj_database_url

from agents.pricing import parse_price_overrides  # pure: no Django, safe in settings
from voiceplatform import embedded
from voiceplatform.env import (
    ImproperlyConfiguredEnv,
    env_bool,
    env_float,
    env_int,
    env_json,
    env_list,
    env_str,
)
from voiceplatform.proxies import parse_trusted_proxies  # pure: no Django

BASE_DIR = Path(__file__).resolve().parent.parent
TESTING = "pytest" in sys.modules or env_bool("VP_TESTING", False)

DEBUG = env_bool("DEBUG", False)
# Concurrent test runs on one machine must not share a test database, cache keys,
# channel names or Celery queue; subprocesses started by tests are handed the
# parent's values explicitly (voiceplatform.testing.subprocess_env).
_RUN = f"t{os.getpid()}" if "pytest" in sys.modules else ""


def _dev_secret(name: str, make: Callable[[], str]) -> str:
    """A per-checkout development secret, only ever used with DEBUG on."""
    path = embedded.VAR_DIR / "dev-secrets.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    data = json.loads(path.read_text()) if path.exists() else {}
    if name not in data:
        data[name] = make()
        path.write_text(json.dumps(data))
        path.chmod(0o600)
    return data[name]


def _secret(name: str, make: Callable[[], str]) -> str:
    value = env_str(name, "")
    if value:
        return value
    if DEBUG or TESTING:
        return _dev_secret(name, make)
    raise ImproperlyConfiguredEnv(f"{name} must be set when DEBUG is off")


def _fernet_key() -> str:
    from cryptography.fernet import Fernet

    return Fernet.generate_key().decode()


SECRET_KEY = _secret("SECRET_KEY", lambda: secrets.token_urlsafe(50))
# Comma-separated Fernet keys; the first encrypts, all decrypt (rotation).
FIELD_ENCRYPTION_KEYS = env_list("FIELD_ENCRYPTION_KEYS") or [_secret("FIELD_ENCRYPTION_KEYS", _fernet_key)]

ALLOWED_HOSTS = env_list("ALLOWED_HOSTS", ["localhost", "127.0.0.1", "[::1]"] if DEBUG or TESTING else [])
CSRF_TRUSTED_ORIGINS = env_list("CSRF_TRUSTED_ORIGINS")
# The address carriers reach us at: signatures are checked against it, and the
# stream/callback URLs we hand to carriers are built from it.
PUBLIC_BASE_URL = env_str("PUBLIC_BASE_URL", "http://127.0.0.1:8000").rstrip("/")
# Scale-out (README, "Deployment: several processes and machines"). NODE_ID names this
# web process to the reverse proxy: a stream URL for a call whose provider session this
# process prepared while the phone rang is /ws/n/<NODE_ID>/..., which the proxy routes
# back here (deploy/nginx.conf). Empty: one process, plain /ws/... URLs.
NODE_ID = env_str("NODE_ID", "")
if NODE_ID and not re.fullmatch(r"[a-z0-9][a-z0-9-]{0,39}", NODE_ID):
    raise ImproperlyConfiguredEnv(f"NODE_ID={NODE_ID!r} must be 1-40 lowercase letters, digits or '-'")
# On SIGTERM (voiceplatform.serve) a web process takes no new calls and lets its live
# calls run up to this many seconds; then the agent says goodbye and they are hung up.
DRAIN_TIMEOUT_S = env_float("DRAIN_TIMEOUT_S", 300.0)
# Refused carrier webhooks that prove no identity (unknown number or call, bad or
# missing signature) are stored as events at most this many times a minute per
# carrier, kind and org; the rest are only counted (calls.webhooks).
WEBHOOK_REFUSALS_RECORDED_PER_MINUTE = env_int("WEBHOOK_REFUSALS_RECORDED_PER_MINUTE", 30)
# Browser "web calls" (/ws/web/...) are accepted from pages on ALLOWED_HOSTS and
# from these extra origins (e.g. "https://www.example.com" for a site embedding a
# talk-to-us button through the API); "*" accepts any origin.
WEB_CALL_ALLOWED_ORIGINS = env_list("WEB_CALL_ALLOWED_ORIGINS")
# Customer-supplied destinations (webhooks, MCP servers, provider/carrier base URLs,
# knowledge URLs) may be loopback/private/link-local addresses only with this on
# (voiceplatform/outbound.py). Default: on in development (`make run`) and tests,
# where the fakes listen on 127.0.0.1; off in production.
OUTBOUND_ALLOW_PRIVATE = env_bool("OUTBOUND_ALLOW_PRIVATE", DEBUG or TESTING)
# Non-public networks allowed even with OUTBOUND_ALLOW_PRIVATE off, as CIDRs
# (e.g. "10.20.0.0/24" for an MCP server on the office LAN); everything else stays refused.
OUTBOUND_ALLOWED_NETWORKS = env_list("OUTBOUND_ALLOWED_NETWORKS")
for _net in OUTBOUND_ALLOWED_NETWORKS:
    try:
        ipaddress.ip_network(_net, strict=False)
    except ValueError:
        raise ImproperlyConfiguredEnv(f"OUTBOUND_ALLOWED_NETWORKS: {_net!r} is not a network such as 10.20.0.0/24") from None

INSTALLED_APPS = [
    "daphne",
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "django.contrib.humanize",
    "django.contrib.postgres",
    "rest_framework",
    "django_filters",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "channels",
    "django_celery_beat",
    "django_htmx",
    "allauth",
    "allauth.account",
    "allauth.mfa",
    "voiceplatform",
    "orgs",
    "agents",
    "calls",
    "batches",
    "knowledge",
    "integrations",
    "analytics",
    "simulations",
    "privacy",
]

MIDDLEWARE = [
    "voiceplatform.uploads.UploadLimitMiddleware",  # first: nothing reads a body over the cap
    "voiceplatform.availability.ServiceUnavailableMiddleware",  # database/Redis down: 503, not 500
    "django.middleware.security.SecurityMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "allauth.account.middleware.AccountMiddleware",
    "django_htmx.middleware.HtmxMiddleware",
    "orgs.middleware.CurrentOrgMiddleware",
]

ROOT_URLCONF = "voiceplatform.urls"
ASGI_APPLICATION = "voiceplatform.asgi.application"
WSGI_APPLICATION = "voiceplatform.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
                "orgs.context_processors.current_org",
            ],
            # The formatting filters (state, reason, duration, money, plural, cron_human, e164, when,
            # fix_links) are in every template without {% load %}.
            "builtins": ["voiceplatform.templatetags.present"],
        },
    },
]

# --- data stores --------------------------------------------------------------
# No DATABASE_URL / REDIS_URL: the embedded servers under var/ (embedded.py).
DATABASE_URL = env_str("DATABASE_URL", "") or embedded.postgres_url()
REDIS_URL = env_str("REDIS_URL", "") or embedded.redis_url()

# Connection budget (README, "Database connections"): by default every request and every
# database step of a call opens and closes its connection (DB_CONN_MAX_AGE=0), so a live
# call holds none between steps; put PgBouncer (transaction mode) in front of Postgres for
# many processes. Or DB_POOL_MAX_SIZE > 0: psycopg's pool in each process, which then
# holds at most that many connections (requests wait up to DB_POOL_TIMEOUT_S for one).
DB_POOL_MAX_SIZE = env_int("DB_POOL_MAX_SIZE", 0)
DATABASES = {"default": dj_database_url.parse(DATABASE_URL,
                                              conn_max_age=0 if DB_POOL_MAX_SIZE else env_int("DB_CONN_MAX_AGE", 0))}
if DB_POOL_MAX_SIZE:
    DATABASES["default"].setdefault("OPTIONS", {})["pool"] = {
        "min_size": min(env_int("DB_POOL_MIN_SIZE", 1), DB_POOL_MAX_SIZE),
        "max_size": DB_POOL_MAX_SIZE,
        "timeout": env_float("DB_POOL_TIMEOUT_S", 10.0),
    }
DATABASES["default"]["TEST"] = {"NAME": env_str("VP_TEST_DB_NAME", f"test_vp{_RUN}")}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

CACHES = {
    "default": {
        "BACKEND": "django.core.cache.backends.redis.RedisCache",
        "LOCATION": REDIS_URL,
        "KEY_PREFIX": env_str("CACHE_KEY_PREFIX", f"vp{_RUN}"),
    }
}

CHANNEL_LAYERS = {
    "default": {
        "BACKEND": "channels_redis.core.RedisChannelLayer",
        "CONFIG": {"hosts": [REDIS_URL], "prefix": env_str("CHANNELS_PREFIX", f"vp-asgi{_RUN}")},
    }
}

# --- Celery -----------------------------------------------------------------------
CELERY_BROKER_URL = REDIS_URL
CELERY_RESULT_BACKEND = None
CELERY_TASK_ACKS_LATE = True  # a worker killed mid-task leaves the task to be redelivered
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_DEFAULT_QUEUE = env_str("CELERY_DEFAULT_QUEUE", f"default{_RUN}")
CELERY_BEAT_SCHEDULER = "django_celery_beat.schedulers:DatabaseScheduler"
CELERY_TIMEZONE = "UTC"
# A message a worker took and never acknowledged (the worker was killed) goes back to the
# queue once it is older than the visibility timeout, found by a sweep every live worker
# runs every CELERY_RESTORE_SWEEP_S (kombu's default sweeps only every tenth tick, ~100 s).
CELERY_BROKER_TRANSPORT_OPTIONS = {"visibility_timeout": env_int("CELERY_VISIBILITY_TIMEOUT", 3600),
                                   "unacked_restore_interval": env_int("CELERY_RESTORE_SWEEP_S", 10),
                                   "unacked_restore_throttle": 1}
CELERY_TASK_ALWAYS_EAGER = False
# Work on content a tenant supplied (document extraction, URL fetches, embedding) runs on
# its own queue, served by its own worker (`worker-ingest` in compose, a second worker
# in `make run`): a poisoned document can occupy that worker, never the one that
# finalises calls, delivers webhooks and dials campaigns. Every task is routed
# explicitly (voiceplatform/tests/test_hostile_tasks.py fails on an unrouted one).
CELERY_INGEST_QUEUE = env_str("CELERY_INGEST_QUEUE", f"ingest{_RUN}")
CELERY_TASK_ROUTES = {
    "knowledge.*": {"queue": CELERY_INGEST_QUEUE},
    **{f"{app}.*": {"queue": CELERY_TASK_DEFAULT_QUEUE} for app in ("calls", "batches", "integrations", "celery",
                                                                      "analytics", "simulations", "privacy")},
}
# Every task has a time limit: the soft one raises SoftTimeLimitExceeded inside the task
# (which ends its work in a clean failed state), the hard one kills the pool process.
# Ingestion runs far longer than anything else and has its own pair (knowledge/tasks.py).
# Hard limits must stay below the broker's visibility timeout, or a running task is
# delivered a second time.
CELERY_TASK_SOFT_TIME_LIMIT = env_int("CELERY_TASK_SOFT_TIME_LIMIT", 300)
CELERY_TASK_TIME_LIMIT = env_int("CELERY_TASK_TIME_LIMIT", 330)
KNOWLEDGE_TASK_SOFT_TIME_LIMIT = env_int("KNOWLEDGE_TASK_SOFT_TIME_LIMIT", 1800)
KNOWLEDGE_TASK_TIME_LIMIT = env_int("KNOWLEDGE_TASK_TIME_LIMIT", 1860)
for _soft, _hard in (("CELERY_TASK_SOFT_TIME_LIMIT", "CELERY_TASK_TIME_LIMIT"),
                     ("KNOWLEDGE_TASK_SOFT_TIME_LIMIT", "KNOWLEDGE_TASK_TIME_LIMIT")):
    if not 0 < globals()[_soft] < globals()[_hard]:
        raise ImproperlyConfiguredEnv(f"{_soft} ({globals()[_soft]}) must be positive and below {_hard} "
                                      f"({globals()[_hard]})")

# --- auth -------------------------------------------------------------------------
AUTHENTICATION_BACKENDS = [
    "django.contrib.auth.backends.ModelBackend",
    "allauth.account.auth_backends.AuthenticationBackend",
]
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
if TESTING:
    PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
LOGIN_URL = "account_login"
LOGIN_REDIRECT_URL = "dashboard"
ACCOUNT_LOGIN_METHODS = {"email"}
ACCOUNT_SIGNUP_FIELDS = ["email*", "password1*", "password2*"]
ACCOUNT_EMAIL_VERIFICATION = env_str("ACCOUNT_EMAIL_VERIFICATION", "mandatory" if not DEBUG else "optional")
ACCOUNT_UNIQUE_EMAIL = True
ACCOUNT_USER_MODEL_USERNAME_FIELD = "username"
ACCOUNT_LOGOUT_ON_PASSWORD_CHANGE = False
ACCOUNT_ADAPTER = "orgs.adapters.AccountAdapter"
MFA_SUPPORTED_TYPES = ["totp", "recovery_codes"]
MFA_TOTP_ISSUER = env_str("MFA_TOTP_ISSUER", "Voice Platform")

# --- e-mail -----------------------------------------------------------------------
EMAIL_URL = env_str("EMAIL_URL", "")
if EMAIL_URL:
    # smtp://user:pass@host:port (smtp+tls:// for STARTTLS, smtps:// for TLS)
    from urllib.parse import unquote, urlparse

    _mail = urlparse(EMAIL_URL)
    if _mail.scheme not in {"smtp", "smtp+tls", "smtps"}:
        raise ImproperlyConfiguredEnv(f"EMAIL_URL scheme {_mail.scheme!r} is not smtp, smtp+tls or smtps")
    EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
    EMAIL_HOST = _mail.hostname or "localhost"
    EMAIL_PORT = _mail.port or (465 if _mail.scheme == "smtps" else 587)
    EMAIL_HOST_USER = unquote(_mail.username or "")
    EMAIL_HOST_PASSWORD = unquote(_mail.password or "")
    EMAIL_USE_TLS = _mail.scheme == "smtp+tls"
    EMAIL_USE_SSL = _mail.scheme == "smtps"
else:
    EMAIL_BACKEND = "django.core.mail.backends.console.EmailBackend"
DEFAULT_FROM_EMAIL = env_str("DEFAULT_FROM_EMAIL", "Voice Platform <noreply@localhost>")

# --- i18n, static, media ---------------------------------------------------------
LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True
STATIC_URL = "/static/"
SERVE_STATIC = env_bool("SERVE_STATIC", True)
STATIC_ROOT = Path(env_str("STATIC_ROOT", str(BASE_DIR / "var" / "static")))
STATICFILES_DIRS = [BASE_DIR / "static"]
MEDIA_URL = "/media/"
MEDIA_ROOT = Path(env_str("MEDIA_ROOT", str(BASE_DIR / "media")))
DATA_UPLOAD_MAX_MEMORY_SIZE = env_int("DATA_UPLOAD_MAX_MEMORY_SIZE", 10 * 1024 * 1024)
FILE_UPLOAD_MAX_MEMORY_SIZE = 2 * 1024 * 1024
# The cap on any request body, file uploads included (voiceplatform/uploads.py): over it,
# 413 with the limit, checked from Content-Length before the body is read and counted while
# it streams. Room for a 25 MB knowledge document (KNOWLEDGE_MAX_UPLOAD_BYTES) plus the form.
UPLOAD_MAX_BYTES = env_int("UPLOAD_MAX_BYTES", 26 * 1024 * 1024)
# What one knowledge document may expand into (knowledge/extraction.py ExtractionLimits):
# over a cap its version fails with "file too large: <what>, limit <N>".
KNOWLEDGE_MAX_UPLOAD_BYTES = env_int("KNOWLEDGE_MAX_UPLOAD_BYTES", 25 * 1024 * 1024)
KNOWLEDGE_DOCX_MAX_PARTS = env_int("KNOWLEDGE_DOCX_MAX_PARTS", 1_000)
KNOWLEDGE_DOCX_MAX_PART_BYTES = env_int("KNOWLEDGE_DOCX_MAX_PART_BYTES", 64 * 1024 * 1024)
KNOWLEDGE_DOCX_MAX_INFLATED_BYTES = env_int("KNOWLEDGE_DOCX_MAX_INFLATED_BYTES", 128 * 1024 * 1024)
KNOWLEDGE_PDF_MAX_PAGES = env_int("KNOWLEDGE_PDF_MAX_PAGES", 2_000)
KNOWLEDGE_MAX_TEXT_CHARS = env_int("KNOWLEDGE_MAX_TEXT_CHARS", 50_000_000)

# --- security ---------------------------------------------------------------------
SESSION_COOKIE_HTTPONLY = True
SESSION_COOKIE_SECURE = env_bool("SECURE_COOKIES", not DEBUG and not TESTING)
CSRF_COOKIE_SECURE = SESSION_COOKIE_SECURE
SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https") if env_bool("TRUST_X_FORWARDED_PROTO", False) else None
# Proxies whose X-Forwarded-For is believed (audit IPs); the variable uvicorn reads too.
# Unset: none, the TCP peer is the client. voiceplatform/proxies.py has the rule.
try:
    TRUSTED_PROXIES = parse_trusted_proxies(env_list("FORWARDED_ALLOW_IPS"))
except ValueError as exc:
    raise ImproperlyConfiguredEnv(f"FORWARDED_ALLOW_IPS: {exc}") from None
X_FRAME_OPTIONS = "DENY"

# --- API --------------------------------------------------------------------------
REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "orgs.authentication.ApiKeyAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["voiceplatform.drf.IsOrgMember"],
    "DEFAULT_PAGINATION_CLASS": "voiceplatform.drf.CursorPagination",
    "PAGE_SIZE": 50,
    "DEFAULT_FILTER_BACKENDS": ["django_filters.rest_framework.DjangoFilterBackend"],
    "DEFAULT_THROTTLE_CLASSES": ["voiceplatform.drf.ApiKeyRateThrottle"],
    "DEFAULT_THROTTLE_RATES": {"api_key": env_str("API_RATE_LIMIT", "600/min")},
    "EXCEPTION_HANDLER": "voiceplatform.drf.exception_handler",
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "UNAUTHENTICATED_USER": "django.contrib.auth.models.AnonymousUser",
}
SPECTACULAR_SETTINGS = {
    "TITLE": "Voice Platform API",
    "DESCRIPTION": "Build AI phone agents, attach numbers, place and receive calls.",
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    "COMPONENT_SPLIT_REQUEST": True,
    "SCHEMA_PATH_PREFIX": r"/api/v1",
    "ENUM_NAME_OVERRIDES": {
        "MemberRoleEnum": "orgs.models.Role.choices",
        "ApiKeyRoleEnum": "orgs.models.API_KEY_ROLES",
        "CallStatusEnum": "calls.models.Status.choices",
        "TestRunStatusEnum": "simulations.models.RunStatus.choices",
        "TransferModeEnum": [("cold", "cold"), ("warm", "warm")],
    },
}

# --- batches and schedules ---------------------------------------------------------------
# A row "dialing" for longer than this is presumed to have lost its worker and is recovered.
BATCHES_STALE_CLAIM_S = env_float("BATCHES_STALE_CLAIM_S", 120.0)
# A call the carrier never acknowledged after this long is given up (never redialled).
BATCHES_LOST_CALL_S = env_float("BATCHES_LOST_CALL_S", 600.0)
# Carrier requests in flight at once per batch dispatcher.
BATCHES_DIAL_THREADS = env_int("BATCHES_DIAL_THREADS", 4)
# A scheduled call that could not fire within this long after its due time is recorded as missed.
BATCHES_MISSED_GRACE_S = env_float("BATCHES_MISSED_GRACE_S", 300.0)
# Shifts the batches' notion of "now" (calling windows, retries): integration tests run
# real workers at a chosen callee time with it. Leave it unset in production.
BATCHES_CLOCK_OFFSET_S = env_float("BATCHES_CLOCK_OFFSET_S", 0.0)
if BATCHES_DIAL_THREADS < 1:
    raise ImproperlyConfiguredEnv(f"BATCHES_DIAL_THREADS must be at least 1, not {BATCHES_DIAL_THREADS}")

# --- provider prices --------------------------------------------------------------------
# Override or add the AI providers' prices per model (agents.pricing: list prices are
# the default), e.g. PROVIDER_PRICES='{"hume_evi": {"*": {"per_minute": 0.04}}}'.
PROVIDER_PRICES = env_json("PROVIDER_PRICES", {}, parse_price_overrides)

# --- knowledge ---------------------------------------------------------------------------
# Largest document accepted (upload, or a URL's body); bigger ones fail with "file too large".
KNOWLEDGE_MAX_UPLOAD_BYTES = env_int("KNOWLEDGE_MAX_UPLOAD_BYTES", 25 * 1024 * 1024)
# Seconds a knowledge URL source may take to fetch.
KNOWLEDGE_URL_TIMEOUT = env_float("KNOWLEDGE_URL_TIMEOUT", 20.0)
# torch intra-op threads of the local embedding model. 1 by default: workers run one
# process per core, and oversubscribed threads made a query ~8x slower under load
# (bench/knowledge_bench.py).
KNOWLEDGE_EMBED_THREADS = env_int("KNOWLEDGE_EMBED_THREADS", 1)
# Where the MyThes thesauri (Debian's mythes-de/-es/-en-us) are read from for SearchTuning.synonyms; absent files
# mean no synonyms (knowledge.thesaurus).
KNOWLEDGE_THESAURUS_DIR = os.environ.get("KNOWLEDGE_THESAURUS_DIR", "/usr/share/mythes")
# Load the local embedding model at start (web process and ingest worker, in a background thread) so the
# first search does not wait ~8 s for it; off in tests, which load it only when they embed.
KNOWLEDGE_WARM_LOCAL_MODEL = env_bool("KNOWLEDGE_WARM_LOCAL_MODEL", not TESTING)
for _name in ("KNOWLEDGE_MAX_UPLOAD_BYTES", "KNOWLEDGE_URL_TIMEOUT", "KNOWLEDGE_EMBED_THREADS"):
    if globals()[_name] <= 0:
        raise ImproperlyConfiguredEnv(f"{_name} must be positive, not {globals()[_name]}")


# --- outgoing webhooks (integrations.webhooks) -------------------------------------------
def _seconds_list(name: str, default: tuple[float, ...]) -> tuple[float, ...]:
    raw = env_list(name)
    if not raw:
        return default
    try:
        delays = tuple(float(d) for d in raw)
    except ValueError:
        raise ImproperlyConfiguredEnv(f"{name}={','.join(raw)!r} must be comma-separated seconds") from None
    if any(d < 0 for d in delays):
        raise ImproperlyConfiguredEnv(f"{name} must not contain negative delays")
    return delays


# Retry delays (seconds) after attempt 1, 2, ...; after the last one the delivery is given
# up. The default sums to ~28 h so a delivery outlives the 24 h after which its endpoint
# is disabled.
WEBHOOK_RETRY_DELAYS = _seconds_list("WEBHOOK_RETRY_DELAYS", (30, 120, 600, 1800, 3600, 7200, 14400, 28800, 43200))
# An endpoint failing continuously for this long is disabled.
WEBHOOK_DISABLE_AFTER_S = env_float("WEBHOOK_DISABLE_AFTER_S", 24 * 3600.0)
# Seconds one delivery attempt may take.
WEBHOOK_TIMEOUT_S = env_float("WEBHOOK_TIMEOUT_S", 10.0)
# A claimed delivery not finished within this is presumed orphaned by a dead worker.
WEBHOOK_LEASE_S = env_float("WEBHOOK_LEASE_S", max(WEBHOOK_TIMEOUT_S * 3, 30.0))

# --- the project's own MCP servers (integrations/mcp_servers) ---------------------------
# Where the web process reaches each of them (MCP_<NAME>_URL; unset: 127.0.0.1 on the
# server's standard port) and the caller tokens they accept (MCP_<NAME>_TOKENS, the
# first is the one the platform presents). The servers themselves are separate
# processes that read their own configuration (integrations.mcp_servers.build_from_env).
MCP_OWN_SERVER_NAMES = ("telegram", "gmail", "whatsapp", "shopify")
MCP_OWN_SERVER_URLS = {name: url for name in MCP_OWN_SERVER_NAMES
                       if (url := env_str(f"MCP_{name.upper()}_URL", ""))}
MCP_OWN_SERVER_TOKENS = {name: env_list(f"MCP_{name.upper()}_TOKENS") for name in MCP_OWN_SERVER_NAMES}

# --- operational metrics (voiceplatform/metrics.py) ----------------------------
# GET /metrics needs "Authorization: Bearer <METRICS_TOKEN>". Unset, the endpoint is a 404,
# unless METRICS_PUBLIC=true serves it without a token (only behind a private network).
METRICS_TOKEN = env_str("METRICS_TOKEN", "")
METRICS_PUBLIC = env_bool("METRICS_PUBLIC", False)
# A directory every process of this deployment writes its metric values to (prometheus_client
# multiprocess mode; the library reads the same variable); a scrape of any web process sums
# them. `make run` and docker-compose set it; empty it when the deployment starts.
PROMETHEUS_MULTIPROC_DIR = env_str("PROMETHEUS_MULTIPROC_DIR", "")
if PROMETHEUS_MULTIPROC_DIR and not os.path.isdir(PROMETHEUS_MULTIPROC_DIR):
    raise ImproperlyConfiguredEnv(f"PROMETHEUS_MULTIPROC_DIR={PROMETHEUS_MULTIPROC_DIR!r} is not a directory")

# --- traces (voiceplatform/tracing.py): OpenTelemetry, off unless configured ------------
# The standard variables: traces go out when OTEL_TRACES_EXPORTER names an exporter
# ("otlp", "console") or an OTLP endpoint is set; OTEL_SDK_DISABLED=true turns them off.
OTEL_SDK_DISABLED = env_bool("OTEL_SDK_DISABLED", False)
OTEL_TRACES_EXPORTER = env_str("OTEL_TRACES_EXPORTER", "")
OTEL_EXPORTER_OTLP_ENDPOINT = env_str("OTEL_EXPORTER_OTLP_ENDPOINT", "")
OTEL_EXPORTER_OTLP_TRACES_ENDPOINT = env_str("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "")
OTEL_SERVICE_NAME = env_str("OTEL_SERVICE_NAME", "voiceplatform")
for _exporter in env_list("OTEL_TRACES_EXPORTER"):
    if _exporter not in {"otlp", "console", "none"}:
        raise ImproperlyConfiguredEnv(f"OTEL_TRACES_EXPORTER: {_exporter!r} is not otlp, console or none")
TRACING_ENABLED = not OTEL_SDK_DISABLED and "none" not in env_list("OTEL_TRACES_EXPORTER") and bool(
    OTEL_TRACES_EXPORTER or OTEL_EXPORTER_OTLP_ENDPOINT or OTEL_EXPORTER_OTLP_TRACES_ENDPOINT)

# --- logging: structured, one JSON object a line ----------------------------------
LOG_LEVEL = env_str("LOG_LEVEL", "INFO")
# Secrets never reach a log line: every handler scrubs them (RedactSecretsFilter), and
# configure_logging also scrubs each record as it is created, for handlers configured
# elsewhere (uvicorn's, test capture). See voiceplatform/logging.py for the shapes.
LOGGING_CONFIG = "voiceplatform.logging.configure_logging"
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "filters": {"redact_secrets": {"()": "voiceplatform.logging.RedactSecretsFilter"}},
    "formatters": {"json": {"()": "voiceplatform.logging.JsonFormatter"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "json", "filters": ["redact_secrets"]}},
    "root": {"handlers": ["console"], "level": LOG_LEVEL},
    "loggers": {
        "django.db.backends": {"level": "WARNING"},
        # At DEBUG uvicorn's WebSocket protocol logs the head and tail of every frame:
        # call audio, live transcripts, the media `start` message with its stream token.
        "uvicorn.error": {"level": "INFO"},
    },
}
