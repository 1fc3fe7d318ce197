"""What the suite measures, as data: one :class:`Workload` per row of the report.

Everything the runner, the judge and the report need to know about a workload lives here, so
adding one is one entry in :data:`WORKLOADS` plus its function in ``greenlet_workloads`` (and,
where asyncio has a counterpart, in ``asyncio_workloads``).

Every cost is "lower is better", so that one ratio rule serves every row:

* ``time``: seconds per operation.
* ``rate``: seconds per request, i.e. 1 / (requests per second); it is *shown* as requests/s,
  and its ratio verdigris/gevent is therefore gevent's requests/s over verdigris's.
* ``bytes``: bytes of peak RSS per parked greenlet.
"""
from __future__ import annotations

from dataclasses import dataclass

#: Libraries with gevent's greenlet model; they all run ``greenlet_workloads``.
GREENLET_LIBS = ("verdigris", "gevent", "eventlet")
#: asyncio event loops; they run ``asyncio_workloads``. ``asyncio`` (the stdlib loop) is opt-in.
ASYNCIO_LIBS = ("uvloop", "asyncio")
ALL_LIBS = GREENLET_LIBS + ASYNCIO_LIBS
DEFAULT_LIBS = ("verdigris", "gevent", "eventlet", "uvloop")

#: The geometric mean of these workloads' time ratios has its own target.
GEOMEAN_WORKLOADS = ("sleep0", "spawn_join", "event_fanout", "queue", "timeout", "semaphore",
                     "many_timers", "tcp_echo")
GEOMEAN_TARGET = 0.55


@dataclass(frozen=True)
class Workload:
    name: str
    op: str                  #: what one operation is, for the README and the report
    unit: str                #: "time", "rate" or "bytes" (see the module docstring)
    size_name: str           #: what the size counts
    size: int                #: default size of a full run
    quick_size: int          #: default size under --quick
    sweep: tuple             #: sizes that --sweep runs
    target: float            #: the ratio verdigris/gevent must be at most this
    floor: str | None = None  #: name of a floor in ``floors.FLOORS``, or None
    libs: tuple = ALL_LIBS   #: libraries that have a counterpart
    warmup: bool = True      #: run a small warm-up first in the same process
    beat: str | None = None  #: a library verdigris must also beat, same run


WORKLOADS = (
    # Default sizes keep one gevent run at roughly 0.3-1 s (--quick: 0.1-0.3 s) on a 2-core VM:
    # long enough that losing a scheduler time slice to another process is a small error,
    # short enough for the whole run to fit its time budget.
    Workload("sleep0", "one sleep(0) by one of two greenlets taking turns", "time",
             "sleep(0) calls", 300_000, 100_000, (10_000, 100_000, 1_000_000), 0.50,
             floor="greenlet_roundtrip"),
    Workload("spawn_join", "spawn one greenlet that does nothing, run it, join it", "time",
             "greenlets", 30_000, 10_000, (1_000, 10_000, 100_000), 0.50,
             floor="greenlet_spawn_run"),
    Workload("event_fanout", "wake one of N parked waiters by a single Event.set()", "time",
             "waiters", 20_000, 10_000, (100, 1_000, 10_000, 100_000), 0.50,
             floor="greenlet_roundtrip"),
    Workload("queue", "one item through an unbounded Queue, producer yields every 64 puts", "time",
             "items", 1_000_000, 500_000, (10_000, 100_000, 1_000_000), 0.80),
    Workload("timeout", "`with Timeout(10): pass` (arm a timer, cancel it)", "time",
             "timeouts", 200_000, 50_000, (10_000, 100_000, 1_000_000), 0.40),
    Workload("semaphore", "uncontended Semaphore(1) acquire + release", "time",
             "acquires", 2_000_000, 500_000, (10_000, 100_000, 1_000_000), 1.00),
    Workload("many_timers", "one greenlet sleeping on its own timer (1-50 ms), minus the 50 ms",
             "time", "greenlets", 20_000, 5_000, (1_000, 10_000, 100_000, 1_000_000), 0.50,
             floor="greenlet_park"),
    Workload("tcp_echo", "one 64-byte echo round trip over loopback TCP, N clients at once", "time",
             "connections", 100, 50, (10, 100, 1_000, 10_000), 0.65,
             floor="tcp_echo_rt", beat="uvloop"),
    Workload("wsgi", "one HTTP/1.1 keep-alive request to a WSGI hello-world, driven by wrk", "rate",
             "wrk connections", 100, 50, (10, 100, 1_000), 0.67,
             libs=GREENLET_LIBS),
    Workload("memory", "peak RSS per greenlet parked in sleep(60)", "bytes",
             "greenlets", 50_000, 10_000, (1_000, 10_000, 100_000), 0.85,
             floor="parked_greenlet_bytes", warmup=False),
)

BY_NAME = {w.name: w for w in WORKLOADS}
