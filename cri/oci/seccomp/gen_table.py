"""Regenerate `syscall_table.py` from the kernel UAPI headers.

Run `python -m cri.oci.seccomp.gen_table` (`--check` only compares).

Sources (Debian package linux-libc-dev):
- x86_64, i386 and x32: `asm/unistd_64.h`, `unistd_32.h`, `unistd_x32.h`, plain `#define __NR_x N`
  lines (x32 ones read `(__X32_SYSCALL_BIT + N)`).
- aarch64: `asm-generic/unistd.h`, which is conditional: arm64's own `asm/unistd.h` defines a few
  `__ARCH_WANT_*` switches and includes it. The cross headers for arm64 are rarely installed, so
  the switches are written down here (`AARCH64_SWITCHES`, from arm64's uapi `asm/unistd.h` of Linux
  6.x) and the generic header goes through a tiny preprocessor that knows just what that file uses
  (#if/#ifdef/#ifndef/#else/#endif/#define/#undef with `defined`, `||`, `&&`, `!`, `==`, `!=`).
  The unit tests compare the result with libseccomp's own table when libseccomp is installed.
- `NEWER`: syscalls added after the installed headers (Linux 6.1 on Debian 12). Since Linux 5.1
  every architecture numbers new syscalls alike (x32 adds its bit), so one list serves all four.

The output is data: commit it. Regenerate after a linux-libc-dev upgrade and review the diff.
"""

from __future__ import annotations

import argparse
import ast
import logging
import operator
import re
import subprocess
import sys
from collections.abc import Iterable, Mapping
from pathlib import Path

log = logging.getLogger(__name__)

INCLUDE = Path("/usr/include")
X86_DIR = INCLUDE / "x86_64-linux-gnu" / "asm"
GENERIC = INCLUDE / "asm-generic" / "unistd.h"
ELF_EM = INCLUDE / "linux" / "elf-em.h"
OUTPUT = Path(__file__).with_name("syscall_table.py")

X32_SYSCALL_BIT = 0x40000000
AUDIT_ARCH_64BIT = 0x80000000
AUDIT_ARCH_LE = 0x40000000

#: what arch/arm64/include/uapi/asm/unistd.h defines before including asm-generic/unistd.h
AARCH64_SWITCHES: Mapping[str, int] = {
    "__BITS_PER_LONG": 64,
    "__ARCH_WANT_RENAMEAT": 1,
    "__ARCH_WANT_NEW_STAT": 1,
    "__ARCH_WANT_SET_GET_RLIMIT": 1,
    "__ARCH_WANT_TIME32_SYSCALLS": 1,
    "__ARCH_WANT_SYS_CLONE3": 1,
    "__ARCH_WANT_MEMFD_SECRET": 1,
}

#: (first kernel, number, name) of syscalls newer than Debian 12's headers, common to all arches
#: except those in NOT_X32 (x86's "64" ABI entries, which x32 lacks).
NEWER: tuple[tuple[str, int, str], ...] = (
    ("6.5", 451, "cachestat"),
    ("6.6", 452, "fchmodat2"),
    ("6.6", 453, "map_shadow_stack"),
    ("6.7", 454, "futex_wake"),
    ("6.7", 455, "futex_wait"),
    ("6.7", 456, "futex_requeue"),
    ("6.8", 457, "statmount"),
    ("6.8", 458, "listmount"),
    ("6.8", 459, "lsm_get_self_attr"),
    ("6.8", 460, "lsm_set_self_attr"),
    ("6.8", 461, "lsm_list_modules"),
    ("6.10", 462, "mseal"),
    ("6.13", 463, "setxattrat"),
    ("6.13", 464, "getxattrat"),
    ("6.13", 465, "listxattrat"),
    ("6.13", 466, "removexattrat"),
    ("6.15", 467, "open_tree_attr"),
    ("6.17", 468, "file_getattr"),
    ("6.17", 469, "file_setattr"),
)

NOT_X32 = frozenset({"map_shadow_stack"})

#: markers in asm-generic/unistd.h that are not syscalls
NOT_SYSCALLS = frozenset({"syscalls", "arch_specific_syscall"})

_DEFINE = re.compile(r"^#define\s+__NR_(\w+)\s+(.+?)\s*$")


def _eval_int(expr: str, names: Mapping[str, int]) -> int:
    """An integer constant expression of + and names, e.g. `(__X32_SYSCALL_BIT + 512)`."""
    tree = ast.parse(expr.strip(), mode="eval")

    def ev(node: ast.AST) -> int:
        if isinstance(node, ast.Expression):
            return ev(node.body)
        if isinstance(node, ast.Constant) and isinstance(node.value, int):
            return node.value
        if isinstance(node, ast.Name) and node.id in names:
            return names[node.id]
        if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Add):
            return ev(node.left) + ev(node.right)
        raise ValueError(f"unsupported expression {expr!r}")

    return ev(tree)


