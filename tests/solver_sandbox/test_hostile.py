"""Hostile code: each case gets the right status, and a normal job then succeeds on the pool."""

from __future__ import annotations

import os
import textwrap
from pathlib import Path

import pytest

from solver_sandbox import Limits, SandboxPool, Status
from tests.solver_sandbox.sandbox_helpers import (
    NORMAL_JOB,
    REPO,
    assert_pool_healthy,
    slot_processes,
)

pytestmark = pytest.mark.timeout(60)


def run(pool: SandboxPool, code: str, **limits: object):
    return pool.run(textwrap.dedent(code), limits=Limits(**limits) if limits else None)


def test_it_contains_a_fork_bomb(pool):
    result = run(
        pool,
        """
        import os
        while True:
            try:
                os.fork()
            except OSError:
                pass
        """,
        timeout_s=2,
    )
    assert result.status in (Status.TIMEOUT, Status.CPU_LIMIT)
    assert_pool_healthy(pool)


def test_it_stops_a_memory_bomb_at_the_memory_limit(pool):
    result = run(pool, "x = bytearray(64 * 1024**3)", memory_mb=1024)
    assert result.status == Status.MEMORY_LIMIT
    assert_pool_healthy(pool)


def test_it_stops_a_growing_allocation_at_the_memory_limit(pool):
    result = run(
        pool,
        """
        hoard = []
        while True:
            hoard.append(bytearray(32 * 1024 * 1024))
        """,
        memory_mb=768,
    )
    assert result.status == Status.MEMORY_LIMIT
    assert result.max_rss_mb < 900
    assert_pool_healthy(pool)


def test_it_caps_the_memory_of_a_job_and_all_its_children_together(pool):
    if "cgroup_memory" not in pool.protections:
        pytest.skip("no memory cgroup here: RLIMIT_AS caps each process separately")
    result = run(
        pool,
        """
        import os, signal, time
        kids = []
        for _ in range(6):  # 6 x 300 MB: each under RLIMIT_AS, together over the slot's cap
            pid = os.fork()
            if pid == 0:
                block = bytearray(300 * 1024 * 1024)
                time.sleep(1)
                os._exit(0)
            kids.append(pid)
        statuses = [os.waitpid(pid, 0)[1] for pid in kids]
        print("oom-killed:", sum(os.WIFSIGNALED(s) and os.WTERMSIG(s) == signal.SIGKILL
                                 for s in statuses))
        """,
        memory_mb=1024,
        timeout_s=8,
    )
    assert result.status == Status.OK, result.stderr
    killed = int(result.stdout.split("oom-killed:")[1])
    assert killed >= 1
    assert_pool_healthy(pool)


def test_it_times_out_an_infinite_loop(pool):
    result = run(pool, "while True:\n    pass", timeout_s=1)
    assert result.status == Status.TIMEOUT
    assert result.wall_ms >= 900  # not before its deadline
    assert_pool_healthy(pool)


def test_it_enforces_the_cpu_limit_separately_from_the_deadline(pool):
    # A deadline far off: one CPU second ends it first however busy the machine is.
    result = run(pool, "while True:\n    pass", timeout_s=60, cpu_s=1)
    assert result.status == Status.CPU_LIMIT
    assert result.cpu_ms >= 900
    assert_pool_healthy(pool)


def test_it_kills_a_sleep_past_the_deadline_and_keeps_what_was_printed(pool):
    result = run(
        pool,
        """
        import time
        print("before the sleep")
        time.sleep(60)
        """,
        timeout_s=1,
    )
    assert result.status == Status.TIMEOUT
    assert result.wall_ms < 30_000  # long before the 60 s sleep would have ended
    assert result.stdout == "before the sleep\n"
    assert_pool_healthy(pool)


