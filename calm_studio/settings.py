"""Settings for CALM Studio: one module, driven by environment variables.

Defaults are the embedded ones (SQLite under ``var/``, Redis on loopback), so ``make run`` works
on a laptop; production sets ``DATABASE_URL=postgresql://...``, ``REDIS_URL``, ``SECRET_KEY``,
``ALLOWED_HOSTS`` and friends.
"""

from __future__ import annotations

import sys
from datetime import timedelta
from pathlib import Path
from urllib.parse import urlsplit

from curation.engine.env import EnvError, env_bool, env_float, env_int, env_list, env_str

from .env import database_from_url, secret_key
from .queues import Queue

BASE_DIR = Path(__file__).resolve().parent.parent
VAR_DIR = Path(env_str("CALM_VAR_DIR", str(BASE_DIR / "var")))
VAR_DIR.mkdir(parents=True, exist_ok=True)

SECRET_KEY = secret_key(VAR_DIR)
DEBUG = env_bool("DEBUG", False)
ALLOWED_HOSTS = env_list("ALLOWED_HOSTS", ["localhost", "127.0.0.1", "[::1]"])
CSRF_TRUSTED_ORIGINS = env_list("CSRF_TRUSTED_ORIGINS", [])

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "django.contrib.humanize",
    "django.contrib.postgres",
    "django_htmx",
    "template_partials",
    "axes",
    "curation",
    "training",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    # A NUL character in a form field or query is refused with a 400 (PostgreSQL cannot store it).
    "curation.middleware.RefuseNulCharactersMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    # An htmx request whose session expired gets a full-page login (HX-Redirect), not a
    # login form swapped into a fragment.
    "curation.middleware.HtmxLoginRedirectMiddleware",
    # Every page requires login unless its view opts out with @login_not_required (Django 5.1+).
    "django.contrib.auth.middleware.LoginRequiredMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "django_htmx.middleware.HtmxMiddleware",
    "csp.middleware.CSPMiddleware",
    # Login throttling; last, as django-axes asks.
    "axes.middleware.AxesMiddleware",
]

ROOT_URLCONF = "calm_studio.urls"
WSGI_APPLICATION = "calm_studio.wsgi.application"

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
                "curation.context_processors.roles",
            ],
        },
    }
]

DATABASE_URL = env_str("DATABASE_URL", f"sqlite:///{VAR_DIR / 'calm_studio.sqlite3'}")
DATABASES = {"default": database_from_url(DATABASE_URL, base_dir=BASE_DIR)}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
]
# Login throttling (django-axes): after LOGIN_FAILURE_LIMIT failures for one username from one
# address, that pair is locked out for LOGIN_LOCKOUT_MINUTES; a success resets the count.
AUTHENTICATION_BACKENDS = [
    "axes.backends.AxesStandaloneBackend",
    "django.contrib.auth.backends.ModelBackend",
]
AXES_FAILURE_LIMIT = env_int("LOGIN_FAILURE_LIMIT", 5)
AXES_COOLOFF_TIME = timedelta(minutes=env_int("LOGIN_LOCKOUT_MINUTES", 15))
AXES_LOCKOUT_PARAMETERS = [["username", "ip_address"]]
AXES_RESET_ON_SUCCESS = True
AXES_LOCKOUT_TEMPLATE = "registration/locked_out.html"
AXES_VERBOSE = False
AXES_DISABLE_ACCESS_LOG = True  # failures are what throttling needs; no row per success
# Behind a proxy every request comes from the proxy's address: the throttle reads the client's
# address from X-Forwarded-For, but only on requests whose socket address is one of
# TRUSTED_PROXY_IPS (comma-separated; the deploy/ recipe's nginx on loopback by default).
TRUSTED_PROXY_IPS = frozenset(env_list("TRUSTED_PROXY_IPS", ["127.0.0.1", "::1"]))
AXES_CLIENT_IP_CALLABLE = "calm_studio.client_ip.client_ip"

