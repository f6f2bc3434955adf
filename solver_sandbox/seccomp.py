"""A small seccomp deny-list through libseccomp via ctypes (no compiled dependency).

Built once in the zygote; each job loads it last, after dropping its uid. libseccomp handles
the architecture check (syscalls from a foreign ABI kill the process).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import errno
import os

SCMP_ACT_ALLOW = 0x7FFF0000
SCMP_CMP_MASKED_EQ = 7


def _errno_action(err: int) -> int:
    return 0x00050000 | (err & 0x0000FFFF)


class _ArgCmp(ctypes.Structure):
    _fields_ = (
        ("arg", ctypes.c_uint),
        ("op", ctypes.c_int),
        ("datum_a", ctypes.c_uint64),
        ("datum_b", ctypes.c_uint64),
    )


# No job needs these: running programs (CBC/GLPK binaries are not used; HiGHS is in-process),
# any socket (network, host Unix sockets, vsock), namespaces, tracing, kernel interfaces.
DENIED = (
    "execve",
    "execveat",
    "socket",
    "ptrace",
    "process_vm_readv",
    "process_vm_writev",
    "mount",
    "umount2",
    "pivot_root",
    "chroot",
    "unshare",
    "setns",
    "bpf",
    "perf_event_open",
    "keyctl",
    "add_key",
    "request_key",
    "userfaultfd",
    "init_module",
    "finit_module",
    "delete_module",
    "kexec_load",
    "kexec_file_load",
    "open_by_handle_at",
    "name_to_handle_at",
    "swapon",
    "swapoff",
    "reboot",
    "acct",
    "quotactl",
    "sethostname",
    "setdomainname",
    "settimeofday",
    "clock_settime",
    "io_uring_setup",
    "io_uring_enter",
    "io_uring_register",
    "fanotify_init",
    "personality",
    # SysV and POSIX-mqueue IPC: objects outlive the job and would be a channel between jobs
    # (and memory charged to the slot); POSIX shm is files in the per-pool /dev/shm instead.
    "ipc",
    "shmget",
    "shmat",
    "shmctl",
    "msgget",
    "msgsnd",
    "msgrcv",
    "msgctl",
    "semget",
    "semop",
    "semtimedop",
    "semctl",
    "mq_open",
    "mq_unlink",
    "mq_timedsend",
    "mq_timedreceive",
    "mq_notify",
    "mq_getsetattr",
)
# clone() with any namespace flag: a job must not build a user namespace of its own.
_CLONE_NS_FLAGS = (
    0x00020000,  # CLONE_NEWNS
    0x02000000,  # CLONE_NEWCGROUP
    0x04000000,  # CLONE_NEWUTS
    0x08000000,  # CLONE_NEWIPC
    0x10000000,  # CLONE_NEWUSER
    0x20000000,  # CLONE_NEWPID
    0x40000000,  # CLONE_NEWNET
)


class _SockFprog(ctypes.Structure):
    _fields_ = (("len", ctypes.c_ushort), ("filter", ctypes.c_void_p))


_PR_SET_NO_NEW_PRIVS = 38
_PR_SET_SECCOMP = 22
_SECCOMP_MODE_FILTER = 2


class SeccompFilter:
    """A compiled BPF program; ``load()`` applies it to the calling process (irreversibly).

    libseccomp regenerates the program on every seccomp_load (~1.2 ms here), so it is
    exported once in the zygote and each job installs the raw program with two prctl calls.
    """

    def __init__(self, bpf: bytes) -> None:
        self._buf = ctypes.create_string_buffer(bpf, len(bpf))
        self._prog = _SockFprog(len(bpf) // 8, ctypes.addressof(self._buf))
        self._libc = ctypes.CDLL(None, use_errno=True)

    def load(self) -> None:
        if self._libc.prctl(_PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0:
            raise OSError(ctypes.get_errno(), "PR_SET_NO_NEW_PRIVS failed")
        rc = self._libc.prctl(_PR_SET_SECCOMP, _SECCOMP_MODE_FILTER, ctypes.byref(self._prog), 0, 0)
        if rc != 0:
            raise OSError(ctypes.get_errno(), "PR_SET_SECCOMP failed")


def available() -> bool:
    """True when libseccomp can be loaded here."""
    try:
        ctypes.CDLL(ctypes.util.find_library("seccomp") or "libseccomp.so.2")
    except OSError:
        return False
    return True


def build() -> SeccompFilter | None:
    """Prepare the filter, or None when libseccomp is not installed."""
    name = ctypes.util.find_library("seccomp") or "libseccomp.so.2"
    try:
        lib = ctypes.CDLL(name, use_errno=True)
    except OSError:
        return None
    lib.seccomp_init.restype = ctypes.c_void_p
    lib.seccomp_init.argtypes = (ctypes.c_uint32,)
    lib.seccomp_syscall_resolve_name.argtypes = (ctypes.c_char_p,)
    lib.seccomp_rule_add_array.argtypes = (
        ctypes.c_void_p,
        ctypes.c_uint32,
        ctypes.c_int,
        ctypes.c_uint,
        ctypes.POINTER(_ArgCmp),
    )
    ctx = lib.seccomp_init(SCMP_ACT_ALLOW)
    if not ctx:
        return None
    deny = _errno_action(errno.EPERM)
    for syscall in DENIED:
        nr = lib.seccomp_syscall_resolve_name(syscall.encode())
        if nr < 0:  # not on this architecture
            continue
        rc = lib.seccomp_rule_add_array(ctx, deny, nr, 0, None)
        if rc != 0:
            raise OSError(-rc, f"seccomp rule for {syscall} failed")
    # clone3 passes its flags in memory where seccomp cannot look; ENOSYS makes glibc fall
    # back to clone(), whose flags we can check.
    nr = lib.seccomp_syscall_resolve_name(b"clone3")
    if nr >= 0:
        lib.seccomp_rule_add_array(ctx, _errno_action(errno.ENOSYS), nr, 0, None)
    nr = lib.seccomp_syscall_resolve_name(b"clone")
    for flag in _CLONE_NS_FLAGS:
        cmp = _ArgCmp(0, SCMP_CMP_MASKED_EQ, flag, flag)
        rc = lib.seccomp_rule_add_array(ctx, deny, nr, 1, ctypes.byref(cmp))
        if rc != 0:
            raise OSError(-rc, "seccomp rule for clone failed")
    lib.seccomp_export_bpf.argtypes = (ctypes.c_void_p, ctypes.c_int)
    fd = os.memfd_create("seccomp-bpf")
    try:
        rc = lib.seccomp_export_bpf(ctx, fd)
        if rc != 0:
            raise OSError(-rc, "seccomp_export_bpf failed")
        size = os.lseek(fd, 0, os.SEEK_CUR)
        bpf = os.pread(fd, size, 0)
    finally:
        os.close(fd)
        lib.seccomp_release.argtypes = (ctypes.c_void_p,)
        lib.seccomp_release(ctx)
    if not bpf or len(bpf) % 8:
        raise OSError("seccomp_export_bpf produced no program")
    return SeccompFilter(bpf)
