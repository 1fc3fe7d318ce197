"""The inside of one measurement: ``python -m benches.child ...`` runs in a fresh process.

Every run gets its own interpreter so that libraries never share a process (gevent's and
eventlet's hubs, or a monkey patch, cannot leak into another library's numbers) and so that
ru_maxrss starts from zero. The last line on stdout is one JSON object; anything else a
library prints is ignored.

    python -m benches.child probe LIB                         -> {"version", "detail"}
    python -m benches.child run LIB WORKLOAD SIZE [wall|cpu]  -> {"total", "cpu", "ops", "cost"}
    python -m benches.child floor NAME [wall|cpu]             -> {"cost"}

On failure the object is ``{"error": "..."}`` and the exit status is 1. The process ends with
``os._exit`` so that tearing down thousands of parked greenlets is neither timed nor waited for.
"""
from __future__ import annotations

import json
import os
import sys
import traceback

from benches import catalog


def warm_size(workload: catalog.Workload, size: int) -> int:
    """A tenth of the size (at least one): enough to bring up the hub and touch every code
    path, small enough not to dominate the process's run time."""
    if not workload.warmup:
        return 0
    return max(1, size // 10)


def probe(lib_name: str) -> dict:
    from benches import libs

    if lib_name in catalog.ASYNCIO_LIBS:
        return libs.describe_asyncio(lib_name)
    lib = libs.load(lib_name)
    return {"version": lib.version, "detail": lib.detail, "greenlet": libs.greenlet_version()}


def run(lib_name: str, workload_name: str, size: int, clock: str = "wall") -> dict:
    from benches import libs

    workload = catalog.BY_NAME[workload_name]
    if workload_name == "tcp_echo":
        _allow_fds(2 * size + 64)
    if lib_name in catalog.ASYNCIO_LIBS:
        from benches import asyncio_workloads

        result = asyncio_workloads.measure(libs.new_asyncio_loop(lib_name), workload_name, size,
                                           warm_size(workload, size))
    else:
        from benches import greenlet_workloads

        result = greenlet_workloads.measure(libs.load(lib_name), workload_name, size,
                                            warm_size(workload, size))
    # The clock only applies to time; memory's "total" is bytes.
    spent = result["cpu"] if clock == "cpu" and workload.unit == "time" else result["total"]
    result["cost"] = spent / result["ops"]
    return result


def floor(name: str, clock: str = "wall") -> dict:
    from benches import floors

    floors.use_clock(clock)
    return {"cost": floors.FLOORS[name]()}


def _allow_fds(needed: int) -> None:
    """Raise the soft fd limit to what ``needed`` asks, up to the hard limit."""
    import resource

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < needed:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(needed, hard), hard))


def main(argv) -> None:
    try:
        command, *args = argv
        if command == "probe":
            out = probe(*args)
        elif command == "run":
            out = run(args[0], args[1], int(args[2]), *args[3:])
        elif command == "floor":
            out = floor(*args)
        else:
            raise SystemExit(f"unknown command {command!r}")
        status = 0
    except Exception as exc:  # reported to the runner, which shows the row as n/a
        traceback.print_exc()
        out, status = {"error": f"{type(exc).__name__}: {exc}".strip()}, 1
    sys.stderr.flush()
    sys.stdout.write("\n" + json.dumps(out) + "\n")
    sys.stdout.flush()
    os._exit(status)


if __name__ == "__main__":
    main(sys.argv[1:])
