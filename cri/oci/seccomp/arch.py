"""Seccomp architectures: OCI `SCMP_ARCH_*` names, AUDIT_ARCH values, syscall tables, host ABIs.

A filter only ever sees the ABIs the host kernel can run (x86_64 runs x86_64, i386 and x32 code;
aarch64 runs aarch64 and 32-bit ARM code); a section for any other architecture would be dead
code, so those names are accepted and left out, as the kernel would never report them.
"""

from __future__ import annotations

import os
import sys

from .. import lazylog
from ..errors import InvalidSpec, Unsupported
from ..records import record

TYPE_CHECKING = False
if TYPE_CHECKING:  # typing and dataclasses cost 10 ms in the init (bpf.py)
    from collections.abc import Mapping

log = lazylog.getLogger(__name__)

#: every architecture name the runtime spec (and libseccomp) knows
OCI_ARCHES = frozenset(
    {
        "SCMP_ARCH_X86",
        "SCMP_ARCH_X86_64",
        "SCMP_ARCH_X32",
        "SCMP_ARCH_ARM",
        "SCMP_ARCH_AARCH64",
        "SCMP_ARCH_MIPS",
        "SCMP_ARCH_MIPS64",
        "SCMP_ARCH_MIPS64N32",
        "SCMP_ARCH_MIPSEL",
        "SCMP_ARCH_MIPSEL64",
        "SCMP_ARCH_MIPSEL64N32",
        "SCMP_ARCH_PPC",
        "SCMP_ARCH_PPC64",
        "SCMP_ARCH_PPC64LE",
        "SCMP_ARCH_S390",
        "SCMP_ARCH_S390X",
        "SCMP_ARCH_PARISC",
        "SCMP_ARCH_PARISC64",
        "SCMP_ARCH_RISCV64",
        "SCMP_ARCH_LOONGARCH64",
        "SCMP_ARCH_M68K",
        "SCMP_ARCH_SH",
        "SCMP_ARCH_SHEB",
    }
)


@record
class Arch:
    """One syscall ABI as a filter section sees it."""

    name: str  # OCI name, SCMP_ARCH_*
    audit: int  # seccomp_data.arch
    #: argument width as libseccomp compares it: 32-bit ABIs compare the low word only
    arg_bits: int
    #: x32 shares AUDIT_ARCH_X86_64 and marks its numbers with X32_SYSCALL_BIT
    x32: bool = False

    def syscalls(self) -> Mapping[str, int]:
        from . import syscall_table as t

        return {
            "SCMP_ARCH_X86_64": t.X86_64,
            "SCMP_ARCH_X86": t.X86,
            "SCMP_ARCH_X32": t.X32,
            "SCMP_ARCH_AARCH64": t.AARCH64,
        }[self.name]


def _arches() -> dict[str, Arch]:
    from . import syscall_table as t

    return {
        "SCMP_ARCH_X86_64": Arch("SCMP_ARCH_X86_64", t.AUDIT_ARCH_X86_64, 64),
        "SCMP_ARCH_X86": Arch("SCMP_ARCH_X86", t.AUDIT_ARCH_I386, 32),
        "SCMP_ARCH_X32": Arch("SCMP_ARCH_X32", t.AUDIT_ARCH_X86_64, 32, x32=True),
        "SCMP_ARCH_AARCH64": Arch("SCMP_ARCH_AARCH64", t.AUDIT_ARCH_AARCH64, 64),
    }


#: machine (uname -m) -> (native ABI, other ABIs its kernel can run)
HOSTS: Mapping[str, tuple[str, tuple[str, ...]]] = {
    "x86_64": ("SCMP_ARCH_X86_64", ("SCMP_ARCH_X86", "SCMP_ARCH_X32")),
    "aarch64": ("SCMP_ARCH_AARCH64", ("SCMP_ARCH_ARM",)),
}


#: what uname says under personality(PER_LINUX32) -> the 64-bit machine a 64-bit Python runs on
_LINUX32_NAMES = {"i386": "x86_64", "i686": "x86_64", "armv8l": "aarch64", "armv7l": "aarch64"}


def host_machine() -> str:
    """The machine whose ABI this process uses. NOTE: a spec's personality LINUX32 makes uname
    answer i686 (or armv8l) in the init while it still makes 64-bit system calls."""
    machine = os.uname().machine
    if sys.maxsize > 2**32:
        machine = _LINUX32_NAMES.get(machine, machine)
    return machine


def native_name(machine: str | None = None) -> str:
    machine = machine or host_machine()
    host = HOSTS.get(machine)
    if host is None:
        raise Unsupported(
            f"seccomp: no syscall table for machine {machine!r} (supported: {', '.join(HOSTS)})"
        )
    return host[0]


def sections(requested: tuple[str, ...], machine: str | None = None) -> list[Arch]:
    """The ABIs a filter needs sections for: the native one (always, as libseccomp does) plus
    each requested one this host can run, in that order. Unknown names are an error."""
    machine = machine or host_machine()
    native = native_name(machine)
    runnable = {native, *HOSTS[machine][1]}
    known = _arches()
    for name in requested:
        if name not in OCI_ARCHES:
            raise InvalidSpec(f"linux.seccomp.architectures: unknown architecture {name!r}")
    chosen: list[Arch] = [known[native]]
    for name in requested:
        if name in (a.name for a in chosen):
            continue
        if name not in runnable:
            log.debug("seccomp: %s never runs on %s; no section for it", name, machine)
            continue
        if name not in known:
            # NOTE: a known gap (32-bit ARM on aarch64): such processes get the bad-arch action
            log.debug("seccomp: no syscall table for %s; its processes are killed", name)
            continue
        chosen.append(known[name])
    return chosen
