"""Settings for the face-pay backend and portal.

Everything comes from the environment (django-environ). Development has safe defaults so `make run` works on a
laptop with SQLite and no servers; production (DJANGO_ENV=production) refuses to start without its secrets.
"""

import ipaddress
from pathlib import Path

import environ
from celery.schedules import crontab
from django.core.exceptions import ImproperlyConfigured
from pythonjsonlogger.core import RESERVED_ATTRS

from portal import metrics_dir

PACKAGE_DIR = Path(__file__).resolve().parent
# A source checkout keeps the project's shared templates, static files and translations at its top, next to the
# apps; an installed wheel carries them inside this package (pyproject: portal/site/). An installed project's
# working directory is where it runs from: its .env and var/ are there unless configured.
_checkout = PACKAGE_DIR.parent
IS_CHECKOUT = (_checkout / "manage.py").is_file() and (_checkout / "templates").is_dir()
BASE_DIR = _checkout if IS_CHECKOUT else Path.cwd()
ASSETS_DIR = _checkout if IS_CHECKOUT else PACKAGE_DIR / "site"

env = environ.Env()
environ.Env.read_env(BASE_DIR / ".env", overwrite=False)

# Local state of the embedded default: SQLite file, broker folders, beat schedule, collected static files.
VAR_DIR = Path(env.str("VAR_DIR", default=str(BASE_DIR / "var")))

# "development" (default) or "production". Production has no secret defaults and never runs with DEBUG on.
DJANGO_ENV = env.str("DJANGO_ENV", default="development")
if DJANGO_ENV not in ("development", "production"):
    raise ImproperlyConfigured(f"DJANGO_ENV must be development or production, not {DJANGO_ENV!r}")
IS_PRODUCTION = DJANGO_ENV == "production"

DEBUG = env.bool("DEBUG", default=not IS_PRODUCTION)
if IS_PRODUCTION and DEBUG:
    # Debug pages show local variables (a revealed device secret, a payment code) and DEBUG mounts the sandbox.
    raise ImproperlyConfigured("DEBUG must be off in production")


def _required_in_production(name: str, dev_default: str) -> str:
    """The value from the environment; in production it must be set, and not to the published development value."""
    value = env.str(name, default="")
    if IS_PRODUCTION and not value:
        raise ImproperlyConfigured(f"{name} must be set in production")
    if IS_PRODUCTION and dev_default in (part.strip() for part in value.split(",")):
        raise ImproperlyConfigured(f"{name} is the development default (public); production needs its own")
    return value or dev_default


SECRET_KEY = _required_in_production("SECRET_KEY", "dev-only-insecure-secret-key-change-me")
# Comma-separated Fernet keys; the first encrypts, all decrypt (rotation: prepend a new key, run rotate_field_keys).
# The development default is a fixed, public key: never use it for real credentials.
FIELD_ENCRYPTION_KEY = _required_in_production("FIELD_ENCRYPTION_KEY", "ZGV2LW9ubHktZmllbGQta2V5LTMyLWJ5dGVzLWxvbmc=")
DATABASE_URL = _required_in_production("DATABASE_URL", f"sqlite:///{VAR_DIR / 'db.sqlite3'}")

ALLOWED_HOSTS = env.list("ALLOWED_HOSTS", default=["*"] if not IS_PRODUCTION else [])
CSRF_TRUSTED_ORIGINS = env.list("CSRF_TRUSTED_ORIGINS", default=[])

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "rest_framework",
    "drf_spectacular",
    "drf_spectacular_sidecar",  # the schema viewer's assets, served locally (no CDN)
    "oauth2_provider",  # the merchant API's client-credentials tokens (merchant_api)
    "django_otp",  # two-factor sign-in (portal.two_factor): which device verified the session
    "django_otp.plugins.otp_totp",  # authenticator-app codes (TOTP)
    "django_otp.plugins.otp_static",  # one-time recovery codes, stored hashed (portal.two_factor)
    "portal",
    "payments",
    "sandbox",  # models always installed; URLs mounted only when SANDBOX_ENABLED allows
    "payscore",
    "members",
    "reconciliation",
    "webhooks",
    "merchant_api",
    "alerts",  # rules over payments, devices and reconciliation → the console and the team's chat robots
]

MIDDLEWARE = [
    "portal.metrics.TerminalApiMetricsMiddleware",  # counts terminal API answers (a terminal path may come this way)
    "portal.request_id.RequestIdMiddleware",  # the request id on every log line, X-Request-ID, the access line
    "django.middleware.security.SecurityMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.locale.LocaleMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django_otp.middleware.OTPMiddleware",  # request.user.is_verified(): this sign-in passed the second factor
    "django.contrib.messages.middleware.MessageMiddleware",
    "portal.two_factor.SignInStepsMiddleware",  # second factor and a forced password change come before any page
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "portal.api_errors.DependencyOutageMiddleware",  # database / Redis unreachable → 503 (JSON or a page)
]
# The terminal API's own chain under ASGI (portal.handlers): device-signed JSON uses no session, CSRF token, user or
# message, and every synchronous middleware costs each request two thread hops there.
TERMINAL_API_MIDDLEWARE = [
    "portal.metrics.TerminalApiMetricsMiddleware",  # first: counts the status code the others settled on
    "portal.request_id.RequestIdMiddleware",  # the request id on every log line, X-Request-ID, the access line
    "django.middleware.security.SecurityMiddleware",
    "django.middleware.locale.LocaleMiddleware",
    "django.middleware.common.CommonMiddleware",
    "portal.api_errors.DependencyOutageMiddleware",
]

