"""The pool run as an unprivileged service user: refusal with the clear error, or containment.

CI runs as root, so the suite makes its own unprivileged user (``calm-sandbox-test``) and
re-runs every hostile program of ``test_hostile.py`` and ``test_fallback.py`` from a process
that has become that user. A pool that cannot give a uid per slot there must refuse, say why,
and start nothing; ``run()`` must answer ``harness_error`` with that reason, not raise.
"""

from __future__ import annotations

import ast
import json
import os
import pwd
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

import solver_sandbox
from solver_sandbox import Policy, SandboxPool, SandboxUnavailableError
from solver_sandbox import isolation as iso

HERE = Path(__file__).resolve().parent
TEST_USER = "calm-sandbox-test"


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
