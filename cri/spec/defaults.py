"""What every container gets unless its config says otherwise (the values containerd uses)."""

from __future__ import annotations

from typing import Any

OCI_VERSION = "1.0.2"

DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

DEFAULT_CAPABILITIES: tuple[str, ...] = (
    "CAP_CHOWN",
    "CAP_DAC_OVERRIDE",
    "CAP_FSETID",
    "CAP_FOWNER",
    "CAP_MKNOD",
    "CAP_NET_RAW",
    "CAP_SETGID",
    "CAP_SETUID",
    "CAP_SETFCAP",
    "CAP_SETPCAP",
    "CAP_NET_BIND_SERVICE",
    "CAP_SYS_CHROOT",
    "CAP_KILL",
    "CAP_AUDIT_WRITE",
)

MASKED_PATHS: tuple[str, ...] = (
    "/proc/acpi",
    "/proc/asound",
    "/proc/kcore",
    "/proc/keys",
    "/proc/latency_stats",
    "/proc/timer_list",
    "/proc/timer_stats",
    "/proc/sched_debug",
    "/proc/scsi",
    "/sys/firmware",
    "/sys/devices/virtual/powercap",
)

READONLY_PATHS: tuple[str, ...] = (
    "/proc/bus",
    "/proc/fs",
    "/proc/irq",
    "/proc/sys",
    "/proc/sysrq-trigger",
)


def base_mounts() -> list[dict[str, Any]]:
    """The kernel filesystems of a container, in mount order."""
    return [
        {"destination": "/proc", "type": "proc", "source": "proc",
         "options": ["nosuid", "noexec", "nodev"]},
        {"destination": "/dev", "type": "tmpfs", "source": "tmpfs",
         "options": ["nosuid", "strictatime", "mode=755", "size=65536k"]},
        {"destination": "/dev/pts", "type": "devpts", "source": "devpts",
         "options": ["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620", "gid=5"]},
        {"destination": "/dev/mqueue", "type": "mqueue", "source": "mqueue",
         "options": ["nosuid", "noexec", "nodev"]},
        {"destination": "/sys", "type": "sysfs", "source": "sysfs",
         "options": ["nosuid", "noexec", "nodev", "ro"]},
        {"destination": "/sys/fs/cgroup", "type": "cgroup", "source": "cgroup",
         "options": ["nosuid", "noexec", "nodev", "relatime", "ro"]},
    ]


# In bit order (linux/capability.h).
_CAPABILITY_NAMES: tuple[str, ...] = (
    "CHOWN", "DAC_OVERRIDE", "DAC_READ_SEARCH", "FOWNER", "FSETID", "KILL", "SETGID",
    "SETUID", "SETPCAP", "LINUX_IMMUTABLE", "NET_BIND_SERVICE", "NET_BROADCAST",
    "NET_ADMIN", "NET_RAW", "IPC_LOCK", "IPC_OWNER", "SYS_MODULE", "SYS_RAWIO",
    "SYS_CHROOT", "SYS_PTRACE", "SYS_PACCT", "SYS_ADMIN", "SYS_BOOT", "SYS_NICE",
    "SYS_RESOURCE", "SYS_TIME", "SYS_TTY_CONFIG", "MKNOD", "LEASE", "AUDIT_WRITE",
    "AUDIT_CONTROL", "SETFCAP", "MAC_OVERRIDE", "MAC_ADMIN", "SYSLOG", "WAKE_ALARM",
    "BLOCK_SUSPEND", "AUDIT_READ", "PERFMON", "BPF", "CHECKPOINT_RESTORE",
)


def known_capabilities() -> frozenset[str]:
    """Names a config may mention, whether or not this host can grant them."""
    return frozenset(f"CAP_{name}" for name in _CAPABILITY_NAMES)


def all_capabilities() -> list[str]:
    """Every capability this host can grant (what privileged containers get).

    Like containerd, this is the daemon's own bounding set rather than every capability the
    kernel knows: asking runc for one the host lacks (CAP_SYS_RESOURCE here) fails the start.
    """
    bounding = (1 << len(_CAPABILITY_NAMES)) - 1
    try:
        with open("/proc/self/status") as f:
            bounding = next(int(line.split()[1], 16) for line in f
                            if line.startswith("CapBnd:"))
    except (OSError, StopIteration, ValueError):
        pass
    return [f"CAP_{name}" for bit, name in enumerate(_CAPABILITY_NAMES) if bounding & (1 << bit)]


CAP_SYS_RESOURCE = 24


def clamp_oom_score_adj(value: int) -> int:
    """Without CAP_SYS_RESOURCE the kernel refuses a value below our own: ask for no less.

    (containerd's restrict_oom_score_adj; kubelet asks -998 for the pause container.)
    """
    try:
        with open("/proc/self/status") as f:
            cap_eff = next(int(line.split()[1], 16) for line in f if line.startswith("CapEff:"))
        if cap_eff & (1 << CAP_SYS_RESOURCE):
            return value
        with open("/proc/self/oom_score_adj") as f:
            own = int(f.read())
    except (OSError, StopIteration, ValueError):
        return value
    return max(value, own)
