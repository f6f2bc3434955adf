"""Not collected by the suite (no ``test_`` prefix): test_suite_hygiene.py runs it on purpose.

A test that starts a worker and then fails before stopping it, as
test_a_killed_worker_s_run_checkpoints_and_resumes_on_the_next_worker once did.
"""

from __future__ import annotations

import pytest

from tests.conftest import start_worker


@pytest.mark.django_db(transaction=True)
def test_it_fails_with_a_worker_running(test_database_url):
    proc, hostname = start_worker(test_database_url)
    print(f"PROBE-WORKER-PID {proc.pid} {hostname}", flush=True)
    raise AssertionError("failing on purpose with a worker running")
