"""Resident memory of this process, the two ways the memory workloads read it.

``peak_bytes`` is ru_maxrss: the high-water mark since the process started, so it only means
something in a fresh process. ``now_bytes`` is the current RSS from /proc/self/statm (Linux).
"""
import resource


def peak_bytes() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # KiB on Linux


def now_bytes() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * resource.getpagesize()
