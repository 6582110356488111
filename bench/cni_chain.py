"""The CNI chain alone: ADD then DEL of a conflist for fresh pod namespaces, no runtime involved.

    nsenter --net=/run/netns/NODE -- python -m bench.cni_chain CONFLIST --bin-dir DIR [--runs N]

Run inside the stand-in node by bench.pod_cycle, which uses the medians as part of the cycle's
shared floor: work any runtime must wait for with this network configuration. It prints one JSON
object, {"add": [ms...], "del": [ms...]}, after one unmeasured ADD/DEL (the first ADD also makes
the bridge). The plugins are run through cri.network.cni, as the daemon runs them.
"""

from __future__ import annotations

import argparse
import json
import secrets
import sys
import tempfile
import time
from pathlib import Path

from cri.network import cni
from cri.network.netns import create_netns, remove_netns


def one_cycle(conflist: cni.NetworkConfigList, bin_dir: Path, netns_dir: Path
              ) -> tuple[float, float]:
    pod = secrets.token_hex(8)
    path = netns_dir / f"floor-{pod}"
    create_netns(path)
    try:
        rt = cni.RuntimeConf(container_id=pod, netns=str(path), args=(("IgnoreUnknown", "1"),),
                             capabilities={})
        started = time.perf_counter()
        result = cni.add(conflist, rt, (bin_dir,), 30.0)
        added = time.perf_counter()
        cni.delete(conflist, rt, result, (bin_dir,), 30.0)
        deleted = time.perf_counter()
    finally:
        remove_netns(path)
    return (added - started) * 1000, (deleted - added) * 1000


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.cni_chain", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("conflist", type=Path)
    parser.add_argument("--bin-dir", type=Path, required=True, help="where the plugins are")
    parser.add_argument("--runs", type=int, default=10)
    args = parser.parse_args(argv)
    conflist = cni.config.parse(args.conflist.read_text(), str(args.conflist))
    adds: list[float] = []
    dels: list[float] = []
    with tempfile.TemporaryDirectory(prefix="cni-floor-") as netns_dir:
        one_cycle(conflist, args.bin_dir, Path(netns_dir))
        for _ in range(args.runs):
            add_ms, del_ms = one_cycle(conflist, args.bin_dir, Path(netns_dir))
            adds.append(add_ms)
            dels.append(del_ms)
    json.dump({"add": adds, "del": dels}, sys.stdout)
    print()
    return 0


if __name__ == "__main__":
    sys.exit(main())
