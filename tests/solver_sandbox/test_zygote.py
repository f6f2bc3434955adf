"""The zygote's own bookkeeping, on a real zygote and real forked spares (no sandbox around it:
the zygote runs in a subprocess of its own, since it makes itself a subreaper)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap

from solver_sandbox.isolation import UidBlock
from tests.polling import wait_for
from tests.solver_sandbox.sandbox_helpers import REPO

# A zygote with one spare for the slot uid: it prints the spare, waits for a line, sweeps the
# slot (what it does after every job) and prints what it still holds.
ZYGOTE = textwrap.dedent(
    """
    import json, os, socket, sys
    sys.path.insert(0, sys.argv[1])
    from solver_sandbox.zygote import Zygote

    workroot, uid = sys.argv[2], int(sys.argv[3])
    control, _supervisor = socket.socketpair()
    flags = {"workroot": workroot, "seccomp": False, "netns_from_bwrap": True,
             "slot_uids": [uid]}
    zygote = Zygote("pyomo", control, flags)
    spare = zygote._spawn_spare(uid, warm=False)
    print(json.dumps({"pid": spare.pid, "workdir": spare.workdir}), flush=True)
    sys.stdin.readline()
    zygote._sweep(uid)
    print(json.dumps({
        "spares": sorted(zygote.spares), "spare_pids": sorted(zygote.spare_pids),
        "socket_closed": spare.sock.fileno() == -1,
    }), flush=True)
    """
)


def _state(pid: int) -> str:
    with open(f"/proc/{pid}/stat") as fh:
        return fh.read().rsplit(")", 1)[1].split()[0]


def test_the_slot_sweep_drops_a_spare_that_died_and_removes_its_folder(tmp_path):
    uids = UidBlock(1)  # a slot uid no other pool holds: the sweep kills what runs as it
    proc = subprocess.Popen(
        [sys.executable, "-c", ZYGOTE, str(REPO), str(tmp_path / "work"), str(uids.uids[0])],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        spare = json.loads(proc.stdout.readline())
        wait_for(lambda: os.path.isdir(spare["workdir"]), what="the spare to make its folder")
        os.kill(spare["pid"], signal.SIGKILL)  # dies before it gets a job
        wait_for(lambda: _state(spare["pid"]) == "Z", what="the spare to die (not yet reaped)")

        proc.stdin.write("sweep\n")
        proc.stdin.flush()
        held = json.loads(proc.stdout.readline())

        assert held == {"spares": [], "spare_pids": [], "socket_closed": True}
        assert not os.path.exists(spare["workdir"])
        assert not os.path.exists(f"/proc/{spare['pid']}")  # reaped
    finally:
        proc.kill()
        proc.wait()
        uids.release()