ROOT_URLCONF = "portal.urls"
WSGI_APPLICATION = "portal.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [ASSETS_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
                "django.template.context_processors.i18n",
                "portal.context_processors.console",
            ],
        },
    },
]

DATABASES = {"default": env.db_url_config(DATABASE_URL)}
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    Path(DATABASES["default"]["NAME"]).parent.mkdir(parents=True, exist_ok=True)
    # The embedded default runs web, worker and scheduler against one file: wait for locks instead of failing.
    DATABASES["default"].setdefault("OPTIONS", {}).update({"timeout": 20, "transaction_mode": "IMMEDIATE"})
elif DB_POOL_MAX_SIZE := env.int("DB_POOL_MAX_SIZE", default=8):
    # PostgreSQL: a connection pool per process (psycopg_pool, through Django's "pool" option). Under ASGI each
    # request runs its synchronous code in a thread of its own, so per-thread persistent connections would open one
    # connection per concurrent request; with the pool a request borrows a connection and returns it when it ends
    # (or before it waits), and a process never holds more than DB_POOL_MAX_SIZE. Django requires CONN_MAX_AGE=0.
    DATABASES["default"]["CONN_MAX_AGE"] = 0
    DATABASES["default"].setdefault("OPTIONS", {})["pool"] = {
        "min_size": min(DB_POOL_MAX_SIZE, env.int("DB_POOL_MIN_SIZE", default=2)),
        "max_size": DB_POOL_MAX_SIZE,
        # How long a request waits for a free connection before it fails (a JSON 503 under /api/). While PostgreSQL
        # is down the pool has no connection to give, so this is also how soon a terminal hears 503 then.
        "timeout": env.float("DB_POOL_TIMEOUT", default=1.5),
    }
else:
    # DB_POOL_MAX_SIZE=0: no pool (e.g. behind PgBouncer). Connections are per thread, and under ASGI every request
    # has a thread of its own: a persistent one (DB_CONN_MAX_AGE > 0) would outlive its request unused.
    DATABASES["default"]["CONN_MAX_AGE"] = env.int("DB_CONN_MAX_AGE", default=0)
    DATABASES["default"]["CONN_HEALTH_CHECKS"] = True
if DATABASES["default"]["ENGINE"] != "django.db.backends.sqlite3":
    # A server that does not answer (a failover, a lost host) fails a connection attempt after this many seconds
    # instead of the operating system's minutes; a stopped one refuses at once.
    DATABASES["default"]["OPTIONS"].setdefault("connect_timeout", env.int("DB_CONNECT_TIMEOUT", default=2))
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# Per-process memory cache by default; production uses Redis (CACHE_URL=redis://...) so caches are shared.
# Production must name it: per-process caches would make the device throttle and the sweeper's dedupe per process.
CACHES = {"default": env.cache_url_config(_required_in_production("CACHE_URL", "locmemcache://"))}
if CACHES["default"]["BACKEND"] == "django.core.cache.backends.redis.RedisCache":
    CACHES["default"]["BACKEND"] = "portal.cache.RedisCache"  # reuses its Redis clients (portal/cache.py)
    # A Redis that is down or hangs (paused, failing over) fails a cache call after this long instead of never:
    # the device throttle then lets the request through, anything else answers 503 (docs/operations.md, "Outages").
    _cache_timeout = env.float("CACHE_SOCKET_TIMEOUT", default=0.5)
    CACHES["default"].setdefault("OPTIONS", {}).update(
        {"socket_connect_timeout": _cache_timeout, "socket_timeout": _cache_timeout}
    )

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator", "OPTIONS": {"min_length": 8}},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
]
# Failed sign-ins (console and admin) before further attempts are refused, and for how long (portal.forms.SignInLimit).
LOGIN_MAX_FAILURES = env.int("LOGIN_MAX_FAILURES", default=10)  # per username from one client address
LOGIN_IP_MAX_FAILURES = env.int("LOGIN_IP_MAX_FAILURES", default=30)  # per client address, any usernames
LOGIN_LOCKOUT_SECONDS = env.int("LOGIN_LOCKOUT_SECONDS", default=900)  # of those two
# Per username from all addresses together (guessing spread over many addresses): a shorter lock, so that no one
# address's failures lock a user out (it stops at LOGIN_MAX_FAILURES for a username).
LOGIN_USERNAME_MAX_FAILURES = env.int("LOGIN_USERNAME_MAX_FAILURES", default=30)
LOGIN_USERNAME_LOCKOUT_SECONDS = env.int("LOGIN_USERNAME_LOCKOUT_SECONDS", default=300)
# The reverse proxies in front of the web tier (addresses or networks): a connection from one of them is counted
# under the client address it reports in X-Forwarded-For, TRUSTED_PROXY_COUNT entries from the right (the number of
# proxies that append to it). Empty: every connection is counted under its own address (portal.client_address).
TRUSTED_PROXIES = [entry.strip() for entry in env.list("TRUSTED_PROXIES", default=[]) if entry.strip()]
TRUSTED_PROXY_COUNT = env.int("TRUSTED_PROXY_COUNT", default=1)
for _proxy in TRUSTED_PROXIES:
    try:
        ipaddress.ip_network(_proxy, strict=False)
    except ValueError:
        raise ImproperlyConfigured(f"TRUSTED_PROXIES: {_proxy!r} is not an address or network") from None
if TRUSTED_PROXY_COUNT < 1:
    raise ImproperlyConfigured("TRUSTED_PROXY_COUNT must be at least 1")
