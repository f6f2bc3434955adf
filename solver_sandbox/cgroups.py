"""Per-slot memory and pids cgroups: cgroup v1 controllers, or a delegated cgroup v2 subtree.

RLIMIT_AS and RLIMIT_NPROC are per process / per uid; a slot's cgroup caps the job as a whole
(forked children and files on tmpfs included). Where neither hierarchy can be had, ``dirs`` is
empty, ``problem`` says why, and the pool reports no ``cgroup_*`` protection (RLIMIT_AS only).

cgroup v2: the subtree is ``SANDBOX_CGROUP_ROOT`` if set (a cgroup delegated to the service
user, e.g. systemd ``Delegate=yes``), else the process's own cgroup. v2 forbids processes in a
cgroup that hands controllers to its children, so the processes already there are moved into a
``calm-supervisor`` leaf first; then ``calm-sandbox-<block>/<uid>`` groups are made under it.
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

CGROUP_FS = "/sys/fs/cgroup"
CONTROLLERS = ("memory", "pids")
SUPERVISOR_LEAF = "calm-supervisor"
MOUNT_IN_SANDBOX = "/run/cgroups"  # where the slot groups appear inside bwrap


def _read(path: Path) -> str:
    return path.read_text()


def _write(path: str | Path, value: str) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT, 0o644)  # O_CREAT: a fake tree in the tests
    try:
        os.write(fd, value.encode())
    finally:
        os.close(fd)


def apply_limits(
    version: int, dirs: dict[str, str], uid: int, memory_bytes: int, pids: int
) -> None:
    """Set one slot's caps for the job about to run (called in the job child, still root)."""
    if version == 2:
        group = f"{dirs['memory']}/{uid}"
        _write(f"{group}/memory.max", str(memory_bytes))
        with contextlib.suppress(OSError):  # no swap accounting: nothing to cap
            _write(f"{group}/memory.swap.max", "0")
        _write(f"{group}/pids.max", str(pids))
        return
    if "memory" in dirs:
        _write(f"{dirs['memory']}/{uid}/memory.limit_in_bytes", str(memory_bytes))
    if "pids" in dirs:
        _write(f"{dirs['pids']}/{uid}/pids.max", str(pids))


def oom_kills(version: int, folder: str, uid: int) -> int:
    """How many OOM kills the slot's memory group has seen so far."""
    name = "memory.events" if version == 2 else "memory.oom_control"
    try:
        with open(f"{folder}/{uid}/{name}") as fh:
            for line in fh:
                if line.startswith("oom_kill "):
                    return int(line.split()[1])
    except (OSError, ValueError):
        pass
    return 0


def _own_paths(proc_cgroup: str) -> dict[str, str]:
    own: dict[str, str] = {}
    with contextlib.suppress(OSError):
        for line in Path(proc_cgroup).read_text().splitlines():
            _id, controllers, path = line.split(":", 2)
            for controller in controllers.split(",") if controllers else [""]:
                own[controller] = path
    return own


