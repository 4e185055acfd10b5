"""Settings, read from the environment.

Unset variables give the embedded default (SQLite, in-memory channel layer and
presence, development secrets) so `make run` works on a bare machine. With
DEBUG=false every production value is required and a missing one fails at
start-up instead of silently running with a development default.
"""

from datetime import timedelta
from pathlib import Path

import environ

BASE_DIR = Path(__file__).resolve().parent.parent

env = environ.Env()

DEBUG = env.bool("DEBUG", default=True)

if DEBUG:
    SECRET_KEY = env.str("SECRET_KEY", default="dev-only-insecure-key-do-not-use-in-production")
    ALLOWED_HOSTS = env.list("ALLOWED_HOSTS", default=["localhost", "127.0.0.1", "[::1]", "testserver"])
else:
    # No defaults: production must say what it is.
    SECRET_KEY = env.str("SECRET_KEY")
    ALLOWED_HOSTS = env.list("ALLOWED_HOSTS")

# The audit chain's anchor outside the database: every event also carries an
# HMAC of its hash under this key (see incidents/audit_key.py). Not stored in
# the database, so someone who can rewrite the table cannot re-sign it.
# Required in production; empty in development (events are then unkeyed).
AUDIT_KEY = env.str("AUDIT_KEY", default="") if DEBUG else env.str("AUDIT_KEY")
if AUDIT_KEY and (len(AUDIT_KEY) < 32 or AUDIT_KEY == SECRET_KEY):
    from django.core.exceptions import ImproperlyConfigured

    raise ImproperlyConfigured("AUDIT_KEY must be at least 32 characters and differ from SECRET_KEY.")

CSRF_TRUSTED_ORIGINS = env.list("CSRF_TRUSTED_ORIGINS", default=[])
# WebSocket handshakes must come from this server's own origin (scheme, host
# and port, the host in ALLOWED_HOSTS) or from one of these, given in full
# (`https://ops.example.com`); see realtime/origin.py.
WS_ALLOWED_ORIGINS = env.list("WS_ALLOWED_ORIGINS", default=[])

INSTALLED_APPS = [
    "daphne",
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "whitenoise.runserver_nostatic",
    "django.contrib.staticfiles",
    "rest_framework",
    "rest_framework_simplejwt.token_blacklist",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "channels",
    "accounts",
    "incidents",
    "incidents.webhooks",
    "realtime",
]

MIDDLEWARE = [
    # First, so its timing and log line cover everything below, refusals included.
    "incident_platform.observability.RequestMiddleware",
    "django.middleware.security.SecurityMiddleware",
    "csp.middleware.CSPMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    # Database or Redis unreachable: 503 with Retry-After, not a 500.
    "incident_platform.unavailable.UnavailableMiddleware",
]

ROOT_URLCONF = "incident_platform.urls"

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

WSGI_APPLICATION = "incident_platform.wsgi.application"
ASGI_APPLICATION = "incident_platform.asgi.application"

# --- Registration -------------------------------------------------------------
# Self-registration makes viewers, who read every incident: open by default
# only in development. In production an admin invites people (the Django
# admin) unless REGISTRATION_OPEN=true, optionally only for some email domains.
REGISTRATION_OPEN = env.bool("REGISTRATION_OPEN", default=DEBUG)
REGISTRATION_EMAIL_DOMAINS = [domain.lower() for domain in env.list("REGISTRATION_EMAIL_DOMAINS", default=[])]

