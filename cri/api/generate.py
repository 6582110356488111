"""Regenerate the committed CRI gRPC stubs from api/runtime/*/api.proto.

    python -m cri.api.generate            # regenerate in place
    python -m cri.api.generate --check    # regenerate into a temp dir; exit 1 if the stubs differ

The protos live in ``api/runtime/<version>/api.proto`` and are mapped to the virtual
path ``cri/api/runtime/<version>/api.proto`` (``-Icri/api=api``), so the stubs import as
``cri.api.runtime.<version>.api_pb2`` while the proto packages (and so the gRPC method
names, e.g. ``/runtime.v1.RuntimeService/Version``) stay ``runtime.<version>``.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
VERSIONS = ("v1", "v1alpha2")
PROTOS = tuple(f"cri/api/runtime/{v}/api.proto" for v in VERSIONS)
GENERATED = tuple(
    f"cri/api/runtime/{v}/{name}"
    for v in VERSIONS
    for name in ("api_pb2.py", "api_pb2.pyi", "api_pb2_grpc.py")
)


def protoc_command(out_dir: str = ".") -> list[str]:
    """The protoc invocation; run it with the repository root as working directory."""
    return [
        sys.executable,
        "-m",
        "grpc_tools.protoc",
        "-Icri/api=api",
        f"--python_out={out_dir}",
        f"--pyi_out={out_dir}",
        f"--grpc_python_out={out_dir}",
        *PROTOS,
    ]


def generate(out_dir: Path | str = REPO_ROOT) -> None:
    """Generate the stubs under ``out_dir`` (the repository root by default)."""
    subprocess.run(protoc_command(str(out_dir)), cwd=REPO_ROOT, check=True)


def diff_against_committed(root: Path = REPO_ROOT) -> list[str]:
    """Regenerate into a temp dir; return the generated paths whose bytes differ from ``root``."""
    with tempfile.TemporaryDirectory(prefix="cri-api-gen-") as tmp:
        generate(tmp)
        differing = []
        for rel in GENERATED:
            fresh = Path(tmp, rel)
            committed = root / rel
            if not committed.is_file() or committed.read_bytes() != fresh.read_bytes():
                differing.append(rel)
        return differing


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m cri.api.generate",
                                     description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true",
                        help="only check that the committed stubs are up to date")
    args = parser.parse_args(argv)
    if args.check:
        differing = diff_against_committed()
        for rel in differing:
            print(f"out of date: {rel}", file=sys.stderr)
        if differing:
            print("run: python -m cri.api.generate", file=sys.stderr)
            return 1
        return 0
    generate()
    return 0


if __name__ == "__main__":
    sys.exit(main())