# Content Security Policy (django-csp): scripts only from this site, never inline (the
# templates have none; htmx's eval features are off). Inline style attributes stay allowed
# (tree indentation, SVG charts, htmx's indicator style); they cannot run code.
CONTENT_SECURITY_POLICY = {
    "DIRECTIVES": {
        "default-src": ["'self'"],
        "script-src": ["'self'"],
        "style-src": ["'self'", "'unsafe-inline'"],
        "img-src": ["'self'", "data:"],
        "font-src": ["'self'"],
        "connect-src": ["'self'"],
        "object-src": ["'none'"],
        "base-uri": ["'self'"],
        "form-action": ["'self'"],
        "frame-ancestors": ["'none'"],
    }
}

LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "curation-problem-list"
LOGOUT_REDIRECT_URL = "login"

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = False
USE_TZ = True

STATIC_URL = "static/"
STATICFILES_DIRS = [BASE_DIR / "calm_studio" / "static"]
STATIC_ROOT = VAR_DIR / "static"
STATIC_ROOT.mkdir(exist_ok=True)
# WhiteNoise serves static files in every mode (runserver without DEBUG, gunicorn, tests); with
# finders on, no collectstatic step is needed on a laptop.
WHITENOISE_USE_FINDERS = True
WHITENOISE_AUTOREFRESH = DEBUG

# --- deployment (deploy/README in README.md: gunicorn behind an HTTPS proxy) -----------------
# CALM_HTTPS=1: the site is served over HTTPS by a proxy that sets X-Forwarded-Proto. It turns
# on secure cookies, the HTTP->HTTPS redirect and HSTS (each can still be set on its own); the
# proxy must overwrite X-Forwarded-Proto, never pass a client's through.
HTTPS = env_bool("CALM_HTTPS", False)
SESSION_COOKIE_HTTPONLY = True
SESSION_COOKIE_SECURE = env_bool("SECURE_COOKIES", HTTPS)
CSRF_COOKIE_SECURE = SESSION_COOKIE_SECURE
SECURE_SSL_REDIRECT = env_bool("SECURE_SSL_REDIRECT", HTTPS)
SECURE_REDIRECT_EXEMPT = [r"^healthz$"]  # monitors may probe gunicorn directly over HTTP
SECURE_HSTS_SECONDS = env_int("SECURE_HSTS_SECONDS", 365 * 24 * 3600 if HTTPS else 0)
SECURE_HSTS_INCLUDE_SUBDOMAINS = env_bool("SECURE_HSTS_INCLUDE_SUBDOMAINS", HTTPS)
SECURE_HSTS_PRELOAD = env_bool("SECURE_HSTS_PRELOAD", HTTPS)
if HTTPS:
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
SECURE_REFERRER_POLICY = "same-origin"
X_FRAME_OPTIONS = "DENY"
SECURE_CONTENT_TYPE_NOSNIFF = True

# Uploads larger than this are refused before parsing; the biggest public benchmark is ~1 MB.
DATA_UPLOAD_MAX_MEMORY_SIZE = 5 * 1024 * 1024
FILE_UPLOAD_MAX_MEMORY_SIZE = 5 * 1024 * 1024
PROBLEM_UPLOAD_MAX_BYTES = env_int("PROBLEM_UPLOAD_MAX_BYTES", 50 * 1024 * 1024)
UPLOAD_DIR = VAR_DIR / "uploads"

# Where `make run` and the docs point for the public benchmarks (never copied into the repo).
BENCHMARKS_DIR = Path(
    env_str("CALM_BENCHMARKS_DIR", str(BASE_DIR.parent / "shared" / "benchmarks"))
)

# --- Celery -------------------------------------------------------------------------------------
APP_REDIS_URL = "redis://127.0.0.1:6379/0"
REDIS_URL = env_str("REDIS_URL", APP_REDIS_URL)


