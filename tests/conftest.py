"""Shared fixtures: a fixed cast of users, a real Celery worker, real headless Chromium."""

from __future__ import annotations

import atexit
import contextlib
import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest

# Playwright's sync API runs an event loop in the test thread; the ORM calls made by the test
# itself are still synchronous, so allow them (Django's documented escape hatch for tests).
os.environ.setdefault("DJANGO_ALLOW_ASYNC_UNSAFE", "true")

REPO = Path(__file__).resolve().parent.parent
ARTIFACTS = REPO / "test-artifacts"
PASSWORD = "correct horse battery staple"


@pytest.fixture(autouse=True)
def _fast_password_hashing(settings):
    # The default PBKDF2 costs ~0.3 s a user; the cast is recreated for every test.
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


def _make_user(username: str, role: str | None):
    from django.contrib.auth.models import Group, User

    user = User.objects.create_user(username=username, password=PASSWORD)
    if role:
        user.groups.add(Group.objects.get_or_create(name=role)[0])
        if role == "admin":
            user.is_staff = user.is_superuser = True
            user.save()
    return user


@pytest.fixture
def reviewer(db):
    return _make_user("rita-reviewer", "reviewer")


@pytest.fixture
def lead(db):
    return _make_user("leo-lead", "lead")


@pytest.fixture
def admin_user(db):
    return _make_user("ada-admin", "admin")


@pytest.fixture
def outsider(db):
    """Logged in, but in no role group."""
    return _make_user("otto-outsider", None)


@pytest.fixture
def client_for(client):
    """``client_for(user)``: a test client logged in as that user (None: anonymous)."""

    def login(user):
        if user is not None:
            client.force_login(user)
        return client

    return login


# --- a real Celery worker -------------------------------------------------------------------


def _database_url_for_worker() -> str:
    """The URL of the test database pytest-django created, for a worker in another process."""
    from django.db import connection

    cfg = connection.settings_dict
    if connection.vendor == "sqlite":
        return f"sqlite:///{Path(cfg['NAME']).resolve()}"
    user = cfg.get("USER") or ""
    password = f":{cfg['PASSWORD']}" if cfg.get("PASSWORD") else ""
    auth = f"{user}{password}@" if user else ""
    port = f":{cfg['PORT']}" if cfg.get("PORT") else ""
    return f"postgresql://{auth}{cfg.get('HOST') or '127.0.0.1'}{port}/{cfg['NAME']}"


def start_worker(db_url: str, **env_overrides: str):
    """Start a real ``celery worker`` process on all queues; returns (process, hostname)."""
    from django.conf import settings

    from calm_studio.celery import app
    from calm_studio.queues import ALL_QUEUES

    name = f"test-{uuid.uuid4().hex[:8]}@%h"
    env = {
        **os.environ,
        "DATABASE_URL": db_url,
        "REDIS_URL": settings.REDIS_URL,
        "PYTHONUNBUFFERED": "1",
        "JOB_STALE_AFTER_S": str(settings.JOB_STALE_AFTER_S),
        "WORKER_HEARTBEAT_S": "1",
        **env_overrides,
    }
    log_path = Path(settings.VAR_DIR) / f"test-worker-{name.split('@')[0]}.log"
    with log_path.open("w") as log:
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "celery",
                "-A",
                "calm_studio",
                "worker",
                "-l",
                "info",
                "-Q",
                ",".join(ALL_QUEUES),
                "-c",
                "2",
                "-n",
                name,
                "--without-gossip",
                "--without-mingle",
            ],
            cwd=REPO,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    _STARTED_WORKERS.append(proc)
    hostname = name.replace("%h", os.uname().nodename)
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"the test worker exited; see {log_path}")
        if app.control.ping(destination=[hostname], timeout=0.5):
            return proc, hostname
    stop_worker(proc)
    raise RuntimeError(f"the test worker did not answer within 90 s; see {log_path}")


def stop_worker(proc) -> None:
    """Stop a worker and its whole session (its pool children and their sandboxes)."""
    if proc.poll() is None:
        proc.terminate()
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(timeout=20)
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGKILL)  # whatever of its session is left
    proc.wait()
    if proc in _STARTED_WORKERS:
        _STARTED_WORKERS.remove(proc)


