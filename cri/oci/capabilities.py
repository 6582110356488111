"""Capability names and applying the five capability sets.

Order matters and follows runc: the bounding set is dropped while still root, the identity change
happens with PR_SET_KEEPCAPS (users.py), then capset sets effective/permitted/inheritable and the
ambient set is raised last (it requires the capability in permitted and inheritable).
"""

from __future__ import annotations

from . import lazylog
from .errors import InvalidSpec
from .spec import Capabilities
from .syscalls import (
    PR_CAP_AMBIENT,
    PR_CAP_AMBIENT_CLEAR_ALL,
    PR_CAP_AMBIENT_RAISE,
    PR_CAPBSET_DROP,
    CapSets,
    Syscalls,
)

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Iterable

log = lazylog.getLogger(__name__)

NAMES = (
    "CAP_CHOWN",
    "CAP_DAC_OVERRIDE",
    "CAP_DAC_READ_SEARCH",
    "CAP_FOWNER",
    "CAP_FSETID",
    "CAP_KILL",
    "CAP_SETGID",
    "CAP_SETUID",
    "CAP_SETPCAP",
    "CAP_LINUX_IMMUTABLE",
    "CAP_NET_BIND_SERVICE",
    "CAP_NET_BROADCAST",
    "CAP_NET_ADMIN",
    "CAP_NET_RAW",
    "CAP_IPC_LOCK",
    "CAP_IPC_OWNER",
    "CAP_SYS_MODULE",
    "CAP_SYS_RAWIO",
    "CAP_SYS_CHROOT",
    "CAP_SYS_PTRACE",
    "CAP_SYS_PACCT",
    "CAP_SYS_ADMIN",
    "CAP_SYS_BOOT",
    "CAP_SYS_NICE",
    "CAP_SYS_RESOURCE",
    "CAP_SYS_TIME",
    "CAP_SYS_TTY_CONFIG",
    "CAP_MKNOD",
    "CAP_LEASE",
    "CAP_AUDIT_WRITE",
    "CAP_AUDIT_CONTROL",
    "CAP_SETFCAP",
    "CAP_MAC_OVERRIDE",
    "CAP_MAC_ADMIN",
    "CAP_SYSLOG",
    "CAP_WAKE_ALARM",
    "CAP_BLOCK_SUSPEND",
    "CAP_AUDIT_READ",
    "CAP_PERFMON",
    "CAP_BPF",
    "CAP_CHECKPOINT_RESTORE",
)
BY_NAME = {name: number for number, name in enumerate(NAMES)}


def last_cap() -> int:
    """The highest capability number the running kernel knows."""
    try:
        with open("/proc/sys/kernel/cap_last_cap") as f:
            return int(f.read())
    except OSError:
        return len(NAMES) - 1


def parse_names(names: Iterable[str]) -> int:
    """Capability names (CAP_X, or X) to a bit mask; unknown names are an error."""
    mask = 0
    for name in names:
        key = name.upper()
        if not key.startswith("CAP_"):
            key = "CAP_" + key
        if key not in BY_NAME:
            raise InvalidSpec(f"unknown capability {name!r}")
        mask |= 1 << BY_NAME[key]
    return mask


def mask_names(mask: int) -> list[str]:
    return [name for number, name in enumerate(NAMES) if mask >> number & 1]


def host_mask(sys: Syscalls) -> int:
    """What we can grant: capabilities in our own bounding set and permitted set.

    NOTE: this host's root lacks CAP_SYS_RESOURCE, so specs asking for it (runc's and containerd's
    defaults do for privileged containers) would fail capset; we drop such names with a log line.
    """
    return sys.capget().permitted


def drop_bounding(sys: Syscalls, caps: Capabilities) -> None:
    keep = parse_names(caps.bounding)
    for cap in range(last_cap() + 1):
        if not keep >> cap & 1:
            try:
                sys.prctl(PR_CAPBSET_DROP, cap)
            except OSError as e:
                # EINVAL: the kernel doesn't know this number; nothing to drop.
                if e.errno != 22:
                    raise


def apply(sys: Syscalls, caps: Capabilities, available: int) -> None:
    """Set effective/permitted/inheritable, then ambient; `available` is from `host_mask`."""
    wanted = {
        "effective": parse_names(caps.effective),
        "permitted": parse_names(caps.permitted),
        "inheritable": parse_names(caps.inheritable),
    }
    for which, mask in wanted.items():
        missing = mask & ~available
        if missing:
            log.warning(
                "dropping %s capabilities the host lacks: %s", which, ", ".join(mask_names(missing))
            )
            wanted[which] = mask & available
    # NOTE: capset refuses an inheritable set outside the bounding set, which
    # drop_bounding() already cut; clip instead of failing: those bits could never be used.
    wanted["inheritable"] &= parse_names(caps.bounding) | sys.capget().inheritable
    sys.capset(CapSets(wanted["effective"], wanted["permitted"], wanted["inheritable"]))
    sys.prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL)
    ambient = parse_names(caps.ambient) & wanted["permitted"] & wanted["inheritable"]
    for cap in range(len(NAMES)):
        if ambient >> cap & 1:
            try:
                sys.prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_RAISE, cap)
            except OSError as e:
                log.warning("cannot raise ambient %s: %s", NAMES[cap], e)
