"""Hosts unlike the development machine: many cores, a dead supervisor, settings for slots."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import textwrap
from concurrent.futures import ThreadPoolExecutor

import pytest

from solver_sandbox import SandboxPool, Status
from solver_sandbox.isolation import UID_BLOCK, UidBlock, bwrap_argv, bwrap_problem
from solver_sandbox.policy import DEFAULT_MAX_SLOTS, MAX_SLOTS, default_slots
from tests.polling import wait_for
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
    import os, signal, sys, threading
    sys.path.insert(0, sys.argv[1])
    from solver_sandbox import SandboxPool
    box = {}
    # Made in a thread that ends at once: the zygotes must outlive it (they are started from
    # the pool's own launcher thread) and die with the process.
    make = lambda: box.setdefault("p", SandboxPool(slots=1, profiles=("pyomo",)))
    t = threading.Thread(target=make)
    t.start(); t.join()
    while os.path.exists(f"/proc/self/task/{t.native_id}"):
        pass  # the kernel has not finished the thread yet (a parent-death signal fires there)
    pool = box["p"]
    before = pool.zygote_pids()
    answer = pool.run("print(6 * 7)").stdout.strip()
    # The answer comes while the job's process may still be exiting; once the slot is free the
    # zygote has reaped and swept it, and its next spare is forked.
    assert pool.wait_idle(), "the slot never came back"
    print(answer, *before.values(), *pool.zygote_pids().values(), flush=True)
    signal.pause()  # until the test kills this supervisor
    """
)


def _process_tree(root: int) -> dict[int, tuple[int, str]]:
    """The live descendants of ``root``: {pid: (parent pid, state letter)}, zombies left out.

    One pass over /proc: a process that is gone (or replaced) by the time its entry is read is
    simply not in the answer.
    """
    processes = {}
    for name in os.listdir("/proc"):
        if name.isdigit():
            try:
                with open(f"/proc/{name}/stat") as fh:
                    fields = fh.read().rsplit(")", 1)[1].split()
            except (OSError, IndexError):
                continue
            if fields[0] not in "ZX":
                processes[int(name)] = (int(fields[1]), fields[0])
    tree, frontier = {}, {root}
    while frontier:
        kids = {pid: info for pid, info in processes.items() if info[0] in frontier}
        tree |= kids
        frontier = set(kids)
    return tree


def _freeze(root: int, stopped: set[int]) -> dict[int, tuple[int, str]] | None:
    """Stop (SIGSTOP) every live descendant of ``root``, parents first, until a fresh read finds
    them all stopped; returns that tree (None while some are still on their way to stopping).

    A stopped process can neither exit nor fork: from then on the tree is the thing itself, not
    a snapshot of it. A process that exits between the read and the signal is tolerated.
    """
    tree = _process_tree(root)
    running = [pid for pid, (_, state) in tree.items() if state not in "Tt"]
    for pid in running:  # _process_tree lists parents before their children
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGSTOP)
            stopped.add(pid)
    return None if running else tree


def _by_depth(tree: dict[int, tuple[int, str]], root: int) -> dict[int, list[int]]:
    """The pids of ``tree`` by how far below ``root`` they are (1: its children)."""
    depth, levels = {root: 0}, {}
    for pid, (ppid, _) in tree.items():  # parents come before their children
        if ppid in depth:
            depth[pid] = depth[ppid] + 1
            levels.setdefault(depth[pid], []).append(pid)
    return levels


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
    stopped: set[int] = set()
    try:
        answer, launcher, still = proc.stdout.readline().split()
        assert answer == "42"
        assert still == launcher  # the zygote outlived the thread that made the pool
        launcher = int(launcher)

        # bwrap (the launcher) -> bwrap's init in the new pid namespace -> the zygote -> its
        # spare, forked just after the job: wait for the spare, then stop them all.
        wait_for(
            lambda: _by_depth(_process_tree(launcher), launcher).get(3),
            what="the zygote's spare (a grandchild of bwrap's init)",
            timeout=20,
        )
        # Stopped, the zygote cannot notice its control socket closing: only the kernel's
        # parent-death signal (bwrap --die-with-parent) can end it now.
        frozen = wait_for(lambda: _freeze(launcher, stopped), what="the zygote's tree to stop")
        levels = _by_depth(frozen, launcher)
        assert len(levels.get(1, [])) == len(levels.get(2, [])) == 1, frozen  # init, zygote
        assert levels.get(3), frozen  # its spare
        assert _alive(launcher)
        proc.send_signal(signal.SIGKILL)  # no atexit, no close()
        proc.wait()
        gone = [launcher, *frozen]
        wait_for(
            lambda: not [p for p in gone if _alive(p)],
            what=f"bwrap, the zygote and its spare ({gone}) to die",
            timeout=20,
        )
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        for pid in stopped:  # a failed run leaves nothing stopped
            with contextlib.suppress(OSError):
                os.kill(pid, signal.SIGKILL)


def test_every_result_lists_at_least_the_minimum_protections(pool):
    result = pool.run(NORMAL_JOB)
    assert result.status == Status.OK
    assert pool.policy.minimum <= set(result.protections)
    assert set(result.to_dict()["protections"]) == set(result.protections)
    report = pool.report()
    assert report["given_up"] == [] and set(report["minimum"]) <= set(report["protections"])
