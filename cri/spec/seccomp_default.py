"""Our RuntimeDefault seccomp profile: an allowlist in the spirit of Docker's and containerd's.

Everything not listed fails with EPERM. The syscalls a container needs for ordinary work are
allowed outright, grouped below by what they are for. Syscalls that only make sense with a
capability (mount, ptrace helpers, module loading...) are allowed only when the container's
bounding set holds it, as in containerd: the kernel would refuse them anyway, and keeping them
out of reach removes kernel attack surface from unprivileged containers.

Names unknown on an architecture are skipped by the executor's compiler, so one list serves
x86_64, i386, x32 and aarch64 (the `*32`, `*64` and `*_time64` variants exist only where they do).
Syscalls above the highest one named here get ENOSYS rather than EPERM (runc's rule, which the
executor follows), so a libc probing a syscall newer than this list falls back cleanly.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from typing import Any

EPERM = 1
ENOSYS = 38

#: CLONE_NEWNS | CLONE_NEWUTS | CLONE_NEWIPC | CLONE_NEWUSER | CLONE_NEWPID | CLONE_NEWNET |
#: CLONE_NEWCGROUP: clone() may not create namespaces without CAP_SYS_ADMIN.
CLONE_NAMESPACE_FLAGS = 0x7E020000

# fmt: off
# (the lists stay packed by purpose: one name a line would spread them over 400 lines)
ALLOWED: Mapping[str, tuple[str, ...]] = {
    "files and directories": (
        "access", "chdir", "chmod", "chown", "chown32", "creat", "faccessat", "faccessat2",
        "fchdir", "fchmod", "fchmodat", "fchmodat2", "fchown", "fchown32", "fchownat",
        "fstat", "fstat64", "fstatat64", "fstatfs", "fstatfs64", "ftruncate", "ftruncate64",
        "futimesat", "getcwd", "getdents", "getdents64", "lchown", "lchown32", "link", "linkat",
        "lstat", "lstat64", "mkdir", "mkdirat", "mknod", "mknodat", "newfstatat", "open",
        "openat", "openat2", "readlink", "readlinkat", "rename", "renameat", "renameat2",
        "rmdir", "stat", "stat64", "statfs", "statfs64", "statx", "symlink", "symlinkat",
        "truncate", "truncate64", "umask", "unlink", "unlinkat", "utime", "utimensat",
        "utimensat_time64", "utimes", "name_to_handle_at", "file_getattr", "file_setattr",
    ),
    "extended attributes": (
        "fgetxattr", "flistxattr", "fremovexattr", "fsetxattr", "getxattr", "lgetxattr",
        "listxattr", "llistxattr", "lremovexattr", "lsetxattr", "removexattr", "setxattr",
        "getxattrat", "listxattrat", "removexattrat", "setxattrat",
    ),
    "file descriptors and I/O": (
        "close", "close_range", "copy_file_range", "dup", "dup2", "dup3", "fadvise64",
        "fadvise64_64", "fallocate", "fcntl", "fcntl64", "fdatasync", "flock", "fsync",
        "ioctl", "_llseek", "lseek", "pread64", "preadv", "preadv2", "pwrite64", "pwritev",
        "pwritev2", "read", "readahead", "readv", "sendfile", "sendfile64", "splice", "sync",
        "sync_file_range", "syncfs", "tee", "vmsplice", "write", "writev", "cachestat",
        "arm_fadvise64_64", "arm_sync_file_range", "sync_file_range2",
    ),
    "polling, events and asynchronous I/O": (
        "epoll_create", "epoll_create1", "epoll_ctl", "epoll_ctl_old", "epoll_pwait",
        "epoll_pwait2", "epoll_wait", "epoll_wait_old", "eventfd", "eventfd2",
        "fanotify_mark", "inotify_add_watch", "inotify_init", "inotify_init1",
        "inotify_rm_watch", "io_cancel", "io_destroy", "io_getevents", "io_pgetevents",
        "io_pgetevents_time64", "io_setup", "io_submit", "_newselect", "poll", "ppoll",
        "ppoll_time64", "pselect6", "pselect6_time64", "select", "signalfd", "signalfd4",
        "timerfd_create", "timerfd_gettime", "timerfd_gettime64", "timerfd_settime",
        "timerfd_settime64",
    ),
    "memory": (
        "brk", "madvise", "membarrier", "memfd_create", "memfd_secret", "mincore", "mlock",
        "mlock2", "mlockall", "mmap", "mmap2", "mprotect", "mremap", "mseal", "msync",
        "munlock", "munlockall", "munmap", "pkey_alloc", "pkey_free", "pkey_mprotect",
        "remap_file_pages", "map_shadow_stack", "cacheflush",
    ),
    "processes and threads": (
        "execve", "execveat", "exit", "exit_group", "fork", "vfork", "getpgid", "getpgrp",
        "getpid", "getppid", "getsid", "gettid", "setpgid", "setsid", "wait4", "waitid",
        "waitpid", "set_tid_address", "get_robust_list", "set_robust_list", "rseq",
        "futex", "futex_requeue", "futex_time64", "futex_wait", "futex_waitv", "futex_wake",
        "restart_syscall", "pidfd_open", "pidfd_send_signal", "process_mrelease",
        "getrlimit", "setrlimit", "prlimit64", "ugetrlimit", "getrusage", "times",
        "getpriority", "setpriority", "ioprio_get", "ioprio_set",
        # tracing one's own children; the escape through ptrace was fixed in Linux 4.8
        "ptrace",
    ),
    "signals": (
        "kill", "tgkill", "tkill", "pause", "rt_sigaction", "rt_sigpending",
        "rt_sigprocmask", "rt_sigqueueinfo", "rt_sigreturn", "rt_sigsuspend",
        "rt_sigtimedwait", "rt_sigtimedwait_time64", "rt_tgsigqueueinfo", "sigaltstack",
        "sigprocmask", "sigreturn",
    ),
    "time and timers": (
        "adjtimex", "alarm", "clock_adjtime", "clock_adjtime64", "clock_getres",
        "clock_getres_time64", "clock_gettime", "clock_gettime64", "clock_nanosleep",
        "clock_nanosleep_time64", "getitimer", "setitimer", "gettimeofday", "nanosleep",
        "time", "timer_create", "timer_delete", "timer_getoverrun", "timer_gettime",
        "timer_gettime64", "timer_settime", "timer_settime64",
    ),
    "scheduling and CPUs": (
        "getcpu", "sched_getaffinity", "sched_getattr", "sched_getparam",
        "sched_get_priority_max", "sched_get_priority_min", "sched_getscheduler",
        "sched_rr_get_interval", "sched_rr_get_interval_time64", "sched_setaffinity",
        "sched_setattr", "sched_setparam", "sched_setscheduler", "sched_yield",
    ),
    "identity and credentials": (
        "capget", "capset", "getegid", "getegid32", "geteuid", "geteuid32", "getgid",
        "getgid32", "getgroups", "getgroups32", "getresgid", "getresgid32", "getresuid",
        "getresuid32", "getuid", "getuid32", "setfsgid", "setfsgid32", "setfsuid",
        "setfsuid32", "setgid", "setgid32", "setgroups", "setgroups32", "setregid",
        "setregid32", "setresgid", "setresgid32", "setresuid", "setresuid32", "setreuid",
        "setreuid32", "setuid", "setuid32",
    ),
    "inter-process communication": (
        "pipe", "pipe2", "ipc", "msgctl", "msgget", "msgrcv", "msgsnd", "semctl", "semget",
        "semop", "semtimedop", "semtimedop_time64", "shmat", "shmctl", "shmdt", "shmget",
        "mq_getsetattr", "mq_notify", "mq_open", "mq_timedreceive", "mq_timedreceive_time64",
        "mq_timedsend", "mq_timedsend_time64", "mq_unlink",
    ),
    "networking": (
        "accept", "accept4", "bind", "connect", "getpeername", "getsockname", "getsockopt",
        "listen", "recv", "recvfrom", "recvmmsg", "recvmmsg_time64", "recvmsg", "send",
        "sendmmsg", "sendmsg", "sendto", "setsockopt", "shutdown", "socket", "socketcall",
        "socketpair",
    ),
    "system information": (
        "getrandom", "sysinfo", "uname", "statmount", "listmount", "lsm_get_self_attr",
        "lsm_list_modules",
    ),
    "self-confinement": (
        "prctl", "seccomp", "landlock_add_rule", "landlock_create_ruleset",
        "landlock_restrict_self",
    ),
    "architecture-specific": (
        "arch_prctl", "modify_ldt", "get_thread_area", "set_thread_area", "breakpoint",
        "set_tls",
    ),
}

#: personality(2) values a container may set or query: Linux, 32-bit, uname26, and the query
PERSONALITIES = (0x0, 0x8, 0x20000, 0x20008, 0xFFFFFFFF)

#: syscalls allowed only with a capability in the container's bounding set
BY_CAPABILITY: Mapping[str, tuple[str, ...]] = {
    "CAP_DAC_READ_SEARCH": ("open_by_handle_at",),
    "CAP_SYS_ADMIN": (
        "bpf", "clone", "clone3", "fanotify_init", "fsconfig", "fsmount", "fsopen", "fspick",
        "lookup_dcookie", "mount", "mount_setattr", "move_mount", "open_tree",
        "open_tree_attr", "perf_event_open", "quotactl", "quotactl_fd", "setdomainname",
        "sethostname", "setns", "syslog", "umount", "umount2", "unshare",
    ),
    "CAP_SYS_BOOT": ("reboot",),
    "CAP_SYS_CHROOT": ("chroot",),
    "CAP_SYS_MODULE": ("delete_module", "init_module", "finit_module"),
    "CAP_SYS_PACCT": ("acct",),
    "CAP_SYS_PTRACE": (
        "kcmp", "pidfd_getfd", "process_madvise", "process_vm_readv", "process_vm_writev",
        "userfaultfd",
    ),
    "CAP_SYS_RAWIO": ("iopl", "ioperm"),
    "CAP_SYS_TIME": ("settimeofday", "stime", "clock_settime", "clock_settime64"),
    "CAP_SYS_TTY_CONFIG": ("vhangup",),
    "CAP_SYS_NICE": ("get_mempolicy", "mbind", "set_mempolicy", "set_mempolicy_home_node"),
    "CAP_SYSLOG": ("syslog",),
    "CAP_BPF": ("bpf",),
    "CAP_PERFMON": ("perf_event_open",),
}

# fmt: on

#: the ABIs a host runs, for `architectures`
ARCHITECTURES: Mapping[str, tuple[str, ...]] = {
    "x86_64": ("SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"),
    "aarch64": ("SCMP_ARCH_AARCH64", "SCMP_ARCH_ARM"),
}


def _allow(names: Iterable[str]) -> dict[str, Any]:
    return {"names": sorted(set(names)), "action": "SCMP_ACT_ALLOW"}


def default_profile(capabilities: Iterable[str] = (), machine: str | None = None) -> dict[str, Any]:
    """The RuntimeDefault `linux.seccomp` for a container with `capabilities` (its bounding set,
    names like CAP_SYS_ADMIN) on `machine` (uname -m; default this host)."""
    caps = {c.upper() if c.upper().startswith("CAP_") else f"CAP_{c.upper()}" for c in capabilities}
    machine = machine or os.uname().machine
    base = [name for names in ALLOWED.values() for name in names]
    syscalls: list[dict[str, Any]] = [_allow(base)]
    syscalls += [
        {
            "names": ["personality"],
            "action": "SCMP_ACT_ALLOW",
            "args": [{"index": 0, "value": value, "op": "SCMP_CMP_EQ"}],
        }
        for value in PERSONALITIES
    ]
    granted = sorted({name for cap in caps & BY_CAPABILITY.keys() for name in BY_CAPABILITY[cap]})
    if granted:
        syscalls.append(_allow(granted))
    if "CAP_SYS_ADMIN" not in caps:
        # clone without namespace flags is ordinary process creation. clone3 passes its flags
        # in memory, out of a filter's reach: refuse it with ENOSYS so libc falls back to clone.
        syscalls.append(
            {
                "names": ["clone"],
                "action": "SCMP_ACT_ALLOW",
                "args": [
                    {
                        "index": 0,
                        "value": CLONE_NAMESPACE_FLAGS,
                        "valueTwo": 0,
                        "op": "SCMP_CMP_MASKED_EQ",
                    }
                ],
            }
        )
        syscalls.append({"names": ["clone3"], "action": "SCMP_ACT_ERRNO", "errnoRet": ENOSYS})
    return {
        "defaultAction": "SCMP_ACT_ERRNO",
        "defaultErrnoRet": EPERM,
        "architectures": list(ARCHITECTURES.get(machine, ())),
        "syscalls": syscalls,
    }