class SlotCgroups:
    """One memory + pids cgroup per slot uid of a pool (``dirs``: controller -> folder)."""

    def __init__(
        self,
        block: int,
        uids: list[int],
        *,
        fs_root: str = CGROUP_FS,
        proc_cgroup: str = "/proc/self/cgroup",
        v2_root: str | None = None,
    ) -> None:
        self.dirs: dict[str, str] = {}
        self.version = 0
        self.problem = ""
        self._uids = uids
        self._made: list[Path] = []
        root = Path(fs_root)
        v2_root = v2_root or os.environ.get("SANDBOX_CGROUP_ROOT") or None
        if (root / "cgroup.controllers").exists():
            self._setup_v2(root, block, _own_paths(proc_cgroup).get(""), v2_root)
        elif os.geteuid() == 0:
            self._setup_v1(root, block, _own_paths(proc_cgroup))
        else:
            self.problem = "cgroup v1 needs root; no cgroup v2 hierarchy is mounted"

    # ------------------------------------------------------------------ v1

    def _setup_v1(self, root: Path, block: int, own: dict[str, str]) -> None:
        for controller in CONTROLLERS:
            base = root / controller
            if controller not in own or not (base / "cgroup.procs").exists():
                continue
            group = base / own[controller].lstrip("/") / f"calm-sandbox-{block}"
            try:
                group.mkdir(exist_ok=True)
                for uid in self._uids:
                    (group / str(uid)).mkdir(exist_ok=True)
            except OSError:
                continue
            self.dirs[controller] = str(group)
        if self.dirs:
            self.version = 1
        else:
            self.problem = "no writable cgroup v1 memory/pids controller"

    # ------------------------------------------------------------------ v2

    def _setup_v2(self, root: Path, block: int, own: str | None, configured: str | None) -> None:
        if configured:
            base = Path(configured)
        elif own is not None:
            base = root / own.lstrip("/")
            if base.name == SUPERVISOR_LEAF:  # another pool of this service already moved us
                base = base.parent
        else:
            self.problem = "not in a cgroup v2 hierarchy"
            return
        try:
            available = set(_read(base / "cgroup.controllers").split())
            if not set(CONTROLLERS) <= available:
                self.problem = (
                    f"cgroup v2 {base} lacks the memory/pids controllers: delegate them "
                    "(systemd: Delegate=memory pids) or set SANDBOX_CGROUP_ROOT"
                )
                return
            enabled = set(_read(base / "cgroup.subtree_control").split())
            if not set(CONTROLLERS) <= enabled:
                if base != root:
                    self._vacate(base)
                _write(base / "cgroup.subtree_control", " ".join(f"+{c}" for c in CONTROLLERS))
            group = base / f"calm-sandbox-{block}"
            self._mkdir(group)
            _write(group / "cgroup.subtree_control", " ".join(f"+{c}" for c in CONTROLLERS))
            for uid in self._uids:
                self._mkdir(group / str(uid))
        except OSError as exc:
            self.problem = f"cgroup v2 {base} is not delegated to uid {os.geteuid()}: {exc}"
            return
        self.version = 2
        self.dirs = {c: str(group) for c in CONTROLLERS}

    def _mkdir(self, path: Path) -> None:
        if not path.is_dir():
            path.mkdir()
            self._made.append(path)

    @staticmethod
    def _vacate(base: Path) -> None:
        """Move the processes in ``base`` into its supervisor leaf (v2's no-internal-processes)."""
        pids = _read(base / "cgroup.procs").split()
        if not pids:
            return
        leaf = base / SUPERVISOR_LEAF
        leaf.mkdir(exist_ok=True)
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):  # exited meanwhile
                _write(leaf / "cgroup.procs", pid)

    # ------------------------------------------------------------------ both

    def bwrap_binds(self) -> list[tuple[str, str]]:
        """(host folder, folder inside bwrap) pairs, one per distinct group."""
        if self.version == 2:
            return [(next(iter(self.dirs.values())), f"{MOUNT_IN_SANDBOX}/unified")]
        return [(g, f"{MOUNT_IN_SANDBOX}/{c}") for c, g in self.dirs.items()]

    def inside_bwrap(self) -> dict[str, str]:
        if self.version == 2:
            return {c: f"{MOUNT_IN_SANDBOX}/unified" for c in self.dirs}
        return {c: f"{MOUNT_IN_SANDBOX}/{c}" for c in self.dirs}

    def close(self) -> None:
        for group in sorted(set(self.dirs.values())):
            # A process still exiting keeps its group busy: an empty cgroup left behind is
            # harmless and reused by the next pool on this uid block.
            for uid in self._uids:
                with contextlib.suppress(OSError):
                    os.rmdir(Path(group) / str(uid))
            with contextlib.suppress(OSError):
                os.rmdir(group)
        self.dirs = {}
