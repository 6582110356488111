"""Compile an OCI `linux.seccomp` object into a classic BPF seccomp filter. Sans-I/O.

Semantics follow runc 1.1 on libseccomp 2.5 (the reference), rule by rule:

- `SCMP_ACT_KILL` is KILL_THREAD; ERRNO and TRACE carry `errnoRet`, EPERM when absent.
- Each name of a rule is a rule of its own. A name this architecture lacks is skipped with a debug
  log (libseccomp ignores it too), so one profile serves several kernels and architectures.
- A rule whose action equals the default action is dropped (runc does so: it changes nothing).
- The conditions of a rule are ANDed, unless two of them test the same argument: then each
  condition is a rule of its own (ORed), runc's historical behaviour.
- When a syscall has an unconditional rule, the first one decides and its conditional rules are
  ignored (libseccomp keeps the shorter, more general rule). Otherwise conditional rules are tried
  in profile order and the first match wins. NOTE: libseccomp orders overlapping conditional rules
  with different actions its own way (by argument, then datum); profiles in the wild do not
  overlap like that, and this order is the one a reader of the profile expects.
- MASKED_EQ is `(arg & value) == (valueTwo & value)`, libseccomp's reading.
- Arguments are 64-bit on 64-bit ABIs (high and low words compared, libseccomp's code shape) and
  only the low 32 bits on i386/x32, as libseccomp does. NE, LT and LE are negated EQ, GE and GT.
- A foreign architecture gets KILL_THREAD (libseccomp's default bad-arch action). On x86_64, a
  number with X32_SYSCALL_BIT set goes to the x32 section when the profile asks for x32 and is
  a foreign architecture otherwise; nr -1 (a tracer skipping the call) is not, like libseccomp.
- runc's -ENOSYS stub: unless the default action allows (ALLOW, LOG, TRACE), a syscall numbered
  above the highest one the profile names gets ENOSYS instead of the default action, so libc's
  fallbacks for syscalls newer than the profile (clone3 -> clone...) work. As in runc, only for
  the architectures listed in `architectures`.

Layout: load arch, one `jeq` per section; each section loads nr, does the x32 and -ENOSYS checks,
then a binary search (runc turns on libseccomp's tree for long profiles too) over intervals of
syscall numbers that share a verdict; each leaf is a `ret` or one syscall's rules ending in `ret`.
Jumps are symbolic until `_assemble`, which widens a conditional jump farther than 255
instructions into a short jump over a `ja` (32-bit offset), so no profile size can overflow an
8-bit jt/jf.
"""

from __future__ import annotations

import struct
from _collections_abc import Mapping  # collections.abc's home: collections itself costs 2 ms

from .. import lazylog
from ..errors import InvalidSpec, Unsupported
from ..records import record
from .arch import Arch, native_name, sections

# NOTE: the init compiles the filter between fork and exec, so every import here is paid by each
# `create` with a seccomp profile: typing and dataclasses (with enum and re) cost 10 ms, hence
# records for the dataclasses and a tuple subclass for the NamedTuple.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Sequence
    from typing import Any

log = lazylog.getLogger(__name__)

# linux/seccomp.h
SECCOMP_RET_KILL_PROCESS = 0x80000000
SECCOMP_RET_KILL_THREAD = 0x00000000
SECCOMP_RET_TRAP = 0x00030000
SECCOMP_RET_ERRNO = 0x00050000
SECCOMP_RET_USER_NOTIF = 0x7FC00000
SECCOMP_RET_TRACE = 0x7FF00000
SECCOMP_RET_LOG = 0x7FFC0000
SECCOMP_RET_ALLOW = 0x7FFF0000
SECCOMP_RET_DATA = 0x0000FFFF

SECCOMP_FILTER_FLAG_TSYNC = 1 << 0
SECCOMP_FILTER_FLAG_LOG = 1 << 1
SECCOMP_FILTER_FLAG_SPEC_ALLOW = 1 << 2

EPERM = 1
ENOSYS = 38

# linux/bpf_common.h, classic BPF opcodes used here
BPF_LD_W_ABS = 0x20
BPF_ALU_AND_K = 0x54
BPF_JMP_JA = 0x05
BPF_JMP_JEQ_K = 0x15
BPF_JMP_JGT_K = 0x25
BPF_JMP_JGE_K = 0x35
BPF_JMP_JSET_K = 0x45
BPF_RET_K = 0x06
BPF_MAXINSNS = 4096

