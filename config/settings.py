"""Settings for Tenantry, read from the environment (django-environ).

Nothing secret has a production default: with ``DJANGO_DEBUG`` off, ``SECRET_KEY`` and
``DATABASE_URL`` must be set. ``make run`` / ``make test`` (``config.devstack``) set them for
local use, starting embedded PostgreSQL and Redis when no servers are named.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import environ

BASE_DIR = Path(__file__).resolve().parent.parent

env = environ.Env()

DEBUG: bool = env.bool("DJANGO_DEBUG", default=False)
TESTING: bool = env.bool("TENANTRY_TESTING", default=False)

if DEBUG or TESTING:
    SECRET_KEY: str = env.str("SECRET_KEY", default="insecure-dev-only-key-not-for-production")
else:
    SECRET_KEY = env.str("SECRET_KEY")

TENANTRY_BASE_DOMAIN: str = env.str("TENANTRY_BASE_DOMAIN", default="localhost").lower()
# Hosts that serve the public schema (signup, admin, health) besides the base domain itself.
TENANTRY_PUBLIC_HOSTS: list[str] = [
    h.lower()
    for h in env.list("TENANTRY_PUBLIC_HOSTS", default=["127.0.0.1", "localhost", "[::1]"])
]
# Unknown hosts are answered 404 by the tenant router, so host validation happens there.
ALLOWED_HOSTS: list[str] = env.list("ALLOWED_HOSTS", default=["*"])
CSRF_TRUSTED_ORIGINS: list[str] = env.list("CSRF_TRUSTED_ORIGINS", default=[])

# --- Applications -------------------------------------------------------------------------

SHARED_APPS = [
    "tenants",  # before django_tenants so its migrate/migrate_schemas commands win
    "django_tenants",
    "core",
    "tenants.webhooks",
    "django.contrib.contenttypes",
    "django.contrib.auth",
    "django.contrib.admin",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "rest_framework",
    "drf_spectacular",
    "django_celery_beat",
    "djstripe",
    "subscriptions",
    "billing",
    "usage",
]
TENANT_APPS = [
    "django.contrib.contenttypes",
    "tenants.workspace",
]
INSTALLED_APPS = SHARED_APPS + [app for app in TENANT_APPS if app not in SHARED_APPS]

TENANT_MODEL = "tenants.Tenant"
TENANT_DOMAIN_MODEL = "tenants.Domain"
PUBLIC_SCHEMA_NAME = "public"
PUBLIC_SCHEMA_URLCONF = "config.urls_public"
ROOT_URLCONF = "config.urls_tenant"
# New tenant schemas are cloned from this migrated template (kept in step by migrate_schemas).
TENANT_CREATION_FAKES_MIGRATIONS = True
TENANT_BASE_SCHEMA = "tenant_template"
DATABASE_ROUTERS = ("django_tenants.routers.TenantSyncRouter",)

MIDDLEWARE = [
    "tenants.middleware.TenantRoutingMiddleware",
    "usage.middleware.UsageMeteringMiddleware",
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

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
            ],
        },
    },
]

WSGI_APPLICATION = "config.wsgi.application"
ASGI_APPLICATION = "config.asgi.application"

# --- Database and cache -------------------------------------------------------------------


def _database() -> dict[str, Any]:
    if DEBUG or TESTING:
        config = env.db_url("DATABASE_URL", default="postgres://postgres@127.0.0.1:5432/tenantry")
    else:
        config = env.db_url("DATABASE_URL")
    config["ENGINE"] = "django_tenants.postgresql_backend"
    # A libpq URI may name a Unix socket folder as ?host=/path (pgserver does).
    options = config.setdefault("OPTIONS", {})
    if not config.get("HOST") and "host" in options:
        config["HOST"] = options.pop("host")
    config["CONN_MAX_AGE"] = env.int("DATABASE_CONN_MAX_AGE", default=60)
    config["CONN_HEALTH_CHECKS"] = True
    return config


DATABASES = {"default": _database()}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

REDIS_URL: str = env.str("REDIS_URL", default="redis://127.0.0.1:6379/0")

CACHES = {
    # Tenant-aware: every key is prefixed with the current schema.
    "default": {
        "BACKEND": "django.core.cache.backends.redis.RedisCache",
        "LOCATION": REDIS_URL,
        "KEY_FUNCTION": "django_tenants.cache.make_key",
        "REVERSE_KEY_FUNCTION": "django_tenants.cache.reverse_key",
        "KEY_PREFIX": "tenantry",
        # A hung Redis must not hang requests: the hot path falls back to the database.
        "OPTIONS": {"socket_timeout": 0.5, "socket_connect_timeout": 0.5},
    },
    # Schema-independent keys, e.g. the host -> tenant routing table.
    "shared": {
        "BACKEND": "django.core.cache.backends.redis.RedisCache",
        "LOCATION": REDIS_URL,
        "KEY_PREFIX": "tenantry-shared",
        "OPTIONS": {"socket_timeout": 0.5, "socket_connect_timeout": 0.5},
    },
}

# --- Auth, i18n, static -------------------------------------------------------------------

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "/static/"
STATIC_ROOT = BASE_DIR / "staticfiles"
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {
        "BACKEND": (
            "django.contrib.staticfiles.storage.StaticFilesStorage"
            if DEBUG or TESTING
            else "whitenoise.storage.CompressedManifestStaticFilesStorage"
        )
    },
}
WHITENOISE_USE_FINDERS = DEBUG or TESTING

SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
SESSION_COOKIE_SECURE = not (DEBUG or TESTING)
CSRF_COOKIE_SECURE = not (DEBUG or TESTING)

# --- REST framework -----------------------------------------------------------------------

SIGNUP_RATE: str = env.str("SIGNUP_RATE", default="20/hour")

REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": ["tenants.api.authentication.ApiKeyAuthentication"],
    # Authenticated and a subscription that allows use, in one class (see there).
    "DEFAULT_PERMISSION_CLASSES": ["subscriptions.api.permissions.SubscriptionActive"],
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
    "DEFAULT_PARSER_CLASSES": ["rest_framework.parsers.JSONParser"],
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "EXCEPTION_HANDLER": "core.api.errors.exception_handler",
    "DEFAULT_PAGINATION_CLASS": "rest_framework.pagination.LimitOffsetPagination",
    "PAGE_SIZE": 50,
    "NUM_PROXIES": env.int("NUM_PROXIES", default=0),
    "UNAUTHENTICATED_USER": None,
}

SPECTACULAR_SETTINGS = {
    "TITLE": "Tenantry API",
    "DESCRIPTION": (
        "Public endpoints (signup, plans) are served on the base domain. Tenant endpoints are "
        "served on the tenant's subdomain (or the base domain with an `X-Tenant` header) and "
        "take `Authorization: Bearer <api key>`. Every error is "
        '`{"error": {"code", "message", "details"}}`.'
    ),
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    "SERVE_URLCONF": "config.urls_schema",
    "SERVE_PERMISSIONS": ["rest_framework.permissions.AllowAny"],
    "SERVE_AUTHENTICATION": [],
    "COMPONENT_SPLIT_REQUEST": True,
    "APPEND_COMPONENTS": {
        "securitySchemes": {"ApiKey": {"type": "http", "scheme": "bearer"}},
    },
}

# --- Subscriptions ------------------------------------------------------------------------

# A past-due subscription keeps working this long after its first failed payment.
SUBSCRIPTION_PAST_DUE_GRACE_DAYS: int = env.int("SUBSCRIPTION_PAST_DUE_GRACE_DAYS", default=10)

# --- Usage metering -----------------------------------------------------------------------

USAGE_METERING_ENABLED: bool = env.bool("USAGE_METERING_ENABLED", default=True)
# When Redis is down: "open" allows requests and counts them in the process until Redis is
# back; "closed" refuses them with 503.
USAGE_FAIL_MODE: str = env.str("USAGE_FAIL_MODE", default="open")
if USAGE_FAIL_MODE not in ("open", "closed"):
    raise ValueError("USAGE_FAIL_MODE must be 'open' or 'closed'")
# Credit: a process serving a tenant at more than 1/USAGE_CREDIT_SECONDS requests a second
# is granted up to USAGE_CREDIT_MAX requests it admits without a round trip, for at most
# USAGE_CREDIT_SECONDS; taken from the rate bucket, and under a hard api_calls quota only
# while more than USAGE_CREDIT_HEADROOM calls are left of it. USAGE_CREDIT_MAX=0 disables.
USAGE_CREDIT_MAX: int = env.int("USAGE_CREDIT_MAX", default=20)
USAGE_CREDIT_SECONDS: float = env.float("USAGE_CREDIT_SECONDS", default=0.2)
USAGE_CREDIT_HEADROOM: int = env.int("USAGE_CREDIT_HEADROOM", default=10_000)
USAGE_REDIS_TIMEOUT: float = env.float("USAGE_REDIS_TIMEOUT", default=0.25)
USAGE_COUNTER_TTL: int = 60 * 60 * 24 * 400  # period counters outlive a yearly period
USAGE_SEEN_TTL: int = 60 * 60 * 24 * 35  # the fast duplicate check; PostgreSQL decides
USAGE_LATE_GRACE_HOURS: int = env.int("USAGE_LATE_GRACE_HOURS", default=24)
USAGE_MAX_FUTURE_SECONDS: int = env.int("USAGE_MAX_FUTURE_SECONDS", default=300)

# --- Billing --------------------------------------------------------------------------------

# Days after the first failed payment on which it is retried; the last failure suspends the
# tenant and expires the subscription.
BILLING_RETRY_SCHEDULE_DAYS: list[int] = [
    int(d) for d in env.list("BILLING_RETRY_SCHEDULE_DAYS", default=["1", "3", "5", "7"])
]
BILLING_INVOICE_DUE_DAYS: int = env.int("BILLING_INVOICE_DUE_DAYS", default=7)

# --- Celery -------------------------------------------------------------------------------

CELERY_BROKER_URL: str = env.str("CELERY_BROKER_URL", default=REDIS_URL)
CELERY_RESULT_BACKEND: str | None = env.str("CELERY_RESULT_BACKEND", default=None)
CELERY_TASK_ALWAYS_EAGER: bool = env.bool("CELERY_TASK_ALWAYS_EAGER", default=False)
CELERY_TASK_EAGER_PROPAGATES = True
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_SERIALIZER = "json"
CELERY_ACCEPT_CONTENT = ["json"]
CELERY_TIMEZONE = "UTC"
CELERY_BEAT_SCHEDULER = "django_celery_beat.schedulers:DatabaseScheduler"
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
# Keep Django's LOGGING (structlog, tenant on every line) in the worker too.
CELERY_WORKER_HIJACK_ROOT_LOGGER = False

# --- Logging (structlog; every line carries the tenant) -----------------------------------

LOG_LEVEL: str = env.str("LOG_LEVEL", default="INFO")
LOG_FORMAT: str = env.str("LOG_FORMAT", default="console" if DEBUG else "json")

from core.logging import logging_config  # noqa: E402

LOGGING = logging_config(level=LOG_LEVEL, fmt=LOG_FORMAT)

# --- Webhooks -----------------------------------------------------------------------------

# Let webhook endpoints target private, loopback and link-local addresses (and plain http to
# them): for development, tests and receivers inside a private network. Always on in DEBUG.
WEBHOOKS_ALLOW_PRIVATE_TARGETS: bool = env.bool("WEBHOOKS_ALLOW_PRIVATE_TARGETS", default=False)

# --- Stripe (dj-stripe) ---------------------------------------------------------------------

# No key: invoices are paid by bank transfer (billing.gateways.manual). Nothing secret has a
# default. dj-stripe derives its account from the key, so use a real-format key
# (sk_test_/sk_live_ + 24 or more characters), also against a stripe-mock server.
STRIPE_SECRET_KEY: str = env.str("STRIPE_SECRET_KEY", default="")
STRIPE_PUBLISHABLE_KEY: str = env.str("STRIPE_PUBLISHABLE_KEY", default="")
# Verifies POST /stripe/webhook/ (the signing secret "whsec_..." of that endpoint).
STRIPE_WEBHOOK_SECRET: str = env.str("STRIPE_WEBHOOK_SECRET", default="")
# Another API host, e.g. a stripe-mock server: http://127.0.0.1:12111
STRIPE_API_BASE: str = env.str("STRIPE_API_BASE", default="")
STRIPE_LIVE_MODE: bool = env.bool("STRIPE_LIVE_MODE", default=False)
DJSTRIPE_FOREIGN_KEY_TO_FIELD = "id"
DJSTRIPE_SUBSCRIBER_MODEL = "tenants.Tenant"
DJSTRIPE_WEBHOOK_VALIDATION = "verify_signature"

if STRIPE_API_BASE:
    import stripe

    stripe.api_base = STRIPE_API_BASE.rstrip("/")