LOGIN_URL = "portal:login"
LOGIN_REDIRECT_URL = "portal:home"
LOGOUT_REDIRECT_URL = "portal:login"

LANGUAGE_CODE = "zh-hans"
LANGUAGES = [("zh-hans", "简体中文"), ("en", "English")]
LOCALE_PATHS = [ASSETS_DIR / "locale"]
TIME_ZONE = "Asia/Shanghai"  # display and upstream yyyyMMddHHmmss formats; the database stores UTC
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATICFILES_DIRS = [ASSETS_DIR / "static"]
STATIC_ROOT = env.path("STATIC_ROOT", default=str(VAR_DIR / "staticfiles"))

SESSION_COOKIE_HTTPONLY = True
SESSION_COOKIE_SECURE = IS_PRODUCTION
CSRF_COOKIE_SECURE = IS_PRODUCTION
SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https") if IS_PRODUCTION else None
# Production serves the console and the terminal API over TLS only (the proxy terminates it): browsers are told so
# for a year. Set 0 while a host is still reachable over plain HTTP for people.
SECURE_HSTS_SECONDS = env.int("SECURE_HSTS_SECONDS", default=365 * 24 * 3600 if IS_PRODUCTION else 0)
SECURE_HSTS_INCLUDE_SUBDOMAINS = env.bool("SECURE_HSTS_INCLUDE_SUBDOMAINS", default=False)
SECURE_HSTS_PRELOAD = env.bool("SECURE_HSTS_PRELOAD", default=False)
# Subdomains and the browsers' preload list are commitments about the operator's whole domain, not about this
# service: both stay off unless the operator turns them on, and Django's reminders about them (W005, W021) are
# silenced with the redirect's (W008).
SILENCED_SYSTEM_CHECKS = ["security.W005", "security.W008", "security.W021"]
# The proxy redirects plain HTTP to HTTPS; the application does not by default (SECURE_SSL_REDIRECT off). Turned on,
# it never redirects UMF's notifications, which UMF posts to an http:// backUrl (/notify/umpay/) and would not follow,
# nor /healthz and /metrics, which load balancers and Prometheus ask over plain HTTP from inside the network.
SECURE_SSL_REDIRECT = env.bool("SECURE_SSL_REDIRECT", default=False)
SECURE_REDIRECT_EXEMPT = [r"^notify/umpay/", r"^healthz$", r"^metrics$"]

REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [],
    "DEFAULT_PERMISSION_CLASSES": [],
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
    "DEFAULT_PARSER_CLASSES": ["rest_framework.parsers.JSONParser"],
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "EXCEPTION_HANDLER": "portal.api_errors.exception_handler",
    "UNAUTHENTICATED_USER": None,
    "DEFAULT_THROTTLE_RATES": {
        # Per device; a terminal makes a handful of calls per payment.
        "device": env.str("TERMINAL_THROTTLE_RATE", default="120/min"),
    },
}
# The merchant API (docs/merchant-api.md): merchants' own servers get access tokens with the OAuth2 client-credentials
# grant (django-oauth-toolkit). Client secrets are stored hashed, access tokens as SHA-256 checksums only, tokens
# travel in the Authorization header only, and every RFC 9700 gate is on, so the grants the API does not use
# (implicit, password) are refused even for an application made by hand in the admin.
OAUTH2_PROVIDER_APPLICATION_MODEL = "oauth2_provider.Application"  # named so migrations can refer to it
OAUTH2_PROVIDER = {
    "ACCESS_TOKEN_EXPIRE_SECONDS": env.int("MERCHANT_API_TOKEN_SECONDS", default=3600),
    "SCOPES": {"merchant": "The client's own merchant: payments, refunds, reconciliation differences."},
    "DEFAULT_SCOPES": ["merchant"],
    "ALLOWED_REDIRECT_URI_SCHEMES": ["https"],
    "REFRESH_TOKEN_REUSE_PROTECTION": True,
    "COMPLIANT_BCP_RFC9700_IMPLICIT_GRANT": True,
    "COMPLIANT_BCP_RFC9700_PASSWORD_GRANT": True,
    "COMPLIANT_BCP_RFC9700_PKCE_METHOD": True,
    "COMPLIANT_BCP_RFC9700_ACCESS_TOKEN_TRANSPORT": True,
    "COMPLIANT_BCP_RFC9700_AUTHZ_RESPONSE_ISS": True,
    "COMPLIANT_BCP_RFC9700_TOKEN_STORAGE": True,
    "COMPLIANT_BCP_RFC9700_REFRESH_TOKEN": True,
    "COMPLIANT_BCP_RFC9700_REDIRECT_URI_SCHEME": True,
    "COMPLIANT_BCP_RFC9700_REDIRECT_URI_MATCHING": True,
    "COMPLIANT_BCP_RFC9700_PKCE_REQUIRED": True,
}
# django-otp's admin pages never show an authenticator's secret, even to superusers.
OTP_ADMIN_HIDE_SENSITIVE_DATA = True
# Requests per API client (all its tokens together), and token requests per client address (each one checks a secret
# against its deliberately slow hash, so this bounds both guessing and the load of it).
MERCHANT_API_THROTTLE_RATE = env.str("MERCHANT_API_THROTTLE_RATE", default="600/min")
MERCHANT_API_TOKEN_THROTTLE_RATE = env.str("MERCHANT_API_TOKEN_THROTTLE_RATE", default="30/min")
# /api/schema/ and its viewers: open to anyone in development; in production only to signed-in console staff
# (the schema maps every endpoint and error code of the API).
API_SCHEMA_PUBLIC = env.bool("API_SCHEMA_PUBLIC", default=not IS_PRODUCTION)
SPECTACULAR_SETTINGS = {
    "TITLE": "Face-pay terminal and merchant API",
    "DESCRIPTION": (
        "The terminal API (tag terminal) is device-signed: every request carries "
        '`Authorization: TERMINAL-HMAC-SHA256 device="…",timestamp="…",nonce="…",signature="…"`; '
        "see the README for the signing scheme. The merchant API (tag merchant, /api/merchant/v1/) is for a "
        "merchant's own servers: an OAuth2 client-credentials token from /api/merchant/v1/oauth/token, sent as "
        "`Authorization: Bearer …` (docs/merchant-api.md)."
    ),
    "VERSION": "1",
    "SERVE_INCLUDE_SCHEMA": False,
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    "POSTPROCESSING_HOOKS": [
        "drf_spectacular.hooks.postprocess_schema_enums",
        "portal.schema.add_terminal_errors",
    ],
}

