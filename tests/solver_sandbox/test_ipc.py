"""IPC between jobs: SysV and POSIX message queues are denied; POSIX shared memory (files in
/dev/shm) left behind by a job is gone before the next job on its slot, and others' is unseen."""

from __future__ import annotations

import textwrap
import threading
from collections.abc import Iterator

import pytest

from solver_sandbox import SandboxPool, Status
from tests.solver_sandbox.sandbox_helpers import assert_pool_healthy

SYSV = textwrap.dedent(
    """
    import ctypes, ctypes.util
    libc = ctypes.CDLL(None, use_errno=True)
    IPC_PRIVATE, IPC_CREAT = 0, 0o1000
    for name, call in (
        ("shmget", lambda: libc.shmget(IPC_PRIVATE, 1 << 20, IPC_CREAT | 0o666)),
        ("msgget", lambda: libc.msgget(IPC_PRIVATE, IPC_CREAT | 0o666)),
        ("semget", lambda: libc.semget(IPC_PRIVATE, 1, IPC_CREAT | 0o666)),
        ("mq_open", lambda: libc.mq_open(b"/calm-q", 0o100 | 2, 0o666, None)),
    ):
        rc = call()
        print(name, "created" if rc >= 0 else f"denied errno={ctypes.get_errno()}")
    """
)


@pytest.fixture(scope="module")
def one_slot() -> Iterator[SandboxPool]:
    with SandboxPool(slots=1, profiles=("pyomo",)) as p:
        yield p


def test_it_denies_sysv_and_posix_message_queue_ipc(pool):
    result = pool.run(SYSV)
    assert result.status == Status.OK, result.stderr
    lines = result.stdout.splitlines()
    assert len(lines) == 4
    assert all(" denied errno=1" in line for line in lines), lines  # EPERM from seccomp
    assert "sysv_ipc_denied" in result.protections
    assert_pool_healthy(pool)


def test_it_removes_shared_memory_a_job_left_before_the_next_job_on_its_slot(one_slot):
    made = one_slot.run(
        "import os\nfd = os.open('/dev/shm/calm-leak', os.O_CREAT | os.O_RDWR, 0o666)\n"
        "os.write(fd, b'left behind')\nos.fchmod(fd, 0o666)\nprint('made')"
    )
    assert made.status == Status.OK and made.stdout.strip() == "made", made.stderr
    assert one_slot.wait_idle(), "the slot never came back"
    after = one_slot.run(
        "import os\nprint(os.path.exists('/dev/shm/calm-leak'))\n"
        "print(open('/proc/sysvipc/shm').read().count(chr(10)))"
    )
    assert after.status == Status.OK, after.stderr
    assert after.stdout.split() == ["False", "1"]  # gone; and no SysV segment (header only)
    assert_pool_healthy(one_slot)


# The two jobs meet in /dev/shm (mode 1733: anyone may create a file and look a name up, no
# one may list it): the holder keeps its file until the peeker says it has looked, and the
# peeker waits for the holder's file first. Each waits for the other's file, never for time.
AWAIT = textwrap.dedent(
    """
    import os, time
    def await_(path, present):
        deadline = time.monotonic() + 8
        while os.path.exists(path) != present:
            if time.monotonic() > deadline:
                raise SystemExit(f'{path} never {"came" if present else "went"}')
            time.sleep(0.005)
    """
)


def test_it_does_not_let_a_job_see_another_jobs_shared_memory(pool):
    holder = AWAIT + textwrap.dedent(
        """
        fd = os.open('/dev/shm/calm-held', os.O_CREAT | os.O_RDWR, 0o600)
        os.write(fd, b'secret')
        await_('/dev/shm/calm-peeked', True)
        os.unlink('/dev/shm/calm-held')
        print('held')
        """
    )
    peeker = AWAIT + textwrap.dedent(
        """
        await_('/dev/shm/calm-held', True)
        try:
            print('listed', os.listdir('/dev/shm'))
        except PermissionError:
            print('list denied')
        try:
            print('read', open('/dev/shm/calm-held').read())
        except (PermissionError, FileNotFoundError) as exc:
            print('open denied', type(exc).__name__)
        os.close(os.open('/dev/shm/calm-peeked', os.O_CREAT | os.O_WRONLY, 0o644))
        await_('/dev/shm/calm-held', False)  # the holder saw it: this file may go now
        os.unlink('/dev/shm/calm-peeked')
        """
    )
    results = {}
    thread = threading.Thread(target=lambda: results.setdefault("holder", pool.run(holder)))
    thread.start()
    peek = pool.run(peeker)
    thread.join()
    assert results["holder"].status == Status.OK and results["holder"].stdout.strip() == "held"
    assert peek.status == Status.OK, peek.stderr
    assert "secret" not in peek.stdout
    assert "open denied PermissionError" in peek.stdout
    if "bubblewrap" in pool.protections:
        assert "list denied" in peek.stdout  # the pool's own /dev/shm is not listable
    assert_pool_healthy(pool)
