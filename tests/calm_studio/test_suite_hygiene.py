"""The suite keeps off the app's own Redis database and leaves no worker behind."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from django.conf import settings

from tests.polling import wait_for

REPO = Path(__file__).resolve().parents[2]
SHOW_REDIS = (
    "import os, pytest; os.environ['DJANGO_SETTINGS_MODULE'] = 'calm_studio.settings'; "
    "from django.conf import settings; print(settings.REDIS_URL)"
)


def redis_url_under_pytest(**env: str) -> subprocess.CompletedProcess:
    clean = {k: v for k, v in os.environ.items() if k not in ("REDIS_URL", "TEST_REDIS_URL")}
    return subprocess.run(
        [sys.executable, "-c", SHOW_REDIS],
        cwd=REPO,
        env={**clean, **env},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_it_never_uses_the_apps_redis_database():
    assert not settings.REDIS_URL.rstrip("/").endswith(":6379/0")
    assert redis_url_under_pytest().stdout.strip() == "redis://127.0.0.1:6379/15"  # plain pytest
    app_db = redis_url_under_pytest(REDIS_URL="redis://127.0.0.1:6379/0")
    assert app_db.stdout.strip() == "redis://127.0.0.1:6379/15"
    mine = redis_url_under_pytest(REDIS_URL="redis://127.0.0.1:6379/12")
    assert mine.stdout.strip() == "redis://127.0.0.1:6379/12"
    chosen = redis_url_under_pytest(TEST_REDIS_URL="redis://127.0.0.1:6379/9")
    assert chosen.stdout.strip() == "redis://127.0.0.1:6379/9"
    refused = redis_url_under_pytest(TEST_REDIS_URL="redis://127.0.0.1:6379/0")
    assert refused.returncode != 0 and "db 0, the app's own" in refused.stderr


def _running(pid: int) -> bool:
    try:
        return "zombie" not in Path(f"/proc/{pid}/status").read_text()
    except FileNotFoundError:
        return False


@pytest.mark.worker
def test_it_stops_a_worker_that_a_failing_test_started(tmp_path):
    # The inner run gets a SQLite file of its own: the outer session's test database is open.
    env = {**os.environ, "REDIS_URL": settings.REDIS_URL,
           "DATABASE_URL": f"sqlite:///{tmp_path / 'inner.sqlite3'}"}  # fmt: skip
    inner = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "tests/calm_studio/probe_failing_worker.py",
            "-o",
            "python_files=probe_*.py",
            "-p",
            "no:cacheprovider",
            "-s",
            "-q",
        ],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    found = re.search(r"PROBE-WORKER-PID (\d+) (\S+)", inner.stdout)
    assert found, inner.stdout[-3000:] + inner.stderr[-3000:]
    assert inner.returncode == 1 and "failing on purpose" in inner.stdout
    pid, hostname = int(found.group(1)), found.group(2)
    wait_for(lambda: not _running(pid), what=f"the probe's worker (pid {pid}) to stop")
    leftovers = subprocess.run(
        ["pgrep", "-f", hostname.split("@")[0]], capture_output=True, text=True, check=False
    )
    assert leftovers.stdout.strip() == "", leftovers.stdout


def test_a_wait_returns_what_it_waited_for_and_a_timeout_names_what_never_came():
    seen = iter([None, [], ["row"]])
    assert wait_for(lambda: next(seen), what="a row") == ["row"]
    with pytest.raises(AssertionError, match=r"waited 0.05 s for the pigs to fly; last seen: 0"):
        wait_for(lambda: 0, what="the pigs to fly", timeout=0.05)


def test_every_test_has_a_time_limit_that_names_it(request):
    # pytest-timeout, signal method: the hung test fails by name and the session goes on.
    assert 0 < float(request.config.getini("timeout")) <= 300
    assert request.config.getini("timeout_method") == "signal"
