"""Floors: what no greenlet library can go below on this machine, measured in the same run.

A workload's cost "x above floor" says how much of it a library could still remove. Each
floor is the bare mechanism the workload cannot avoid, with no hub, no scheduling, no Python
object of the library's own:

* ``greenlet_roundtrip``: main -> child -> main, the child already running. One sleep(0)
  between two greenlets is at least this (out to the hub and into the other greenlet); so is
  waking one parked waiter and coming back.
* ``greenlet_spawn_run``: create a greenlet, switch into it, let its function return.
  CPython 3.11+ gives each greenlet that runs Python code its own 16 KiB frame data stack.
* ``greenlet_park``: spawn_run + roundtrip: create, run until parked, resume, finish;
  what one greenlet sleeping on a timer costs at least.
* ``tcp_echo_rt``: one 64-byte echo round trip on a loopback TCP connection as bare syscalls
  (client write, server epoll_wait + read + write, client epoll_wait + read), TCP_NODELAY.
* ``parked_greenlet_bytes``: peak RSS per raw greenlet parked mid-function (no hub, no timer).

Time floors are the median of :data:`BATCHES` batches, in seconds per operation; each batch is
a tight loop whose own cost (a few ns) is not subtracted. They are read on the same clock as
the workloads (:func:`use_clock`).
"""
from __future__ import annotations

import gc
import itertools
import os
import select
import socket
import statistics
import time

from benches import rss

BATCHES = 5
_clock = time.perf_counter_ns
_repeat = itertools.repeat


def use_clock(name: str) -> None:
    """Read "wall" or "cpu" time from now on (this process measures one floor and exits)."""
    global _clock
    _clock = time.process_time_ns if name == "cpu" else time.perf_counter_ns


def _median_per_op(batch, n):
    batch(max(1, n // 10))  # warm-up
    return statistics.median(batch(n) / n for _ in range(BATCHES)) / 1e9


def _roundtrip_batch(n):
    from greenlet import GreenletExit, getcurrent, greenlet

    main = getcurrent()

    def child():
        back = main.switch
        while True:
            back()

    g = greenlet(child)
    g.switch()  # start it: it parks in back()
    into = g.switch
    start = _clock()
    for _ in _repeat(None, n):
        into()
    elapsed = _clock() - start
    g.throw(GreenletExit)
    return elapsed


def _spawn_run_batch(n):
    from greenlet import greenlet

    def nothing():
        pass

    start = _clock()
    for _ in _repeat(None, n):
        greenlet(nothing).switch()
    return _clock() - start


def greenlet_roundtrip():
    return _median_per_op(_roundtrip_batch, 200_000)


def greenlet_spawn_run():
    return _median_per_op(_spawn_run_batch, 20_000)


def greenlet_park():
    return greenlet_spawn_run() + greenlet_roundtrip()


def _echo_batch(n):
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(1)
    client = socket.create_connection(listener.getsockname())
    server, _ = listener.accept()
    listener.close()
    polls = []
    try:
        for s in (client, server):
            s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            s.setblocking(False)
            # One epoll per side, as two peers with their own loops would have.
            ep = select.epoll()
            ep.register(s.fileno(), select.EPOLLIN)
            polls.append(ep)
        client_poll, server_poll = polls[0].poll, polls[1].poll
        cfd, sfd = client.fileno(), server.fileno()
        read, write = os.read, os.write
        message = b"x" * 64
        start = _clock()
        for _ in _repeat(None, n):
            write(cfd, message)
            while not server_poll(0):
                pass
            write(sfd, read(sfd, 4096))
            while not client_poll(0):
                pass
            got = len(read(cfd, 4096))
            while got < 64:
                got += len(read(cfd, 4096))
        return _clock() - start
    finally:
        for ep in polls:
            ep.close()
        client.close()
        server.close()


def tcp_echo_rt():
    return _median_per_op(_echo_batch, 20_000)


def parked_greenlet_bytes(n=50_000):
    """Must run in a fresh process (ru_maxrss is a process-wide peak)."""
    from greenlet import GreenletExit, getcurrent, greenlet

    main = getcurrent()

    def parked():
        main.switch()

    gc.collect()
    base = rss.peak_bytes()
    parked_greenlets = [greenlet(parked) for _ in range(n)]
    for g in parked_greenlets:
        g.switch()
    peak = rss.peak_bytes()
    for g in parked_greenlets:
        g.throw(GreenletExit)
    return (peak - base) / n


def unit(name: str) -> str:
    """The catalog unit of a floor's cost: bytes for the memory floor, seconds for the others."""
    return "bytes" if name == "parked_greenlet_bytes" else "time"


FLOORS = {f.__name__: f for f in (greenlet_roundtrip, greenlet_spawn_run, greenlet_park,
                                    tcp_echo_rt, parked_greenlet_bytes)}
