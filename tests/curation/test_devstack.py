"""``make run`` ends in ``manage.py devstack``; a script or supervisor that stops it by
signalling make's own pid (SIGINT or SIGTERM, not the whole terminal group as Ctrl-C does)
stops the whole stack. GNU make does not pass SIGINT on (it expects the terminal to have sent
it to the child too) and waits for devstack: devstack notices make handling the signal.

A real make, a real devstack with the embedded model off, in a temporary var folder and this
session's Redis db."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from tests.polling import wait_for

ROOT = Path(__file__).resolve().parents[2]


def children_of(pid: int) -> list[int]:
    """Live (not zombie) processes whose parent is ``pid``, read from /proc."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdecimal():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        state, ppid = stat.rsplit(")", 1)[1].split()[:2]
        if int(ppid) == pid and state != "Z":
            found.append(int(entry.name))
    return found


def alive(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_signalling_makes_pid_stops_the_whole_stack(tmp_path, signum):
    makefile = tmp_path / "Makefile"
    makefile.write_text(
        f"run:\n\t{sys.executable} manage.py devstack --addr 127.0.0.1:{free_port()} "
        "--concurrency 1\n"
    )
    env = {
        **os.environ,
        "CALM_LOCAL_MODEL": "off",
        "CALM_VAR_DIR": str(tmp_path / "var"),  # database, beat schedule, model status
        "DATABASE_URL": "",
        "REDIS_URL": os.environ.get("TEST_REDIS_URL", "redis://127.0.0.1:6379/15"),
    }
    log = (tmp_path / "make.log").open("wb")
    make = subprocess.Popen(
        ["make", "--no-print-directory", "-f", str(makefile)], cwd=ROOT, env=env,
        stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
    )  # fmt: skip
    stack: list[int] = []
    try:
        (devstack,) = wait_for(lambda: children_of(make.pid), what="make to start devstack")
        stack = wait_for(
            lambda: (kids := children_of(devstack)) and len(kids) == 3 and [devstack, *kids],
            what="devstack to start web, worker and beat", timeout=60,
        )  # fmt: skip
        wait_for(lambda: b"Press Ctrl-C" in (tmp_path / "make.log").read_bytes(),
                 what="devstack to say it is up", timeout=60)  # fmt: skip
        os.kill(make.pid, signum)  # make's pid only, not its process group
        make.wait(timeout=30)
        wait_for(lambda: not any(alive(pid) for pid in stack),
                 what="devstack and its web, worker and beat to be gone", timeout=60)  # fmt: skip
    finally:
        for pid in stack:  # what this test started, by id, if it still runs
            if alive(pid):
                os.kill(pid, signal.SIGKILL)
        if make.poll() is None:
            make.kill()
        log.close()
    said = (tmp_path / "make.log").read_text()
    assert "Stopped." in said  # devstack stopped them itself, in order
    if signum == signal.SIGINT:  # make passes SIGTERM on (some versions), never SIGINT
        assert f"Make ({make.pid}) received SIGINT; stopping everything." in said
