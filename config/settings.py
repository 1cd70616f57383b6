"""One settings module, read from environment variables (12-factor).

Every setting has a zero-config development default; the README lists them all.
"""

import hashlib
import os
import socket
from datetime import timedelta
from pathlib import Path

import environ
from django.core.exceptions import ImproperlyConfigured

from config import secrets

BASE_DIR = Path(__file__).resolve().parent.parent
VAR_DIR = Path(os.environ.get("ONEOFF_VAR_DIR", BASE_DIR / "var"))

env = environ.Env()
if (BASE_DIR / ".env").exists():
    env.read_env(BASE_DIR / ".env", overwrite=False)
secrets.private_folder(VAR_DIR)


def _database(url: str) -> dict:
    try:
        config = environ.Env.db_url_config(url)
    except Exception as exc:
        raise ImproperlyConfigured(f"DATABASE_URL is not a valid database URL: {exc}") from exc
    engine = config.get("ENGINE", "")
    if not engine or engine not in (
        "django.db.backends.sqlite3",
        "django.db.backends.postgresql",
    ):
        raise ImproperlyConfigured(
            f"DATABASE_URL must start with sqlite:/// or postgres:// (got {url.split(':', 1)[0]!r})"
        )
    if engine == "django.db.backends.sqlite3":
        # WAL lets the web process read while the worker writes; IMMEDIATE transactions and a
        # busy timeout make concurrent writers wait for each other instead of failing.
        config["OPTIONS"] = {
            "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
            "transaction_mode": "IMMEDIATE",
            "timeout": 30,
        }
    else:
        config.setdefault("CONN_MAX_AGE", env.int("CONN_MAX_AGE", default=60))
        config["CONN_HEALTH_CHECKS"] = True
        # psycopg prepares a statement bound on the server after this many runs on a connection:
        # only the hot queries of services/prepared.py are (Django's own bind on the client).
        # Empty: never (a pooler in transaction mode older than PgBouncer 1.21).
        threshold = env.str("DB_PREPARE_THRESHOLD", default="5")
        config.setdefault("OPTIONS", {})["prepare_threshold"] = (
            int(threshold) if threshold.strip() else None
        )
    config["TEST"] = {"NAME": env.str("TEST_DATABASE_NAME", default=None)}
    return config


# Safe with no configuration: DEBUG is off unless asked for, and the secrets not given in the
# environment are random ones kept in VAR_DIR/secrets.json (0600), made on first start.
DEBUG = env.bool("DEBUG", default=False)
_GENERATED = secrets.load(VAR_DIR)
SECRET_KEY = env.str("SECRET_KEY", default="") or _GENERATED["SECRET_KEY"]
ENV_DIGEST_KEY = env.str("ENV_DIGEST_KEY", default="") or _GENERATED["ENV_DIGEST_KEY"]
ALLOWED_HOSTS = env.list("ALLOWED_HOSTS", default=["localhost", "127.0.0.1", "[::1]", "testserver"])
CSRF_TRUSTED_ORIGINS = env.list("CSRF_TRUSTED_ORIGINS", default=[])
SITE_URL = env.str("SITE_URL", default="http://localhost:8000")
# The region a service reports (Render's ``serviceDetails.region``). Oneoff runs where it is
# installed; this only names it, in Render's vocabulary (its clients accept only its region names).
REGION = env.str("REGION", default="oregon")

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "django_htmx",
    "axes",
    # Domain apps, each importing only those above it: services <- audit <- jobs <- logstreams.
    "services",
    "audit",
    "jobs",
    "logstreams",
    "webhooks",
    # The two faces over them.
    "api",
    "dashboard",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "django_htmx.middleware.HtmxMiddleware",
    "dashboard.middleware.HtmxVaryMiddleware",
    # After htmx and auth, so a refusal is answered as the face and the frame need.
    "config.middleware.RequestLimitsMiddleware",
    "dashboard.middleware.DomainErrorMiddleware",
    # Last, as django-axes asks: it answers a locked-out sign-in.
    "axes.middleware.AxesMiddleware",
]

ROOT_URLCONF = "config.urls"
WSGI_APPLICATION = "config.wsgi.application"

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
                "dashboard.context_processors.frame",
            ],
            # ``{% url %}`` with its answers remembered (dashboard/templatetags/urlcache.py).
            "builtins": ["dashboard.templatetags.urlcache"],
        },
    },
]
# Django's form renderer with the plain widgets written by Python (dashboard/forms/renderer.py).
FORM_RENDERER = "dashboard.forms.renderer.Renderer"