# struct seccomp_data: nr (u32), arch (u32), instruction_pointer (u64), args[6] (u64), host order
OFF_NR = 0
OFF_ARCH = 4
OFF_ARGS = 16

X32_SYSCALL_BIT = 0x40000000

ACTIONS = (
    "SCMP_ACT_KILL",
    "SCMP_ACT_KILL_THREAD",
    "SCMP_ACT_KILL_PROCESS",
    "SCMP_ACT_TRAP",
    "SCMP_ACT_ERRNO",
    "SCMP_ACT_TRACE",
    "SCMP_ACT_ALLOW",
    "SCMP_ACT_LOG",
    "SCMP_ACT_NOTIFY",
)
OPERATORS = (
    "SCMP_CMP_NE",
    "SCMP_CMP_LT",
    "SCMP_CMP_LE",
    "SCMP_CMP_EQ",
    "SCMP_CMP_GE",
    "SCMP_CMP_GT",
    "SCMP_CMP_MASKED_EQ",
)
FLAGS = {
    "SECCOMP_FILTER_FLAG_TSYNC": SECCOMP_FILTER_FLAG_TSYNC,
    "SECCOMP_FILTER_FLAG_LOG": SECCOMP_FILTER_FLAG_LOG,
    "SECCOMP_FILTER_FLAG_SPEC_ALLOW": SECCOMP_FILTER_FLAG_SPEC_ALLOW,
}
#: flags of the spec that need a seccomp agent (listener), which this executor does not run
AGENT_FLAGS = ("SECCOMP_FILTER_FLAG_NEW_LISTENER", "SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV")
ALLOWING = frozenset({SECCOMP_RET_ALLOW, SECCOMP_RET_LOG})


class SockFilter(tuple[int, int, int, int]):
    """One `struct sock_filter`. A tuple (a NamedTuple's shape, without typing) rather than a
    record: it *is* the C struct's field tuple, compares as (code, jt, jf, k) and packs with
    struct directly."""

    __slots__ = ()

    def __new__(cls, code: int, jt: int, jf: int, k: int) -> SockFilter:
        return tuple.__new__(cls, (code, jt, jf, k))

    def __getnewargs__(self) -> tuple[int, int, int, int]:
        return (self[0], self[1], self[2], self[3])

    def __repr__(self) -> str:
        return f"SockFilter(code={self[0]!r}, jt={self[1]!r}, jf={self[2]!r}, k={self[3]!r})"

    @property
    def code(self) -> int:
        return self[0]

    @property
    def jt(self) -> int:
        return self[1]

    @property
    def jf(self) -> int:
        return self[2]

    @property
    def k(self) -> int:
        return self[3]


@record
class Program:
    """A compiled filter and the flags to install it with."""

    instructions: tuple[SockFilter, ...]
    flags: int = 0

    def pack(self) -> bytes:
        """The `struct sock_filter` array in host byte order, as the kernel reads it."""
        return b"".join(struct.pack("=HBBI", *i) for i in self.instructions)

    def __len__(self) -> int:
        return len(self.instructions)


@record
class Condition:
    index: int
    op: str
    value: int
    value_two: int


@record
class Rule:
    name: str
    action: int
    conditions: tuple[Condition, ...]  # ANDed


@record
class Profile:
    """A validated `linux.seccomp`, rules split one per name (and per condition where ORed)."""

    default_action: int
    architectures: tuple[str, ...]
    flags: int
    rules: tuple[Rule, ...]
    #: every syscall name the profile mentions, dropped rules included (for the -ENOSYS stub)
    names: tuple[str, ...]


# -- parsing ---------------------------------------------------------------------------------