def test_it_kills_an_output_flood_at_the_cap_and_keeps_head_and_tail(pool):
    result = run(
        pool,
        """
        print("FIRST LINE")
        while True:
            print("x" * 1000)
        """,
        timeout_s=60,
        output_limit_bytes=2_000_000,
    )
    assert result.status == Status.OUTPUT_LIMIT
    assert result.truncated_bytes > 1_000_000
    assert result.stdout.startswith("FIRST LINE\n")
    assert "bytes truncated" in result.stdout
    assert len(result.stdout) < 80_000
    assert result.wall_ms < 30_000  # stopped at the cap, long before the deadline
    assert_pool_healthy(pool)


def test_it_keeps_the_final_objective_line_after_a_large_but_allowed_output(pool):
    result = run(
        pool,
        """
        for i in range(20_000):
            print("iteration", i, "." * 60)
        print("OBJECTIVE_VALUE: 17")
        """,
    )
    assert result.status == Status.OK
    assert result.truncated_bytes > 0
    assert result.stdout.rstrip().endswith("OBJECTIVE_VALUE: 17")
    assert result.printed_objective == 17
    assert_pool_healthy(pool)


@pytest.mark.parametrize(
    "host,port",
    [("127.0.0.1", 6379), ("127.0.0.1", 8000), ("1.1.1.1", 443), ("8.8.8.8", 53)],
)
def test_it_blocks_sockets_to_local_services_and_the_outside(pool, host, port):
    result = run(
        pool,
        f"""
        import socket
        try:
            s = socket.create_connection(({host!r}, {port}), timeout=2)
        except OSError as exc:
            print("blocked:", type(exc).__name__)
        else:
            print("CONNECTED")
        """,
    )
    assert result.status == Status.OK
    assert result.stdout.startswith("blocked:")
    assert_pool_healthy(pool)


def test_it_blocks_dns_lookups(pool):
    result = run(
        pool,
        """
        import socket
        try:
            print("RESOLVED", socket.getaddrinfo("pypi.org", 443))
        except OSError as exc:
            print("blocked:", type(exc).__name__)
        """,
    )
    assert result.status == Status.OK
    assert result.stdout.startswith("blocked:")
    assert_pool_healthy(pool)


def test_it_refuses_writes_outside_the_work_directory(pool):
    targets = ["/tmp/escape.txt", f"{REPO}/escape.txt", "/etc/escape.txt", "/usr/escape.txt"]
    targets += ["/root/escape.txt", "/escape.txt", "../escape.txt"]
    result = run(
        pool,
        f"""
        import os
        for path in {targets!r}:
            try:
                with open(path, "w") as fh:
                    fh.write("pwned")
                print("WROTE", path)
            except OSError as exc:
                print("refused", path, type(exc).__name__)
        with open("inside.txt", "w") as fh:
            fh.write("fine")
        print("inside ok", os.path.exists("inside.txt"))
        """,
    )
    assert result.status == Status.OK
    assert "WROTE" not in result.stdout
    assert "inside ok True" in result.stdout
    for path in targets[1:6]:
        assert not Path(path).exists()
    if "private_tmp" in pool.protections:
        assert not Path("/tmp/escape.txt").exists()
    assert_pool_healthy(pool)


@pytest.fixture
def secret_key_file():
    """The settings' secret key file; created for the test when the project has none yet."""
    from django.conf import settings

    path = Path(settings.VAR_DIR) / "secret_key"
    if path.exists() and not os.access(path, os.R_OK):
        pytest.skip("the project's secret key is unreadable to this user, so to its jobs too")
    created_dir = not path.parent.exists()
    created = not path.exists()
    if created:
        path.parent.mkdir(exist_ok=True)
        path.write_text("test-secret-do-not-leak")
        path.chmod(0o600)
    yield path
    if created:
        path.unlink()
        if created_dir:
            path.parent.rmdir()