DATABASE_URL = env.str("DATABASE_URL", default=f"sqlite:///{VAR_DIR / 'oneoff.sqlite3'}")
DATABASES = {"default": _database(DATABASE_URL)}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# A cache every web process shares: rate-limit counters live here. The embedded default is the
# database (no server); production points CACHE_URL at Redis.
CACHE_URL = env.str("CACHE_URL", default="")
# Seconds a request waits for the Redis cache to accept a connection and to answer: a Redis that
# drops packets (not refusing them) must not hang requests; the rate limiter then serves them
# uncounted (services/limits.py). socket_connect_timeout / socket_timeout in CACHE_URL's query win.
CACHE_CONNECT_TIMEOUT = env.float("CACHE_CONNECT_TIMEOUT", default=0.5)
CACHE_TIMEOUT = env.float("CACHE_TIMEOUT", default=0.5)


def cache_config(url: str) -> dict:
    """The cache at ``url``, with the socket timeouts above for Redis."""
    config = env.cache_url_config(url)
    if config["BACKEND"] == "django.core.cache.backends.redis.RedisCache":
        options = config.setdefault("OPTIONS", {})
        options.setdefault("socket_connect_timeout", CACHE_CONNECT_TIMEOUT)
        options.setdefault("socket_timeout", CACHE_TIMEOUT)
    return config


if CACHE_URL:
    CACHES = {"default": cache_config(CACHE_URL)}
else:
    CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.db.DatabaseCache",
            "LOCATION": "oneoff_cache",
        }
    }

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
]
AUTHENTICATION_BACKENDS = [
    # First: refuses a sign-in while the account or the client address is locked out.
    "axes.backends.AxesStandaloneBackend",
    # Django's ModelBackend reading the user with a compiled query (config/sessions.py).
    "config.sessions.ModelBackend",
]
# Sign-in throttling (django-axes), for the dashboard and the admin alike: after
# LOGIN_FAILURE_LIMIT wrong passwords for one account, or from one client address, sign-in is
# refused for LOGIN_LOCKOUT_MINUTES. Unlock early with `manage.py axes_reset_username EMAIL` or
# `manage.py axes_reset_ip ADDRESS` (README: "Sign-in throttling").
AXES_FAILURE_LIMIT = env.int("LOGIN_FAILURE_LIMIT", default=5)
AXES_COOLOFF_TIME = timedelta(minutes=env.float("LOGIN_LOCKOUT_MINUTES", default=15.0))
AXES_LOCKOUT_PARAMETERS = ["username", "ip_address"]
AXES_RESET_ON_SUCCESS = True
AXES_LOCKOUT_TEMPLATE = "auth/locked_out.html"
AXES_USERNAME_FORM_FIELD = "username"
AXES_VERBOSE = False
# The client address is REMOTE_ADDR, or behind PROXY_COUNT trusted proxies that each append to
# X-Forwarded-For, the entry the outermost of them added (config.middleware.client_ip).
PROXY_COUNT = env.int("PROXY_COUNT", default=0)
AXES_CLIENT_IP_CALLABLE = "config.middleware.client_ip"
LOGIN_URL = "/login/"
LOGIN_REDIRECT_URL = "/"
LOGOUT_REDIRECT_URL = "/login/"

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = False
USE_TZ = True

STATIC_URL = "/static/"
STATICFILES_DIRS = [BASE_DIR / "static"]
STATIC_ROOT = VAR_DIR / "staticfiles"
# WhiteNoise serves static files from the app server itself, straight from STATICFILES_DIRS, so
# there is no collectstatic step to forget; responses carry far-future caching only in production.
WHITENOISE_USE_FINDERS = True
STATIC_ROOT.mkdir(parents=True, exist_ok=True)  # empty unless collectstatic fills it
WHITENOISE_AUTOREFRESH = DEBUG

# Request limits: a body over REQUEST_MAX_BYTES is refused with 413 before it is read.
REQUEST_MAX_BYTES = env.int("REQUEST_MAX_BYTES", default=2 * 1024 * 1024)
DATA_UPLOAD_MAX_MEMORY_SIZE = REQUEST_MAX_BYTES