def parse_flat(text: str, names: Mapping[str, int] | None = None) -> dict[str, int]:
    """`#define __NR_name <int expr>` lines of the x86 headers."""
    table: dict[str, int] = {}
    for line in text.splitlines():
        m = _DEFINE.match(line)
        if m:
            table[m.group(1)] = _eval_int(m.group(2), names or {})
    return table


def _condition(expr: str, defines: Mapping[str, str]) -> bool:
    """Evaluate a preprocessor condition of the limited forms asm-generic/unistd.h uses."""
    expr = re.sub(r"/\*.*?\*/", "", expr)
    expr = re.sub(
        r"defined\s*\(\s*(\w+)\s*\)|defined\s+(\w+)",
        lambda m: "1" if (m.group(1) or m.group(2)) in defines else "0",
        expr,
    )
    expr = expr.replace("||", " or ").replace("&&", " and ")
    expr = re.sub(r"!(?!=)", " not ", expr)
    expr = re.sub(
        r"\b[A-Za-z_]\w*\b",
        lambda m: (
            m.group(0) if m.group(0) in ("or", "and", "not") else defines.get(m.group(0), "0")
        ),
        expr,
    )
    return bool(_safe_eval(expr))


_CMP = {ast.Eq: operator.eq, ast.NotEq: operator.ne}


def _safe_eval(expr: str) -> int:
    def ev(node: ast.AST) -> int:
        if isinstance(node, ast.Expression):
            return ev(node.body)
        if isinstance(node, ast.Constant) and isinstance(node.value, int):
            return node.value
        if isinstance(node, ast.BoolOp):
            values = [ev(v) for v in node.values]
            return int(all(values) if isinstance(node.op, ast.And) else any(values))
        if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.Not):
            return int(not ev(node.operand))
        if isinstance(node, ast.Compare) and len(node.ops) == 1 and type(node.ops[0]) in _CMP:
            return int(_CMP[type(node.ops[0])](ev(node.left), ev(node.comparators[0])))
        raise ValueError(f"unsupported preprocessor condition {expr!r}")

    return ev(ast.parse(expr.strip(), mode="eval"))


def preprocess_defines(text: str, switches: Mapping[str, int]) -> dict[str, str]:
    """Run the conditionals of `text` and return the macros it defines (name -> body)."""
    defines: dict[str, str] = {k: str(v) for k, v in switches.items()}
    text = text.replace("\\\n", " ")
    stack: list[tuple[bool, bool]] = []  # (this branch active, some branch of this #if taken)
    active = True
    for raw in text.splitlines():
        line = raw.strip()
        if not line.startswith("#"):
            continue
        directive, _, rest = line[1:].strip().partition(" ")
        rest = rest.strip()
        if directive in ("if", "ifdef", "ifndef"):
            if directive == "if":
                cond = _condition(rest, defines) if active else False
            else:
                name = rest.split()[0]
                cond = (name in defines) == (directive == "ifdef")
            stack.append((active, cond))
            active = active and cond
        elif directive == "elif":
            parent, taken = stack[-1]
            cond = parent and not taken and _condition(rest, defines)
            stack[-1] = (parent, taken or cond)
            active = cond
        elif directive == "else":
            parent, taken = stack[-1]
            active = parent and not taken
            stack[-1] = (parent, True)
        elif directive == "endif":
            active = stack.pop()[0]
        elif not active:
            continue
        elif directive == "define":
            name, _, body = rest.partition(" ")
            if "(" not in name:  # function-like macros (__SYSCALL, __SC_COMP...) are not numbers
                defines[name] = re.sub(r"/\*.*?\*/", "", body).strip()
        elif directive == "undef":
            defines.pop(rest.split()[0], None)
    if stack:
        raise ValueError("unbalanced #if/#endif")
    return defines


def parse_generic(text: str, switches: Mapping[str, int]) -> dict[str, int]:
    """Syscall numbers of an asm-generic architecture, aliases (__NR_fcntl -> __NR3264_fcntl)
    resolved and the internal __NR3264_ names dropped."""
    defines = preprocess_defines(text, switches)

    def resolve(body: str, depth: int = 0) -> int:
        body = body.strip().strip("()").strip()
        if re.fullmatch(r"\d+", body):
            return int(body)
        if depth > 8 or body not in defines:
            raise ValueError(f"cannot resolve {body!r}")
        return resolve(defines[body], depth + 1)

    table: dict[str, int] = {}
    for macro, body in defines.items():
        if macro.startswith("__NR_") and macro[len("__NR_") :] not in NOT_SYSCALLS:
            table[macro[len("__NR_") :]] = resolve(body)
    return table