def test_it_cannot_read_the_projects_files_or_secrets(pool, secret_key_file):
    secret = secret_key_file.read_text().strip()
    result = run(
        pool,
        f"""
        import os
        for path in [{str(secret_key_file)!r}, {str(REPO / "pyproject.toml")!r},
                     {str(REPO / "calm_studio" / "__init__.py")!r}, "/etc/shadow",
                     "/root/.bash_history", "/proc/1/environ"]:
            try:
                with open(path) as fh:
                    print("GOT-CONTENT", path, fh.read())
            except OSError as exc:
                print("refused", path, type(exc).__name__)
        for folder in ["/root", {str(REPO)!r}]:
            try:
                print("LISTED", folder, os.listdir(folder))
            except OSError as exc:
                print("refused", folder, type(exc).__name__)
        print("env", sorted(os.environ))
        """,
    )
    assert result.status == Status.OK
    assert secret not in result.stdout
    assert f"GOT-CONTENT {secret_key_file}" not in result.stdout
    assert "GOT-CONTENT /etc/shadow" not in result.stdout
    assert "SECRET" not in result.stdout.split("env", 1)[1]
    if "project_files_hidden" in pool.protections:
        assert "GOT-CONTENT" not in result.stdout
        listings = [line for line in result.stdout.splitlines() if line.startswith("LISTED")]
        for name in ("pyproject.toml", "var", "calm_studio", ".git", ".bash_history"):
            assert not any(repr(name) in line for line in listings), listings
    assert_pool_healthy(pool)


def test_it_cannot_signal_or_kill_the_pool(pool):
    before = pool.zygote_pids()
    result = run(
        pool,
        f"""
        import os, signal
        for label, target in [("init", 1), ("parent", os.getppid()), ("host", {os.getpid()}),
                              ("supervisor-group", -{os.getpgid(0)})]:
            try:
                os.kill(target, signal.SIGKILL)
                print("SIGNALLED", label)
            except OSError as exc:
                print("refused", label, type(exc).__name__)
        try:  # the zygote's group is 1 in the sandbox: this is kill(-1), the slot's own uid
            os.killpg(os.getpgid(os.getppid()), signal.SIGKILL)
        except OSError:
            pass
        os.kill(-1, signal.SIGTERM)  # everything this uid may signal: not even the job itself
        print("still here")
        """,
    )
    assert result.status == Status.OK
    assert "SIGNALLED" not in result.stdout
    assert "still here" in result.stdout
    assert pool.zygote_pids() == before
    assert_pool_healthy(pool)


def test_it_refuses_os_system_and_subprocess(pool):
    result = run(
        pool,
        """
        import os, subprocess
        print("os.system returned", os.system("echo RAN-A-SHELL"))
        subprocess.run(["/bin/echo", "RAN-A-PROGRAM"], check=True)
        """,
    )
    assert result.status == Status.ERROR
    assert result.error["type"] == "PermissionError"
    assert "RAN-A" not in result.stdout
    assert "os.system returned" in result.stdout
    assert "os.system returned 0" not in result.stdout
    assert_pool_healthy(pool)


def test_it_reports_a_ctypes_segfault_as_an_error(pool):
    result = run(pool, "import ctypes\nctypes.string_at(0)")
    assert result.status == Status.ERROR
    assert result.signal == "SIGSEGV"
    assert result.error["type"] == "SIGSEGV"
    assert_pool_healthy(pool)


def test_it_kills_a_grandchild_that_escapes_into_its_own_session(pool):
    result = run(
        pool,
        """
        import os, time
        pid = os.fork()
        if pid == 0:
            os.setsid()
            if os.fork() == 0:
                while True:
                    time.sleep(0.01)
            os._exit(0)
        os.waitpid(pid, 0)
        print("left a daemon behind")
        """,
    )
    assert result.status == Status.OK
    assert "left a daemon behind" in result.stdout
    assert pool.wait_idle(), "the slot never came back"
    if pool.runs_as_slot_uids:
        assert slot_processes(pool) == []
    assert_pool_healthy(pool)


