"""What every llama.cpp build here depends on: the host (machine and CPU flags, simulated in
tests), the error a build raises, the smoke prompt, and how a process that died is named.

llama.cpp's own server is built by ``llama_server`` (the CPU variants that pass a smoke test on
this CPU). The earlier build of llama-cpp-python, a wheel with one fixed instruction set, is
gone: nothing here needs llama-cpp-python any more. Plain Python, no Django.
"""

from __future__ import annotations

import platform
from dataclasses import dataclass
from pathlib import Path

SMOKE_PROMPT = "def add(a, b):\n    return"
SMOKE_TOKENS = 8


class BuildError(RuntimeError):
    """llama.cpp could not be built or does not generate on this CPU; the message says why."""


@dataclass(frozen=True)
class Host:
    """What a build depends on: the machine and its CPU flags (a test passes a simulated one)."""

    machine: str  # platform.machine(): x86_64, aarch64, arm64, ...
    flags: frozenset[str]

    @classmethod
    def detect(cls, cpuinfo: str | None = None, machine: str | None = None) -> Host:
        machine = (machine or platform.machine()).lower()
        if cpuinfo is None:
            try:
                cpuinfo = Path("/proc/cpuinfo").read_text()
            except OSError:
                cpuinfo = ""
        return cls(machine=machine, flags=frozenset(_cpu_flags(cpuinfo)))

    @property
    def is_x86(self) -> bool:
        return self.machine in ("x86_64", "amd64", "i686", "i386")

    @property
    def is_arm(self) -> bool:
        return self.machine in ("aarch64", "arm64")


def _cpu_flags(cpuinfo: str) -> set[str]:
    """The first processor's flags: x86 ``flags``, ARM ``Features``."""
    for line in cpuinfo.splitlines():
        key, _, value = line.partition(":")
        if key.strip().lower() in ("flags", "features"):
            return set(value.split())
    return set()


def _death(returncode: int, stderr: str) -> str:
    if returncode < 0:
        import signal

        try:
            name = signal.Signals(-returncode).name
        except ValueError:
            name = "unknown signal"
        return f"the process died with signal {-returncode} ({name})"
    tail = stderr.strip().splitlines()[-1] if stderr.strip() else ""
    return f"the process exited with code {returncode}{': ' + tail if tail else ''}"
