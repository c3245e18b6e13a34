"""One settings module, configured from the environment (see `.env.example`).

Defaults give an embedded set-up (SQLite file, Celery tasks run in-process) so a fresh clone
works with no services; `DATABASE_URL` and `REDIS_URL` switch the same code to PostgreSQL and
real Celery workers.
"""

from __future__ import annotations

import os
from pathlib import Path

import dj_database_url
from django.core.exceptions import ImproperlyConfigured

BASE_DIR = Path(__file__).resolve().parent.parent


def env_bool(name: str, default: bool) -> bool:
    raw = os.environ.get(name)
    if raw is None or raw == "":
        return default
    value = raw.strip().lower()
    if value in {"1", "true", "yes", "on"}:
        return True
    if value in {"0", "false", "no", "off"}:
        return False
    raise ImproperlyConfigured(f"{name}={raw!r} is not a boolean (use 1/0, true/false)")


def env_int(name: str, default: int) -> int:
    raw = os.environ.get(name)
    if raw is None or raw == "":
        return default
    try:
        return int(raw)
    except ValueError as exc:
        raise ImproperlyConfigured(f"{name}={raw!r} is not an integer") from exc


def env_list(name: str, default: list[str]) -> list[str]:
    raw = os.environ.get(name)
    if raw is None or raw.strip() == "":
        return default
    return [part.strip() for part in raw.split(",") if part.strip()]


def env_margins(name: str, default: dict[str, float]) -> dict[str, float]:
    """`metric:margin,metric:margin` (e.g. `corpus_bleu:2,sentence_bleu:2`) as a dict."""
    margins = {}
    for part in env_list(name, []):
        metric, _, margin = part.partition(":")
        try:
            margins[metric.strip()] = float(margin)
        except ValueError as exc:
            raise ImproperlyConfigured(f"{name}: {part!r} is not metric:margin") from exc
    return margins if os.environ.get(name, "").strip() else default


DEBUG = env_bool("DEBUG", False)

SECRET_KEY = os.environ.get("SECRET_KEY", "")
if not SECRET_KEY:
    if not DEBUG:
        raise ImproperlyConfigured("SECRET_KEY must be set when DEBUG is off")
    # Only for local development (DEBUG on): never used in production.
    SECRET_KEY = "dev-only-insecure-key-change-me-0123456789abcdefghijklmnopqrstuvwxyz"  # noqa: S105

ALLOWED_HOSTS = env_list("ALLOWED_HOSTS", ["127.0.0.1", "localhost", "testserver"])
CSRF_TRUSTED_ORIGINS = env_list("CSRF_TRUSTED_ORIGINS", [])

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "rest_framework",
    "rest_framework.authtoken",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "annotations",
    "scoring",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "evalplatform.middleware.RequestGuardMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

if not DEBUG:
    # Serves collected static files in production; with DEBUG, runserver serves them itself.
    MIDDLEWARE.insert(1, "whitenoise.middleware.WhiteNoiseMiddleware")

ROOT_URLCONF = "evalplatform.urls"
WSGI_APPLICATION = "evalplatform.wsgi.application"

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
                "annotations.context_processors.role_flags",
            ],
        },
    },
]

DATABASE_URL = os.environ.get("DATABASE_URL") or f"sqlite:///{BASE_DIR / 'db.sqlite3'}"
DATABASES = {
    "default": dj_database_url.parse(DATABASE_URL, conn_max_age=env_int("DB_CONN_MAX_AGE", 60))
}
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # IMMEDIATE transactions take SQLite's write lock up front, so concurrent queue requests
    # wait for each other instead of failing with "database is locked" half-way through.
    DATABASES["default"]["OPTIONS"] = {"transaction_mode": "IMMEDIATE", "timeout": 20}
    DATABASES["default"]["CONN_MAX_AGE"] = 0

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# Checked on every way a password is set (`annotations.services.password_check`).
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {
        "NAME": "django.contrib.auth.password_validation.MinimumLengthValidator",
        "OPTIONS": {"min_length": env_int("PASSWORD_MIN_LENGTH", 8)},
    },
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = BASE_DIR / "staticfiles"
STATICFILES_DIRS = [BASE_DIR / "static"]
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {
        "BACKEND": (
            "django.contrib.staticfiles.storage.StaticFilesStorage"
            if DEBUG
            else "whitenoise.storage.CompressedManifestStaticFilesStorage"
        )
    },
}
# Where background exports and reports are written (never built inside a request).
EXPORT_ROOT = Path(os.environ.get("EXPORT_ROOT", BASE_DIR / "exports"))

LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "home"
LOGOUT_REDIRECT_URL = "login"

