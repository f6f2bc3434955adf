"""The pool run as an unprivileged service user: refusal with the clear error, or containment.

CI runs as root, so the suite makes its own unprivileged user (``calm-sandbox-test``) and
re-runs the hostile programs from a process that has become that user:

* with no way to a uid per slot (here: an interpreter it cannot even run), the pool must refuse,
  say why, and start nothing; ``run()`` answers ``harness_error`` with that reason;
* with subordinate uids (``/etc/subuid``, ``newuidmap``) and an interpreter it can run, the
  pool gets full isolation through a user namespace, and the whole hostile suite passes as
  that user (a private mount namespace shows it the interpreter under /root, as a deployment
  with the venv outside /root would).
"""

from __future__ import annotations

import ast
import ctypes
import json
import os
import pwd
import shutil
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

import pytest

import solver_sandbox
from solver_sandbox import Policy, SandboxPool, SandboxUnavailableError
from solver_sandbox import isolation as iso

HERE = Path(__file__).resolve().parent
TEST_USER = "calm-sandbox-test"
SUBIDS = "2000000-2065535"  # the test user's subordinate ids: far from the root pools' 3000000+


def _literal(node: ast.expr) -> str | None:
    """A string argument; in an f-string the interpolated host values become ``0``."""
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return node.value
    if isinstance(node, ast.JoinedStr):
        return "".join(v.value if isinstance(v, ast.Constant) else "0" for v in node.values)
    return None


def hostile_programs() -> dict[str, str]:
    """Every program the hostile suites hand to a pool, by test name."""
    found: dict[str, str] = {}
    for module in ("test_hostile.py", "test_fallback.py"):
        tree = ast.parse((HERE / module).read_text())
        for fn in tree.body:
            if not isinstance(fn, ast.FunctionDef) or not fn.name.startswith("test_it_"):
                continue
            for node in ast.walk(fn):
                if not isinstance(node, ast.Call):
                    continue
                strings = [s for s in map(_literal, node.args) if s]
                code = next((s for s in strings if "\n" in s), None)
                if code is None and strings and node.args and _literal(node.args[-1]):
                    code = strings[-1]
                if code:
                    found.setdefault(fn.name, textwrap.dedent(code))
    return found


@pytest.fixture(scope="module")
def unprivileged() -> pwd.struct_passwd:
    """An unprivileged user: made here when the suite runs as root (as in CI)."""
    if os.geteuid() != 0:
        return pwd.getpwuid(os.geteuid())
    for _attempt in range(5):
        try:
            return pwd.getpwnam(TEST_USER)
        except KeyError:
            subprocess.run(
                [
                    "useradd",
                    "--system",
                    "--no-create-home",
                    "--shell",
                    "/usr/sbin/nologin",
                    TEST_USER,
                ],
                capture_output=True,
                check=False,
            )  # a parallel run may hold the passwd lock: look again
            time.sleep(0.2)
    return pwd.getpwnam(TEST_USER)


def as_user(user: pwd.struct_passwd, programs: dict[str, str], policy: Policy) -> dict:
    """Fork, become ``user``, try a pool and run every program through ``run()``; the outcome."""
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: never returns into pytest
        os.close(read)
        out: dict = {}
        try:
            if os.geteuid() == 0:
                os.setgroups([])
                os.setresgid(user.pw_gid, user.pw_gid, user.pw_gid)
                os.setresuid(user.pw_uid, user.pw_uid, user.pw_uid)
            out["uid"] = os.geteuid()
            iso.bwrap_problem.cache_clear()  # probe bwrap again, as this user
            solver_sandbox._default = None  # not the parent's pool
            solver_sandbox._refusal = None
            try:
                SandboxPool(slots=1, profiles=("pyomo",), policy=policy).close()
                out["refusal"] = None
            except SandboxUnavailableError as exc:
                out["refusal"] = str(exc)
            os.environ["SANDBOX_GIVE_UP"] = ",".join(sorted(policy.give_up))
            out["runs"] = {}
            for name, code in programs.items():
                result = solver_sandbox.run(code)
                out["runs"][name] = {"status": result.status.value, "detail": result.detail}
        except BaseException as exc:  # reported to the parent
            out["crash"] = repr(exc)
        os.write(write, json.dumps(out).encode())
        os._exit(0)
    os.close(write)
    chunks = []
    while chunk := os.read(read, 1 << 16):
        chunks.append(chunk)
    os.close(read)
    os.waitpid(pid, 0)
    return json.loads(b"".join(chunks))