def _elf_machines() -> dict[str, int]:
    machines: dict[str, int] = {}
    for line in ELF_EM.read_text().splitlines():
        m = re.match(r"#define\s+(EM_\w+)\s+(\d+)\b", line)
        if m:
            machines[m.group(1)] = int(m.group(2))
    return machines


def _with_newer(table: dict[str, int], offset: int = 0) -> dict[str, int]:
    # 512 and up are x32's own compat entry points, not part of the shared numbering
    newest = max(nr - offset for nr in table.values() if nr - offset < 512)
    for _, nr, name in NEWER:
        if offset and name in NOT_X32:
            continue
        if name not in table and nr > newest:
            table[name] = nr + offset
    return table


def build_tables() -> tuple[dict[str, int], dict[str, dict[str, int]]]:
    em = _elf_machines()
    audit = {
        "AUDIT_ARCH_X86_64": em["EM_X86_64"] | AUDIT_ARCH_64BIT | AUDIT_ARCH_LE,
        "AUDIT_ARCH_I386": em["EM_386"] | AUDIT_ARCH_LE,
        "AUDIT_ARCH_AARCH64": em["EM_AARCH64"] | AUDIT_ARCH_64BIT | AUDIT_ARCH_LE,
        "AUDIT_ARCH_ARM": em["EM_ARM"] | AUDIT_ARCH_LE,
    }
    tables = {
        "X86_64": _with_newer(parse_flat((X86_DIR / "unistd_64.h").read_text())),
        "X86": _with_newer(parse_flat((X86_DIR / "unistd_32.h").read_text())),
        "X32": _with_newer(
            parse_flat(
                (X86_DIR / "unistd_x32.h").read_text(), {"__X32_SYSCALL_BIT": X32_SYSCALL_BIT}
            ),
            X32_SYSCALL_BIT,
        ),
    }
    if GENERIC.exists():
        tables["AARCH64"] = _with_newer(parse_generic(GENERIC.read_text(), AARCH64_SWITCHES))
    else:
        log.warning("%s is missing: no aarch64 table", GENERIC)
    # x32 numbers 512..547 are x32's own compat entry points; whatever libseccomp's x32 table
    # has, the kernel's header is the authority here.
    return audit, tables


def _headers_version() -> str:
    try:
        out = subprocess.run(
            ["dpkg-query", "-W", "-f=${Version}", "linux-libc-dev"],
            capture_output=True,
            text=True,
            check=False,
        )
        return out.stdout.strip() or "unknown"
    except OSError:
        return "unknown"


def render(audit: Mapping[str, int], tables: Mapping[str, Mapping[str, int]], version: str) -> str:
    out = [
        '"""Syscall numbers by architecture and the AUDIT_ARCH_* values, from kernel headers.',
        "",
        "GENERATED by `python -m cri.oci.seccomp.gen_table` from linux-libc-dev",
        f"{version}, plus the syscalls in gen_table.NEWER; do not edit by hand.",
        '"""',
        "",
        "from __future__ import annotations",
        "",
        f"X32_SYSCALL_BIT = 0x{X32_SYSCALL_BIT:X}",
    ]
    out += [f"{name} = 0x{value:08X}" for name, value in audit.items()]
    for arch, table in tables.items():
        out += ["", f"{arch}: dict[str, int] = {{"]
        out += [
            f'    "{name}": 0x{nr:X},' if nr >= X32_SYSCALL_BIT else f'    "{name}": {nr},'
            for name, nr in sorted(table.items(), key=lambda kv: (kv[1], kv[0]))
        ]
        out.append("}")
    return "\n".join(out) + "\n"


def main(argv: Iterable[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--output", type=Path, default=OUTPUT)
    parser.add_argument("--check", action="store_true", help="fail if the file would change")
    args = parser.parse_args(list(argv) if argv is not None else None)
    audit, tables = build_tables()
    text = render(audit, tables, _headers_version())
    if args.check:
        current = args.output.read_text() if args.output.exists() else ""
        if current != text:
            print(f"{args.output} is out of date; run python -m cri.oci.seccomp.gen_table")
            return 1
        return 0
    args.output.write_text(text)
    print(f"wrote {args.output}: " + ", ".join(f"{a} {len(t)}" for a, t in tables.items()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