# Behind a TLS-terminating proxy (the production setup in the README), HTTPS=true turns on secure
# cookies, HSTS, the redirect to https and trust in the proxy's X-Forwarded-Proto header.
HTTPS = env.bool("HTTPS", default=False)
# Django's database sessions, read with a compiled query (config/sessions.py).
SESSION_ENGINE = "config.sessions"
SESSION_COOKIE_HTTPONLY = True
SESSION_COOKIE_SECURE = env.bool("SECURE_COOKIES", default=HTTPS)
CSRF_COOKIE_SECURE = SESSION_COOKIE_SECURE
SECURE_SSL_REDIRECT = env.bool("SECURE_SSL_REDIRECT", default=HTTPS)
SECURE_REDIRECT_EXEMPT = [r"^healthz$"]  # the proxy's health check may use plain http
SECURE_HSTS_SECONDS = env.int("HSTS_SECONDS", default=31536000 if HTTPS else 0)
SECURE_HSTS_INCLUDE_SUBDOMAINS = env.bool("HSTS_INCLUDE_SUBDOMAINS", default=HTTPS)
SECURE_HSTS_PRELOAD = env.bool("HSTS_PRELOAD", default=False)
# Joining the browsers' HSTS preload list commits a whole domain to https for good: that is the
# domain owner's decision (HSTS_PRELOAD=true), so `check --deploy` does not ask for it.
SILENCED_SYSTEM_CHECKS = ["security.W021"]
if env.bool("TRUST_X_FORWARDED_PROTO", default=HTTPS):
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
X_FRAME_OPTIONS = "DENY"
# Error reports (the debug page when DEBUG is on, admin e-mails) never show credentials.
DEFAULT_EXCEPTION_REPORTER_FILTER = "config.reporting.CredentialFilter"
SECURE_CONTENT_TYPE_NOSNIFF = True


# Comma-separated Fernet keys; the first encrypts, all decrypt (rotation: prepend a new key, run
# `manage.py rotate_field_keys`, then drop the old one).
FIELD_ENCRYPTION_KEYS = env.list("FIELD_ENCRYPTION_KEY", default=[]) or [
    _GENERATED["FIELD_ENCRYPTION_KEY"]
]

# Celery. The embedded default is kombu's filesystem transport: no server, and web, worker and
# beat share it through a folder.
CELERY_BROKER_URL = env.str("CELERY_BROKER_URL", default="filesystem://localhost/")
BROKER_DIR = Path(env.str("BROKER_DIR", default=str(VAR_DIR / "broker")))
if CELERY_BROKER_URL.startswith("filesystem://"):
    CELERY_BROKER_TRANSPORT_OPTIONS = {
        "data_folder_in": str(BROKER_DIR / "out"),
        "data_folder_out": str(BROKER_DIR / "out"),
        "processed_folder": str(BROKER_DIR / "processed"),
        "control_folder": str(BROKER_DIR / "control"),
        "store_processed": False,
        # How often a worker looks in the folder for messages (kombu's default, 1 s, was most
        # of a job's create -> running on the embedded default: bench_embedded.py).
        "polling_interval": env.float("BROKER_POLLING_INTERVAL", default=0.1),
    }
    for sub in ("out", "processed", "control"):
        (BROKER_DIR / sub).mkdir(parents=True, exist_ok=True)
else:
    CELERY_BROKER_TRANSPORT_OPTIONS = {"visibility_timeout": 3600}
if CELERY_BROKER_URL.startswith("redis://"):
    # A Redis broker that drops packets must not hang a request sending a start message: it
    # fails after these seconds, and the job, already committed, is started by the sweep. The
    # read timeout stays above the workers' 1-second BRPOP.
    CELERY_BROKER_TRANSPORT_OPTIONS.update(
        socket_connect_timeout=env.float("BROKER_CONNECT_TIMEOUT", default=2.0),
        socket_timeout=env.float("BROKER_TIMEOUT", default=5.0),
    )
    # kombu's Redis transport with the fix for the worker's crash on a Redis restart
    # (config/broker.py, which names it).
    CELERY_BROKER_TRANSPORT = "oneoff-redis"