# --- Metrics (docs/metrics.md) ---
# prometheus-client's multiprocess mode: every process of a node (web workers, Celery worker, beat) writes its metrics
# into files of its own in METRICS_DIR and /metrics adds them up. One directory per node, local to it, shared by all
# its processes; emptied when the first of them starts while none runs (portal/metrics_dir.py).
# METRICS_ENABLED false (no Prometheus): nothing is recorded — no hook, middleware or Celery signal handler does
# anything, no file is written in METRICS_DIR — and /metrics answers 404.
METRICS_ENABLED = env.bool("METRICS_ENABLED", default=True)
METRICS_DIR = Path(env.str("METRICS_DIR", default=str(VAR_DIR / "metrics")))
if METRICS_ENABLED:
    metrics_dir.join(METRICS_DIR)
# Who may read /metrics: with a token, requests that send it as `Authorization: Bearer <token>`; with networks, clients
# (portal.client_address, behind TRUSTED_PROXIES) inside one of them; with both, requests that pass both. With
# neither, /metrics is open in development and answers 404 in production.
METRICS_TOKEN = env.str("METRICS_TOKEN", default="")
if METRICS_TOKEN and len(METRICS_TOKEN) < 16:
    raise ImproperlyConfigured("METRICS_TOKEN must be at least 16 characters long")
METRICS_ALLOWED_NETWORKS = [
    entry.strip() for entry in env.list("METRICS_ALLOWED_NETWORKS", default=[]) if entry.strip()
]
for _network in METRICS_ALLOWED_NETWORKS:
    try:
        ipaddress.ip_network(_network, strict=False)
    except ValueError:
        raise ImproperlyConfigured(f"METRICS_ALLOWED_NETWORKS: {_network!r} is not an address or network") from None

# --- Terminal authentication ---
TERMINAL_TIMESTAMP_WINDOW_SECONDS = env.int("TERMINAL_TIMESTAMP_WINDOW_SECONDS", default=300)
# Device health (docs/operations.md, "Device health"): every authenticated terminal request moves the device's
# last_seen_at, written at most once per DEVICE_SEEN_WRITE_SECONDS per device; a device not seen for
# DEVICE_OFFLINE_AFTER_SECONDS is offline (terminals send a heartbeat about every minute).
DEVICE_SEEN_WRITE_SECONDS = env.int("DEVICE_SEEN_WRITE_SECONDS", default=60)
DEVICE_OFFLINE_AFTER_SECONDS = env.int("DEVICE_OFFLINE_AFTER_SECONDS", default=300)
if not 0 <= DEVICE_SEEN_WRITE_SECONDS < DEVICE_OFFLINE_AFTER_SECONDS:
    raise ImproperlyConfigured(
        "DEVICE_SEEN_WRITE_SECONDS must be at least 0 and less than DEVICE_OFFLINE_AFTER_SECONDS, or a device in use "
        "would read offline"
    )

# --- Celery ---
# The embedded default uses kombu's filesystem transport: a broker that needs no server, shared by the processes
# `make run` starts on one machine. Production sets CELERY_BROKER_URL=redis://...
# Production must name it: a filesystem broker on each node would leave payments unresolved on the others.
CELERY_BROKER_URL = _required_in_production("CELERY_BROKER_URL", "filesystem://")
CELERY_BROKER_FOLDER = Path(env.str("CELERY_BROKER_FOLDER", default=str(VAR_DIR / "broker")))
CELERY_BROKER_TRANSPORT_OPTIONS = (
    {
        "data_folder_in": str(CELERY_BROKER_FOLDER / "queue"),
        "data_folder_out": str(CELERY_BROKER_FOLDER / "queue"),
        "processed_folder": str(CELERY_BROKER_FOLDER / "processed"),
        "control_folder": str(CELERY_BROKER_FOLDER / "control"),  # the exchange tables; kombu's default is ./control
        "store_processed": False,
    }
    if CELERY_BROKER_URL.startswith("filesystem")
    else {}
)
if CELERY_BROKER_URL.startswith(("redis://", "rediss://")):
    # A broker that is down or hangs fails a publish within about three BROKER_SOCKET_TIMEOUTs (one retry, which
    # also reconnects a pooled connection that a Redis restart closed) instead of redis-py's 5 s per attempt and
    # Celery's 3 retries: the request that queued the task goes on, and the sweeper re-drives the order from its
    # lease (next_check_at; portal/jobs.py). The workers wait for tasks in kombu's event loop, not on this timeout.
    _broker_timeout = env.float("BROKER_SOCKET_TIMEOUT", default=0.5)
    CELERY_BROKER_TRANSPORT_OPTIONS = {"socket_timeout": _broker_timeout, "socket_connect_timeout": _broker_timeout}
    CELERY_BROKER_CONNECTION_TIMEOUT = _broker_timeout
    CELERY_TASK_PUBLISH_RETRY_POLICY = {"max_retries": 1, "interval_start": 0, "interval_step": 0, "interval_max": 0}
