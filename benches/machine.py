"""What the numbers were measured on: the report's header and the JSON's ``machine`` object.

Absolute costs only mean something next to the machine they came from; ratios measured side
by side travel better, but the header still says which CPU, how many cores, which Python and
which version of each library produced them.
"""
from __future__ import annotations

import os
import platform
import resource
import sys
import time

from benches import wsgi_bench


def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


class Contention:
    """How much CPU other processes took while we measured: the machine's busy CPU time
    (/proc/stat) minus our own and our children's (getrusage), over wall time x cores.

    On a shared box this is the honest caveat to every number: 0.05 means the others used 5%
    of the CPUs during the run; past ~0.2 absolute costs drift, and ratios get noisier.
    """

    def __init__(self):
        self.wall, self.busy, self.ours = time.monotonic(), _busy_seconds(), _our_seconds()
        self.load_at_start = os.getloadavg()[0]

    def share(self):
        wall = (time.monotonic() - self.wall) * (os.cpu_count() or 1)
        busy = _busy_seconds()
        if busy is None or self.busy is None or wall <= 0:
            return None
        others = (busy - self.busy) - (_our_seconds() - self.ours)
        return max(0.0, others / wall)


def _busy_seconds():
    """CPU seconds spent not idle since boot, all CPUs (Linux /proc/stat)."""
    try:
        with open("/proc/stat") as f:
            fields = [int(x) for x in f.readline().split()[1:]]
    except (OSError, ValueError):
        return None
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0)  # idle + iowait
    return (sum(fields[:8]) - idle) / os.sysconf("SC_CLK_TCK")


def _our_seconds():
    total = 0.0
    for who in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN):
        usage = resource.getrusage(who)
        total += usage.ru_utime + usage.ru_stime
    return total


def describe(availability: dict, contention: Contention | None = None) -> dict:
    """``availability`` is ``Runner.probe``'s output: each library's version or error."""
    libraries = {}
    for lib, info in availability.items():
        libraries[lib] = (f"{info['version']} ({info.get('detail', '')})" if info["ok"]
                          else f"n/a ({info['error']})")
    greenlet = next((info["greenlet"] for info in availability.values() if info.get("greenlet")),
                    "n/a")
    return {
        "cpu": cpu_model(),
        "cores": os.cpu_count(),
        "kernel": platform.release(),
        "python": f"{platform.python_implementation()} {platform.python_version()}",
        "executable": sys.executable,
        "greenlet": greenlet,
        "libraries": libraries,
        "wrk": wsgi_bench.wrk_version(),
        "date": time.strftime("%Y-%m-%d %H:%M:%S %z"),
        "load_at_start": round(contention.load_at_start, 2) if contention else None,
        "others_cpu_share": _round(contention.share() if contention else None),
    }


def _round(x):
    return None if x is None else round(x, 3)


def busy_warning(info: dict):
    """A line for the report when other processes took a noticeable share of the CPUs."""
    share = info.get("others_cpu_share")
    if share is not None and share > 0.10:
        return (f"warning: other processes used {share:.0%} of the CPUs during this run "
                f"(load {info['load_at_start']} at start): absolute costs are inflated and "
                f"ratios noisier; rerun on a quiet machine for numbers to publish"
                + ("" if info.get("clock") == "cpu" else ", or compare with --clock cpu"))
    return None


def one_line(info: dict) -> str:
    return (f"{info['cpu']}, {info['cores']} cores, Linux {info['kernel']}, {info['python']}, "
            f"greenlet {info['greenlet']}, wrk {info['wrk']}")