def _test_redis_url() -> str:
    """Under pytest: TEST_REDIS_URL, else a REDIS_URL that is not db 0, else db 15; never db 0,
    the app's own (a test worker on it would take a running app's tasks)."""
    url = env_str("TEST_REDIS_URL", "") or env_str("REDIS_URL", "")
    if not url or (urlsplit(url).path.strip("/") or "0") == "0":
        if env_str("TEST_REDIS_URL", ""):
            raise EnvError(f"TEST_REDIS_URL={url!r} is Redis db 0, the app's own: use another db")
        url = "redis://127.0.0.1:6379/15"
    return url


if "pytest" in sys.modules:
    REDIS_URL = _test_redis_url()
CELERY_BROKER_URL = REDIS_URL
CELERY_RESULT_BACKEND = REDIS_URL
CELERY_RESULT_EXPIRES = 24 * 3600
CELERY_TASK_SERIALIZER = "json"
CELERY_RESULT_SERIALIZER = "json"
CELERY_ACCEPT_CONTENT = ["json"]
CELERY_TASK_ACKS_LATE = True  # a killed worker's task is redelivered, not lost
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_TRACK_STARTED = True
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
CELERY_BROKER_TRANSPORT_OPTIONS = {
    # A message a dead worker had taken is handed out again after this long; longer than any
    # single task may run (a long job keeps its row alive with heartbeats, not its message).
    "visibility_timeout": env_int("CELERY_VISIBILITY_TIMEOUT", 6 * 3600),
    # How often workers sweep for such messages (seconds x every Nth sweep scans Redis).
    "unacked_restore_interval": env_int("CELERY_RESTORE_INTERVAL", 10),
    "unacked_restore_throttle": env_int("CELERY_RESTORE_THROTTLE", 10),
}
# Routing by task name (Celery 5.7 deprecates the per-task ``queue`` attribute): every task
# name starts with its module's prefix, and each prefix is routed to one queue here.
CELERY_TASK_ROUTES = {
    "solver_sandbox.*": {"queue": Queue.SANDBOX.value},
    "training.*": {"queue": Queue.GPU.value},
    "curation.generation.*": {"queue": Queue.GPU.value},
    "curation.*": {"queue": Queue.DEFAULT.value},
}
CELERY_BEAT_SCHEDULE = {
    "restart-stalled-batches": {
        "task": "curation.batches_tick",
        "schedule": env_float("BATCH_TICK_INTERVAL_S", 30.0),
        "options": {"queue": Queue.DEFAULT.value, "expires": 25},
    },
    "reap-stale-jobs": {
        "task": "curation.jobs_reap",
        "schedule": env_float("JOB_REAP_INTERVAL_S", 60.0),
        "options": {"queue": Queue.DEFAULT.value, "expires": 55},
    },
}
CELERY_BEAT_SCHEDULE_FILENAME = str(VAR_DIR / "celerybeat-schedule")

# A running job writes a heartbeat this often; the reaper fails jobs silent for longer than the
# timeout (several missed beats, so a busy host is not mistaken for a dead one).
JOB_HEARTBEAT_S = env_float("JOB_HEARTBEAT_S", 15.0)
JOB_STALE_AFTER_S = env_float("JOB_STALE_AFTER_S", 120.0)
# A job whose worker died is put back in the queue by the reaper until it has had this many.
JOB_MAX_ATTEMPTS = env_int("JOB_MAX_ATTEMPTS", 3)
# How many gpu jobs (continuations, diagnoses, retries) one reviewer may have queued or running
# at once; leads and admins are not capped; 0: no cap.
GPU_JOBS_PER_REVIEWER = env_int("GPU_JOBS_PER_REVIEWER", 8)
# Workers announce themselves in Redis this often, for /healthz.
WORKER_HEARTBEAT_S = env_float("WORKER_HEARTBEAT_S", 5.0)

