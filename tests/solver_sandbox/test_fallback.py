"""Without bubblewrap the pool still confines jobs with what the kernel allows, and says so."""

from __future__ import annotations

import os
import textwrap
from collections.abc import Iterator

import pytest

from solver_sandbox import Limits, Policy, SandboxPool, SandboxUnavailableError, Status
from tests.solver_sandbox.sandbox_helpers import assert_pool_healthy, slot_processes


@pytest.fixture(scope="module")
def bare_pool() -> Iterator[SandboxPool]:
    weaker = Policy(give_up=frozenset({"filesystem_isolation"}))
    with SandboxPool(slots=1, profiles=("pyomo",), isolation="fallback", policy=weaker) as p:
        yield p


def test_it_refuses_to_run_without_bwrap_unless_that_is_given_up_explicitly():
    with pytest.raises(SandboxUnavailableError) as refused:
        SandboxPool(slots=1, profiles=("pyomo",), isolation="fallback")
    message = str(refused.value)
    assert "no bubblewrap" in message
    assert "apt-get install bubblewrap" in message
    assert "SANDBOX_GIVE_UP=filesystem_isolation" in message


def test_it_reports_which_protections_are_active_without_bwrap(bare_pool):
    protections = set(bare_pool.protections)
    assert "bubblewrap" not in protections
    assert "readonly_filesystem" not in protections
    assert {"rlimits", "wall_deadline", "output_cap", "fresh_process_per_job"} <= protections
    if os.geteuid() == 0:
        assert {"uid_per_slot", "network_namespace"} <= protections
    assert_pool_healthy(bare_pool)


def test_it_still_blocks_the_network_without_bwrap(bare_pool):
    result = bare_pool.run(
        textwrap.dedent(
            """
            import socket
            try:
                socket.create_connection(("127.0.0.1", 6379), timeout=2)
                print("CONNECTED")
            except OSError as exc:
                print("blocked:", type(exc).__name__)
            """
        )
    )
    assert result.status == Status.OK
    assert result.stdout.startswith("blocked:")
    assert_pool_healthy(bare_pool)


@pytest.mark.skipif(os.geteuid() != 0, reason="the per-slot uid needs root")
def test_it_still_contains_a_fork_bomb_and_escaped_processes_without_bwrap(bare_pool):
    result = bare_pool.run(
        "import os\nwhile True:\n    try:\n        os.fork()\n        os.setsid()\n"
        "    except OSError:\n        pass",
        limits=Limits(timeout_s=1.5),
    )
    assert result.status in (Status.TIMEOUT, Status.CPU_LIMIT)
    assert bare_pool.wait_idle(), "the slot never came back"
    assert slot_processes(bare_pool) == []
    assert_pool_healthy(bare_pool)


@pytest.mark.skipif(os.geteuid() != 0, reason="the per-slot uid needs root")
def test_it_keeps_secret_files_unreadable_without_bwrap(bare_pool, tmp_path):
    secret = tmp_path / "secret_key"
    secret.write_text("do-not-leak")
    secret.chmod(0o600)
    result = bare_pool.run(f"print(open({str(secret)!r}).read())")
    assert result.status == Status.ERROR
    assert result.error["type"] == "PermissionError"
    assert "do-not-leak" not in result.stdout
    assert_pool_healthy(bare_pool)