# --- Database -----------------------------------------------------------------
# PostgreSQL in production (DATABASE_URL), a SQLite file as the embedded default.
DATABASES = {
    "default": env.db("DATABASE_URL", default=f"sqlite:///{BASE_DIR / 'db.sqlite3'}"),
}
DATABASES["default"]["CONN_MAX_AGE"] = env.int("CONN_MAX_AGE", default=0)
if DATABASES["default"]["ENGINE"] == "django.db.backends.postgresql" and env.bool("DATABASE_POOL", default=True):
    # Under ASGI, Django's persistent connections are not reused across
    # requests; psycopg's pool is (Django 5.1+), saving a connection set-up
    # per request and per WebSocket message. Per process: keep
    # processes * max_size under PostgreSQL's max_connections.
    DATABASES["default"].setdefault("OPTIONS", {})["pool"] = {
        "min_size": env.int("DATABASE_POOL_MIN", default=2),
        "max_size": env.int("DATABASE_POOL_MAX", default=10),
        "timeout": env.int("DATABASE_POOL_TIMEOUT", default=10),
    }
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    DATABASES["default"]["OPTIONS"] = {
        # Writers queue on BEGIN instead of failing with "database is locked"
        # half-way through a command; this is SQLite's stand-in for the row
        # lock PostgreSQL takes with SELECT ... FOR UPDATE.
        "transaction_mode": "IMMEDIATE",
        "timeout": 30,
        "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
    }
    # A file, not shared memory, so threads and server processes in tests
    # see one database with SQLite's real locking.
    DATABASES["default"]["TEST"] = {"NAME": env.str("SQLITE_TEST_NAME", default=str(BASE_DIR / ".test-db.sqlite3"))}

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
AUTH_USER_MODEL = "accounts.User"

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

# --- Redis: channel layer, presence, cache ------------------------------------
REDIS_URL = env.str("REDIS_URL", default="")
# Every key this deployment writes to Redis starts with this, so several
# deployments (or test runs) can share one Redis.
REDIS_PREFIX = env.str("REDIS_PREFIX", default="incident-platform")

if REDIS_URL:
    CHANNEL_LAYERS = {
        "default": {
            "BACKEND": "channels_redis.core.RedisChannelLayer",
            "CONFIG": {
                "hosts": [REDIS_URL],
                "prefix": f"{REDIS_PREFIX}:asgi",
                "capacity": env.int("CHANNEL_CAPACITY", default=1000),
                "expiry": 60,
            },
        }
    }
    PRESENCE_STORE = "realtime.presence.RedisPresenceStore"
    CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": REDIS_URL,
            "KEY_PREFIX": f"{REDIS_PREFIX}:cache",
        }
    }
else:
    # Only for the one-process embedded default.
    CHANNEL_LAYERS = {"default": {"BACKEND": "channels.layers.InMemoryChannelLayer"}}
    PRESENCE_STORE = "realtime.presence.MemoryPresenceStore"
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}

# A connection's presence entry lives this long unless its consumer refreshes
# it; a process that dies stops refreshing, so its viewers expire.
PRESENCE_TTL_SECONDS = env.int("PRESENCE_TTL_SECONDS", default=30)
PRESENCE_REFRESH_SECONDS = env.int("PRESENCE_REFRESH_SECONDS", default=10)

# /readyz: how long the database and Redis each have to answer.
READY_TIMEOUT_SECONDS = env.float("READY_TIMEOUT_SECONDS", default=2.0)
# Presence pushes of a room are gathered for this long and sent as one (per kind).
PRESENCE_WINDOW_SECONDS = env.float("PRESENCE_WINDOW_SECONDS", default=0.15)
# Threads for the sockets' database work in each process (each holds at most one connection).
WS_DATABASE_THREADS = env.int("WS_DATABASE_THREADS", default=8)

# --- Outgoing webhooks (incidents/webhooks, `manage.py deliver_webhooks`) -----
# The address people open incidents at, for the links in webhook payloads;
# in production it defaults to https:// and the first of ALLOWED_HOSTS.
SITE_URL = env.str(
    "SITE_URL",
    default="http://localhost:8000" if DEBUG or not ALLOWED_HOSTS else f"https://{ALLOWED_HOSTS[0].lstrip('.')}",
)
# Per socket operation of one POST (connect, send, each read of the answer).
WEBHOOK_TIMEOUT_SECONDS = env.float("WEBHOOK_TIMEOUT_SECONDS", default=5.0)
# Attempts before a delivery is marked failed; between them, base·2^(n-1) seconds (half of it jittered), capped.
WEBHOOK_MAX_ATTEMPTS = env.int("WEBHOOK_MAX_ATTEMPTS", default=10)
WEBHOOK_BACKOFF_SECONDS = env.float("WEBHOOK_BACKOFF_SECONDS", default=10.0)
WEBHOOK_BACKOFF_MAX_SECONDS = env.float("WEBHOOK_BACKOFF_MAX_SECONDS", default=3600.0)
# How long an idle worker waits before looking for due deliveries again.
WEBHOOK_POLL_SECONDS = env.float("WEBHOOK_POLL_SECONDS", default=2.0)