CELERY_RESULT_BACKEND = None  # tasks record their outcome in the database, not in a result store
CELERY_TASK_SERIALIZER = "json"
CELERY_ACCEPT_CONTENT = ["json"]
CELERY_TASK_TIME_LIMIT = 120
CELERY_TASK_SOFT_TIME_LIMIT = 100
CELERY_TIMEZONE = TIME_ZONE
# Worker threads per `celery worker` process (the Procfile's worker runs the threads pool: the tasks wait on
# upstreams and the database, and threads share the process's connection pool).
CELERY_WORKER_CONCURRENCY = env.int("CELERY_WORKER_CONCURRENCY", default=8)
# Where `celery beat` keeps its schedule state (one beat per deployment).
CELERY_BEAT_SCHEDULE_FILENAME = env.str("CELERY_BEAT_SCHEDULE_FILE", default=str(VAR_DIR / "celerybeat-schedule"))
CELERY_BEAT_SCHEDULE = {
    # Re-drives every payment and refund whose next check is overdue: a lost task or a killed worker delays
    # resolution by at most this period, never loses it.
    "sweep-payments": {"task": "payments.tasks.sweep", "schedule": 5.0},
    # Re-queries PayScore orders whose state may have moved, so a lost notification never leaves them wrong.
    "payscore-reconcile": {"task": "payscore.tasks.reconcile", "schedule": 30.0},
    "anonymise-stale-members": {
        "task": "members.tasks.anonymise_stale_members",
        "schedule": crontab(hour=3, minute=30),
    },
    "prune-device-nonces": {
        "task": "portal.tasks.prune_device_nonces",
        "schedule": 300.0,
    },
    # Notification rows that never verified are deleted after NOTIFICATION_UNVERIFIED_RETENTION_DAYS.
    "prune-unverified-notifications-umpay": {
        "task": "payments.tasks.prune_unverified_notifications",
        "schedule": crontab(hour=4, minute=10),
    },
    "prune-unverified-notifications-payscore": {
        "task": "payscore.tasks.prune_unverified_notifications",
        "schedule": crontab(hour=4, minute=20),
    },
    # Yesterday's WeChat Pay bills, after WeChat publishes them (from about 10:00 China time; CELERY_TIMEZONE is
    # China time); each merchant's task retries until its bill is there.
    "reconciliation-fetch-bills": {
        "task": "reconciliation.tasks.fetch_bills",
        "schedule": crontab(hour=10, minute=15),
    },
}
# Reconciliation (docs/reconciliation.md): how long a bill download may take to answer, how often a bill not yet
# published is asked for again and for how many times, and how close to midnight a payment may be paid and still be
# expected on the next day's bill instead of being reported missing.
RECONCILIATION_DOWNLOAD_TIMEOUT = env.float("RECONCILIATION_DOWNLOAD_TIMEOUT", default=60.0)
RECONCILIATION_RETRY_SECONDS = env.int("RECONCILIATION_RETRY_SECONDS", default=1800)
RECONCILIATION_RETRY_MAX = env.int("RECONCILIATION_RETRY_MAX", default=24)
RECONCILIATION_CUTOFF_GRACE_SECONDS = env.int("RECONCILIATION_CUTOFF_GRACE_SECONDS", default=120)

# Webhooks to merchants' own systems (docs/webhooks.md). An event that is not answered 2xx is sent again after each
# of these waits (WeChat Pay's own notification schedule: 15 s … 6 h, about 24 h in all), then marked failed.
WEBHOOK_RETRY_SCHEDULE = [15, 15, 30, 180, 600, 1200, 1800, 1800, 1800, 3600, 10800, 10800, 10800, 21600, 21600]
WEBHOOK_TIMEOUT = env.float("WEBHOOK_TIMEOUT", default=5.0)  # seconds for one POST, connecting included
# Per worker process: POSTs in flight at once, and at most this many of them to one endpoint.
WEBHOOK_SEND_THREADS = env.int("WEBHOOK_SEND_THREADS", default=32)
WEBHOOK_ENDPOINT_CONCURRENCY = env.int("WEBHOOK_ENDPOINT_CONCURRENCY", default=4)
# How long one delivery task keeps sending before it hands over (the beat starts another every 2 s).
WEBHOOK_DRAIN_SECONDS = env.float("WEBHOOK_DRAIN_SECONDS", default=30.0)
WEBHOOK_SECRET_OVERLAP_HOURS = env.int("WEBHOOK_SECRET_OVERLAP_HOURS", default=24)
WEBHOOK_RETENTION_DAYS = env.int("WEBHOOK_RETENTION_DAYS", default=30)
# Production endpoints must use https and must not point into private networks (the workers would call them).
WEBHOOK_REQUIRE_HTTPS = env.bool("WEBHOOK_REQUIRE_HTTPS", default=IS_PRODUCTION)
WEBHOOK_ALLOW_PRIVATE_ADDRESSES = env.bool("WEBHOOK_ALLOW_PRIVATE_ADDRESSES", default=not IS_PRODUCTION)
CELERY_BEAT_SCHEDULE["webhooks-deliver"] = {"task": "webhooks.tasks.deliver", "schedule": 2.0}
CELERY_BEAT_SCHEDULE["webhooks-prune"] = {"task": "webhooks.tasks.prune", "schedule": crontab(hour=4, minute=40)}
CELERY_BEAT_SCHEDULE["merchant-api-clear-tokens"] = {
    "task": "merchant_api.tasks.clear_expired_tokens",
    "schedule": crontab(hour=4, minute=50),
}