CELERY_TASK_IGNORE_RESULT = True
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_ALWAYS_EAGER = env.bool("CELERY_TASK_ALWAYS_EAGER", default=False)
CELERY_BEAT_SCHEDULE_FILENAME = str(VAR_DIR / "celerybeat-schedule")
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
# Threads of a worker process, by the queue it serves (config/celery.py): job starts and the
# periodic work (`-Q jobs`), and builds (`-Q builds`), so no build can delay a job's start.
WORKER_CONCURRENCY = env.int("WORKER_CONCURRENCY", default=4)
BUILD_WORKER_CONCURRENCY = env.int("BUILD_WORKER_CONCURRENCY", default=4)

# Runner. ONEOFF_INSTANCE labels this installation's containers, so two installations (or two test
# runs) sharing one Docker Engine never touch each other's jobs.
ONEOFF_INSTANCE = env.str(
    "ONEOFF_INSTANCE", default=hashlib.sha256(DATABASE_URL.encode()).hexdigest()[:12]
)
RUNNER_HOST = env.str("RUNNER_HOST", default=socket.gethostname())
# Where jobs run (jobs/backends/): "docker" starts each job's container on the worker's own engine;
# "swarm" makes each job a replicated-job service that Docker Swarm places by the plan's CPU and
# memory (the worker whose engine is a swarm manager creates it; every node's worker follows the
# containers that land on its engine, as with "docker").
JOB_BACKEND = env.str("JOB_BACKEND", default="docker")
if JOB_BACKEND not in ("docker", "swarm"):
    raise ImproperlyConfigured(f"JOB_BACKEND must be docker or swarm, not {JOB_BACKEND!r}")
JOB_NETWORK = env.str("JOB_NETWORK", default="none")
JOB_MAX_RUNTIME = env.int("JOB_MAX_RUNTIME", default=30 * 24 * 3600)  # seconds
JOB_STOP_GRACE = env.int("JOB_STOP_GRACE", default=10)  # seconds between SIGTERM and SIGKILL
JOB_PIDS_LIMIT = env.int("JOB_PIDS_LIMIT", default=512)
JOB_CAP_ADD = env.list("JOB_CAP_ADD", default=[])
# The user jobs run as ("uid:gid" or a name the image knows); empty keeps the image's USER.
JOB_USER = env.str("JOB_USER", default="")
# How a job's disk writes are bounded. "auto": by the engine (storage_opt size, JOB_DISK_MB) where
# its storage driver can, else "read-only": a read-only root filesystem with tmpfs scratch
# mounts at JOB_SCRATCH_DIRS (each half the plan's memory, at most JOB_DISK_MB, counted in the
# memory limit). "size" and "read-only" force one; "off" leaves the writable layer unbounded.
JOB_DISK_MODE = env.str("JOB_DISK_MODE", default="auto")
if JOB_DISK_MODE not in ("auto", "size", "read-only", "off"):
    raise ImproperlyConfigured(
        f"JOB_DISK_MODE must be auto, size, read-only or off, not {JOB_DISK_MODE!r}"
    )
JOB_DISK_MB = env.int("JOB_DISK_MB", default=10240)
# Paths inside the job's container, not this machine's.
JOB_SCRATCH_DIRS = env.list("JOB_SCRATCH_DIRS", default=["/tmp", "/var/tmp"])  # noqa: S108
JOB_LOG_MAX_BYTES = env.int("JOB_LOG_MAX_BYTES", default=100 * 1024 * 1024)
JOB_LOG_LINE_MAX_BYTES = env.int("JOB_LOG_LINE_MAX_BYTES", default=16 * 1024)
# Where followers read a job's log: "auto" tails the container's json-file when the engine is on
# this machine and the file is readable (much cheaper), else the logs endpoint; "api" always the
# endpoint.
JOB_LOG_SOURCE = env.str("JOB_LOG_SOURCE", default="auto")
if JOB_LOG_SOURCE not in ("auto", "api"):
    raise ImproperlyConfigured(f"JOB_LOG_SOURCE must be auto or api, not {JOB_LOG_SOURCE!r}")
# What a job used (jobs/usage.py): seconds between readings of a running job's memory and CPU
# (0 turns sampling off), and where they are read: "auto" reads the container's cgroup files
# when this host can (cheap), else the engine's stats endpoint; "api" always the endpoint.
JOB_USAGE_SAMPLE_SECONDS = env.float("JOB_USAGE_SAMPLE_SECONDS", default=2.0)
JOB_USAGE_SOURCE = env.str("JOB_USAGE_SOURCE", default="auto")
if JOB_USAGE_SOURCE not in ("auto", "api"):
    raise ImproperlyConfigured(f"JOB_USAGE_SOURCE must be auto or api, not {JOB_USAGE_SOURCE!r}")
