"""Per-slot cgroups: the v2 path against a fake cgroupfs tree, the v1 path on this host."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from solver_sandbox.cgroups import SUPERVISOR_LEAF, SlotCgroups, apply_limits, oom_kills
from solver_sandbox.isolation import make_launch

SERVICE = "system.slice/calm-worker-sandbox.service"


def fake_v2(tmp_path: Path, controllers: str = "memory pids", procs: str = "4242\n") -> Path:
    """A cgroup2 mount as systemd leaves it for a service with Delegate=yes."""
    root = tmp_path / "cgroup"
    base = root / SERVICE
    base.mkdir(parents=True)
    (root / "cgroup.controllers").write_text("cpuset cpu io memory pids\n")
    (base / "cgroup.controllers").write_text(controllers + "\n")
    (base / "cgroup.subtree_control").write_text("")
    (base / "cgroup.procs").write_text(procs)
    return root


def proc_cgroup(tmp_path: Path, path: str) -> str:
    file = tmp_path / "proc-self-cgroup"
    file.write_text(f"0::/{path}\n")
    return str(file)


def test_it_makes_slot_groups_under_a_delegated_v2_subtree(tmp_path):
    root = fake_v2(tmp_path)
    groups = SlotCgroups(
        7, [3000, 3001], fs_root=str(root), proc_cgroup=proc_cgroup(tmp_path, SERVICE)
    )
    base = root / SERVICE
    group = base / "calm-sandbox-7"
    assert groups.version == 2 and groups.problem == ""
    assert groups.dirs == {"memory": str(group), "pids": str(group)}
    # v2's no-internal-processes rule: the service's processes move to a leaf first.
    assert (base / SUPERVISOR_LEAF / "cgroup.procs").read_text() == "4242"
    assert (base / "cgroup.subtree_control").read_text() == "+memory +pids"
    assert (group / "cgroup.subtree_control").read_text() == "+memory +pids"
    assert (group / "3000").is_dir() and (group / "3001").is_dir()


def test_it_reuses_the_subtree_for_a_second_pool_of_the_same_service(tmp_path):
    root = fake_v2(tmp_path)
    SlotCgroups(7, [3000], fs_root=str(root), proc_cgroup=proc_cgroup(tmp_path, SERVICE))
    moved = f"{SERVICE}/{SUPERVISOR_LEAF}"
    second = SlotCgroups(8, [3064], fs_root=str(root), proc_cgroup=proc_cgroup(tmp_path, moved))
    assert second.version == 2
    assert second.dirs["memory"] == str(root / SERVICE / "calm-sandbox-8")


def test_it_writes_v2_caps_and_reads_v2_oom_kills(tmp_path):
    root = fake_v2(tmp_path)
    groups = SlotCgroups(7, [3000], fs_root=str(root), proc_cgroup=proc_cgroup(tmp_path, SERVICE))
    apply_limits(2, groups.dirs, 3000, 512 << 20, 16)
    slot = Path(groups.dirs["memory"]) / "3000"
    assert (slot / "memory.max").read_text() == str(512 << 20)
    assert (slot / "memory.swap.max").read_text() == "0"
    assert (slot / "pids.max").read_text() == "16"
    assert oom_kills(2, groups.dirs["memory"], 3000) == 0
    (slot / "memory.events").write_text("low 0\nhigh 0\nmax 4\noom 2\noom_kill 2\n")
    assert oom_kills(2, groups.dirs["memory"], 3000) == 2


def test_it_says_why_when_the_v2_controllers_are_not_delegated(tmp_path):
    root = fake_v2(tmp_path, controllers="cpu io")
    groups = SlotCgroups(7, [3000], fs_root=str(root), proc_cgroup=proc_cgroup(tmp_path, SERVICE))
    assert groups.version == 0 and groups.dirs == {}
    assert "Delegate=memory pids" in groups.problem and "SANDBOX_CGROUP_ROOT" in groups.problem


def test_it_uses_the_configured_v2_root(tmp_path, monkeypatch):
    root = fake_v2(tmp_path, procs="")
    monkeypatch.setenv("SANDBOX_CGROUP_ROOT", str(root / SERVICE))
    groups = SlotCgroups(
        9, [3000], fs_root=str(root), proc_cgroup=proc_cgroup(tmp_path, "elsewhere")
    )
    assert groups.dirs["pids"] == str(root / SERVICE / "calm-sandbox-9")
    assert not (root / SERVICE / SUPERVISOR_LEAF).exists()  # nothing to move out of the way


def test_it_binds_one_v2_group_into_bwrap_without_a_cgroup_namespace(tmp_path):
    root = fake_v2(tmp_path)
    groups = SlotCgroups(7, [3000], fs_root=str(root), proc_cgroup=proc_cgroup(tmp_path, SERVICE))
    launch = make_launch("pyomo", 5, "bwrap", "/unused", [3000], groups)
    argv = launch.argv
    assert "--unshare-cgroup-try" not in argv  # would forbid moving jobs beside the zygote
    i = argv.index(groups.dirs["memory"])
    assert argv[i - 1 : i + 2] == ["--bind", groups.dirs["memory"], "/run/cgroups/unified"]
    flags = argv[-1]
    assert '"cgroup_version": 2' in flags and '"memory": "/run/cgroups/unified"' in flags


def test_it_writes_v1_caps_per_controller(tmp_path):
    dirs = {"memory": str(tmp_path / "memory"), "pids": str(tmp_path / "pids")}
    for folder in dirs.values():
        (Path(folder) / "3000").mkdir(parents=True)
    apply_limits(1, dirs, 3000, 256 << 20, 8)
    assert (tmp_path / "memory/3000/memory.limit_in_bytes").read_text() == str(256 << 20)
    assert (tmp_path / "pids/3000/pids.max").read_text() == "8"


@pytest.mark.skipif(
    os.geteuid() != 0 or not Path("/sys/fs/cgroup/memory/cgroup.procs").exists(),
    reason="needs root and the cgroup v1 memory controller",
)
def test_it_keeps_the_real_v1_path_on_this_host(pool):
    report = pool.report()
    assert report["cgroup_version"] == 1
    assert {"cgroup_memory", "cgroup_pids"} <= set(pool.protections)