def test_it_kills_an_escaped_grandchild_when_the_job_times_out(pool):
    result = run(
        pool,
        """
        import os, time
        if os.fork() == 0:
            os.setsid()
            while True:
                print("still alive", flush=True)
                time.sleep(0.05)
        time.sleep(60)
        """,
        timeout_s=1,
    )
    assert result.status == Status.TIMEOUT
    assert pool.wait_idle(), "the slot never came back"
    if pool.runs_as_slot_uids:
        assert slot_processes(pool) == []
    assert_pool_healthy(pool)


def test_it_reports_no_solve_for_a_printed_objective_without_a_solve(pool):
    result = run(pool, 'print("OBJECTIVE_VALUE: 1700")')
    assert result.status == Status.OK
    assert result.printed_objective == 1700
    assert result.objective is None
    assert result.solver_status is None
    assert result.objective_verdict == "no_solve"
    assert result.solves == []
    assert_pool_healthy(pool)


def test_it_flags_a_printed_objective_that_disagrees_with_the_solve(pool):
    result = pool.run(
        NORMAL_JOB.replace('print(f"OBJECTIVE_VALUE: {pyo.value(m.obj)}")', "")
        + 'print("OBJECTIVE_VALUE: 1700")'
    )
    assert result.status == Status.OK
    assert result.objective == pytest.approx(34.0)
    assert result.printed_objective == 1700
    assert result.objective_verdict == "mismatch"
    assert_pool_healthy(pool)


def test_it_detects_garbage_written_into_the_result_channel(pool):
    result = run(
        pool,
        """
        import os
        for fd in os.listdir("/proc/self/fd"):
            if int(fd) > 2:
                try:
                    os.write(int(fd), b"garbage R 2\\n{}")
                except OSError:
                    pass
        print("OBJECTIVE_VALUE: 1")
        """,
    )
    assert result.status == Status.HARNESS_ERROR
    assert "tampered" in result.detail
    assert result.objective is None
    assert_pool_healthy(pool)


def test_it_rejects_a_report_without_the_harness(pool):
    result = run(pool, 'import os\nprint("OBJECTIVE_VALUE: 1", flush=True)\nos._exit(0)')
    assert result.status == Status.HARNESS_ERROR
    assert result.objective is None
    assert_pool_healthy(pool)


def test_it_reports_a_syntax_error(pool):
    result = run(pool, "def broken(:\n    pass")
    assert result.status == Status.ERROR
    assert result.error["type"] == "SyntaxError"
    assert "SyntaxError" in result.stderr
    assert_pool_healthy(pool)


def test_it_leaks_nothing_into_the_next_job(pool):
    first = run(
        pool,
        """
        import builtins, os, sys, pyomo.environ as pyo
        builtins.LEAKED = "from the first job"
        sys.modules["json"].dumps = lambda *a, **k: "tampered"
        pyo.SolverFactory = None
        os.environ["LEAKED"] = "1"
        with open("left_behind.txt", "w") as fh:
            fh.write("x")
        print(os.getcwd())
        """,
    )
    assert first.status == Status.OK
    for _ in range(2):  # both slots
        second = run(
            pool,
            """
            import builtins, json, os, pyomo.environ as pyo
            print(hasattr(builtins, "LEAKED"), json.dumps(1), pyo.SolverFactory is None,
                  "LEAKED" in os.environ, os.listdir("."))
            """,
        )
        assert second.status == Status.OK, second.stderr
        assert second.stdout.strip() == "False 1 False False []"
    assert not os.path.exists(first.stdout.strip()) or "private_tmp" in pool.protections
    assert_pool_healthy(pool)


def test_it_replaces_a_zygote_that_died_and_keeps_serving(pool):
    import signal

    before = pool.zygote_pids()["pyomo"]
    os.killpg(before, signal.SIGKILL)  # the whole bwrap session of the Pyomo profile
    first = pool.run("print('after')")
    assert first.status in (Status.OK, Status.HARNESS_ERROR)
    assert_pool_healthy(pool)
    assert pool.zygote_pids()["pyomo"] != before