JOB_START_TIMEOUT = env.int("JOB_START_TIMEOUT", default=3600)  # seconds a job may wait for Docker
# Seconds without a heartbeat from a runner host before the sweep fails its running jobs.
JOB_HOST_TIMEOUT = env.int("JOB_HOST_TIMEOUT", default=300)

# API rate limits per API key ("count/period", period s, m, h or d), counted in the default cache.
# Defaults are Render's: 2000 job creations an hour, 400 reads and 30 other writes a minute.
API_RATE_LIMIT_JOB_CREATE = env.str("API_RATE_LIMIT_JOB_CREATE", default="2000/h")
API_RATE_LIMIT_READ = env.str("API_RATE_LIMIT_READ", default="400/m")
API_RATE_LIMIT_WRITE = env.str("API_RATE_LIMIT_WRITE", default="30/m")
# The same requests are also counted per user (across all their keys, and the dashboard's job
# runs) and per workspace (all its members together), so minting keys multiplies nothing.
# Empty: a user's rate is the key's, a workspace's five times the key's (services.limits).
API_RATE_LIMIT_USER_JOB_CREATE = env.str("API_RATE_LIMIT_USER_JOB_CREATE", default="")
API_RATE_LIMIT_USER_READ = env.str("API_RATE_LIMIT_USER_READ", default="")
API_RATE_LIMIT_USER_WRITE = env.str("API_RATE_LIMIT_USER_WRITE", default="")
API_RATE_LIMIT_WORKSPACE_JOB_CREATE = env.str("API_RATE_LIMIT_WORKSPACE_JOB_CREATE", default="")
API_RATE_LIMIT_WORKSPACE_READ = env.str("API_RATE_LIMIT_WORKSPACE_READ", default="")
API_RATE_LIMIT_WORKSPACE_WRITE = env.str("API_RATE_LIMIT_WORKSPACE_WRITE", default="")
# API keys a user may create in an hour (any workspace, any path), and the active (unrevoked)
# keys a workspace may hold (services.apikeys).
API_KEYS_PER_HOUR = env.int("API_KEYS_PER_HOUR", default=10)
API_KEYS_PER_WORKSPACE = env.int("API_KEYS_PER_WORKSPACE", default=50)

# Builds.
BUILD_KEEP_IMAGES = env.int("BUILD_KEEP_IMAGES", default=3)
BUILD_TIMEOUT = env.int("BUILD_TIMEOUT", default=3600)  # seconds a clone + docker build may take
BUILD_PULL_TIMEOUT = env.int("BUILD_PULL_TIMEOUT", default=120)  # seconds to pull a missing image
BUILD_NETWORK = env.str("BUILD_NETWORK", default="none")  # network mode of Dockerfile RUN steps
# Repository builds run in buildah, one image store per workspace (services.builds.builder).
BUILDAH = env.str("BUILDAH", default="buildah")
BUILD_RUNTIME = env.str("BUILD_RUNTIME", default="")  # OCI runtime of RUN steps; "" = runc
BUILD_STORAGE_DIR = Path(env.str("BUILD_STORAGE_DIR", default=str(VAR_DIR / "builders")))
BUILD_STORAGE_DRIVER = env.str("BUILD_STORAGE_DRIVER", default="overlay")
BUILD_MEMORY_MB = env.int("BUILD_MEMORY_MB", default=2048)  # per RUN step
BUILD_CPUS = env.float("BUILD_CPUS", default=1.0)
BUILD_PIDS = env.int("BUILD_PIDS", default=1024)  # processes per build
# Images every workspace may use by name (FROM, image services); anything else comes from a
# registry or from the workspace's own builds (services.image_refs).
BUILD_BASE_IMAGES = env.list("BUILD_BASE_IMAGES", default=["oneoff/busybox:latest"])
BUILD_LOG_MAX_BYTES = env.int("BUILD_LOG_MAX_BYTES", default=5 * 1024 * 1024)
# A registry every runner host pulls job images from (host[:port][/path], e.g. the swarm lab's
# 198.18.19.11:5000): each successful build is pushed there as
# <JOB_REGISTRY>/ws-<workspace>/<service>:<build> and its job image recorded by digest
# (Build.registry_image). Empty: images stay on the engine that built them (one host).
# JOB_REGISTRY_USERNAME / JOB_REGISTRY_PASSWORD: the platform's login there, if it needs one
# (never logged nor shown). Workspaces cannot name images in it (services.image_refs).
JOB_REGISTRY = env.str("JOB_REGISTRY", default="").strip().rstrip("/")
JOB_REGISTRY_USERNAME = env.str("JOB_REGISTRY_USERNAME", default="")
JOB_REGISTRY_PASSWORD = env.str("JOB_REGISTRY_PASSWORD", default="")
JOB_REGISTRY_PUSH_TIMEOUT = env.int("JOB_REGISTRY_PUSH_TIMEOUT", default=300)  # seconds
if JOB_BACKEND == "swarm" and JOB_REGISTRY_USERNAME:
    # Swarm's nodes pull with the credentials the service is created with, which Oneoff does not
    # send yet: refused here rather than every job failing to pull on the nodes.
    raise ImproperlyConfigured(
        "JOB_BACKEND=swarm does not support a JOB_REGISTRY that needs a login yet: use a "
        "registry the nodes reach without one (on a private network), or JOB_BACKEND=docker"
    )
