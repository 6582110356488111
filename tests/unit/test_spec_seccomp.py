"""CRI seccomp settings -> linux.seccomp, and what our RuntimeDefault profile lets through."""

from __future__ import annotations

import json
import struct
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest

from cri.api.runtime.v1 import api_pb2 as v1
from cri.errors import InvalidArgument
from cri.oci.seccomp import compile_seccomp, syscall_table
from cri.spec.seccomp import load_localhost, normalize, seccomp_for
from cri.spec.seccomp_default import ALLOWED, BY_CAPABILITY, default_profile

NR = syscall_table.X86_64
ALLOW, EPERM, ENOSYS = 0x7FFF0000, 0x00050001, 0x00050026
SP = v1.SecurityProfile


def run(program: Any, nr: int, args: Sequence[int] = (), arch: int = 0xC000003E) -> int:
    """Just enough classic BPF for our own filters: ld abs, and, jeq/jgt/jge/ja, ret."""
    data = struct.pack("=IIQ6Q", nr, arch, 0, *(list(args) + [0] * 6)[:6])
    a, pc = 0, 0
    code_of = program.instructions
    while True:
        code, jt, jf, k = code_of[pc]
        pc += 1
        if code == 0x20:
            a = struct.unpack_from("=I", data, k)[0]
        elif code == 0x54:
            a &= k
        elif code == 0x05:
            pc += k
        elif code in (0x15, 0x25, 0x35):
            taken = {0x15: a == k, 0x25: a > k, 0x35: a >= k}[code]
            pc += jt if taken else jf
        elif code == 0x06:
            return int(k)
        else:
            raise AssertionError(f"unexpected opcode {code:#x}")


def write(tmp_path: Path, content: Any, name: str = "profile.json") -> str:
    path = tmp_path / name
    path.write_text(content if isinstance(content, str) else json.dumps(content))
    return str(path)


DENY_MKDIR = {
    "defaultAction": "SCMP_ACT_ALLOW",
    "syscalls": [{"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO"}],
}


# -- choosing the profile ----------------------------------------------------------------------


def test_nothing_asked_means_no_filter() -> None:
    assert seccomp_for(None, "", privileged=False) is None


@pytest.mark.parametrize("legacy", ["runtime/default", "docker/default"])
def test_runtime_default(legacy: str) -> None:
    expected = default_profile(["CAP_CHOWN"])
    assert (
        seccomp_for(SP(profile_type=SP.RuntimeDefault), "", False, capabilities=["CAP_CHOWN"])
        == expected
    )
    assert seccomp_for(None, legacy, False, capabilities=["CAP_CHOWN"]) == expected


def test_unconfined() -> None:
    assert seccomp_for(SP(profile_type=SP.Unconfined), "", False) is None
    assert seccomp_for(None, "unconfined", False) is None


def test_the_field_wins_over_the_deprecated_path(tmp_path: Path) -> None:
    path = write(tmp_path, DENY_MKDIR)
    assert seccomp_for(SP(profile_type=SP.Unconfined), f"localhost/{path}", False) is None
    got = seccomp_for(SP(profile_type=SP.Localhost, localhost_ref=path), "runtime/default", False)
    assert got is not None and got["defaultAction"] == "SCMP_ACT_ALLOW"


def test_localhost(tmp_path: Path) -> None:
    path = write(tmp_path, DENY_MKDIR)
    for got in (
        seccomp_for(SP(profile_type=SP.Localhost, localhost_ref=path), "", False),
        seccomp_for(SP(profile_type=SP.Localhost, localhost_ref=f"localhost/{path}"), "", False),
        seccomp_for(None, f"localhost/{path}", False),
    ):
        assert got == DENY_MKDIR


def test_privileged_gets_no_filter_even_with_a_localhost_profile(tmp_path: Path) -> None:
    assert seccomp_for(SP(profile_type=SP.RuntimeDefault), "", True) is None
    assert seccomp_for(None, "runtime/default", True) is None
    assert seccomp_for(None, "", True) is None
    path = write(tmp_path, DENY_MKDIR)
    assert seccomp_for(SP(profile_type=SP.Localhost, localhost_ref=path), "", True) is None


