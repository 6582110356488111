"""The pull helper: one process per PullImage (or image import), `python -m cri.image.puller`.

Why a process: pulling needs HTTP, TLS and fast hashing (requests, urllib3, OpenSSL), about
14 MiB that would stay resident in the daemon after its first pull, for the rest of its life.
Here they live as long as one pull. The helper also keeps whatever a registry sends (a huge
manifest, a decompression bomb, a stalled connection) away from the daemon's threads.

What it may touch: the content store and the layer store, which are files and safe for
concurrent writers (everything is written to a temporary name and renamed into place). What it
may not: the leases and the image records. Those belong to the daemon, which it asks over a pipe
(`Keeper`), so a collection in the daemon never removes what a pull has leased.

The conversation, one JSON object a line (daemon side: `cri/image/pull_process.py`):

    daemon -> helper   {"ref": ..., "pinned": bool, "images_root": ..., "mirrors": {...},
                        "credentials": {...}}
                   or  {"ref": ..., "pinned": bool, "images_root": ...,
                        "import": {"layers": [PATH or {"name", "source", "mode"}, ...],
                                   "config": {...}}}           (no "resolved" then)
    helper -> daemon   {"resolved": DIGEST}                 waits for {"ok": true}: the daemon
                                                            then holds that digest's pull lock
                       {"lease": [KEY, ...]}                waits for {"ok": true}
                       {"record": {...}, "names": [...]}    waits for {"ok": true}
                       {"done": IMAGE_ID}  or  {"error": {"code": NAME, "message": ...}}

The daemon may answer any request with {"error": ...} instead; the helper then stops there.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import sys
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import asdict
from pathlib import Path
from typing import IO, Any

from cri.errors import CriError, Internal, error_to_wire
from cri.image.content import ContentStore
from cri.image.importer import import_layers, write_file_layer
from cri.image.layers import LayerStore
from cri.image.pull import pull_resolved
from cri.image.reference import parse_reference
from cri.image.registry import Credentials, RegistryClient
from cri.image.service import FileLayer
from cri.image.store import ImageRecord

log = logging.getLogger(__name__)


class DaemonLink:
    """The helper's end of the pipe: requests to the daemon, each waiting for its answer."""

    def __init__(self, incoming: IO[str], outgoing: IO[str]) -> None:
        self._in = incoming
        self._out = outgoing

    def send(self, message: Mapping[str, Any]) -> None:
        self._out.write(json.dumps(message) + "\n")
        self._out.flush()

    def ask(self, message: Mapping[str, Any]) -> None:
        self.send(message)
        line = self._in.readline()
        if not line:
            raise Internal("the daemon went away during the pull")
        answer = json.loads(line)
        if "error" in answer:
            raise Internal(f"the daemon refused: {answer['error'].get('message', answer)}")

    def resolved(self, digest: str) -> None:
        self.ask({"resolved": digest})

    # --- Keeper ----------------------------------------------------------------------------

    def lease(self, keys: Sequence[str]) -> None:
        self.ask({"lease": list(keys)})

    def record(self, record: ImageRecord, names: Sequence[str]) -> None:
        self.ask({"record": asdict(record), "names": list(names)})


def serve(request: Mapping[str, Any], link: DaemonLink) -> str:
    reference = parse_reference(request["ref"])
    root = Path(request["images_root"])
    content, layers = ContentStore(root / "content"), LayerStore(root / "layers")
    pinned = bool(request.get("pinned"))
    if "import" in request:
        what = request["import"]
        with tempfile.TemporaryDirectory(dir=root) as tmp:
            tars = [Path(layer) if isinstance(layer, str)
                    else write_file_layer(FileLayer(layer["name"], Path(layer["source"]),
                                                    int(layer["mode"])), Path(tmp) / f"{i}.tar")
                    for i, layer in enumerate(what["layers"])]
            return import_layers(content, layers, link, reference, tars, what["config"],
                                 pinned=pinned)
    client = RegistryClient({k: tuple(v) for k, v in request.get("mirrors", {}).items()})
    credentials = Credentials(**request.get("credentials", {}))
    with client.session(reference, credentials) as session:
        resolved = session.resolve()
        link.resolved(resolved.digest)
        return pull_resolved(content, layers, link, session, resolved, pinned=pinned)


def main() -> int:
    # NOTE: a pull the daemon no longer waits for is of no use: die with it. PDEATHSIG follows
    # the thread that started us, which waits for us until we end.
    from cri.oci.syscalls import PR_SET_PDEATHSIG, RealSyscalls

    RealSyscalls().prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
    logging.basicConfig(
        stream=sys.stderr,
        level=os.environ.get("CRI_PULL_LOG_LEVEL", "INFO").upper(),
        format=f"%(asctime)s %(levelname)s puller[{os.getpid()}] %(name)s: %(message)s",
    )
    # The pipe to the daemon is a copy of stdout; stdout itself becomes stderr, so that nothing
    # a library prints can break the conversation.
    link = DaemonLink(sys.stdin, os.fdopen(os.dup(1), "w"))
    os.dup2(2, 1)
    try:
        request = json.loads(sys.stdin.readline())
        image_id = serve(request, link)
    except Exception as exc:
        if not isinstance(exc, CriError):
            log.exception("pull failed")
        link.send({"error": error_to_wire(exc)})
        return 1
    link.send({"done": image_id})
    return 0


if __name__ == "__main__":
    sys.exit(main())