# --- Security: strict by default outside DEBUG (python manage.py check --deploy stays clean).
SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
SECURE_SSL_REDIRECT = env_bool("SECURE_SSL_REDIRECT", not DEBUG)
SESSION_COOKIE_SECURE = env_bool("SESSION_COOKIE_SECURE", not DEBUG)
CSRF_COOKIE_SECURE = env_bool("CSRF_COOKIE_SECURE", not DEBUG)
SECURE_HSTS_SECONDS = env_int("SECURE_HSTS_SECONDS", 0 if DEBUG else 31_536_000)
SECURE_HSTS_INCLUDE_SUBDOMAINS = env_bool("SECURE_HSTS_INCLUDE_SUBDOMAINS", not DEBUG)
SECURE_HSTS_PRELOAD = env_bool("SECURE_HSTS_PRELOAD", not DEBUG)
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
X_FRAME_OPTIONS = "DENY"
SESSION_COOKIE_HTTPONLY = True

# --- REST API
REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "rest_framework.authentication.SessionAuthentication",
        "annotations.authentication.TokenWithRolesAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "EXCEPTION_HANDLER": "evalplatform.api_errors.exception_handler",
    "DEFAULT_PARSER_CLASSES": [
        "evalplatform.parsers.SafeJSONParser",
        "rest_framework.parsers.FormParser",
        "rest_framework.parsers.MultiPartParser",
    ],
    "UNAUTHENTICATED_USER": "django.contrib.auth.models.AnonymousUser",
    # `?format=csv` selects an export format in our views, not a DRF renderer.
    "URL_FORMAT_OVERRIDE": None,
    # Client address for the sign-in throttles: 0 trusts no X-Forwarded-For (else anyone could
    # pick their own address); behind N reverse proxies set NUM_PROXIES=N.
    "NUM_PROXIES": env_int("NUM_PROXIES", 0),
}
# Sign-in throttles (annotations.throttles), per client IP and per username; DRF rate strings.
LOGIN_THROTTLE_RATES = {
    "login_ip": os.environ.get("LOGIN_RATE_PER_IP", "30/min"),
    "login_username": os.environ.get("LOGIN_RATE_PER_USERNAME", "10/min"),
}
# API tokens stop working this many hours after they were issued (0: never).
TOKEN_TTL_HOURS = env_int("TOKEN_TTL_HOURS", 24 * 7)
SPECTACULAR_SETTINGS = {
    "TITLE": "evalplatform API",
    "DESCRIPTION": "Blind A/B human evaluation of fine-tuned LLMs, with automated pre-scoring.",
    "VERSION": "1",
    "SERVE_INCLUDE_SCHEMA": False,
    "SERVE_PERMISSIONS": ["rest_framework.permissions.IsAuthenticated"],
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
}

# --- Celery: JSON only; without REDIS_URL tasks run eagerly in this process.
REDIS_URL = os.environ.get("REDIS_URL", "")
CELERY_BROKER_URL = REDIS_URL or "memory://"
CELERY_RESULT_BACKEND = REDIS_URL or None
CELERY_TASK_ALWAYS_EAGER = not REDIS_URL
CELERY_TASK_EAGER_PROPAGATES = True
CELERY_ACCEPT_CONTENT = ["json"]
CELERY_TASK_SERIALIZER = "json"
CELERY_RESULT_SERIALIZER = "json"
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_SOFT_TIME_LIMIT = env_int("CELERY_TASK_SOFT_TIME_LIMIT", 25 * 60)
CELERY_TASK_TIME_LIMIT = env_int("CELERY_TASK_TIME_LIMIT", 30 * 60)
CELERY_TASK_DEFAULT_QUEUE = "cpu"
# With acks_late on Redis, an unacknowledged task is redelivered after the visibility timeout,
# so it must exceed the longest task time limit or long tasks would run twice.
CELERY_BROKER_TRANSPORT_OPTIONS = {
    "visibility_timeout": env_int("CELERY_VISIBILITY_TIMEOUT", CELERY_TASK_TIME_LIMIT + 10 * 60)
}
# Kombu looks for overdue unacknowledged tasks about every 100 s (its restore interval times its
# throttle): nothing next to a 40-minute visibility timeout, but a short one (a test's) needs
# the sweep as often, e.g. CELERY_UNACKED_RESTORE_SECONDS=1.
if unacked_restore_seconds := env_int("CELERY_UNACKED_RESTORE_SECONDS", 0):
    CELERY_BROKER_TRANSPORT_OPTIONS |= {
        "unacked_restore_interval": unacked_restore_seconds,
        "unacked_restore_throttle": 1,
    }
CELERY_TASK_ROUTES = {"scoring.gpu.*": {"queue": "gpu"}}

if REDIS_URL:
    CACHES = {
        "default": {"BACKEND": "django.core.cache.backends.redis.RedisCache", "LOCATION": REDIS_URL}
    }