@pytest.mark.parametrize(
    ("profile", "legacy", "message"),
    [
        (SP(profile_type=SP.RuntimeDefault, localhost_ref="/x.json"), "", "only valid with"),
        (SP(profile_type=SP.Localhost), "", "needs a localhost_ref"),
        (None, "default", "expected runtime/default"),
        (None, "localhost/relative.json", "must be absolute"),
        (SP(profile_type=SP.Localhost, localhost_ref="/no/such/profile.json"), "", "no such file"),
    ],
)
def test_bad_requests(profile: v1.SecurityProfile | None, legacy: str, message: str) -> None:
    with pytest.raises(InvalidArgument, match=message):
        seccomp_for(profile, legacy, False)


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("{not json", "not valid JSON"),
        ("[]", "must be a JSON object"),
        ({"syscalls": []}, "defaultAction is missing"),
        ({"defaultAction": "SCMP_ACT_ALLOW", "syscalls": {}}, "syscalls must be an array"),
        (
            {"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [{"names": [1], "action": "x"}]},
            "strings",
        ),
        (
            {"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [{"names": [], "action": "x"}]},
            "non-empty",
        ),
        (
            {"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [{"names": ["read"]}]},
            "action is missing",
        ),
        ({"defaultAction": "SCMP_ACT_NOPE"}, "unknown action 'SCMP_ACT_NOPE'"),
        (
            {
                "defaultAction": "SCMP_ACT_ALLOW",
                "syscalls": [{"names": ["read"], "action": "SCMP_ACT_NOTIFY"}],
            },
            "NOTIFY",
        ),
        (
            {
                "defaultAction": "SCMP_ACT_ALLOW",
                "syscalls": [
                    {
                        "names": ["read"],
                        "action": "SCMP_ACT_ERRNO",
                        "args": [{"index": 9, "op": "SCMP_CMP_EQ"}],
                    }
                ],
            },
            "index must be 0..5",
        ),
    ],
)
def test_invalid_localhost_profiles(tmp_path: Path, content: Any, message: str) -> None:
    path = write(tmp_path, content)
    with pytest.raises(InvalidArgument, match=message) as info:
        seccomp_for(SP(profile_type=SP.Localhost, localhost_ref=path), "", False)
    assert path in info.value.message


def test_docker_format_profiles(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    docker = {
        "defaultAction": "SCMP_ACT_ERRNO",
        "archMap": [
            {
                "architecture": "SCMP_ARCH_X86_64",
                "subArchitectures": ["SCMP_ARCH_X86", "SCMP_ARCH_X32"],
            },
            {"architecture": "SCMP_ARCH_AARCH64", "subArchitectures": ["SCMP_ARCH_ARM"]},
        ],
        "syscalls": [
            {"name": "read", "action": "SCMP_ACT_ALLOW"},
            {
                "names": ["mount"],
                "action": "SCMP_ACT_ALLOW",
                "includes": {"caps": ["CAP_SYS_ADMIN"]},
            },
            {
                "names": ["arch_prctl"],
                "action": "SCMP_ACT_ALLOW",
                "includes": {"arches": ["amd64"]},
            },
            {"names": ["ptrace"], "action": "SCMP_ACT_ALLOW", "includes": {"minKernel": "4.8"}},
            {"names": ["ptrace2"], "action": "SCMP_ACT_ALLOW", "includes": {"minKernel": "99.0"}},
            {
                "names": ["clone"],
                "action": "SCMP_ACT_ALLOW",
                "excludes": {"caps": ["CAP_SYS_ADMIN"]},
                "comment": "x",
            },
        ],
    }
    fake = _uname("x86_64", "6.1.0-18-amd64")
    monkeypatch.setattr("os.uname", lambda: fake)
    plain = normalize(docker, [])
    assert plain["architectures"] == ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"]
    assert [r["names"] for r in plain["syscalls"]] == [
        ["read"],
        ["arch_prctl"],
        ["ptrace"],
        ["clone"],
    ]
    assert "comment" not in plain["syscalls"][-1]
    admin = normalize(docker, ["SYS_ADMIN"])
    assert [r["names"] for r in admin["syscalls"]] == [
        ["read"],
        ["mount"],
        ["arch_prctl"],
        ["ptrace"],
    ]
    # OCI format passes through unchanged
    assert normalize(DENY_MKDIR) == DENY_MKDIR
    monkeypatch.undo()
    assert load_localhost(write(tmp_path, docker))["defaultAction"] == "SCMP_ACT_ERRNO"


def _uname(machine: str, release: str) -> Any:
    import os

    real = os.uname()
    return type(real)((real.sysname, real.nodename, release, real.version, machine))


# -- our RuntimeDefault ----------------------------------------------------------------------------


def test_default_profile_shape() -> None:
    p = default_profile([], machine="x86_64")
    assert p["defaultAction"] == "SCMP_ACT_ERRNO" and p["defaultErrnoRet"] == 1
    assert p["architectures"] == ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"]
    assert default_profile([], machine="aarch64")["architectures"] == [
        "SCMP_ARCH_AARCH64",
        "SCMP_ARCH_ARM",
    ]
    allowed_x86_64 = {
        n for r in p["syscalls"] if r["action"] == "SCMP_ACT_ALLOW" for n in r["names"] if n in NR
    }
    assert 280 <= len(allowed_x86_64) <= 360
    # every name is a real syscall somewhere (ARM and other ABIs' own ones aside)
    tables = [syscall_table.X86_64, syscall_table.X86, syscall_table.X32, syscall_table.AARCH64]
    names = {n for group in ALLOWED.values() for n in group}
    names |= {n for group in BY_CAPABILITY.values() for n in group}
    unknown = {n for n in names if not any(n in t for t in tables)}
    assert unknown <= {
        "arm_fadvise64_64",
        "arm_sync_file_range",
        "breakpoint",
        "cacheflush",
        "recv",
        "send",
        "set_tls",
        "sync_file_range2",
    }


def test_default_profile_verdicts() -> None:
    prog = compile_seccomp(default_profile(["CAP_CHOWN", "CAP_NET_BIND_SERVICE"]), machine="x86_64")
    for name in (
        "read",
        "write",
        "openat",
        "execve",
        "mmap",
        "futex",
        "rt_sigaction",
        "socket",
        "getpid",
        "close_range",
        "setresuid",
        "capset",
        "prctl",
        "statx",
        "io_getevents",
        "arch_prctl",
        "ptrace",
        "fchmodat2",
        "wait4",
    ):
        assert run(prog, NR[name]) == ALLOW, name
    for name in (
        "mount",
        "umount2",
        "unshare",
        "setns",
        "bpf",
        "init_module",
        "reboot",
        "kexec_load",
        "open_by_handle_at",
        "perf_event_open",
        "chroot",
        "acct",
        "keyctl",
        "add_key",
        "io_uring_setup",
        "userfaultfd",
        "settimeofday",
    ):
        assert run(prog, NR[name]) == EPERM, name
    # clone: threads and forks yes, new namespaces no; clone3 gets ENOSYS so libc uses clone
    assert run(prog, NR["clone"], [0x003D0F00]) == ALLOW  # pthread_create's flags
    assert run(prog, NR["clone"], [0x01200011]) == ALLOW  # fork()
    assert run(prog, NR["clone"], [0x20000 | 17]) == EPERM  # CLONE_NEWNS
    assert run(prog, NR["clone3"]) == ENOSYS
    # personality: the usual values only
    assert run(prog, NR["personality"], [0x8]) == ALLOW
    assert run(prog, NR["personality"], [0x0400000]) == EPERM  # READ_IMPLIES_EXEC
    # syscalls newer than the profile get ENOSYS (runc's stub), not EPERM
    assert run(prog, 470) == ENOSYS
    # i386 processes use their own numbers
    i386 = syscall_table.X86
    assert run(prog, i386["socketcall"], arch=0x40000003) == ALLOW
    assert run(prog, i386["mount"], arch=0x40000003) == EPERM


def test_capabilities_widen_the_default_profile() -> None:
    prog = compile_seccomp(default_profile(["CAP_SYS_ADMIN", "SYS_PTRACE"]), machine="x86_64")
    for name in (
        "mount",
        "umount2",
        "unshare",
        "setns",
        "clone3",
        "sethostname",
        "kcmp",
        "process_vm_readv",
    ):
        assert run(prog, NR[name]) == ALLOW, name
    assert run(prog, NR["clone"], [0x20000 | 17]) == ALLOW
    assert run(prog, NR["init_module"]) == EPERM
    everything = compile_seccomp(default_profile(list(BY_CAPABILITY)), machine="x86_64")
    assert run(everything, NR["init_module"]) == ALLOW
    assert len(everything) < 4096


def test_default_profile_on_aarch64() -> None:
    a64 = syscall_table.AARCH64
    prog = compile_seccomp(default_profile([], machine="aarch64"), machine="aarch64")
    arch = syscall_table.AUDIT_ARCH_AARCH64
    assert run(prog, a64["openat"], arch=arch) == ALLOW
    assert run(prog, a64["mount"], arch=arch) == EPERM
    assert run(prog, a64["clone3"], arch=arch) == ENOSYS
