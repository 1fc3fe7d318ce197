"""asyncio counterparts of ``greenlet_workloads``, run on uvloop (or the stdlib loop).

Each coroutine mirrors the greenlet function of the same name, step for step: tasks stand in
for greenlets, ``await asyncio.sleep(0)`` for ``sleep(0)``, ``asyncio.gather`` for
``joinall``, streams for sockets (the usual asyncio way to write what gevent users write
with sockets). Same return shape: ``{"total": ..., "cpu": ..., "ops": ...}``. There is no WSGI
counterpart: WSGI servers are blocking or greenlet based, and an ASGI server would measure
a different protocol stack.
"""
from __future__ import annotations

import asyncio
import gc
import sys
import time
from itertools import repeat

from benches import rss
from benches.greenlet_workloads import TCP_MESSAGE, TCP_ROUND_TRIPS
from benches.timing import Rounds, Stopwatch

perf_counter = time.perf_counter  # only to bound waits; measuring is Stopwatch's job


async def sleep0(size):
    sleep = asyncio.sleep
    each = size // 2

    async def switcher():
        for _ in repeat(None, each):
            await sleep(0)

    clock = Stopwatch()
    await asyncio.gather(switcher(), switcher())
    return clock.read(2 * each)


async def spawn_join(size):
    create_task = asyncio.get_running_loop().create_task

    async def nothing():
        pass

    clock = Stopwatch()
    await asyncio.gather(*[create_task(nothing()) for _ in repeat(None, size)])
    return clock.read(size)


async def event_fanout(size):
    gate, finished, release = asyncio.Event(), asyncio.Event(), asyncio.Event()
    parked = [0]
    resumed = [0]

    async def waiter():
        parked[0] += 1
        await gate.wait()
        resumed[0] += 1
        if resumed[0] == size:
            finished.set()
        await release.wait()

    create_task = asyncio.get_running_loop().create_task
    waiters = [create_task(waiter()) for _ in repeat(None, size)]
    while parked[0] < size:
        await asyncio.sleep(0)
    clock = Stopwatch()
    gate.set()
    await finished.wait()
    result = clock.read(size)
    release.set()
    await asyncio.gather(*waiters)
    return result


async def queue(size):
    q = asyncio.Queue()
    got = [0]

    async def producer():
        put, sleep = q.put, asyncio.sleep
        for i in range(size):
            await put(i)
            if i % 64 == 0:
                await sleep(0)
        await put(None)

    async def consumer():
        get = q.get
        n = 0
        while (await get()) is not None:
            n += 1
        got[0] = n

    clock = Stopwatch()
    await asyncio.gather(consumer(), producer())
    result = clock.read(size)
    assert got[0] == size, got[0]
    return result


async def timeout(size):
    if sys.version_info < (3, 11):
        raise NotImplementedError("asyncio.timeout needs Python 3.11")
    make = asyncio.timeout
    clock = Stopwatch()
    for _ in repeat(None, size):
        async with make(10):
            pass
    return clock.read(size)


async def semaphore(size):
    sem = asyncio.Semaphore(1)
    acquire, release = sem.acquire, sem.release
    clock = Stopwatch()
    for _ in repeat(None, size):
        await acquire()
        release()
    return clock.read(size)


async def many_timers(size):
    sleep = asyncio.sleep
    create_task = asyncio.get_running_loop().create_task
    span = 0.049
    clock = Stopwatch()
    await asyncio.gather(*[create_task(sleep(0.001 + span * i / size)) for i in range(size)])
    return clock.read(size, minus=0.050)


async def tcp_echo(size):
    clients = size
    per_client = max(4, TCP_ROUND_TRIPS // clients)
    accepted = [0]
    all_accepted, go, all_connected = asyncio.Event(), asyncio.Event(), asyncio.Event()

    async def serve(reader, writer):
        accepted[0] += 1
        if accepted[0] == clients:
            all_accepted.set()
        read, write, drain = reader.read, writer.write, writer.drain
        while True:
            data = await read(4096)
            if not data:
                break
            write(data)
            await drain()
        writer.close()

    server = await asyncio.start_server(serve, "127.0.0.1", 0, backlog=clients)
    address = server.sockets[0].getsockname()
    connected = [0]

    async def client():
        reader, writer = await asyncio.open_connection(*address)
        connected[0] += 1
        if connected[0] == clients:
            all_connected.set()
        await go.wait()
        read, write, drain = reader.read, writer.write, writer.drain
        for _ in repeat(None, per_client):
            write(TCP_MESSAGE)
            await drain()
            got = 0
            while got < 64:
                got += len(await read(4096))
        writer.close()

    create_task = asyncio.get_running_loop().create_task
    workers = [create_task(client()) for _ in range(clients)]
    await all_connected.wait()
    await all_accepted.wait()
    clock = Stopwatch()
    go.set()
    await asyncio.gather(*workers)
    result = clock.read(clients * per_client, round_trips_per_client=per_client)
    server.close()
    return result


async def memory(size):
    sleep = asyncio.sleep
    started = [0]

    async def parked():
        started[0] += 1
        await sleep(60)

    create_task = asyncio.get_running_loop().create_task
    await asyncio.gather(*[create_task(sleep(0)) for _ in range(100)])
    gc.collect()
    base_peak, base_now = rss.peak_bytes(), rss.now_bytes()
    begin = perf_counter()
    tasks = [create_task(parked()) for _ in range(size)]
    while started[0] < size and perf_counter() - begin < 120:
        await sleep(0.05)
    peak, now = rss.peak_bytes(), rss.now_bytes()
    assert started[0] == size, f"only {started[0]} of {size} tasks started"
    del tasks
    return {"total": peak - base_peak, "ops": size, "rss_now_delta": now - base_now,
            "baseline_peak": base_peak}


WORKLOADS = {f.__name__: f for f in (sleep0, spawn_join, event_fanout, queue, timeout, semaphore,
                                       many_timers, tcp_echo, memory)}


def measure(loop, workload, size, warm_size):
    """As ``greenlet_workloads.measure``, all on ``loop``; the loop is left open (the process
    is about to exit)."""
    fn = WORKLOADS[workload]

    async def all_rounds():
        if warm_size:
            await fn(warm_size)
        gc.collect()
        if workload == "memory":
            return await fn(size)
        rounds = Rounds()
        while not rounds.enough():
            rounds.add(await fn(size))
            gc.collect()
        return rounds.result()

    asyncio.set_event_loop(loop)
    return loop.run_until_complete(all_rounds())