# --- WebSocket limits ---------------------------------------------------------
WS_MAX_MESSAGE_BYTES = env.int("WS_MAX_MESSAGE_BYTES", default=64 * 1024)
# Token bucket per connection: a burst of WS_RATE_BURST, refilled at WS_RATE_PER_SECOND.
WS_RATE_BURST = env.int("WS_RATE_BURST", default=30)
WS_RATE_PER_SECOND = env.float("WS_RATE_PER_SECOND", default=10.0)
# Caps (realtime/limits.py): sockets per user across every process, rooms per
# socket, and `focus:set` per socket (a burst, then a steady rate).
WS_MAX_SOCKETS_PER_USER = env.int("WS_MAX_SOCKETS_PER_USER", default=20)
WS_MAX_ROOMS_PER_SOCKET = env.int("WS_MAX_ROOMS_PER_SOCKET", default=50)
WS_FOCUS_BURST = env.int("WS_FOCUS_BURST", default=5)
WS_FOCUS_PER_SECOND = env.float("WS_FOCUS_PER_SECOND", default=2.0)

# --- Internationalisation -----------------------------------------------------
LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

# --- Static files -------------------------------------------------------------
STATIC_URL = "static/"
STATIC_ROOT = BASE_DIR / "staticfiles"
NODE_MODULES = BASE_DIR / "node_modules"
STATICFILES_DIRS = [
    BASE_DIR / "static",
    # Front-end packages are pinned in package.json and installed by npm;
    # only their dist folders are served.
    ("vendor/htmx", NODE_MODULES / "htmx.org" / "dist"),
    ("vendor/diff", NODE_MODULES / "diff" / "dist"),
]
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
WHITENOISE_USE_FINDERS = DEBUG

LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "incident-list"
LOGOUT_REDIRECT_URL = "login"

# Bodies above this are refused before they are parsed.
DATA_UPLOAD_MAX_MEMORY_SIZE = env.int("DATA_UPLOAD_MAX_MEMORY_SIZE", default=1024 * 1024)

# --- REST framework -----------------------------------------------------------
REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "rest_framework_simplejwt.authentication.JWTAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    # DRF's JSON parser with a bound on nesting (see incident_platform/parsers.py).
    # The browsable API with inline styles allowed on its pages only (see incident_platform/renderers.py).
    "DEFAULT_RENDERER_CLASSES": [
        "rest_framework.renderers.JSONRenderer",
        "incident_platform.renderers.StrictScriptBrowsableAPIRenderer",
    ],
    "DEFAULT_PARSER_CLASSES": [
        "incident_platform.parsers.JSONParser",
        "rest_framework.parsers.FormParser",
        "rest_framework.parsers.MultiPartParser",
    ],
    "DEFAULT_PAGINATION_CLASS": "rest_framework.pagination.PageNumberPagination",
    "PAGE_SIZE": 50,
    "DEFAULT_SCHEMA_CLASS": "incident_platform.schema.ApiSchema",
    "DEFAULT_THROTTLE_RATES": {
        "auth": env.str("AUTH_THROTTLE_RATE", default="20/min"),
    },
    "EXCEPTION_HANDLER": "incident_platform.exceptions.exception_handler",
    # Proxies in front of daphne (a load balancer: 1), so throttles count the
    # client's address from X-Forwarded-For, not the proxy's.
    "NUM_PROXIES": env.int("NUM_PROXIES", default=None),
    "TEST_REQUEST_DEFAULT_FORMAT": "json",
}