# Builds of one workspace that may run at once (across all its services); more wait, queued, and
# start as one of its builds ends. Below BUILD_WORKER_CONCURRENCY, no workspace can hold every
# build thread.
BUILD_CONCURRENCY_PER_WORKSPACE = env.int("BUILD_CONCURRENCY_PER_WORKSPACE", default=2)
# Git transports a repository URL may use. A file:// URL (or a plain path) is allowed only for a
# repository inside the workspace's own folder, BUILD_LOCAL_REPOS_DIR/<workspace id>/, where
# `make run` keeps the example service: never any other folder of the server (another
# workspace's repositories, Oneoff's own checkout).
BUILD_GIT_PROTOCOLS = env.list("BUILD_GIT_PROTOCOLS", default=["https", "ssh"])
BUILD_LOCAL_REPOS_DIR = Path(env.str("BUILD_LOCAL_REPOS_DIR", default=str(VAR_DIR / "repos")))
# Seconds a remote repository's checked address has to answer before git runs (services.egress).
BUILD_GIT_CONNECT_TIMEOUT = env.float("BUILD_GIT_CONNECT_TIMEOUT", default=30.0)

# Egress rules (services.egress): git, registry pulls and log streams connect only to public
# addresses, and to the loopback, private, link-local... ranges listed here (comma-separated CIDRs,
# each optionally limited to a port: 127.0.0.1:5000, 10.0.0.0/8, [fd00::/8]:443).
EGRESS_ALLOW = env.list("EGRESS_ALLOW", default=[])

