"""The seccomp compiler, judged by what its programs return, not by their instructions.

A small classic-BPF interpreter runs the compiled filter on `struct seccomp_data` inputs. Where
libseccomp (the library runc links) is installed, random profiles are also compiled by it and both
programs must return the same verdict for every input: libseccomp is the oracle for the
comparison semantics, the arch checks and the x32 handling.
"""

from __future__ import annotations

import ctypes
import logging
import operator
import os
import random
import struct
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any

import pytest

from cri.oci.errors import InvalidSpec, Unsupported
from cri.oci.seccomp import compile_seccomp, gen_table, syscall_table
from cri.oci.seccomp.bpf import (
    BPF_MAXINSNS,
    SECCOMP_FILTER_FLAG_LOG,
    SECCOMP_FILTER_FLAG_SPEC_ALLOW,
    SECCOMP_FILTER_FLAG_TSYNC,
    Program,
    SockFilter,
)
from cri.oci.seccomp.bpf import compile_seccomp as compile_raw

X86_64 = syscall_table.AUDIT_ARCH_X86_64
I386 = syscall_table.AUDIT_ARCH_I386
AARCH64 = syscall_table.AUDIT_ARCH_AARCH64
X32_BIT = syscall_table.X32_SYSCALL_BIT
NR = syscall_table.X86_64
NR32 = syscall_table.X86
NRX32 = syscall_table.X32

ALLOW = 0x7FFF0000
KILL_THREAD = 0x00000000
KILL_PROCESS = 0x80000000
TRAP = 0x00030000
LOG = 0x7FFC0000


def ERRNO(e: int) -> int:
    return 0x00050000 | e


def TRACE(e: int) -> int:
    return 0x7FF00000 | e


# -- a classic BPF interpreter for seccomp ----------------------------------------------------


def seccomp_data(nr: int, arch: int, args: Sequence[int] = (), ip: int = 0) -> bytes:
    full = list(args) + [0] * (6 - len(args))
    return struct.pack("=IIQ6Q", nr & 0xFFFFFFFF, arch, ip, *full)


_ALU: dict[int, Callable[[int, int], int]] = {
    0x00: operator.add,
    0x10: operator.sub,
    0x20: operator.mul,
    0x30: operator.floordiv,
    0x40: operator.or_,
    0x50: operator.and_,
    0x60: operator.lshift,
    0x70: operator.rshift,
    0x90: operator.mod,
    0xA0: operator.xor,
}


def run_bpf(program: Sequence[tuple[int, int, int, int]], data: bytes) -> int:
    """Execute like the kernel's seccomp checker allows: forward jumps, 32-bit A/X, M[16]."""
    a = x = 0
    mem = [0] * 16
    pc = 0
    steps = 0
    while True:
        assert 0 <= pc < len(program), f"pc {pc} runs off the program"
        steps += 1
        assert steps <= len(program), "a loop: classic BPF only jumps forward"
        code, jt, jf, k = program[pc]
        assert 0 <= jt <= 255 and 0 <= jf <= 255 and 0 <= k <= 0xFFFFFFFF
        pc += 1
        cls = code & 0x07
        if cls == 0x00:  # BPF_LD
            mode = code & 0xE0
            if mode == 0x20:  # BPF_ABS, only 32-bit aligned words of seccomp_data
                assert code & 0x18 == 0 and k % 4 == 0 and k + 4 <= len(data)
                a = struct.unpack_from("=I", data, k)[0]
            elif mode == 0x00:  # BPF_IMM
                a = k
            elif mode == 0x60:  # BPF_MEM
                a = mem[k]
            elif mode == 0x80:  # BPF_LEN
                a = len(data)
            else:
                raise AssertionError(f"bad ld {code:#x}")
        elif cls == 0x01:  # BPF_LDX
            mode = code & 0xE0
            x = k if mode == 0x00 else mem[k] if mode == 0x60 else len(data)
        elif cls == 0x02:  # BPF_ST
            mem[k] = a
        elif cls == 0x03:  # BPF_STX
            mem[k] = x
        elif cls == 0x04:  # BPF_ALU
            op, src = code & 0xF0, (x if code & 0x08 else k)
            a = (-a if op == 0x80 else _ALU[op](a, src)) & 0xFFFFFFFF
        elif cls == 0x05:  # BPF_JMP
            op, src = code & 0xF0, (x if code & 0x08 else k)
            if op == 0x00:  # BPF_JA
                pc += k
                continue
            taken = {0x10: a == src, 0x20: a > src, 0x30: a >= src, 0x40: a & src != 0}[op]
            pc += jt if taken else jf
        elif cls == 0x06:  # BPF_RET
            return k if code & 0x18 == 0 else a
        else:  # BPF_MISC: tax/txa
            if code & 0xF8 == 0x80:
                a = x
            else:
                x = a


def verdict(program: Program, nr: int, arch: int = X86_64, args: Sequence[int] = ()) -> int:
    return run_bpf(program.instructions, seccomp_data(nr, arch, args))