else:
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}

# --- Rating queue
LEASE_MINUTES = env_int("LEASE_MINUTES", 10)
# A rater may hold this many live leases per study: the current pair plus the prefetched one.
MAX_LEASES_PER_RATER = env_int("MAX_LEASES_PER_RATER", 2)

# --- Study access (rules in annotations.permissions)
# Researchers who neither own a study nor collaborate on it may read it (never change it).
STUDIES_READABLE_BY_ALL_RESEARCHERS = env_bool("STUDIES_READABLE_BY_ALL_RESEARCHERS", True)

# --- Request and import limits (413 above them; evalplatform.middleware)
DATA_UPLOAD_MAX_MEMORY_SIZE = env_int("DATA_UPLOAD_MAX_MEMORY_SIZE", 50 * 1024 * 1024)
IMPORT_MAX_UPLOAD_BYTES = env_int("IMPORT_MAX_UPLOAD_BYTES", 100 * 1024 * 1024)

# --- Import limits
IMPORT_MAX_LINE_BYTES = env_int("IMPORT_MAX_LINE_BYTES", 1_000_000)
IMPORT_MAX_ERRORS = env_int("IMPORT_MAX_ERRORS", 50)

# --- Judge (filled by the pre-scoring work; read per study, these are the defaults)
JUDGE_BACKEND = os.environ.get("JUDGE_BACKEND", "")
JUDGE_MODEL = os.environ.get("JUDGE_MODEL", "")
JUDGE_BASE_URL = os.environ.get("JUDGE_BASE_URL", "")
JUDGE_API_KEY = os.environ.get("JUDGE_API_KEY", "")


def env_judge_endpoints() -> dict[str, dict[str, str]]:
    """`JUDGE_ENDPOINTS=vllm=http://vllm:8000/v1,openai=https://api.openai.com/v1`: the judge
    endpoints a study may name; each one's key from `JUDGE_ENDPOINT_<NAME>_API_KEY`. The legacy
    `JUDGE_BASE_URL` / `JUDGE_API_KEY` pair is the endpoint named `default`."""
    endpoints: dict[str, dict[str, str]] = {}
    if JUDGE_BASE_URL:
        endpoints["default"] = {"base_url": JUDGE_BASE_URL, "api_key": JUDGE_API_KEY}
    for entry in env_list("JUDGE_ENDPOINTS", []):
        name, sep, url = entry.partition("=")
        name, url = name.strip(), url.strip()
        if not sep or not name or not url.startswith(("http://", "https://")):
            raise ImproperlyConfigured(f"JUDGE_ENDPOINTS entry {entry!r} is not name=http(s)://...")
        variable = "JUDGE_ENDPOINT_" + "".join(c if c.isalnum() else "_" for c in name).upper()
        endpoints[name] = {"base_url": url, "api_key": os.environ.get(variable + "_API_KEY", "")}
    return endpoints


JUDGE_ENDPOINTS = env_judge_endpoints()
# Base URLs a researcher may type into a study's judge settings; they never receive a key.
JUDGE_ALLOWED_BASE_URLS = env_list("JUDGE_ALLOWED_BASE_URLS", [])

# --- Release policy defaults (each study gets a copy an admin may edit)
RELEASE_POLICY_DEFAULTS = {
    "min_human_votes": env_int("RELEASE_MIN_HUMAN_VOTES", 100),
    "min_krippendorff_alpha": float(os.environ.get("RELEASE_MIN_ALPHA", "0.667")),
    "require_win_ci_above_half": env_bool("RELEASE_REQUIRE_WIN_CI_ABOVE_HALF", True),
    "max_forgetting_perplexity_increase": float(os.environ.get("RELEASE_MAX_PPL_INCREASE", "0.10")),
    "max_forgetting_metric_drop": float(os.environ.get("RELEASE_MAX_METRIC_DROP", "0.02")),
    # A margin per metric, in its units, where the one above does not fit its scale: sacrebleu's
    # BLEU is on 0-100, where 0.02 would ask the impossible. Other metrics use the one above.
    "forgetting_metric_margins": env_margins(
        "RELEASE_METRIC_MARGINS", {"corpus_bleu": 2.0, "sentence_bleu": 2.0}
    ),
    "forbid_overfitting": env_bool("RELEASE_FORBID_OVERFITTING", True),
    "min_judge_human_agreement": float(os.environ.get("RELEASE_MIN_JUDGE_AGREEMENT", "0.6")),
    "require_three_metric_kinds": env_bool("RELEASE_REQUIRE_THREE_METRIC_KINDS", True),
    "required_approvals": env_int("RELEASE_REQUIRED_APPROVALS", 1),
    # Which win-rate interval the gate reads: "item" (items like these, this panel) or "panel"
    # (items and raters like these).
    "win_rate_interval": os.environ.get("RELEASE_WIN_RATE_INTERVAL", "item"),
}
# Evidence checks after a vote are batched per study over this many seconds.
EVIDENCE_CHECK_DEBOUNCE_SECONDS = env_int("EVIDENCE_CHECK_DEBOUNCE_SECONDS", 30)
WEBHOOK_TIMEOUT_SECONDS = env_int("WEBHOOK_TIMEOUT_SECONDS", 10)
# Hosts a webhook may reach even though they resolve to a loopback or private address.
WEBHOOK_ALLOWED_HOSTS = env_list("WEBHOOK_ALLOWED_HOSTS", [])

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "root": {"handlers": ["console"], "level": os.environ.get("LOG_LEVEL", "INFO")},
}