# Every worker a test starts is stopped when that test ends, passed or failed (a failing test
# once left a second worker running, which then took tasks from a running app); and at exit.
_STARTED_WORKERS: list[subprocess.Popen] = []
atexit.register(lambda: [stop_worker(p) for p in list(_STARTED_WORKERS)])


@pytest.fixture(autouse=True)
def _no_worker_outlives_its_test():
    before = list(_STARTED_WORKERS)  # session workers (live_worker) are set up before this
    yield
    for proc in [p for p in _STARTED_WORKERS if p not in before]:
        stop_worker(proc)


@pytest.fixture(scope="session")
def test_database_url(django_db_setup, django_db_blocker) -> str:
    with django_db_blocker.unblock():
        return _database_url_for_worker()


@pytest.fixture(scope="session")
def live_worker(test_database_url):
    """A real ``celery worker`` subprocess on all three queues, on the test Redis and database.

    Yields the project's Celery app, configured to talk to that worker. Tests that use it must
    commit their data (``@pytest.mark.django_db(transaction=True)``) so the worker can see it.
    """
    import redis
    from django.conf import settings

    from calm_studio.celery import app

    # Start from empty queues: messages left by an earlier, interrupted run must not run here.
    redis.Redis.from_url(settings.REDIS_URL).flushdb()
    proc, hostname = start_worker(test_database_url)
    app.worker_hostname = hostname
    app.worker_process = proc
    yield app
    stop_worker(proc)


# --- real headless Chromium ------------------------------------------------------------------

CHROMIUM = os.environ.get("CHROMIUM_PATH", "/usr/bin/chromium")


@pytest.fixture(scope="session")
def browser():
    from playwright.sync_api import sync_playwright

    if not Path(CHROMIUM).exists():
        pytest.fail(f"Chromium not found at {CHROMIUM}: `make test` installs Debian's chromium")
    with sync_playwright() as pw:
        instance = pw.chromium.launch(
            executable_path=CHROMIUM,
            headless=True,
            args=[
                "--no-sandbox",
                "--disable-gpu",
                "--disable-quic",
                "--no-first-run",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
            ],
        )
        yield instance
        instance.close()


@pytest.fixture
def page(browser):
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    page = context.new_page()
    page.set_default_timeout(10_000)
    yield page
    context.close()


@pytest.fixture
def screenshot(page, request):
    """``screenshot("name")`` saves a full-page PNG under test-artifacts/ for humans."""
    ARTIFACTS.mkdir(exist_ok=True)

    def take(name: str) -> Path:
        path = ARTIFACTS / f"{request.node.name}-{name}.png"
        page.screenshot(path=path, full_page=True)
        return path

    return take


@pytest.fixture
def benchmarks_dir() -> Path:
    """The public benchmarks beside the checkout (research licences: read, never copied)."""
    from django.conf import settings

    path = Path(settings.BENCHMARKS_DIR)
    if not (path / "nl4opt.jsonl").exists():
        pytest.skip(f"the shared benchmarks are not at {path} (set CALM_BENCHMARKS_DIR)")
    return path


@pytest.fixture(scope="session")
def tiny_model_path(tmp_path_factory) -> Path:
    """A tiny random Qwen3 with an offline byte-level BPE tokenizer (see tests/tiny_model.py)."""
    from tests.tiny_model import build_tiny_model

    return build_tiny_model(tmp_path_factory.mktemp("tiny-qwen3") / "model")


@pytest.fixture
def sandbox_without_bubblewrap(tmp_path, monkeypatch):
    """A host where the solver sandbox cannot start: bubblewrap is not on PATH (the rest of
    /usr/bin and friends is), as on a GPU host without it. The process-wide pool is restarted
    so it meets this host, and again afterwards. No code under test is replaced."""
    import os

    import solver_sandbox
    from solver_sandbox import isolation

    bin_dir = tmp_path / "bin-without-bwrap"
    bin_dir.mkdir()
    for folder in os.environ.get("PATH", "").split(os.pathsep):
        if not folder or not os.path.isdir(folder):
            continue
        for name in os.listdir(folder):
            link = bin_dir / name
            if name != "bwrap" and not link.exists():
                link.symlink_to(os.path.join(folder, name))
    monkeypatch.setenv("PATH", str(bin_dir))
    solver_sandbox.shutdown_default_pool()
    isolation.bwrap_problem.cache_clear()
    yield
    monkeypatch.undo()
    solver_sandbox.shutdown_default_pool()
    isolation.bwrap_problem.cache_clear()