# Alerts (docs/alerts.md): rules evaluated every ALERT_EVALUATE_SECONDS, each finding shown once in the console and
# sent to the chat robots (WeCom, DingTalk) whose routing it matches.
ALERT_EVALUATE_SECONDS = env.float("ALERT_EVALUATE_SECONDS", default=15.0)
# A store's terminal offline while it is open: only once the store has been open this long (terminals switched on at
# opening time are not alerted about), and the device offline by DEVICE_OFFLINE_AFTER_SECONDS.
ALERT_OFFLINE_AFTER_OPENING_MINUTES = env.int("ALERT_OFFLINE_AFTER_OPENING_MINUTES", default=10)
# A merchant whose payments settled in the last window are at least this many, this share of them FAILED.
ALERT_FAILURE_RATE_WINDOW_MINUTES = env.int("ALERT_FAILURE_RATE_WINDOW_MINUTES", default=10)
ALERT_FAILURE_RATE_MIN_PAYMENTS = env.int("ALERT_FAILURE_RATE_MIN_PAYMENTS", default=20)
ALERT_FAILURE_RATE_PERCENT = env.int("ALERT_FAILURE_RATE_PERCENT", default=30)
# Calls to a channel that failed or went unanswered (TRANSIENT / UNKNOWN outcomes), per provider and channel.
ALERT_UPSTREAM_ERRORS_WINDOW_MINUTES = env.int("ALERT_UPSTREAM_ERRORS_WINDOW_MINUTES", default=5)
ALERT_UPSTREAM_ERRORS_THRESHOLD = env.int("ALERT_UPSTREAM_ERRORS_THRESHOLD", default=10)
# Reconciliation differences of bill days this recent are alerted (one alert per merchant, day and bill).
ALERT_RECONCILIATION_DAYS = env.int("ALERT_RECONCILIATION_DAYS", default=7)
# Chat robots: seconds for one POST, messages per robot per minute (WeCom's and DingTalk's limit is 20; more are
# sent as one summary), waits before each retry of an unanswered or 5xx-answered message (then it is failed), the
# quiet period new robots start with (minutes), and the address rules (like webhooks': https and public addresses in
# production).
ALERT_ROBOT_TIMEOUT = env.float("ALERT_ROBOT_TIMEOUT", default=5.0)
ALERT_ROBOT_MESSAGES_PER_MINUTE = env.int("ALERT_ROBOT_MESSAGES_PER_MINUTE", default=20)
ALERT_ROBOT_RETRY_SCHEDULE = [15, 60, 300]
ALERT_DEFAULT_QUIET_MINUTES = env.int("ALERT_DEFAULT_QUIET_MINUTES", default=30)
ALERT_ROBOT_REQUIRE_HTTPS = env.bool("ALERT_ROBOT_REQUIRE_HTTPS", default=IS_PRODUCTION)
ALERT_ROBOT_ALLOW_PRIVATE_ADDRESSES = env.bool("ALERT_ROBOT_ALLOW_PRIVATE_ADDRESSES", default=not IS_PRODUCTION)
ALERT_RETENTION_DAYS = env.int("ALERT_RETENTION_DAYS", default=90)
if ALERT_ROBOT_MESSAGES_PER_MINUTE < 2:
    raise ImproperlyConfigured("ALERT_ROBOT_MESSAGES_PER_MINUTE must be at least 2 (one alert and one summary)")
CELERY_BEAT_SCHEDULE["alerts-evaluate"] = {"task": "alerts.tasks.evaluate", "schedule": ALERT_EVALUATE_SECONDS}
CELERY_BEAT_SCHEDULE["alerts-prune"] = {"task": "alerts.tasks.prune", "schedule": crontab(hour=5, minute=0)}

# --- Upstreams ---
# The built-in stand-in for WeChat Pay and UMF. Never on by accident in production: with DEBUG off it mounts only
# when SANDBOX_ENABLED=force, and any other "on" value stops the start-up.
SANDBOX_ENABLED = env.str("SANDBOX_ENABLED", default="true" if DEBUG else "false").lower()
if SANDBOX_ENABLED in ("true", "1", "yes") and not DEBUG:
    raise ImproperlyConfigured("SANDBOX_ENABLED is on while DEBUG is off; set SANDBOX_ENABLED=force if meant.")
SANDBOX_MOUNTED = SANDBOX_ENABLED in ("true", "1", "yes", "force")
# Where WeChat and UMF send notifications (PayScore notify_url, UMF backUrl): production must name it.
PUBLIC_BASE_URL = _required_in_production("PUBLIC_BASE_URL", "http://127.0.0.1:8000")
_sandbox_base = PUBLIC_BASE_URL.rstrip("/") + "/sandbox"
# UMF's backUrl must start with http:// (UMF's rule). With an https-only PUBLIC_BASE_URL none is sent — notifications
# only bring a query forward; the scheduled queries settle every payment — unless a plain-HTTP address that reaches
# /notify/umpay/ is configured here.
_umpay_back_default = PUBLIC_BASE_URL.rstrip("/") + "/notify/umpay/" if PUBLIC_BASE_URL.startswith("http://") else ""
UMPAY_BACK_URL = env.str("UMPAY_BACK_URL", default=_umpay_back_default)
if UMPAY_BACK_URL and not UMPAY_BACK_URL.startswith("http://"):
    raise ImproperlyConfigured("UMPAY_BACK_URL must start with http:// (UMF accepts no other notification address)")