def user_processes(uid: int) -> list[int]:
    found = []
    for name in os.listdir("/proc"):
        if name.isdigit():
            try:
                status = Path(f"/proc/{name}/status").read_text()
            except OSError:
                continue
            fields = dict(line.split(":", 1) for line in status.splitlines() if ":" in line)
            if int(fields["Uid"].split()[1]) == uid and "zombie" not in fields.get("State", ""):
                found.append(int(name))
    return found


PROGRAMS = hostile_programs()
HOSTILE_SUITES = ["test_hostile.py", "test_ipc.py", "test_channel.py"]


def _subids(user: pwd.struct_passwd) -> bool:
    """Give the test user subordinate uids/gids (and the uidmap helpers) if it has none."""
    from solver_sandbox import userns

    if shutil.which("newuidmap") is None:
        return False
    for path in (userns.SUBUID, userns.SUBGID):
        if userns.subordinate_range(path, user.pw_uid) is None:
            subprocess.run(
                ["usermod", "--add-subuids", SUBIDS, "--add-subgids", SUBIDS, user.pw_name],
                capture_output=True,
                check=False,
            )
    return all(userns.subordinate_range(p, user.pw_uid) for p in (userns.SUBUID, userns.SUBGID))


def _show_interpreter_under_root() -> None:
    """In this process's own mount namespace: /root becomes a 0755 tmpfs holding only a
    read-only bind of the interpreter's tree (what bwrap itself does for the jobs)."""
    libc = ctypes.CDLL(None, use_errno=True)
    ms_rec, ms_private, ms_bind, ms_rdonly, ms_remount = 0x4000, 1 << 18, 4096, 1, 32
    if libc.unshare(0x00020000) != 0:  # CLONE_NEWNS
        raise OSError(ctypes.get_errno(), "unshare(CLONE_NEWNS)")
    libc.mount(None, b"/", None, ms_rec | ms_private, None)
    exe_root = Path(os.path.realpath(sys.executable)).parents[1]  # .../versions/3.11.7
    if not str(exe_root).startswith("/root/"):
        return
    keep = Path(tempfile.mkdtemp(prefix="calm-interp-"))
    keep.chmod(0o755)
    if libc.mount(str(exe_root).encode(), str(keep).encode(), None, ms_bind | ms_rec, None):
        raise OSError(ctypes.get_errno(), "bind the interpreter")
    if libc.mount(b"tmpfs", b"/root", b"tmpfs", 0, b"mode=0755"):
        raise OSError(ctypes.get_errno(), "tmpfs on /root")
    exe_root.mkdir(parents=True)
    for parent in exe_root.relative_to("/root").parents:
        (Path("/root") / parent).chmod(0o755)
    if libc.mount(str(keep).encode(), str(exe_root).encode(), None, ms_bind | ms_rec, None):
        raise OSError(ctypes.get_errno(), "bind the interpreter back")
    flags = ms_bind | ms_remount | ms_rdonly | ms_rec
    libc.mount(None, str(exe_root).encode(), None, flags, None)


