"""Full isolation as an unprivileged user: a user namespace per zygote, with a uid per slot.

bwrap creates the namespace (``--unshare-user``) and waits (``--userns-block-fd``) while the
supervisor maps it with the setuid helpers ``newuidmap``/``newgidmap`` (Debian package
``uidmap``): uid 0 inside is the service user, and each uid block the pool holds is a slice of
the user's subordinate uids (``/etc/subuid``, ``/etc/subgid``). The zygote is uid 0 there with
the six capabilities bwrap leaves it, over that namespace only; every job runs under its own
subordinate uid, distinct on the host, with no capabilities: it cannot signal the zygote or a
sibling, read their memory or pipes, and RLIMIT_NPROC and the post-job sweep work as with root.
"""

from __future__ import annotations

import contextlib
import json
import os
import pwd
import shutil
import subprocess
from dataclasses import dataclass, field
from functools import cache

SUBUID = "/etc/subuid"
SUBGID = "/etc/subgid"


def subordinate_range(path: str, uid: int) -> tuple[int, int] | None:
    """(first, count) of the first range ``path`` gives this uid (by name or number)."""
    try:
        name = pwd.getpwuid(uid).pw_name
    except KeyError:
        name = None
    try:
        with open(path) as fh:
            for line in fh:
                parts = line.strip().split(":")
                if len(parts) == 3 and parts[0] in (name, str(uid)):
                    return int(parts[1]), int(parts[2])
    except (OSError, ValueError):
        return None
    return None


@cache
def problem(block: int) -> str | None:
    """None when this (non-root) uid can map a user namespace with at least one uid block."""
    missing = [tool for tool in ("newuidmap", "newgidmap") if shutil.which(tool) is None]
    if missing:
        return f"{' and '.join(missing)} not installed (apt-get install uidmap)"
    uid = os.getuid()
    for path in (SUBUID, SUBGID):
        found = subordinate_range(path, uid)
        if found is None or found[1] < block:
            return (
                f"no subordinate range of at least {block} ids for uid {uid} in {path} "
                f"(usermod --add-subuids FIRST-LAST --add-subgids FIRST-LAST USER)"
            )
    return None


def max_blocks(block: int) -> int:
    ranges = [subordinate_range(p, os.getuid()) for p in (SUBUID, SUBGID)]
    return min(r[1] for r in ranges if r) // block if all(ranges) else 0


@dataclass
class Mapping:
    """How the pool's in-namespace slot uids map onto the host."""

    uid_base: int
    block: int
    blocks: list[int]
    first_uid: int = field(init=False)
    first_gid: int = field(init=False)

    def __post_init__(self) -> None:
        uid_range = subordinate_range(SUBUID, os.getuid())
        gid_range = subordinate_range(SUBGID, os.getuid())
        if uid_range is None or gid_range is None:
            raise RuntimeError("no subordinate uid/gid range for this user")
        self.first_uid, self.first_gid = uid_range[0], gid_range[0]

    def host_uid(self, ns_uid: int) -> int:
        return self.first_uid + ns_uid - self.uid_base

    def _args(self, own: int, first: int) -> list[str]:
        args = ["0", str(own), "1"]
        for b in self.blocks:
            inside = self.uid_base + b * self.block
            args += [str(inside), str(first + b * self.block), str(self.block)]
        return args

    def apply(self, pid: int) -> None:
        """Write the maps of the namespace that process ``pid`` (bwrap's child) is in."""
        for tool, args in (
            ("newuidmap", self._args(os.getuid(), self.first_uid)),
            ("newgidmap", self._args(os.getgid(), self.first_gid)),
        ):
            proc = subprocess.run(
                [tool, str(pid), *args], capture_output=True, text=True, timeout=30, check=False
            )
            if proc.returncode != 0:
                raise RuntimeError(f"{tool} failed: {proc.stderr.strip()[:300]}")


class Handshake:
    """The two pipes bwrap waits on: it reports its child's pid, we map, then let it go."""

    def __init__(self) -> None:
        self.info_r, self.info_w = os.pipe()
        self.block_r, self.block_w = os.pipe()

    def bwrap_args(self) -> list[str]:
        return [
            "--unshare-user",
            "--uid",
            "0",
            "--gid",
            "0",
            "--userns-block-fd",
            str(self.block_r),
            "--info-fd",
            str(self.info_w),
        ]

    @property
    def child_fds(self) -> list[int]:
        return [self.block_r, self.info_w]

    def complete(self, mapping: Mapping) -> None:
        """After bwrap started: read its child's pid, map the namespace, release the child."""
        for fd in self.child_fds:
            os.close(fd)
        try:
            data = b""
            while b"}" not in data:
                chunk = os.read(self.info_r, 4096)
                if not chunk:
                    raise RuntimeError("bwrap exited before reporting its user namespace")
                data += chunk
            pid = int(json.loads(data[: data.index(b"}") + 1])["child-pid"])
            mapping.apply(pid)
            os.write(self.block_w, b"1")
        finally:
            for fd in (self.info_r, self.block_w):
                with contextlib.suppress(OSError):
                    os.close(fd)

    def abandon(self) -> None:
        for fd in (self.info_r, self.info_w, self.block_r, self.block_w):
            with contextlib.suppress(OSError):
                os.close(fd)