if SANDBOX_MOUNTED:
    # The sandbox's notifications (PayScore, UMF backUrl) go out with retries like the real services'.
    CELERY_BEAT_SCHEDULE["sandbox-notifications"] = {
        "task": "sandbox.tasks.deliver_notifications",
        "schedule": 5.0,
    }
_sandbox_on = SANDBOX_MOUNTED
WECHATPAY_API_BASE = env.str(
    "WECHATPAY_API_BASE", default=f"{_sandbox_base}/wechatpay" if _sandbox_on else "https://api.mch.weixin.qq.com"
)
WECHATPAY_FACE_API_BASE = env.str(
    "WECHATPAY_FACE_API_BASE",
    default=f"{_sandbox_base}/wechatpay-face" if _sandbox_on else "https://payapp.weixin.qq.com",
)
UMPAY_API_BASE = env.str(
    "UMPAY_API_BASE",
    default=f"{_sandbox_base}/umpay" if _sandbox_on else "http://provider.umfintech.com/entry-provider-plat-client",
)
# WeChat Pay platform certificates (docs/platform-keys.md): downloaded this often for every credentials row that uses
# them (WeChat asks for less than 12 h, and publishes a new certificate before it signs with it), and a warning once
# the newest expires within PLATFORM_CERTIFICATE_WARN_DAYS or refreshing has failed for two periods. The beat looks
# every PLATFORM_CERTIFICATE_CHECK_SECONDS for rows that are due: never downloaded (new credentials get their
# certificates within minutes, no one presses a button), last downloaded a period ago, or failing (tried again).
PLATFORM_CERTIFICATE_REFRESH_SECONDS = env.int("PLATFORM_CERTIFICATE_REFRESH_SECONDS", default=6 * 3600)
PLATFORM_CERTIFICATE_CHECK_SECONDS = env.int("PLATFORM_CERTIFICATE_CHECK_SECONDS", default=300)
PLATFORM_CERTIFICATE_WARN_DAYS = env.int("PLATFORM_CERTIFICATE_WARN_DAYS", default=30)
CELERY_BEAT_SCHEDULE["payments-refresh-platform-certificates"] = {
    "task": "payments.tasks.refresh_platform_certificates",
    "schedule": float(PLATFORM_CERTIFICATE_CHECK_SECONDS),
}

# --- Payment lifecycle (seconds; docs/architecture.md, "Payment states") ---
UPSTREAM_CONNECT_TIMEOUT = env.float("UPSTREAM_CONNECT_TIMEOUT", default=3.0)
UPSTREAM_READ_TIMEOUT = env.float("UPSTREAM_READ_TIMEOUT", default=10.0)  # queries, reverses, refunds
PAYMENT_CALL_TIMEOUT = env.float("PAYMENT_CALL_TIMEOUT", default=10.0)  # micropay: past this the outcome is unknown
PAYMENT_WAIT_SECONDS = env.float("PAYMENT_WAIT_SECONDS", default=5.0)  # POST payments waits this long, then PAYING
# WeChat closes a quick-pay order the user never paid this long after the call; a reverse refused with USERPAYING is
# asked again just after it.
PAYMENT_UNPAID_CLOSE_SECONDS = env.float("PAYMENT_UNPAID_CLOSE_SECONDS", default=45.0)
PAYMENT_LONG_POLL_MAX_SECONDS = env.float("PAYMENT_LONG_POLL_MAX_SECONDS", default=20.0)  # cap of GET ?wait=
# Without PostgreSQL's LISTEN (the embedded SQLite default, or while the listener reconnects) a waiting request
# re-reads its payment this often: changes committed by another process are not announced to it (portal.wakeup).
WAKEUP_LOCAL_RECHECK_SECONDS = env.float("WAKEUP_LOCAL_RECHECK_SECONDS", default=1.0)
# Calls to one channel (WeChat Pay, UMF) that requests of one web process may have open at once; past it a
# terminal gets 503 CHANNEL_BUSY with Retry-After before anything is created or sent (payments.channels). Size it
# above payments per second per process × the channel's usual latency: 64 refuses only when calls pile up, e.g.
# 12 payments/s per process each waiting 5 s.
UPSTREAM_REQUEST_CONCURRENCY = env.int("UPSTREAM_REQUEST_CONCURRENCY", default=64)
PAYMENT_QUERY_FIRST_DELAY = env.float("PAYMENT_QUERY_FIRST_DELAY", default=5.0)  # USERPAYING: first query after
PAYMENT_QUERY_INTERVAL = env.float("PAYMENT_QUERY_INTERVAL", default=5.0)
PAYMENT_QUERY_WINDOW = min(env.float("PAYMENT_QUERY_WINDOW", default=30.0), 45.0)  # WeChat revokes after 45 s
PAYMENT_REVERSE_NOT_BEFORE = env.float("PAYMENT_REVERSE_NOT_BEFORE", default=15.0)  # after the payment call
PAYMENT_REVERSE_MAX_ATTEMPTS = env.int("PAYMENT_REVERSE_MAX_ATTEMPTS", default=8)
SWEEP_REDISPATCH_SECONDS = env.int("SWEEP_REDISPATCH_SECONDS", default=30)  # sweeper: re-send an order ≤ this often
PAYMENT_REVERSE_WINDOW_DAYS = env.int("PAYMENT_REVERSE_WINDOW_DAYS", default=7)  # WeChat: reverse only ≤7 days
REFUND_MAX_ATTEMPTS = env.int("REFUND_MAX_ATTEMPTS", default=40)
REFUND_RETRY_MAX_SECONDS = env.float("REFUND_RETRY_MAX_SECONDS", default=600.0)  # cap of the 5 s × 2ⁿ backoff
PAYMENT_CREATE_IP = env.str("PAYMENT_CREATE_IP", default="127.0.0.1")  # spbill_create_ip sent to WeChat
AUTHINFO_CACHE_MARGIN_SECONDS = env.int("AUTHINFO_CACHE_MARGIN_SECONDS", default=120)