def profile(
    rules: list[dict[str, Any]],
    default: str = "SCMP_ACT_ALLOW",
    arches: Sequence[str] = ("SCMP_ARCH_X86_64",),
    **extra: Any,
) -> dict[str, Any]:
    return {"defaultAction": default, "architectures": list(arches), "syscalls": rules, **extra}


def arg(index: int, op: str, value: int, value_two: int = 0) -> dict[str, Any]:
    return {"index": index, "op": f"SCMP_CMP_{op}", "value": value, "valueTwo": value_two}


def compiled(spec: Mapping[str, Any], machine: str = "x86_64") -> Program:
    return compile_seccomp(spec, machine=machine)


# -- basics ------------------------------------------------------------------------------------


def test_denylist_with_default_allow() -> None:
    prog = compiled(profile([{"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO"}]))
    assert verdict(prog, NR["mkdir"]) == ERRNO(1)  # EPERM when errnoRet is absent
    assert verdict(prog, NR["mkdirat"]) == ERRNO(1)
    for name in ("read", "write", "openat", "execve", "exit_group", "rmdir"):
        assert verdict(prog, NR[name]) == ALLOW, name
    assert verdict(prog, 5000) == ALLOW  # unknown numbers get the default
    assert len(prog.pack()) == 8 * len(prog)


def test_allowlist_with_errno_default_and_errno_values() -> None:
    spec = profile(
        [
            {"names": ["read", "write", "exit_group"], "action": "SCMP_ACT_ALLOW"},
            {"names": ["chmod"], "action": "SCMP_ACT_ERRNO", "errnoRet": 13},
        ],
        default="SCMP_ACT_ERRNO",
        defaultErrnoRet=38,
    )
    prog = compiled(spec)
    assert verdict(prog, NR["read"]) == ALLOW
    assert verdict(prog, NR["chmod"]) == ERRNO(13)
    assert verdict(prog, NR["open"]) == ERRNO(38)
    prog = compiled(profile(spec["syscalls"], default="SCMP_ACT_ERRNO"))
    assert verdict(prog, NR["open"]) == ERRNO(1)


@pytest.mark.parametrize(
    ("action", "errno_ret", "expected"),
    [
        ("SCMP_ACT_KILL", None, KILL_THREAD),
        ("SCMP_ACT_KILL_THREAD", None, KILL_THREAD),
        ("SCMP_ACT_KILL_PROCESS", None, KILL_PROCESS),
        ("SCMP_ACT_TRAP", None, TRAP),
        ("SCMP_ACT_ERRNO", None, ERRNO(1)),
        ("SCMP_ACT_ERRNO", 0, ERRNO(0)),
        ("SCMP_ACT_ERRNO", 95, ERRNO(95)),
        ("SCMP_ACT_TRACE", None, TRACE(1)),
        ("SCMP_ACT_TRACE", 7, TRACE(7)),
        ("SCMP_ACT_LOG", None, LOG),
    ],
)
def test_actions(action: str, errno_ret: int | None, expected: int) -> None:
    rule: dict[str, Any] = {"names": ["getpid"], "action": action}
    if errno_ret is not None:
        rule["errnoRet"] = errno_ret
    prog = compiled(profile([rule]))
    assert verdict(prog, NR["getpid"]) == expected
    assert verdict(prog, NR["getppid"]) == ALLOW
    # the same action as a default
    spec = profile([{"names": ["getppid"], "action": "SCMP_ACT_ALLOW"}], default=action)
    if errno_ret is not None:
        spec["defaultErrnoRet"] = errno_ret
    prog = compiled(spec)
    assert verdict(prog, NR["getpid"]) == expected
    assert verdict(prog, NR["getppid"]) == ALLOW


def test_notify_and_agent_flags_are_unsupported() -> None:
    with pytest.raises(Unsupported, match="NOTIFY"):
        compiled(profile([{"names": ["mkdir"], "action": "SCMP_ACT_NOTIFY"}]))
    with pytest.raises(Unsupported, match="NOTIFY"):
        compiled(profile([], default="SCMP_ACT_NOTIFY"))
    with pytest.raises(Unsupported, match="agent"):
        compiled(profile([], flags=["SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV"]))


