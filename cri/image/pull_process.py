"""The daemon's side of a pull: run the pull helper (`cri/image/puller.py`) and answer it.

The helper fetches and unpacks; the daemon keeps what must have one owner: the pull lock per
digest (so a second pull of the same image waits, then finds it all present), the leases that
protect the pull from image collection, and the image record.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable, Mapping, Sequence
from contextlib import ExitStack
from typing import IO, Any

from cri.errors import Internal, error_from_wire, error_to_wire
from cri.image.store import ImageRecord

Lock = Callable[[str], Any]  # digest -> a context manager holding that digest's pull lock


def run_puller(
    request: Mapping[str, Any],
    *,
    digest_lock: Lock,
    lease: Callable[[Sequence[str]], None],
    record: Callable[[ImageRecord, Sequence[str]], None],
) -> str:
    """Pull what `request` names (see puller.py) in a helper process; return the image id."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "cri.image.puller"],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, bufsize=1,
    )
    assert proc.stdin is not None and proc.stdout is not None
    try:
        with ExitStack() as held:
            proc.stdin.write(json.dumps(request) + "\n")
            proc.stdin.flush()
            return _converse(proc.stdout, proc.stdin, held, digest_lock, lease, record)
    finally:
        proc.stdin.close()
        proc.stdout.close()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def _converse(
    incoming: IO[str], outgoing: IO[str], held: ExitStack, digest_lock: Lock,
    lease: Callable[[Sequence[str]], None],
    record: Callable[[ImageRecord, Sequence[str]], None],
) -> str:
    for line in incoming:
        message = json.loads(line)
        if "done" in message:
            return str(message["done"])
        if "error" in message:
            raise error_from_wire(message["error"])
        try:
            if "resolved" in message:
                held.enter_context(digest_lock(message["resolved"]))
            elif "lease" in message:
                lease(message["lease"])
            elif "record" in message:
                fields = dict(message["record"])
                for key in ("chain_ids", "blobs", "names"):
                    fields[key] = tuple(fields.get(key, ()))
                record(ImageRecord(**fields), message["names"])
            else:
                raise Internal(f"the pull helper asked something unknown: {line.strip()!r}")
        except Exception as exc:
            outgoing.write(json.dumps({"error": error_to_wire(exc)}) + "\n")
            outgoing.flush()
            raise
        outgoing.write('{"ok": true}\n')
        outgoing.flush()
    raise Internal("the pull helper ended without an answer (see the daemon's log)")