# --- Recovery, bounded connections and the code sandbox (issue 11; kept in one block) ---------
# The placeholder from .env.example (and the old compose default) is public: refuse it.
if not DEBUG and SECRET_KEY.startswith("change-me"):
    raise ImproperlyConfigured(
        "SECRET_KEY is still the placeholder from .env.example; set a long random value, e.g. "
        "python -c 'import secrets; print(secrets.token_urlsafe(50))'"
    )
# A running scoring chunk holds a lease its worker renews every third of it; Celery beat runs
# the sweep that enqueues again a chunk whose lease ran out (its worker died). A dead worker's
# chunk is running again within CHUNK_LEASE_SECONDS + CHUNK_SWEEP_SECONDS of a live worker.
CHUNK_LEASE_SECONDS = env_int("CHUNK_LEASE_SECONDS", 60)
CHUNK_SWEEP_SECONDS = env_int("CHUNK_SWEEP_SECONDS", 30)
CELERY_BEAT_SCHEDULE = {
    "scoring-sweep-chunks": {"task": "scoring.sweep_chunks", "schedule": float(CHUNK_SWEEP_SECONDS)}
}
# Model-written code runs on its own queue, served by the `worker-sandbox` service.
CELERY_TASK_ROUTES = {**CELERY_TASK_ROUTES, "scoring.sandbox.*": {"queue": "sandbox"}}
# Only an admin may let code execution run without the bubblewrap sandbox (trusted code only).
CODE_EXEC_ALLOW_UNSANDBOXED = env_bool("CODE_EXEC_ALLOW_UNSANDBOXED", False)
# Seconds a web request answers 503 with `Retry-After` while the database is unreachable.
DB_UNAVAILABLE_RETRY_AFTER = env_int("DB_UNAVAILABLE_RETRY_AFTER", 2)
MIDDLEWARE.insert(1, "evalplatform.db_errors.DatabaseUnavailableMiddleware")

# PostgreSQL: one bounded connection pool per process (Django's built-in psycopg 3 pool), so
# the number of connections is processes x DB_POOL_MAX_SIZE whatever the server's thread count
# (runserver starts a thread, hence a persistent connection, per request). DB_POOL_MAX_SIZE=0
# turns the pool off (then DB_CONN_MAX_AGE applies, e.g. behind PgBouncer).
DB_POOL_MAX_SIZE = env_int("DB_POOL_MAX_SIZE", 10)
if DATABASES["default"]["ENGINE"] == "django.db.backends.postgresql" and DB_POOL_MAX_SIZE > 0:
    import importlib.util

    if importlib.util.find_spec("psycopg_pool") is not None:
        DATABASES["default"]["CONN_MAX_AGE"] = 0  # Django refuses persistent connections + pool
        # The pool checks a connection before handing it out, so after a database restart it
        # reconnects instead of giving each request a dead connection.
        DATABASES["default"]["CONN_HEALTH_CHECKS"] = True
        DATABASES["default"].setdefault("OPTIONS", {})["pool"] = {
            "min_size": min(env_int("DB_POOL_MIN_SIZE", 1), DB_POOL_MAX_SIZE),
            "max_size": DB_POOL_MAX_SIZE,
            # A request waits this long for a free connection, then gets a 503 (not a 500).
            "timeout": env_int("DB_POOL_TIMEOUT", 10),
        }
    elif not DEBUG:
        raise ImproperlyConfigured(
            "DB_POOL_MAX_SIZE needs psycopg_pool: install 'psycopg[binary,pool]' "
            "(pip install -e .), or set DB_POOL_MAX_SIZE=0 to run without a pool"
        )
    else:
        import warnings

        warnings.warn(
            "psycopg_pool is not installed: no connection pool, connections close after each "
            "request (install 'psycopg[binary,pool]')",
            stacklevel=1,
        )
        DATABASES["default"]["CONN_MAX_AGE"] = 0