def test_flags() -> None:
    prog = compiled(
        profile(
            [],
            flags=[
                "SECCOMP_FILTER_FLAG_TSYNC",
                "SECCOMP_FILTER_FLAG_LOG",
                "SECCOMP_FILTER_FLAG_SPEC_ALLOW",
            ],
        )
    )
    assert prog.flags == (
        SECCOMP_FILTER_FLAG_TSYNC | SECCOMP_FILTER_FLAG_LOG | SECCOMP_FILTER_FLAG_SPEC_ALLOW
    )
    assert compiled(profile([])).flags == 0


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ({"syscalls": []}, "unknown action None"),
        ({"defaultAction": "SCMP_ACT_DENY"}, "unknown action 'SCMP_ACT_DENY'"),
        ({"defaultAction": "SCMP_ACT_ALLOW", "defaultErrnoRet": 1}, "errnoRet is only valid"),
        ({"defaultAction": "SCMP_ACT_ERRNO", "defaultErrnoRet": -1}, "errnoRet must be"),
        ({"defaultAction": "SCMP_ACT_ALLOW", "architectures": ["SCMP_ARCH_Z80"]}, "unknown arch"),
        ({"defaultAction": "SCMP_ACT_ALLOW", "flags": ["SECCOMP_FILTER_FLAG_X"]}, "unknown flag"),
        ({"defaultAction": "SCMP_ACT_ALLOW", "syscalls": {}}, "must be an array"),
        ({"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [{"action": "SCMP_ACT_ERRNO"}]}, "empty"),
        (
            {"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [{"names": [3], "action": "x"}]},
            "syscall names",
        ),
        (
            {
                "defaultAction": "SCMP_ACT_ALLOW",
                "syscalls": [
                    {"names": ["read"], "action": "SCMP_ACT_ERRNO", "args": [arg(6, "EQ", 1)]}
                ],
            },
            "index must be 0..5",
        ),
        (
            {
                "defaultAction": "SCMP_ACT_ALLOW",
                "syscalls": [
                    {"names": ["read"], "action": "SCMP_ACT_ERRNO", "args": [arg(0, "XX", 1)]}
                ],
            },
            "unknown operator",
        ),
        (
            {
                "defaultAction": "SCMP_ACT_ALLOW",
                "syscalls": [
                    {"names": ["read"], "action": "SCMP_ACT_ERRNO", "args": [arg(0, "EQ", 1 << 64)]}
                ],
            },
            "value must be",
        ),
    ],
)
def test_invalid_profiles(spec: dict[str, Any], message: str) -> None:
    with pytest.raises(InvalidSpec, match=message):
        compiled(spec)


def test_unknown_names_are_skipped_with_a_debug_log(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG, logger="cri.oci.seccomp")
    spec = profile([{"names": ["no_such_call", "mkdir"], "action": "SCMP_ACT_ERRNO"}])
    prog = compiled(spec)
    assert verdict(prog, NR["mkdir"]) == ERRNO(1)
    assert "no_such_call" in caplog.text


def test_rules_with_the_default_action_are_dropped() -> None:
    spec = profile(
        [
            {"names": ["mkdir"], "action": "SCMP_ACT_ALLOW"},
            {"names": ["rmdir"], "action": "SCMP_ACT_ERRNO"},
        ]
    )
    plain = compiled(profile([{"names": ["rmdir"], "action": "SCMP_ACT_ERRNO"}]))
    assert compiled(spec).instructions == plain.instructions


# -- arguments ---------------------------------------------------------------------------------

BIG = 0x1_0000_0005  # high word 1, low word 5
EDGES = (
    0,
    4,
    5,
    6,
    0xFFFFFFFF,
    0x1_0000_0000,
    0x1_0000_0004,
    BIG,
    0x1_0000_0006,
    0x2_0000_0000,
    0x2_0000_0005,
    0xFFFF_FFFF_FFFF_FFFF,
)


@pytest.mark.parametrize(
    ("op", "holds"),
    [
        ("EQ", lambda v: v == BIG),
        ("NE", lambda v: v != BIG),
        ("LT", lambda v: v < BIG),
        ("LE", lambda v: v <= BIG),
        ("GT", lambda v: v > BIG),
        ("GE", lambda v: v >= BIG),
    ],
)
def test_64_bit_comparisons(op: str, holds: Callable[[int], bool]) -> None:
    prog = compiled(
        profile([{"names": ["ioctl"], "action": "SCMP_ACT_ERRNO", "args": [arg(1, op, BIG)]}])
    )
    for value in EDGES:
        got = verdict(prog, NR["ioctl"], args=(3, value))
        assert got == (ERRNO(1) if holds(value) else ALLOW), (op, hex(value))
        # the other arguments do not matter
        assert verdict(prog, NR["ioctl"], args=(value, 7)) == (ERRNO(1) if holds(7) else ALLOW)


def test_masked_eq_on_both_words() -> None:
    mask, datum = 0x0000_00F0_0000_00FF, 0x0000_0010_0000_0002
    prog = compiled(
        profile(
            [
                {
                    "names": ["clone"],
                    "action": "SCMP_ACT_ERRNO",
                    "args": [arg(0, "MASKED_EQ", mask, datum)],
                }
            ]
        )
    )
    for value in (datum, datum | 0xFF00, 0x0000_0011_0000_0002, 0x0000_0010_0000_0003, 0, -1):
        value &= 0xFFFF_FFFF_FFFF_FFFF
        expected = ERRNO(1) if value & mask == datum else ALLOW
        assert verdict(prog, NR["clone"], args=(value,)) == expected, hex(value)
    # libseccomp masks the datum too: bits outside the mask do not make the rule unmatchable
    prog = compiled(
        profile(
            [
                {
                    "names": ["clone"],
                    "action": "SCMP_ACT_ERRNO",
                    "args": [arg(0, "MASKED_EQ", 0x0F, 0xF3)],
                }
            ]
        )
    )
    assert verdict(prog, NR["clone"], args=(0x3,)) == ERRNO(1)
    assert verdict(prog, NR["clone"], args=(0xF3,)) == ERRNO(1)
    assert verdict(prog, NR["clone"], args=(0xF4,)) == ALLOW


def test_clone_namespace_flags_rule_like_the_default_profiles() -> None:
    ns_flags = 0x7E020000
    prog = compiled(
        profile(
            [
                {
                    "names": ["clone"],
                    "action": "SCMP_ACT_ALLOW",
                    "args": [arg(0, "MASKED_EQ", ns_flags, 0)],
                }
            ],
            default="SCMP_ACT_ERRNO",
        )
    )
    sigchld, newns = 17, 0x20000
    assert verdict(prog, NR["clone"], args=(sigchld | 0x01200000,)) == ALLOW
    assert verdict(prog, NR["clone"], args=(sigchld | newns,)) == ERRNO(1)


def test_conditions_are_anded_unless_they_share_an_argument() -> None:
    both = compiled(
        profile(
            [
                {
                    "names": ["kill"],
                    "action": "SCMP_ACT_ERRNO",
                    "args": [arg(0, "EQ", 1), arg(1, "EQ", 9)],
                }
            ]
        )
    )
    assert verdict(both, NR["kill"], args=(1, 9)) == ERRNO(1)
    assert verdict(both, NR["kill"], args=(1, 15)) == ALLOW
    assert verdict(both, NR["kill"], args=(2, 9)) == ALLOW
    # runc: two conditions on the same argument become two rules, either one matches
    either = compiled(
        profile(
            [
                {
                    "names": ["kill"],
                    "action": "SCMP_ACT_ERRNO",
                    "args": [arg(1, "EQ", 9), arg(1, "EQ", 19), arg(0, "EQ", 1)],
                }
            ]
        )
    )
    assert verdict(either, NR["kill"], args=(5, 9)) == ERRNO(1)
    assert verdict(either, NR["kill"], args=(5, 19)) == ERRNO(1)
    assert verdict(either, NR["kill"], args=(1, 15)) == ERRNO(1)
    assert verdict(either, NR["kill"], args=(5, 15)) == ALLOW


def test_several_rules_for_one_syscall() -> None:
    personality = [
        {"names": ["personality"], "action": "SCMP_ACT_ALLOW", "args": [arg(0, "EQ", v)]}
        for v in (0x0, 0x8, 0x20000, 0x20008, 0xFFFFFFFF)
    ]
    prog = compiled(profile(personality, default="SCMP_ACT_ERRNO"))
    for v in (0x0, 0x8, 0x20000, 0x20008, 0xFFFFFFFF):
        assert verdict(prog, NR["personality"], args=(v,)) == ALLOW
    assert verdict(prog, NR["personality"], args=(0x1,)) == ERRNO(1)
    assert verdict(prog, NR["personality"], args=(0x1_0000_0000,)) == ERRNO(1)
    # conditional rules in profile order; an unconditional rule decides alone (libseccomp)
    prog = compiled(
        profile(
            [
                {
                    "names": ["kill"],
                    "action": "SCMP_ACT_ERRNO",
                    "errnoRet": 2,
                    "args": [arg(0, "EQ", 1)],
                },
                {
                    "names": ["kill"],
                    "action": "SCMP_ACT_ERRNO",
                    "errnoRet": 3,
                    "args": [arg(1, "EQ", 2)],
                },
            ]
        )
    )
    assert verdict(prog, NR["kill"], args=(1, 2)) == ERRNO(2)
    assert verdict(prog, NR["kill"], args=(0, 2)) == ERRNO(3)
    prog = compiled(
        profile(
            [
                {
                    "names": ["kill"],
                    "action": "SCMP_ACT_ERRNO",
                    "errnoRet": 2,
                    "args": [arg(0, "EQ", 1)],
                },
                {"names": ["kill"], "action": "SCMP_ACT_ERRNO", "errnoRet": 3},
            ]
        )
    )
    assert verdict(prog, NR["kill"], args=(1, 0)) == ERRNO(3)


# -- architectures -----------------------------------------------------------------------------


def test_foreign_arch_is_killed() -> None:
    prog = compiled(profile([{"names": ["mkdir"], "action": "SCMP_ACT_ERRNO"}]))
    assert verdict(prog, NR["getpid"], arch=AARCH64) == KILL_THREAD
    assert verdict(prog, NR["getpid"], arch=0x12345678) == KILL_THREAD
    # i386 code on an x86_64 host is a foreign ABI unless the profile lists SCMP_ARCH_X86
    assert verdict(prog, NR32["getpid"], arch=I386) == KILL_THREAD


def test_x32_bit_is_rejected_under_x86_64_unless_x32_is_listed() -> None:
    rules = [{"names": ["mkdir"], "action": "SCMP_ACT_ERRNO"}]
    prog = compiled(profile(rules))
    assert verdict(prog, NR["getpid"] | X32_BIT) == KILL_THREAD
    assert verdict(prog, NRX32["mkdir"]) == KILL_THREAD
    assert verdict(prog, 0xFFFFFFFF) == ALLOW  # nr -1: a tracer skipping the call
    prog = compiled(profile(rules, arches=("SCMP_ARCH_X86_64", "SCMP_ARCH_X32")))
    assert verdict(prog, NRX32["mkdir"]) == ERRNO(1)
    assert verdict(prog, NRX32["getpid"]) == ALLOW
    assert verdict(prog, NR["mkdir"]) == ERRNO(1)


def test_i386_section_uses_i386_numbers_and_32_bit_arguments() -> None:
    rules: list[dict[str, Any]] = [
        {"names": ["mkdir"], "action": "SCMP_ACT_ERRNO"},
        {"names": ["kill"], "action": "SCMP_ACT_ERRNO", "args": [arg(1, "EQ", 9)]},
    ]
    prog = compiled(profile(rules, arches=("SCMP_ARCH_X86_64", "SCMP_ARCH_X86")))
    assert NR32["mkdir"] != NR["mkdir"]
    assert verdict(prog, NR32["mkdir"], arch=I386) == ERRNO(1)
    assert verdict(prog, NR["mkdir"], arch=I386) == ALLOW  # 83 is not mkdir on i386
    assert verdict(prog, NR32["kill"], arch=I386, args=(1, 9)) == ERRNO(1)
    assert verdict(prog, NR32["kill"], arch=I386, args=(1, 10)) == ALLOW
    assert verdict(prog, NR["mkdir"]) == ERRNO(1)


def test_aarch64_host() -> None:
    a64 = syscall_table.AARCH64
    spec = profile(
        [
            {"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO"},
            {"names": ["fchmodat"], "action": "SCMP_ACT_ERRNO", "args": [arg(2, "EQ", 0o777)]},
        ],
        arches=("SCMP_ARCH_AARCH64", "SCMP_ARCH_ARM"),
    )
    prog = compiled(spec, machine="aarch64")
    assert "mkdir" not in a64  # aarch64 only has the *at calls
    assert verdict(prog, a64["mkdirat"], arch=AARCH64) == ERRNO(1)
    assert verdict(prog, a64["fchmodat"], arch=AARCH64, args=(0, 0, 0o777)) == ERRNO(1)
    assert verdict(prog, a64["fchmodat"], arch=AARCH64, args=(0, 0, 0o755)) == ALLOW
    assert verdict(prog, a64["openat"], arch=AARCH64) == ALLOW
    assert verdict(prog, a64["openat"], arch=X86_64) == KILL_THREAD
    with pytest.raises(Unsupported, match="riscv64"):
        compiled(spec, machine="riscv64")


def test_host_machine_sees_through_linux32_personality(monkeypatch: pytest.MonkeyPatch) -> None:
    from cri.oci.seccomp import arch

    real = os.uname()
    fake = type(real)((real.sysname, real.nodename, real.release, real.version, "i686"))
    monkeypatch.setattr(os, "uname", lambda: fake)
    assert arch.host_machine() == "x86_64"
    assert arch.native_name() == "SCMP_ARCH_X86_64"


# -- runc's -ENOSYS stub -------------------------------------------------------------------------


def test_enosys_for_syscalls_newer_than_the_profile() -> None:
    rules = [{"names": ["read", "write", "openat2"], "action": "SCMP_ACT_ALLOW"}]
    prog = compiled(profile(rules, default="SCMP_ACT_ERRNO"))
    assert verdict(prog, NR["openat2"]) == ALLOW
    assert verdict(prog, NR["mkdir"]) == ERRNO(1)  # known to the profile's era: default
    assert verdict(prog, NR["openat2"] + 1) == ERRNO(38)  # newer than anything named: ENOSYS
    assert verdict(prog, 0xFFFFFFFF) == ERRNO(1)  # nr -1 is not a newer syscall
    # runc adds the stub only for listed architectures and non-allowing defaults
    assert verdict(compiled(profile(rules, default="SCMP_ACT_ERRNO", arches=())), 500) == ERRNO(1)
    assert verdict(compiled(profile(rules, default="SCMP_ACT_LOG")), 500) == LOG
    # a rule dropped for matching the default still counts as named
    rules.append({"names": ["futex_waitv"], "action": "SCMP_ACT_ERRNO"})
    prog = compiled(profile(rules, default="SCMP_ACT_ERRNO"))
    assert verdict(prog, NR["futex_waitv"]) == ERRNO(1)
    assert verdict(prog, NR["openat2"] + 1) == ERRNO(1)
    assert verdict(prog, NR["futex_waitv"] + 1) == ERRNO(38)


# -- size ----------------------------------------------------------------------------------------


def test_long_jumps_and_big_blocks() -> None:
    """Blocks longer than 255 instructions and dispatch trees spanning thousands of them."""
    many: list[dict[str, Any]] = [
        {
            "names": [name],
            "action": "SCMP_ACT_ERRNO",
            "errnoRet": (i % 200) + 1,
            "args": [arg(0, "GT", 10), arg(1, "NE", 0x1_0000_0000), arg(2, "MASKED_EQ", 3, 1)],
        }
        for i, name in enumerate(n for n in sorted(NR, key=NR.__getitem__)[:121] if n != "ioctl")
    ]
    huge_block = [
        {"names": ["ioctl"], "action": "SCMP_ACT_ALLOW", "args": [arg(1, "EQ", v)]}
        for v in range(100)
    ]
    spec = profile(many + huge_block, default="SCMP_ACT_ERRNO", defaultErrnoRet=99)
    prog = compiled(spec)
    assert 1000 < len(prog) <= BPF_MAXINSNS
    assert any(i.code == 0x05 and i.k > 255 for i in prog.instructions)  # long `ja`s
    for i, rule in enumerate(many):
        nr = NR[rule["names"][0]]
        assert verdict(prog, nr, args=(11, 0, 1)) == ERRNO((i % 200) + 1)
        assert verdict(prog, nr, args=(10, 0, 1)) == ERRNO(99)
        assert verdict(prog, nr, args=(11, 0x1_0000_0000, 1)) == ERRNO(99)
    for v in (0, 50, 99):
        assert verdict(prog, NR["ioctl"], args=(1, v)) == ALLOW
    assert verdict(prog, NR["ioctl"], args=(1, 100)) == ERRNO(99)


def test_too_big_a_filter_is_refused() -> None:
    rules = [
        {"names": ["ioctl"], "action": "SCMP_ACT_ALLOW", "args": [arg(1, "EQ", v), arg(0, "EQ", v)]}
        for v in range(600)
    ]
    with pytest.raises(InvalidSpec, match="instructions"):
        compiled(profile(rules, default="SCMP_ACT_ERRNO"))


def test_program_is_deterministic_and_sockfilter_shaped() -> None:
    spec = profile([{"names": ["mkdir"], "action": "SCMP_ACT_ERRNO"}])
    a, b = compiled(spec), compiled(spec)
    assert a == b
    assert all(isinstance(i, SockFilter) and len(i) == 4 for i in a.instructions)


# -- the syscall table ---------------------------------------------------------------------------


def test_table_spot_checks() -> None:
    assert (NR["read"], NR["mkdir"], NR["seccomp"], NR["clone3"]) == (0, 83, 317, 435)
    assert (NR32["mkdir"], NR32["socketcall"], NRX32["read"]) == (39, 102, X32_BIT)
    a64 = syscall_table.AARCH64
    assert (a64["openat"], a64["fcntl"], a64["newfstatat"], a64["seccomp"]) == (56, 25, 79, 277)
    assert "renameat" in a64 and "clone3" in a64 and "arch_specific_syscall" not in a64
    assert NR["fchmodat2"] == a64["fchmodat2"] == 452  # from gen_table.NEWER
    assert "map_shadow_stack" not in NRX32
    assert (syscall_table.AUDIT_ARCH_X86_64, syscall_table.AUDIT_ARCH_AARCH64) == (
        0xC000003E,
        0xC00000B7,
    )


@pytest.mark.skipif(
    not os.path.exists("/usr/include/x86_64-linux-gnu/asm/unistd_64.h"),
    reason="needs linux-libc-dev headers",
)
def test_committed_table_matches_the_headers() -> None:
    audit, tables = gen_table.build_tables()
    for name, value in audit.items():
        assert getattr(syscall_table, name) == value
    for arch, table in tables.items():
        assert getattr(syscall_table, arch) == table, f"{arch}: run python -m {gen_table.__name__}"


def test_generic_header_preprocessor() -> None:
    text = "\n".join(
        [
            "#define __NR_a 1",
            "#ifdef __ARCH_WANT_X",
            "#define __NR_b 2",
            "#else",
            "#define __NR_c 3",
            "#endif",
            "#define __NR3264_d 4",
            "#if __BITS_PER_LONG == 64 && !defined(__SYSCALL_COMPAT)",
            "#define __NR_d __NR3264_d",
            "#else",
            "#define __NR_d64 __NR3264_d",
            "#endif",
            "#if defined(__ARCH_WANT_Y) || __BITS_PER_LONG != 32",
            "#define __NR_e 5",
            "#endif",
            "#undef __NR_syscalls",
            "#define __NR_syscalls 6",
        ]
    )
    assert gen_table.parse_generic(text, {"__BITS_PER_LONG": 64, "__ARCH_WANT_X": 1}) == {
        "a": 1,
        "b": 2,
        "d": 4,
        "e": 5,
    }
    assert gen_table.parse_generic(text, {"__BITS_PER_LONG": 32}) == {"a": 1, "c": 3, "d64": 4}


# -- libseccomp as the oracle ----------------------------------------------------------------------


class _Cmp(ctypes.Structure):
    _fields_ = [
        ("arg", ctypes.c_uint),
        ("op", ctypes.c_int),
        ("datum_a", ctypes.c_uint64),
        ("datum_b", ctypes.c_uint64),
    ]


_SCMP_OPS = {"NE": 1, "LT": 2, "LE": 3, "EQ": 4, "GE": 5, "GT": 6, "MASKED_EQ": 7}
_SCMP_ARCH = {
    "SCMP_ARCH_X86_64": X86_64,
    "SCMP_ARCH_X86": I386,
    "SCMP_ARCH_X32": 0x4000003E,  # libseccomp's own token for x32
    "SCMP_ARCH_AARCH64": AARCH64,
}


def _libseccomp() -> Any:
    try:
        lib = ctypes.CDLL("libseccomp.so.2", use_errno=True)
    except OSError:
        return None
    lib.seccomp_init.restype = ctypes.c_void_p
    lib.seccomp_init.argtypes = [ctypes.c_uint32]
    lib.seccomp_release.argtypes = [ctypes.c_void_p]
    lib.seccomp_arch_add.argtypes = [ctypes.c_void_p, ctypes.c_uint32]
    lib.seccomp_arch_remove.argtypes = [ctypes.c_void_p, ctypes.c_uint32]
    lib.seccomp_attr_set.argtypes = [ctypes.c_void_p, ctypes.c_int, ctypes.c_uint32]
    lib.seccomp_syscall_resolve_name.argtypes = [ctypes.c_char_p]
    lib.seccomp_rule_add_array.argtypes = [
        ctypes.c_void_p,
        ctypes.c_uint32,
        ctypes.c_int,
        ctypes.c_uint,
        ctypes.POINTER(_Cmp),
    ]
    lib.seccomp_export_bpf.argtypes = [ctypes.c_void_p, ctypes.c_int]
    return lib


LIBSECCOMP = _libseccomp()
needs_libseccomp = pytest.mark.skipif(LIBSECCOMP is None, reason="libseccomp.so.2 not installed")


def libseccomp_program(spec: Mapping[str, Any], native: str) -> list[tuple[int, int, int, int]]:
    """What runc 1.1 builds with libseccomp for `spec` (without its -ENOSYS stub)."""
    from cri.oci.seccomp.bpf import parse_profile

    lib = LIBSECCOMP
    parsed = parse_profile(spec)
    ctx = lib.seccomp_init(parsed.default_action)
    assert ctx
    try:
        assert lib.seccomp_attr_set(ctx, 3, 0) == 0  # SCMP_FLTATR_CTL_NNP: runc sets it itself
        if native != "SCMP_ARCH_X86_64":  # a foreign "native" ABI, to test its tables here
            assert lib.seccomp_arch_add(ctx, _SCMP_ARCH[native]) == 0
            assert lib.seccomp_arch_remove(ctx, X86_64) == 0
        for name in parsed.architectures:
            if name != native:
                assert lib.seccomp_arch_add(ctx, _SCMP_ARCH[name]) == 0
        for rule in parsed.rules:
            # rules are numbered for the library's native ABI; it translates them by name
            nr = lib.seccomp_syscall_resolve_name(rule.name.encode())
            if nr < 0:
                continue
            conds = (_Cmp * max(1, len(rule.conditions)))(
                *[
                    _Cmp(c.index, _SCMP_OPS[c.op.removeprefix("SCMP_CMP_")], c.value, c.value_two)
                    for c in rule.conditions
                ]
            )
            rc = lib.seccomp_rule_add_array(ctx, rule.action, nr, len(rule.conditions), conds)
            assert rc == 0, (rule, rc)
        # a memfd, not a pipe: a big program would fill a pipe and block the export
        fd = os.memfd_create("bpf")
        try:
            assert lib.seccomp_export_bpf(ctx, fd) == 0
            data = os.pread(fd, os.fstat(fd).st_size, 0)
        finally:
            os.close(fd)
    finally:
        lib.seccomp_release(ctx)
    return [struct.unpack_from("=HBBI", data, i) for i in range(0, len(data), 8)]


#: x86 multiplexes these through socketcall/ipc in libseccomp (pseudo syscalls); not modelled
_MULTIPLEXED = frozenset(
    {
        *("socket", "bind", "connect", "listen", "accept4", "getsockopt", "setsockopt"),
        *("getsockname", "getpeername", "sendto", "sendmsg", "recvfrom", "recvmsg"),
        *("shutdown", "socketpair", "recvmmsg", "sendmmsg"),
        *("semget", "semctl", "shmget", "shmctl", "shmat", "shmdt"),
        *("msgget", "msgsnd", "msgrcv", "msgctl"),
    }
)


def _random_profile(rng: random.Random, native: str) -> tuple[dict[str, Any], list[int]]:
    """A profile without overlapping rules of different actions on one syscall (where
    libseccomp's own order would decide), and the datums it uses, for edge inputs."""
    if native == "SCMP_ARCH_AARCH64":
        # libseccomp takes rules in its build's (x86_64) numbering and translates them by name
        pool = sorted(set(syscall_table.AARCH64) & set(syscall_table.X86_64))
    else:
        pool = sorted(set(syscall_table.X86_64) & set(NR32) & set(NRX32) - _MULTIPLEXED)
    pool = [n for n in pool if LIBSECCOMP.seccomp_syscall_resolve_name(n.encode()) >= 0]
    actions = [
        "SCMP_ACT_ALLOW",
        "SCMP_ACT_ERRNO",
        "SCMP_ACT_KILL_PROCESS",
        "SCMP_ACT_TRAP",
        "SCMP_ACT_LOG",
        "SCMP_ACT_TRACE",
        "SCMP_ACT_KILL",
    ]
    datums: list[int] = []

    def value() -> int:
        v = rng.choice(
            [
                rng.randrange(16),
                rng.randrange(1 << 32),
                rng.randrange(1 << 64),
                (rng.randrange(4) << 32) | rng.randrange(8),
                0xFFFFFFFF,
                1 << 32,
            ]
        )
        datums.append(v)
        return v

    if native == "SCMP_ARCH_AARCH64":
        arches = ["SCMP_ARCH_AARCH64"]
    else:
        arches = ["SCMP_ARCH_X86_64"]
        arches += rng.sample(["SCMP_ARCH_X86", "SCMP_ARCH_X32"], rng.randrange(3))
    # NOTE: libseccomp 2.5.4 miscompiles several conditional rules on one syscall (its tree
    # sometimes tests a condition against the argument word loaded for another one), so each
    # syscall gets one conditional rule here; several rules are covered by the tests above.
    rules = []
    for name in rng.sample(pool, rng.randrange(1, 40)):
        action = rng.choice(actions)
        errno: dict[str, int] = (
            {"errnoRet": rng.randrange(1, 200)} if action.endswith(("ERRNO", "TRACE")) else {}
        )
        if rng.random() < 0.4:
            rules.append({"names": [name], "action": action, **errno})
            continue
        conds = []
        for index in rng.sample(range(6), rng.randrange(1, 4)):
            op = rng.choice(list(_SCMP_OPS))
            conds.append(arg(index, op, value(), value() if op == "MASKED_EQ" else 0))
        rules.append({"names": [name], "action": action, "args": conds, **errno})
    default = rng.choice(["SCMP_ACT_ALLOW", "SCMP_ACT_ERRNO", "SCMP_ACT_KILL", "SCMP_ACT_LOG"])
    return profile(rules, default=default, arches=arches), datums


def _inputs(
    rng: random.Random, spec: Mapping[str, Any], datums: list[int], native: str
) -> Iterator[bytes]:
    names = [n for rule in spec["syscalls"] for n in rule["names"]]
    audits = [X86_64, I386, AARCH64, 0x40000028, rng.randrange(1 << 32)]
    tables = {X86_64: [syscall_table.X86_64, NRX32], I386: [NR32], AARCH64: [syscall_table.AARCH64]}
    interesting = {0, 1, 0xFFFFFFFF, 1 << 32, (1 << 64) - 1}
    for d in datums:
        interesting |= {d, d ^ (1 << 32), d & 0xFFFFFFFF, d >> 32 << 32}
        interesting |= {(d + 1) % (1 << 64), (d - 1) % (1 << 64)}
    values = sorted(interesting)
    for _ in range(300):
        audit = rng.choice(audits)
        tabs = tables.get(audit, [syscall_table.X86_64])
        table = rng.choice(tabs)
        name = rng.choice(names)
        nr = table.get(name, rng.randrange(600))
        nr = rng.choice([nr, nr, nr, nr + 1, rng.randrange(600), nr | X32_BIT, 0xFFFFFFFF])
        args = [
            rng.choice(values) if rng.random() < 0.8 else rng.randrange(1 << 64) for _ in range(6)
        ]
        yield seccomp_data(nr, audit, args, ip=rng.randrange(1 << 64))


@needs_libseccomp
@pytest.mark.parametrize("native", ["SCMP_ARCH_X86_64", "SCMP_ARCH_AARCH64"])
def test_same_verdicts_as_libseccomp(native: str) -> None:
    rng = random.Random(f"seccomp-{native}")
    machine = "aarch64" if native == "SCMP_ARCH_AARCH64" else "x86_64"
    checked = 0
    for _ in range(120):
        spec, datums = _random_profile(rng, native)
        ours = compile_raw(spec, machine=machine, enosys_stub=False)
        theirs = libseccomp_program(spec, native)
        for data in _inputs(rng, spec, datums, native):
            expected = run_bpf(theirs, data)
            got = run_bpf(ours.instructions, data)
            if got != expected:
                nr, audit = struct.unpack_from("=II", data)
                args = struct.unpack_from("=6Q", data, 16)
                pytest.fail(
                    f"verdict {got:#x} != libseccomp's {expected:#x} for nr={nr:#x} "
                    f"arch={audit:#x} args={[hex(a) for a in args]}\nprofile={spec}"
                )
            checked += 1
    assert checked == 120 * 300