SIMPLE_JWT = {
    "ACCESS_TOKEN_LIFETIME": timedelta(minutes=env.int("JWT_ACCESS_MINUTES", default=15)),
    "REFRESH_TOKEN_LIFETIME": timedelta(days=env.int("JWT_REFRESH_DAYS", default=7)),
    "ROTATE_REFRESH_TOKENS": True,
    "BLACKLIST_AFTER_ROTATION": True,
    "UPDATE_LAST_LOGIN": True,
    "AUTH_HEADER_TYPES": ("Bearer",),
}

SPECTACULAR_SETTINGS = {
    "TITLE": "Incident platform API",
    "DESCRIPTION": "REST API of the real-time incident response platform. "
    "The WebSocket protocol is described in docs/protocol.md.",
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    "COMPONENT_SPLIT_REQUEST": True,
    # A PATCH body is the same component as its input serializer: what is required stays required.
    "COMPONENT_SPLIT_PATCH": False,
    # Clients speak JSON; the form parsers are there for the browsable API's forms.
    "PARSER_WHITELIST": ["incident_platform.parsers.JSONParser"],
    # Two error bodies answer only `conflict` (a stale version, a pin that conflicts): one enum for both.
    "ENUM_NAME_OVERRIDES": {
        "ConflictCodeEnum": ["conflict"],
        "StateConflictCodeEnum": ["conflict", "invalid_transition"],
    },
}

# --- Content-Security-Policy (django-csp) ---------------------------------------
# Scripts and styles only from our own static files: no inline script, no
# eval (htmx runs with allowEval and allowScriptTags off, see base.html), so
# an HTML injection that slipped past autoescaping could not run. The
# WebSocket is same-origin ('self' covers ws: and wss: of this host).
CONTENT_SECURITY_POLICY = {
    "DIRECTIVES": {
        "default-src": ["'self'"],
        "script-src": ["'self'"],
        "style-src": ["'self'"],
        "img-src": ["'self'", "data:"],
        "font-src": ["'self'"],
        "connect-src": ["'self'"],
        "object-src": ["'none'"],
        "base-uri": ["'none'"],
        "form-action": ["'self'"],
        "frame-ancestors": ["'none'"],
    }
}

# How long an idempotency key's first outcome is replayed.
IDEMPOTENCY_TTL = timedelta(hours=24)

# --- Security -----------------------------------------------------------------
if not DEBUG:
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    SECURE_SSL_REDIRECT = env.bool("SECURE_SSL_REDIRECT", default=True)
    # Probes and scrapes come to the process itself, over plain HTTP.
    SECURE_REDIRECT_EXEMPT = [r"^healthz$", r"^readyz$", r"^metrics$"]
    SESSION_COOKIE_SECURE = True
    CSRF_COOKIE_SECURE = True
    SECURE_HSTS_SECONDS = env.int("SECURE_HSTS_SECONDS", default=60 * 60 * 24 * 365)
    SECURE_HSTS_INCLUDE_SUBDOMAINS = True
    SECURE_HSTS_PRELOAD = env.bool("SECURE_HSTS_PRELOAD", default=True)

# --- Observability ----------------------------------------------------------
# /metrics answers `Authorization: Bearer <METRICS_TOKEN>`; unset, it is off (404).
METRICS_TOKEN = env.str("METRICS_TOKEN", default="")

# `json`: one JSON object per log line (requests, socket lifecycle, everything else).
LOG_FORMAT = env.str("LOG_FORMAT", default="text")
if LOG_FORMAT not in ("text", "json"):
    raise environ.ImproperlyConfigured(f"LOG_FORMAT is text or json, not {LOG_FORMAT!r}.")

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {
        "text": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"},
        "json": {"()": "incident_platform.observability.JsonFormatter"},
    },
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": LOG_FORMAT}},
    "root": {"handlers": ["console"], "level": env.str("LOG_LEVEL", default="INFO")},
    # Django's own "Bad Request: /path" lines repeat what the access line says.
    "loggers": {"django.request": {"level": "ERROR"}},
}