def _u(value: Any, what: str, bits: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value < (1 << bits):
        raise InvalidSpec(f"{what} must be an integer in [0, 2^{bits}), got {value!r}")
    return value


def action_value(name: Any, errno_ret: Any, what: str) -> int:
    """The SECCOMP_RET_* value of an OCI action name (runc's mapping)."""
    if name not in ACTIONS:
        raise InvalidSpec(f"{what}: unknown action {name!r} (known: {', '.join(ACTIONS)})")
    if errno_ret is not None and name not in ("SCMP_ACT_ERRNO", "SCMP_ACT_TRACE"):
        raise InvalidSpec(f"{what}: errnoRet is only valid with SCMP_ACT_ERRNO or SCMP_ACT_TRACE")
    data = EPERM if errno_ret is None else _u(errno_ret, f"{what}.errnoRet", 16)
    if name in ("SCMP_ACT_KILL", "SCMP_ACT_KILL_THREAD"):
        return SECCOMP_RET_KILL_THREAD
    if name == "SCMP_ACT_KILL_PROCESS":
        return SECCOMP_RET_KILL_PROCESS
    if name == "SCMP_ACT_TRAP":
        return SECCOMP_RET_TRAP
    if name == "SCMP_ACT_ERRNO":
        return SECCOMP_RET_ERRNO | data
    if name == "SCMP_ACT_TRACE":
        return SECCOMP_RET_TRACE | data
    if name == "SCMP_ACT_ALLOW":
        return SECCOMP_RET_ALLOW
    if name == "SCMP_ACT_LOG":
        return SECCOMP_RET_LOG
    raise Unsupported(f"{what}: SCMP_ACT_NOTIFY needs a seccomp agent, which is not supported")


def _obj(value: Any, what: str) -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        raise InvalidSpec(f"{what} must be an object, got {type(value).__name__}")
    return value


def _list(value: Any, what: str) -> list[Any]:
    if value is None:
        return []
    if not isinstance(value, list | tuple):
        raise InvalidSpec(f"{what} must be an array, got {type(value).__name__}")
    return list(value)


def parse_profile(spec: Mapping[str, Any]) -> Profile:
    """Validate a `linux.seccomp` object; raises InvalidSpec, or Unsupported for agent features."""
    spec = _obj(spec, "linux.seccomp")
    default = action_value(
        spec.get("defaultAction"), spec.get("defaultErrnoRet"), "linux.seccomp.defaultAction"
    )
    arches = _list(spec.get("architectures"), "linux.seccomp.architectures")
    for a in arches:
        if not isinstance(a, str):
            raise InvalidSpec(f"linux.seccomp.architectures must hold strings, got {a!r}")
    flags = 0
    for f in _list(spec.get("flags"), "linux.seccomp.flags"):
        if f in AGENT_FLAGS:
            raise Unsupported(f"linux.seccomp.flags: {f} needs a seccomp agent (not supported)")
        if f not in FLAGS:
            raise InvalidSpec(f"linux.seccomp.flags: unknown flag {f!r}")
        flags |= FLAGS[f]
    if spec.get("listenerPath"):
        log.debug("seccomp: listenerPath ignored: no rule uses SCMP_ACT_NOTIFY")

    rules: list[Rule] = []
    names: list[str] = []
    for i, raw in enumerate(_list(spec.get("syscalls"), "linux.seccomp.syscalls")):
        what = f"linux.seccomp.syscalls[{i}]"
        raw = _obj(raw, what)
        rule_names = _list(raw.get("names"), f"{what}.names")
        if not rule_names:
            raise InvalidSpec(f"{what}.names must not be empty")
        for name in rule_names:
            if not isinstance(name, str) or not name:
                raise InvalidSpec(f"{what}.names must hold syscall names, got {name!r}")
        action = action_value(raw.get("action"), raw.get("errnoRet"), f"{what}.action")
        conditions = []
        for j, arg in enumerate(_list(raw.get("args"), f"{what}.args")):
            arg = _obj(arg, f"{what}.args[{j}]")
            index = arg.get("index")
            if isinstance(index, bool) or not isinstance(index, int) or not 0 <= index < 6:
                raise InvalidSpec(f"{what}.args[{j}].index must be 0..5, got {index!r}")
            op = arg.get("op")
            if op not in OPERATORS:
                raise InvalidSpec(f"{what}.args[{j}].op: unknown operator {op!r}")
            conditions.append(
                Condition(
                    index,
                    op,
                    _u(arg.get("value", 0), f"{what}.args[{j}].value", 64),
                    _u(arg.get("valueTwo", 0), f"{what}.args[{j}].valueTwo", 64),
                )
            )
        names += rule_names
        if action == default:
            continue  # changes nothing (runc skips it too)
        indexes = [c.index for c in conditions]
        if len(set(indexes)) < len(indexes):
            # runc: conditions on the same argument are ORed, one rule each
            groups: list[tuple[Condition, ...]] = [(c,) for c in conditions]
        else:
            groups = [tuple(conditions)]
        rules += [Rule(name, action, group) for name in rule_names for group in groups]
    return Profile(default, tuple(arches), flags, tuple(rules), tuple(names))


# -- assembly --------------------------------------------------------------------------------


@record
class _Label:
    name: str


@record
class _Jump:
    """A conditional jump to labels; None means the next instruction."""

    code: int
    k: int
    jt: str | None
    jf: str | None


@record
class _Ja:
    target: str


_Item = SockFilter | _Label | _Jump | _Ja


def _long_size(j: _Jump) -> int:
    return 3 if j.jt is not None and j.jf is not None else 2


def _assemble(items: Sequence[_Item]) -> tuple[SockFilter, ...]:
    """Resolve labels. A conditional jump whose target is beyond 255 instructions becomes a
    short jump over (or onto) a `ja`; widening moves later code, so repeat until stable."""
    wide: set[int] = set()
    while True:
        positions: list[int] = []
        labels: dict[str, int] = {}
        pos = 0
        for idx, item in enumerate(items):
            positions.append(pos)
            if isinstance(item, _Label):
                if item.name in labels:
                    raise AssertionError(f"label {item.name} defined twice")
                labels[item.name] = pos
            elif isinstance(item, _Jump) and idx in wide:
                pos += _long_size(item)
            else:
                pos += 1
        grew = False
        for idx, item in enumerate(items):
            if isinstance(item, _Jump) and idx not in wide:
                for target in (item.jt, item.jf):
                    if target is not None and labels[target] - positions[idx] - 1 > 255:
                        wide.add(idx)
                        grew = True
                        break
        if not grew:
            break

    out: list[SockFilter] = []

    def offset(target: str | None, at: int) -> int:
        if target is None:
            return 0
        distance = labels[target] - at - 1
        if distance < 0:
            raise AssertionError(f"backward jump to {target}")
        return distance

    for idx, item in enumerate(items):
        at = len(out)
        if isinstance(item, SockFilter):
            out.append(item)
        elif isinstance(item, _Ja):
            out.append(SockFilter(BPF_JMP_JA, 0, 0, offset(item.target, at)))
        elif isinstance(item, _Jump):
            if idx not in wide:
                jt, jf = offset(item.jt, at), offset(item.jf, at)
                out.append(SockFilter(item.code, jt, jf, item.k))
            elif item.jf is None:  # true -> the ja, false -> past it
                out.append(SockFilter(item.code, 0, 1, item.k))
                out.append(SockFilter(BPF_JMP_JA, 0, 0, offset(item.jt, at + 1)))
            elif item.jt is None:  # true -> past the ja, false -> the ja
                out.append(SockFilter(item.code, 1, 0, item.k))
                out.append(SockFilter(BPF_JMP_JA, 0, 0, offset(item.jf, at + 1)))
            else:
                out.append(SockFilter(item.code, 0, 1, item.k))
                out.append(SockFilter(BPF_JMP_JA, 0, 0, offset(item.jt, at + 1)))
                out.append(SockFilter(BPF_JMP_JA, 0, 0, offset(item.jf, at + 2)))
    return tuple(out)


def _ld(offset: int) -> SockFilter:
    return SockFilter(BPF_LD_W_ABS, 0, 0, offset)


def _ret(value: int) -> SockFilter:
    return SockFilter(BPF_RET_K, 0, 0, value)


class _Emitter:
    def __init__(self) -> None:
        self.items: list[_Item] = []
        self._count = 0
        self.used: set[str] = set()

    def label(self, hint: str) -> str:
        self._count += 1
        return f"{hint}.{self._count}"

    def put(self, *items: _Item) -> None:
        for item in items:
            if isinstance(item, _Jump):
                self.used.update(t for t in (item.jt, item.jf) if t is not None)
            elif isinstance(item, _Ja):
                self.used.add(item.target)
            self.items.append(item)

    def condition(self, c: Condition, arg_bits: int, fail: str) -> None:
        """Fall through when `c` holds, jump to `fail` when it does not."""
        lo = OFF_ARGS + 8 * c.index  # little-endian: the low word first
        hi = lo + 4
        v_hi, v_lo = c.value >> 32, c.value & 0xFFFFFFFF
        # MASKED_EQ: libseccomp compares (arg & mask) with (datum & mask), so bits of the datum
        # outside the mask never make the rule unmatchable
        datum = c.value_two & c.value
        d_hi, d_lo = datum >> 32, datum & 0xFFFFFFFF
        J = _Jump
        if arg_bits == 32:
            simple = {
                "SCMP_CMP_EQ": J(BPF_JMP_JEQ_K, v_lo, None, fail),
                "SCMP_CMP_NE": J(BPF_JMP_JEQ_K, v_lo, fail, None),
                "SCMP_CMP_GT": J(BPF_JMP_JGT_K, v_lo, None, fail),
                "SCMP_CMP_GE": J(BPF_JMP_JGE_K, v_lo, None, fail),
                "SCMP_CMP_LT": J(BPF_JMP_JGE_K, v_lo, fail, None),
                "SCMP_CMP_LE": J(BPF_JMP_JGT_K, v_lo, fail, None),
            }
            if c.op == "SCMP_CMP_MASKED_EQ":
                self.put(
                    _ld(lo),
                    SockFilter(BPF_ALU_AND_K, 0, 0, v_lo),
                    J(BPF_JMP_JEQ_K, d_lo, None, fail),
                )
            else:
                self.put(_ld(lo), simple[c.op])
            return
        ok = self.label("ok")
        if c.op == "SCMP_CMP_EQ":
            self.put(
                _ld(hi),
                J(BPF_JMP_JEQ_K, v_hi, None, fail),
                _ld(lo),
                J(BPF_JMP_JEQ_K, v_lo, None, fail),
            )
        elif c.op == "SCMP_CMP_NE":
            self.put(
                _ld(hi),
                J(BPF_JMP_JEQ_K, v_hi, None, ok),
                _ld(lo),
                J(BPF_JMP_JEQ_K, v_lo, fail, None),
            )
        elif c.op in ("SCMP_CMP_GT", "SCMP_CMP_GE"):
            low = BPF_JMP_JGT_K if c.op == "SCMP_CMP_GT" else BPF_JMP_JGE_K
            self.put(
                _ld(hi),
                J(BPF_JMP_JGT_K, v_hi, ok, None),
                J(BPF_JMP_JEQ_K, v_hi, None, fail),
                _ld(lo),
                J(low, v_lo, None, fail),
            )
        elif c.op in ("SCMP_CMP_LT", "SCMP_CMP_LE"):
            # LT is "not GE", LE is "not GT"
            low = BPF_JMP_JGE_K if c.op == "SCMP_CMP_LT" else BPF_JMP_JGT_K
            self.put(
                _ld(hi),
                J(BPF_JMP_JGT_K, v_hi, fail, None),
                J(BPF_JMP_JEQ_K, v_hi, None, ok),
                _ld(lo),
                J(low, v_lo, fail, None),
            )
        else:  # SCMP_CMP_MASKED_EQ: (arg & value) == (valueTwo & value)
            self.put(
                _ld(hi),
                SockFilter(BPF_ALU_AND_K, 0, 0, v_hi),
                J(BPF_JMP_JEQ_K, d_hi, None, fail),
                _ld(lo),
                SockFilter(BPF_ALU_AND_K, 0, 0, v_lo),
                J(BPF_JMP_JEQ_K, d_lo, None, fail),
            )
        self.put(_Label(ok))

    def block(self, rules: Sequence[Rule], arg_bits: int, default: int) -> None:
        """The code for one syscall number; every path ends in `ret`."""
        unconditional = next((r for r in rules if not r.conditions), None)
        if unconditional is not None:
            self.put(_ret(unconditional.action))
            return
        for rule in rules:
            fail = self.label("next_rule")
            for c in rule.conditions:
                self.condition(c, arg_bits, fail)
            self.put(_ret(rule.action), _Label(fail))
        self.put(_ret(default))

    def dispatch(self, intervals: Sequence[_Interval], arg_bits: int, default: int) -> None:
        """Binary search for the interval holding nr (in A); each leaf ends in `ret`."""
        if len(intervals) == 1:
            rules = intervals[0].rules
            if rules:
                self.block(rules, arg_bits, default)
            else:
                self.put(_ret(default))
            return
        mid = len(intervals) // 2
        lower = self.label("below")
        self.put(_Jump(BPF_JMP_JGE_K, intervals[mid].low, None, lower))
        self.dispatch(intervals[mid:], arg_bits, default)
        self.put(_Label(lower))
        self.dispatch(intervals[:mid], arg_bits, default)


@record
class _Interval:
    """Syscall numbers [low, next interval's low) that share one verdict: `rules` for them, or
    none for the default. Runs of syscalls with the same unconditional action are one interval,
    which keeps allowlists (hundreds of mostly consecutive numbers) to a few dozen leaves."""

    low: int
    rules: tuple[Rule, ...]


def _intervals(entries: Sequence[tuple[int, Sequence[Rule]]]) -> list[_Interval]:
    def key(rules: Sequence[Rule]) -> object:
        first = next((r for r in rules if not r.conditions), None)
        # an unconditional rule decides alone (see block()); conditional sets stay apart
        return ("ret", first.action) if first is not None else ("rules", id(rules))

    default_key: object = ("default",)
    out: list[_Interval] = []
    current: object = None
    expected = 0  # the lowest number no interval covers yet
    for nr, rules in entries:
        if nr > expected and current != default_key:
            out.append(_Interval(expected, ()))
            current = default_key
        k = key(rules)
        if k != current:
            out.append(_Interval(nr, tuple(rules)))
            current = k
        expected = nr + 1
    if current != default_key and expected <= 0xFFFFFFFF:
        out.append(_Interval(expected, ()))
    return out


# -- compiling -------------------------------------------------------------------------------

BADARCH = "badarch"
ENOSYS_LABEL = "enosys"


def _entries(profile: Profile, arch: Arch) -> list[tuple[int, list[Rule]]]:
    table = arch.syscalls()
    by_nr: dict[int, list[Rule]] = {}
    for rule in profile.rules:
        nr = table.get(rule.name)
        if nr is None:
            log.debug("seccomp: syscall %r unknown on %s, rule skipped", rule.name, arch.name)
            continue
        by_nr.setdefault(nr, []).append(rule)
    return sorted(by_nr.items())


def _enosys_max(profile: Profile, arch: Arch) -> int | None:
    """runc's -ENOSYS stub bound for this section, or None when runc adds no stub."""
    action = profile.default_action & 0xFFFF0000
    if action in ALLOWING or action == SECCOMP_RET_TRACE:
        return None
    if arch.name not in profile.architectures:
        return None
    table = arch.syscalls()
    known = [table[n] for n in profile.names if n in table]
    if not known:
        log.warning("seccomp: no syscall of the profile exists on %s", arch.name)
        return None
    return max(known)


def compile_profile(
    profile: Profile, *, machine: str | None = None, enosys_stub: bool = True
) -> Program:
    """Generate the filter for `machine` (default: this host) from a parsed profile."""
    archs = sections(profile.architectures, machine)
    em = _Emitter()
    x32 = next((a for a in archs if a.x32), None)
    em.put(_ld(OFF_ARCH))
    for arch in archs:
        if not arch.x32:  # x32 is entered from the x86_64 section (same AUDIT_ARCH)
            em.put(_Jump(BPF_JMP_JEQ_K, arch.audit, f"arch:{arch.name}", None))
    em.put(_ret(SECCOMP_RET_KILL_THREAD))
    default = profile.default_action
    for arch in archs:
        em.put(_Label(f"arch:{arch.name}"), _ld(OFF_NR))
        rules_at = em.label("rules")
        if arch.name == "SCMP_ARCH_X86_64":
            low = em.label("x86_64")
            em.put(
                _Jump(BPF_JMP_JGE_K, X32_SYSCALL_BIT, None, low),
                # nr -1 is "skip this call" from a tracer: not x32, the rules decide
                _Jump(
                    BPF_JMP_JEQ_K,
                    0xFFFFFFFF,
                    rules_at,
                    f"arch:{x32.name}" if x32 is not None else BADARCH,
                ),
                _Label(low),
            )
        elif arch.x32:
            em.put(_Jump(BPF_JMP_JGE_K, X32_SYSCALL_BIT, None, BADARCH))
        top = _enosys_max(profile, arch) if enosys_stub else None
        if top is not None:
            em.put(_Jump(BPF_JMP_JGT_K, top, ENOSYS_LABEL, None))
        em.put(_Label(rules_at))
        em.dispatch(_intervals(_entries(profile, arch)), arch.arg_bits, default)
    if ENOSYS_LABEL in em.used:
        em.put(_Label(ENOSYS_LABEL), _ret(SECCOMP_RET_ERRNO | ENOSYS))
    if BADARCH in em.used:
        em.put(_Label(BADARCH), _ret(SECCOMP_RET_KILL_THREAD))
    program = _assemble(em.items)
    if len(program) > BPF_MAXINSNS:
        raise InvalidSpec(
            f"linux.seccomp: the filter needs {len(program)} instructions, "
            f"more than the kernel's {BPF_MAXINSNS}"
        )
    return Program(program, profile.flags)


def compile_seccomp(
    spec: Mapping[str, Any], *, machine: str | None = None, enosys_stub: bool = True
) -> Program:
    """Validate and compile a `linux.seccomp` object for `machine` (default: this host)."""
    native_name(machine)  # an unsupported host fails before any parsing work
    return compile_profile(parse_profile(spec), machine=machine, enosys_stub=enosys_stub)
