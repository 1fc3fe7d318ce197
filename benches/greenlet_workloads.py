"""The workloads, written once against gevent's API (gevent, verdigris, and eventlet via aliases).

Each function takes the library namespace from :func:`benches.libs.load` and a size, runs the
workload once, and returns ``{"total": ..., "cpu": ..., "ops": ...}`` (plus optional details):
the cost of one operation is ``total / ops`` in wall seconds, or ``cpu / ops`` in CPU seconds
(see ``timing``); :func:`memory` returns bytes in ``total``. Only the part named in each
docstring is timed; setup that is not the workload's subject is kept outside the clock.

Hot loops bind what they call to locals first, so every library pays the same (small)
interpreter overhead and the difference left is the library's.
"""
from __future__ import annotations

import gc
import time
from itertools import repeat

from benches import rss
from benches.timing import Rounds, Stopwatch

perf_counter = time.perf_counter  # only to bound waits; measuring is Stopwatch's job

#: Round trips of tcp_echo, spread over the clients (at least 4 each), so that the total work,
#: and the run time, stays about the same at every number of connections.
TCP_ROUND_TRIPS = 10_000
TCP_MESSAGE = b"x" * 64


def sleep0(lib, size):
    """Two greenlets take turns with ``sleep(0)``; timed: all ``size`` calls."""
    sleep = lib.sleep
    each = size // 2

    def switcher():
        for _ in repeat(None, each):
            sleep(0)

    clock = Stopwatch()
    lib.joinall([lib.spawn(switcher), lib.spawn(switcher)])
    return clock.read(2 * each)


def spawn_join(lib, size):
    """Spawn ``size`` greenlets that do nothing and join them all; timed: everything."""
    spawn = lib.spawn

    def nothing():
        pass

    clock = Stopwatch()
    lib.joinall([spawn(nothing) for _ in repeat(None, size)])
    return clock.read(size)


def event_fanout(lib, size):
    """``size`` greenlets park on one Event; timed: from ``set()`` until the last has resumed.

    Only the wake-up is timed. Spawning and parking (spawn_join's subject) happen before the
    clock starts, and a resumed waiter parks again on a second Event instead of finishing, so
    that greenlet teardown (freeing its frame stack) is not timed either. The last waiter to
    resume sets the Event that the main greenlet waits on.
    """
    gate, finished, release = lib.Event(), lib.Event(), lib.Event()
    parked = [0]
    resumed = [0]

    def waiter():
        parked[0] += 1
        gate.wait()
        resumed[0] += 1
        if resumed[0] == size:
            finished.set()
        release.wait()

    waiters = [lib.spawn(waiter) for _ in repeat(None, size)]
    while parked[0] < size:
        lib.sleep(0)
    clock = Stopwatch()
    gate.set()
    finished.wait()
    result = clock.read(size)
    release.set()
    lib.joinall(waiters)
    return result


def queue(lib, size):
    """A producer puts ``size`` items (yielding every 64) and a consumer gets them; timed: all."""
    q = lib.Queue()
    got = [0]

    def producer():
        put, sleep = q.put, lib.sleep
        for i in range(size):
            put(i)
            if i % 64 == 0:
                sleep(0)
        put(None)

    def consumer():
        get = q.get
        n = 0
        while get() is not None:
            n += 1
        got[0] = n

    clock = Stopwatch()
    lib.joinall([lib.spawn(consumer), lib.spawn(producer)])
    result = clock.read(size)
    assert got[0] == size, got[0]
    return result


def timeout(lib, size):
    """``with Timeout(10): pass`` ``size`` times: arm a timer and cancel it; timed: all."""
    Timeout = lib.Timeout
    clock = Stopwatch()
    for _ in repeat(None, size):
        with Timeout(10):
            pass
    return clock.read(size)


def semaphore(lib, size):
    """Uncontended ``Semaphore(1)``: acquire then release, ``size`` times; timed: all."""
    sem = lib.Semaphore(1)
    acquire, release = sem.acquire, sem.release
    clock = Stopwatch()
    for _ in repeat(None, size):
        acquire()
        release()
    return clock.read(size)


