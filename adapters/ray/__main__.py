"""``python -m tod_cleanse.adapters.ray cluster``: hold a local multi-node Ray cluster.

Starts :class:`~tod_cleanse.adapters.ray.session.LocalCluster`, writes its address to
``--address-file`` and keeps it up until SIGTERM or SIGINT, then stops every node it
started. ``.ci/run`` uses it so that the tests run against a real two-node cluster::

    python -m tod_cleanse.adapters.ray cluster --nodes 2 --num-cpus 1 --address-file F &
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import threading

from .session import LocalCluster


def main(argv: list[str] | None = None) -> int:
    """Run the ``cluster`` command; returns the exit status."""
    parser = argparse.ArgumentParser(prog="python -m tod_cleanse.adapters.ray")
    sub = parser.add_subparsers(dest="command", required=True)
    cmd = sub.add_parser("cluster", help="hold a local multi-node Ray cluster until SIGTERM")
    cmd.add_argument("--nodes", type=int, default=2)
    cmd.add_argument("--num-cpus", type=int, default=1, help="CPUs per node")
    cmd.add_argument("--object-store-bytes", type=int, default=80_000_000)
    cmd.add_argument("--address-file", required=True,
                     help="written with HOST:PORT once every node is up")
    args = parser.parse_args(argv)
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    with LocalCluster(args.nodes, args.num_cpus, args.object_store_bytes) as cluster:
        tmp = f"{args.address_file}.tmp"
        with open(tmp, "w", encoding="utf-8") as fh:
            fh.write(cluster.address)
        os.replace(tmp, args.address_file)
        print(f"ray cluster of {args.nodes} nodes at {cluster.address} "
              f"(clients need {' '.join(f'{k}={v}' for k, v in cluster.client_env.items())})",
              file=sys.stderr)
        stop.wait()
    return 0


if __name__ == "__main__":
    sys.exit(main())