# Log retention and log streams (RFC 5424 syslog over TCP+TLS).
# A query of Render's logs API (GET /v1/logs, /v1/logs/values) is stopped after this many seconds
# (a 400 naming `text` when a search expression made it slow): one regular expression cannot hold
# a database connection.
LOGS_QUERY_TIMEOUT = env.float("LOGS_QUERY_TIMEOUT", default=5.0)
# GET /v1/logs/subscribe (a WebSocket) looks for new lines every LOGS_TAIL_INTERVAL seconds, among
# those of the last LOGS_TAIL_LAG seconds (a line stored later than that after its time is missed).
LOGS_TAIL_INTERVAL = env.float("LOGS_TAIL_INTERVAL", default=0.5)
LOGS_TAIL_LAG = env.float("LOGS_TAIL_LAG", default=30.0)
# Live tails a workspace may hold open in one web process (each polls the database); one more is
# a 429. A tail whose API key is revoked, or whose user left the workspace, is closed within
# LOGS_TAIL_RECHECK seconds.
LOGS_TAIL_MAX_PER_WORKSPACE = env.int("LOGS_TAIL_MAX_PER_WORKSPACE", default=20)
LOGS_TAIL_RECHECK = env.float("LOGS_TAIL_RECHECK", default=5.0)
# Seconds between two polls of a Jobs list page (one request for the whole list).
JOBS_LIST_POLL_SECONDS = env.float("JOBS_LIST_POLL_SECONDS", default=2.0)
LOG_PURGE_BATCH = env.int("LOG_PURGE_BATCH", default=5000)  # log lines deleted per transaction
# Log search (jobs.logs.index, PostgreSQL): every LOG_INDEX_EVERY seconds the lines of logs of at
# least LOG_INDEX_MIN_LINES lines are copied, LOG_INDEX_CHUNK_LINES at a time, into chunks under a
# trigram index, off the ingest path. 0 lines turns it off (a search then scans the log). Below
# about 30,000 lines a scan is as fast (bench_dashboard.py at 20,000, 50,000 and 100,000 lines).
LOG_INDEX_MIN_LINES = env.int("LOG_INDEX_MIN_LINES", default=50_000)
LOG_INDEX_CHUNK_LINES = env.int("LOG_INDEX_CHUNK_LINES", default=100)
LOG_INDEX_EVERY = env.float("LOG_INDEX_EVERY", default=30.0)
# A PEM file of CA certificates trusted for log stream destinations, in addition to the system
# store (verification is always on).
LOG_STREAM_CA_FILE = env.str("LOG_STREAM_CA_FILE", default="")
LOG_STREAM_RETRY_MAX = env.float("LOG_STREAM_RETRY_MAX", default=30.0)  # seconds, backoff cap
LOG_STREAM_TIMEOUT = env.float("LOG_STREAM_TIMEOUT", default=10.0)  # connect and send, seconds

# Audit trail (audit/): entries older than this many days are purged hourly by beat.
AUDIT_RETENTION_DAYS = env.int("AUDIT_RETENTION_DAYS", default=365)
AUDIT_PURGE_BATCH = env.int("AUDIT_PURGE_BATCH", default=5000)  # entries deleted per transaction

# Webhooks (webhooks.delivery): Standard Webhooks-signed POSTs of the workspace's events.
# A PEM file of CA certificates trusted for webhook URLs besides the system store.
WEBHOOK_CA_FILE = env.str("WEBHOOK_CA_FILE", default="")
WEBHOOK_TIMEOUT = env.float("WEBHOOK_TIMEOUT", default=10.0)  # one attempt, all of it, seconds
# Seconds before each retry: 5 s, 30 s, 2 min, 10 min, 30 min, 1 h, 2 h, 4 h, 8 h, 8 h (24 h).
WEBHOOK_RETRY_SCHEDULE = env.list(
    "WEBHOOK_RETRY_SCHEDULE",
    cast=float,
    default=[5, 30, 120, 600, 1800, 3600, 7200, 14400, 28800, 28800],
)
WEBHOOK_CONCURRENCY = env.int("WEBHOOK_CONCURRENCY", default=2)  # attempts at once per worker
WEBHOOK_RESPONSE_READ_BYTES = env.int("WEBHOOK_RESPONSE_READ_BYTES", default=65536)
WEBHOOK_RESPONSE_MAX_CHARS = env.int("WEBHOOK_RESPONSE_MAX_CHARS", default=2048)  # kept
WEBHOOK_EVENT_RETENTION_DAYS = env.int("WEBHOOK_EVENT_RETENTION_DAYS", default=30)
WEBHOOKS_PER_WORKSPACE = env.int("WEBHOOKS_PER_WORKSPACE", default=100)  # Render's limit too

# A quiet console: INFO shows starts, job and build state changes and warnings; Celery's line per
# task (a heartbeat every 5 s, sweeps) and beat's line per sent task are DEBUG.
LOG_LEVEL = env.str("LOG_LEVEL", default="INFO")
CELERY_WORKER_HIJACK_ROOT_LOGGER = False
_CHATTY = "DEBUG" if LOG_LEVEL == "DEBUG" else "WARNING"
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"}},
    "filters": {"database_outage": {"()": "config.logfilters.DatabaseOutageFilter"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": LOG_LEVEL},
    "loggers": {
        # One line per request of a database outage (config.unavailable), not a traceback.
        "django.request": {"filters": ["database_outage"]},
        "django.db.backends": {"level": "INFO"},
        "celery.app.trace": {"level": _CHATTY},
        "celery.worker.strategy": {"level": _CHATTY},
        "celery.beat": {"level": _CHATTY},
        "axes": {"level": _CHATTY},
    },
}
