"""The daemon's entry point: `python -m cri`, and the `cri` command."""

import sys

# NOTE: the daemon speaks no TLS (gRPC is on a unix socket, the streaming server is plain HTTP
# that kubelet proxies) and hashes nothing big: registries are the pull helper's, a process of
# its own (cri/image/puller.py). But grpcio imports asyncio, which imports ssl whenever it can,
# and hashlib loads OpenSSL for its digests: 5 MiB of libcrypto and libssl resident in the
# daemon for nothing. Marked absent here, before anything imports them, neither loads; hashlib
# then uses Python's own sha256 and sha1, ample for manifests, chain ids and WebSocket keys.
sys.modules["ssl"] = None  # type: ignore[assignment]
sys.modules["_hashlib"] = None  # type: ignore[assignment]

from cri.daemon import main  # noqa: E402  (after the two lines above, by design)


def run() -> int:
    return main()


if __name__ == "__main__":
    sys.exit(run())