def many_timers(lib, size):
    """``size`` greenlets each sleep on their own timer, deadlines spread over 1-50 ms.

    Timed: spawn to the last join, minus the 50 ms that no library can skip; what is left is
    the cost of spawning, arming, firing and joining, per greenlet.
    """
    sleep = lib.sleep
    span = 0.049

    clock = Stopwatch()
    lib.joinall([lib.spawn(sleep, 0.001 + span * i / size) for i in range(size)])
    return clock.read(size, minus=0.050)


def tcp_echo(lib, size):
    """``size`` clients on loopback TCP echo 64 bytes with an in-process server.

    All clients connect and the server accepts them all before the clock starts (connection
    setup is not the subject); timed: from the start signal until every client has done its
    round trips. Both ends set TCP_NODELAY, as asyncio does by default.
    """
    sk = lib.socket
    clients = size
    per_client = max(4, TCP_ROUND_TRIPS // clients)
    listener = sk.socket(sk.AF_INET, sk.SOCK_STREAM)
    listener.setsockopt(sk.SOL_SOCKET, sk.SO_REUSEADDR, 1)
    listener.bind(("127.0.0.1", 0))
    listener.listen(clients)  # the kernel caps this at net.core.somaxconn
    address = listener.getsockname()
    handlers = []

    def serve(conn):
        recv, sendall = conn.recv, conn.sendall
        while True:
            data = recv(4096)
            if not data:
                break
            sendall(data)
        conn.close()

    def acceptor():
        for _ in range(clients):
            conn, _ = listener.accept()
            conn.setsockopt(sk.IPPROTO_TCP, sk.TCP_NODELAY, 1)
            handlers.append(lib.spawn(serve, conn))

    go, all_connected = lib.Event(), lib.Event()
    connected = [0]

    def client():
        s = sk.create_connection(address)
        s.setsockopt(sk.IPPROTO_TCP, sk.TCP_NODELAY, 1)
        connected[0] += 1
        if connected[0] == clients:
            all_connected.set()
        go.wait()
        sendall, recv = s.sendall, s.recv
        for _ in repeat(None, per_client):
            sendall(TCP_MESSAGE)
            got = 0
            while got < 64:
                got += len(recv(4096))
        s.close()

    accepting = lib.spawn(acceptor)
    workers = [lib.spawn(client) for _ in range(clients)]
    all_connected.wait()
    lib.joinall([accepting])
    clock = Stopwatch()
    go.set()
    lib.joinall(workers)
    result = clock.read(clients * per_client, round_trips_per_client=per_client)
    lib.joinall(handlers)
    listener.close()
    return result


def memory(lib, size):
    """Peak RSS growth while ``size`` greenlets are parked in ``sleep(60)``.

    ru_maxrss is a process-wide peak, so this must run in a fresh process with no warm-up at
    size: a bigger earlier peak would hide this one. A 100-greenlet warm-up brings up the hub
    and touches the code paths first. The current RSS (from /proc/self/statm) is reported too.
    """
    sleep = lib.sleep
    started = [0]

    def parked():
        started[0] += 1
        sleep(60)

    lib.joinall([lib.spawn(sleep, 0) for _ in range(100)])
    gc.collect()
    base_peak, base_now = rss.peak_bytes(), rss.now_bytes()
    begin = perf_counter()
    greenlets = [lib.spawn(parked) for _ in range(size)]
    while started[0] < size and perf_counter() - begin < 120:
        sleep(0.05)
    peak, now = rss.peak_bytes(), rss.now_bytes()
    assert started[0] == size, f"only {started[0]} of {size} greenlets started"
    del greenlets  # the caller exits the process without killing them: that is not measured
    return {"total": peak - base_peak, "ops": size, "rss_now_delta": now - base_now,
            "baseline_peak": base_peak}


WORKLOADS = {f.__name__: f for f in (sleep0, spawn_join, event_fanout, queue, timeout, semaphore,
                                       many_timers, tcp_echo, memory)}


def measure(lib, workload, size, warm_size):
    """Warm up at ``warm_size`` (0: none), collect garbage, then run at ``size``: once for
    memory, else as many rounds as ``timing.Rounds`` asks (one, unless the size is small)."""
    fn = WORKLOADS[workload]
    if warm_size:
        fn(lib, warm_size)
    gc.collect()
    if workload == "memory":
        return fn(lib, size)
    rounds = Rounds()
    while not rounds.enough():
        rounds.add(fn(lib, size))
        gc.collect()
    return rounds.result()