def run_suites_as(user: pwd.struct_passwd, suites: list[str], tmp: Path) -> tuple[int, str]:
    """Run pytest on ``suites`` as ``user`` (in a private mount namespace); (rc, output).

    ``tmp`` must be reachable by ``user`` (pytest's own tmp_path is under a 0700 folder)."""
    tmp.chmod(0o777)
    log = tmp / "pytest.log"
    pid = os.fork()
    if pid == 0:
        try:
            _show_interpreter_under_root()
            os.setgroups([])
            os.setresgid(user.pw_gid, user.pw_gid, user.pw_gid)
            os.setresuid(user.pw_uid, user.pw_uid, user.pw_uid)
            out = os.open(log, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
            os.dup2(out, 1)
            os.dup2(out, 2)
            env = {
                "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
                "HOME": str(tmp),
                "SECRET_KEY": "test-only-not-a-secret",
                "CALM_VAR_DIR": str(tmp / "var"),
                "TEST_REDIS_URL": os.environ.get("TEST_REDIS_URL", "")
                or os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/15"),
                "DATABASE_URL": "",
                "PYTHONDONTWRITEBYTECODE": "1",
            }
            args = [f"tests/solver_sandbox/{name}" for name in suites]
            os.chdir(HERE.parents[1])
            argv = [sys.executable, "-m", "pytest", *args, "-p", "no:cacheprovider", "-q", "-rs"]
            os.execve(sys.executable, argv, env)  # noqa: S606 - the suite itself, no shell
        except BaseException as exc:  # reported through the log
            (tmp / "child-error").write_text(repr(exc))
        finally:
            os._exit(113)
    _, status = os.waitpid(pid, 0)
    output = log.read_text() if log.exists() else ""
    if (tmp / "child-error").exists():
        output += "\nchild: " + (tmp / "child-error").read_text()
    return os.waitstatus_to_exitcode(status), output


def test_it_collects_every_hostile_program():
    assert len(PROGRAMS) >= 25, sorted(PROGRAMS)
    assert "test_it_contains_a_fork_bomb" in PROGRAMS
    assert "test_it_cannot_signal_or_kill_the_pool" in PROGRAMS


@pytest.mark.skipif(os.geteuid() != 0, reason="compares root with an unprivileged user")
def test_it_refuses_every_hostile_program_as_an_unprivileged_user_with_the_clear_error(
    unprivileged,
):
    outcome = as_user(unprivileged, PROGRAMS, Policy())
    assert "crash" not in outcome, outcome.get("crash")
    assert outcome["uid"] == unprivileged.pw_uid != 0
    refusal = outcome["refusal"]
    # No full isolation without root here: the pool must say so, and what to do about it.
    assert refusal is not None, "a pool started as an unprivileged user with full protections?"
    assert "refuses to start" in refusal
    assert f"not root (uid {unprivileged.pw_uid})" in refusal
    assert "SANDBOX_GIVE_UP=uid_separation" in refusal
    for name, run in outcome["runs"].items():
        assert run["status"] == "harness_error", (name, run)
        assert "refuses to start" in run["detail"], (name, run)
    assert len(outcome["runs"]) == len(PROGRAMS)
    assert user_processes(unprivileged.pw_uid) == []  # nothing was started


@pytest.mark.skipif(os.geteuid() != 0, reason="compares root with an unprivileged user")
def test_it_names_an_interpreter_the_service_user_cannot_run(unprivileged):
    exe = os.path.realpath(sys.executable)
    if all(os.stat(p).st_mode & 0o001 for p in Path(exe).parents):
        pytest.skip("every user can reach the interpreter here")
    weaker = Policy(give_up=frozenset({"uid_separation", "filesystem_isolation"}))
    outcome = as_user(unprivileged, {"hello": "print(1)"}, weaker)
    assert "crash" not in outcome, outcome.get("crash")
    assert f"cannot read or execute {exe}" in outcome["refusal"]
    assert "not under /root" in outcome["refusal"]
    assert outcome["runs"]["hello"]["status"] == "harness_error"


@pytest.mark.skipif(os.geteuid() != 0, reason="makes and becomes its own unprivileged user")
def test_it_contains_every_hostile_program_as_an_unprivileged_user_with_subordinate_uids(
    unprivileged,
):
    if not _subids(unprivileged):
        pytest.skip("newuidmap is not installed (apt-get install uidmap)")
    tmp_path = Path(tempfile.mkdtemp(prefix="calm-userns-test-"))
    try:
        rc, output = _run_hostile_as(unprivileged, tmp_path)
    finally:
        shutil.rmtree(tmp_path, ignore_errors=True)
    # Every hostile test passes as that user, against a pool that had the full minimum
    # (uid_per_slot included: the last test checks it) through a user namespace.
    assert rc == 0, output[-6000:]
    assert " passed" in output and "failed" not in output and " error" not in output


def _run_hostile_as(unprivileged: pwd.struct_passwd, tmp_path: Path) -> tuple[int, str]:
    return run_suites_as(
        unprivileged,
        [
            *HOSTILE_SUITES,
            "test_hosts.py::test_every_result_lists_at_least_the_minimum_protections",
        ],
        tmp_path,
    )