# --- Members (刷脸会员) ---
MEMBER_RETENTION_DAYS = env.int("MEMBER_RETENTION_DAYS", default=365)  # unseen this long → personal data anonymised
# Channel notifications that never verified (UMF, PayScore) are kept this long for support, then deleted.
NOTIFICATION_UNVERIFIED_RETENTION_DAYS = env.int("NOTIFICATION_UNVERIFIED_RETENTION_DAYS", default=7)

# --- PayScore (seconds) ---
PAYSCORE_REFRESH_SECONDS = env.float("PAYSCORE_REFRESH_SECONDS", default=10)  # GET re-queries WeChat when older
PAYSCORE_RECHECK_SECONDS = env.float("PAYSCORE_RECHECK_SECONDS", default=5)  # first re-query after a lost answer
PAYSCORE_RECONCILE_PAYING_SECONDS = env.float("PAYSCORE_RECONCILE_PAYING_SECONDS", default=60)  # completed, unpaid
PAYSCORE_RECONCILE_CREATED_SECONDS = env.float("PAYSCORE_RECONCILE_CREATED_SECONDS", default=600)  # CREATED orders
PAYSCORE_EXPIRY_DAYS = 30  # WeChat expires CREATED orders after 30 days

# --- Sandbox timing (seconds; see sandbox/SCENARIOS.md) ---
SANDBOX_SETTLE_SECONDS = env.float("SANDBOX_SETTLE_SECONDS", default=10)  # USERPAYING → paid/failed after this
SANDBOX_REFUND_SECONDS = env.float("SANDBOX_REFUND_SECONDS", default=5)  # refund PROCESSING → SUCCESS after this
SANDBOX_TIMEOUT_SLEEP_SECONDS = env.float("SANDBOX_TIMEOUT_SLEEP_SECONDS", default=15)  # > the 10 s read timeout
# Chaos mode for fault runs: "<fraction>[:kind,kind…]" of money calls misbehave (sandbox/chaos.py). Off.
SANDBOX_CHAOS = env.str("SANDBOX_CHAOS", default="")
SANDBOX_CHAOS_DELAY_SECONDS = env.float("SANDBOX_CHAOS_DELAY_SECONDS", default=2)  # longest chaos "delay"
# The sandbox's bill of today, up to now, instead of "Bill Creating" (the fault run reconciles its own day). Off.
SANDBOX_BILLS_UNTIL_NOW = env.bool("SANDBOX_BILLS_UNTIL_NOW", default=False)
# In the embedded demo the sandbox's PayScore users confirm and pay by themselves (tests choose per order).
SANDBOX_PAYSCORE_DEFAULT_SCENARIO = env.str("SANDBOX_PAYSCORE_DEFAULT_SCENARIO", default="")

# --- Logs (docs/operations.md, "Logs") ---
# To stderr, from every process (web, worker, beat: portal/celery.py hands Celery's logging to this), each line with
# the request id it was written under (portal/request_id.py). LOG_FORMAT json: one JSON object per line (production);
# text: human-readable lines (development and the embedded default).
LOG_FORMAT = env.str("LOG_FORMAT", default="json" if IS_PRODUCTION else "text")
if LOG_FORMAT not in ("json", "text"):
    raise ImproperlyConfigured(f"LOG_FORMAT must be json or text, not {LOG_FORMAT!r}")
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "filters": {"request_context": {"()": "portal.request_id.RequestContextFilter"}},
    "formatters": {
        "text": {
            "()": "logging.Formatter",
            "fmt": "%(asctime)s %(levelname)s %(name)s [%(request_id)s] %(message)s",
            "defaults": {"request_id": "-"},
        },
        "json": {
            "()": "pythonjsonlogger.json.JsonFormatter",
            "fmt": "%(levelname)s %(name)s %(message)s",
            "rename_fields": {"levelname": "level", "name": "logger"},
            "timestamp": "time",
            # Not the `request` Django's own lines carry (their id comes from it): its text holds the query string.
            "reserved_attrs": [*RESERVED_ATTRS, "request"],
            "json_ensure_ascii": False,  # Chinese text as it is, as in the text format
        },
    },
    "handlers": {
        "console": {"class": "logging.StreamHandler", "formatter": LOG_FORMAT, "filters": ["request_context"]}
    },
    "root": {"handlers": ["console"], "level": env.str("LOG_LEVEL", default="INFO")},
    "loggers": {
        # A task's run is logged once, by portal.request_id (with its request id); Celery's failures still show.
        "celery.app.trace": {"level": "WARNING"},
        "django.db.backends": {"level": "WARNING"},
        # httpx logs every request URL at INFO, and a facemch lookup's URL carries the user's face_sid.
        "httpx": {"level": "WARNING"},
        "httpcore": {"level": "WARNING"},
    },
}