# --- CALM -------------------------------------------------------------------------------------
# Answer checking: "relative" = |a - r| / (|r| + 1) <= tolerance (SIRL's evaluator, 1e-6);
# "percent5" = ORLM/OptMATH's rounded 5% rule.
CALM_ANSWER_RULE = env_str("CALM_ANSWER_RULE", "relative")
CALM_ANSWER_TOLERANCE = env_float("CALM_ANSWER_TOLERANCE", 1e-6)
REVIEW_LOCK_MINUTES = env_int("REVIEW_LOCK_MINUTES", 30)
# Independent approvals (distinct people, never the hint's author) that make a trajectory
# golden, unless its batch sets its own number.
REVIEW_REQUIRED_APPROVALS = env_int("REVIEW_REQUIRED_APPROVALS", 1)
# While the reviewer is active on a trajectory page, the page renews its lock this often.
REVIEW_LOCK_RENEW_S = env_int("REVIEW_LOCK_RENEW_S", 60)
# Rollout defaults (CoRT's inference settings); an endpoint's sampling and a job's config
# override them field by field.
CALM_ROLLOUT_DEFAULTS = {
    "max_code_calls": env_int("CALM_MAX_CODE_CALLS", 15),
    "max_new_tokens": env_int("CALM_MAX_NEW_TOKENS", 16384),
    "code_timeout_s": env_float("CALM_CODE_TIMEOUT_S", 30.0),
    "temperature": env_float("CALM_TEMPERATURE", 0.6),
    "top_p": env_float("CALM_TOP_P", 0.95),
    # Stop a trajectory that runs the same failing code this many times in a row (0: never).
    "max_repeated_failures": env_int("CALM_MAX_REPEATED_FAILURES", 3),
    # Credit the sandbox's last optimal objective when the model boxed no answer. Off: only
    # what the model stated counts (golden candidates, evaluation and the GRPO reward alike).
    "credit_sandbox_answer": env_bool("CALM_CREDIT_SANDBOX_ANSWER", False),
}
# Show the Intervener the problem's reference answer while curating, as an expert reviewer
# would know it (never available to evaluation; the golden filter checks correctness itself).
CALM_INTERVENER_SEES_REFERENCE = env_bool("CALM_INTERVENER_SEES_REFERENCE", True)
# Which parts of the Intervener judge (curation/engine/checks.py): "both" (the checks over the
# execution record first, their findings told to the LLM, an earlier finding wins), "checks"
# (no LLM) or "llm" (no check). A batch may set its own.
CALM_INTERVENER_MODE = env_str("CALM_INTERVENER_MODE", "both")
# The longest hint, in tokens (counted as pre-tokens: words, numbers and symbols, a lower bound
# of the Reasoner's BPE count). The paper's hints are a sentence or two; 0: no limit.
CALM_HINT_MAX_TOKENS = env_int("CALM_HINT_MAX_TOKENS", 120)

# --- training ---------------------------------------------------------------------------------
# Run folders (checkpoints, metrics, logs). GPU workers on other hosts need this path, and the
# dataset exports under VAR_DIR/datasets, on a shared filesystem.
TRAINING_RUNS_DIR = Path(env_str("CALM_RUNS_DIR", str(VAR_DIR / "runs")))
# How often the worker reads a run's metrics file and log into the database.
TRAINING_POLL_S = env_float("TRAINING_POLL_S", 1.0)
# After a cancel (SIGTERM), how long the run may take to write its checkpoint before SIGKILL.
TRAINING_CANCEL_GRACE_S = env_float("TRAINING_CANCEL_GRACE_S", 600.0)
# Lines of the subprocess's output kept on the run page.
TRAINING_LOG_TAIL_LINES = env_int("TRAINING_LOG_TAIL_LINES", 200)

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s: %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": env_str("LOG_LEVEL", "INFO")},
    # django-axes logs every login at INFO; lockouts are WARNING.
    "loggers": {"axes": {"level": "WARNING"}},
}
