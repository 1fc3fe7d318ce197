"""The two clocks a workload reads: wall time, and this process's CPU time.

Wall time is what users wait for, and what the targets are stated in. CPU time (user + system,
all threads of the process) leaves out the time slices lost to other processes, so on a busy
shared machine it is far steadier; it also leaves out waiting (a timer's 50 ms, a packet in
flight), which wall time counts. The child reports both; ``--clock`` picks the one to judge.
"""
import time

perf_counter, process_time = time.perf_counter, time.process_time


class Stopwatch:
    """Started when created; :meth:`read` gives the workload's result dict."""

    __slots__ = ("wall", "cpu")

    def __init__(self):
        self.wall, self.cpu = perf_counter(), process_time()

    def read(self, ops: int, minus: float = 0.0, **details) -> dict:
        """Elapsed wall time less ``minus`` (time no library can avoid), CPU time, ``ops``."""
        wall, cpu = perf_counter() - self.wall, process_time() - self.cpu
        return {"total": max(0.0, wall - minus), "cpu": cpu, "ops": ops, **details}


class Rounds:
    """Sums of repeated runs of one workload at one size, until enough time has passed.

    One run of a small size (100 waiters, 10 connections) lasts well under a millisecond: a
    single time slice lost to another process would swamp it. So a child repeats the run until
    :data:`MIN_SECONDS` of wall time have gone by, and reports the sums; cost per op is then
    total / ops over all of them. Large sizes take one round, as before.
    """

    MIN_SECONDS = 0.2
    MAX_ROUNDS = 1000

    def __init__(self):
        self.started = perf_counter()
        self.sums = None
        self.count = 0

    def add(self, result: dict) -> None:
        self.count += 1
        if self.sums is None:
            self.sums = dict(result)
        else:
            for key in ("total", "cpu", "ops"):
                self.sums[key] += result[key]

    def enough(self) -> bool:
        return (self.count >= self.MAX_ROUNDS
                or (self.count > 0 and perf_counter() - self.started >= self.MIN_SECONDS))

    def result(self) -> dict:
        return {**self.sums, "rounds": self.count}
