"""Hosts unlike the development machine: many cores, a dead supervisor, settings for slots."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import textwrap
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from solver_sandbox import SandboxPool, Status
from solver_sandbox.isolation import UID_BLOCK, UidBlock, bwrap_argv, bwrap_problem
from solver_sandbox.policy import DEFAULT_MAX_SLOTS, MAX_SLOTS, default_slots
from tests.solver_sandbox.sandbox_helpers import NORMAL_JOB, NORMAL_OBJECTIVE, REPO


def test_it_starts_a_pool_and_runs_jobs_on_a_simulated_192_core_host(monkeypatch):
    monkeypatch.setattr(os, "cpu_count", lambda: 192)
    monkeypatch.delenv("SANDBOX_POOL_SLOTS", raising=False)
    with SandboxPool(profiles=("pyomo",)) as pool:
        assert pool.slots == DEFAULT_MAX_SLOTS  # not one slot per core past what is sane
        assert len(set(pool.slot_uids)) == DEFAULT_MAX_SLOTS
        with ThreadPoolExecutor(8) as ex:
            results = list(ex.map(lambda _: pool.run(NORMAL_JOB), range(16)))
        assert [r.status for r in results] == [Status.OK] * 16, [r.detail for r in results]
        assert all(r.objective == pytest.approx(NORMAL_OBJECTIVE) for r in results)


def test_it_takes_the_slot_count_from_the_setting(monkeypatch):
    monkeypatch.setenv("SANDBOX_POOL_SLOTS", "3")
    assert default_slots(192) == 3
    monkeypatch.setenv("SANDBOX_POOL_SLOTS", "0")
    with pytest.raises(ValueError, match="1 to"):
        default_slots(192)
    monkeypatch.setenv("SANDBOX_POOL_SLOTS", str(MAX_SLOTS + 1))
    with pytest.raises(ValueError, match="1 to"):
        default_slots(192)
    monkeypatch.delenv("SANDBOX_POOL_SLOTS")
    assert default_slots(2) == 2
    assert default_slots(192) == DEFAULT_MAX_SLOTS


def test_it_holds_distinct_uids_for_pools_larger_than_one_uid_block():
    big = UidBlock(192)
    other = UidBlock(UID_BLOCK + 6)
    try:
        assert len(set(big.uids)) == 192 and len(big.blocks) == 3
        assert len(set(other.uids)) == UID_BLOCK + 6
        assert not set(big.uids) & set(other.uids)
    finally:
        big.release()
        other.release()


DIES = textwrap.dedent(
    """
    import sys, threading, time
    sys.path.insert(0, sys.argv[1])
    from solver_sandbox import SandboxPool
    box = {}
    # Made in a thread that ends at once: the zygotes must outlive it (they are started from
    # the pool's own launcher thread) and die with the process.
    make = lambda: box.setdefault("p", SandboxPool(slots=1, profiles=("pyomo",)))
    t = threading.Thread(target=make)
    t.start(); t.join()
    time.sleep(0.5)
    pool = box["p"]
    print(pool.run("print(6 * 7)").stdout.strip(), *pool.zygote_pids().values(), flush=True)
    time.sleep(600)
    """
)


def _descendants(root: int) -> list[int]:
    parents = {}
    for name in os.listdir("/proc"):
        if name.isdigit():
            try:
                with open(f"/proc/{name}/stat") as fh:
                    parents[int(name)] = int(fh.read().rsplit(")", 1)[1].split()[1])
            except (OSError, ValueError, IndexError):
                continue
    found, frontier = [], [root]
    while frontier:
        kids = [pid for pid, ppid in parents.items() if ppid in frontier]
        found += kids
        frontier = kids
    return found


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/status") as fh:
            return "zombie" not in fh.read()
    except FileNotFoundError:
        return False


def test_it_has_bwrap_die_with_its_parent():
    assert "--die-with-parent" in bwrap_argv(sys.executable)


@pytest.mark.skipif(bwrap_problem() is not None, reason="needs bubblewrap")
def test_it_takes_a_stuck_zygote_and_its_spares_down_when_the_supervisor_dies():
    proc = subprocess.Popen(
        [sys.executable, "-c", DIES, str(REPO)], stdout=subprocess.PIPE, text=True
    )
    try:
        answer, launcher = proc.stdout.readline().split()
        assert answer == "42"  # the pool outlived the thread that made it
        deadline = time.monotonic() + 15
        while len(inside := _descendants(int(launcher))) < 3 and time.monotonic() < deadline:
            time.sleep(0.05)  # the slot's next spare is forked just after the job
        pids = [int(launcher), *inside]
        assert len(inside) >= 2 and all(_alive(p) for p in pids)  # bwrap, zygote (+ spare)
        for pid in inside:
            # Stopped, the zygote cannot notice its control socket closing: only the kernel's
            # parent-death signal (bwrap --die-with-parent) can end it now.
            os.kill(pid, signal.SIGSTOP)
        proc.send_signal(signal.SIGKILL)  # no atexit, no close()
        proc.wait()
        deadline = time.monotonic() + 20
        while any(_alive(p) for p in pids) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert [p for p in pids if _alive(p)] == []
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        for pid in pids if "pids" in dir() else []:  # a failed run leaves nothing stopped
            with contextlib.suppress(OSError):
                os.kill(pid, signal.SIGKILL)


def test_every_result_lists_at_least_the_minimum_protections(pool):
    result = pool.run(NORMAL_JOB)
    assert result.status == Status.OK
    assert pool.policy.minimum <= set(result.protections)
    assert set(result.to_dict()["protections"]) == set(result.protections)
    report = pool.report()
    assert report["given_up"] == [] and set(report["minimum"]) <= set(report["protections"])
