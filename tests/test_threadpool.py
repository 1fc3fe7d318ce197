"""verdigris.threadpool: native worker threads that greenlets wait on cooperatively.

The tasks really block their OS thread (``time.sleep``, unpatched), so every test that claims
"the other greenlets kept running" counts the ticks of a ticker greenlet meanwhile, and every
concurrency claim compares the elapsed time with the sequential sum, with a wide margin.
Whatever needs a whole process (the loop exiting, fork) runs in a child interpreter.
"""
import _thread
import concurrent.futures
import os
import subprocess
import sys
import textwrap
import threading
import time
import traceback

import pytest

import verdigris
from verdigris.exceptions import InvalidThreadUseError
from verdigris.threadpool import ThreadPool, ThreadPoolExecutor

BOUND = 10  # seconds: the most any wait in this file may take

CHILD_PREAMBLE = """\
import importlib, os, sys, time
if os.environ.get("VERDIGRIS_TEST_AGAINST") == "gevent":
    import gevent
    sys.modules["verdigris"] = gevent
    for _n in ("hub", "greenlet", "event", "exceptions", "threadpool", "monkey"):
        sys.modules["verdigris." + _n] = importlib.import_module("gevent." + _n)
import verdigris
from verdigris.threadpool import ThreadPool
"""


def run_child(body):
    """Run *body* after CHILD_PREAMBLE in a fresh interpreter (killed after 60 s)."""
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(p for p in sys.path if p))
    return subprocess.run([sys.executable, "-c", CHILD_PREAMBLE + textwrap.dedent(body)],
                          env=env, capture_output=True, text=True, timeout=60)


class Ticker:
    """A greenlet that counts while the loop runs; used to show the hub was never blocked."""

    def __init__(self, interval=0.01):
        self.ticks = 0
        self.interval = interval
        self.greenlet = verdigris.spawn(self._run)

    def _run(self):
        while True:
            verdigris.sleep(self.interval)
            self.ticks += 1

    def stop(self):
        self.greenlet.kill(block=True, timeout=BOUND)
        return self.ticks


class Concurrency:
    """Counts, under a native lock, how many thread tasks run at once."""

    def __init__(self):
        self.lock = _thread.allocate_lock()
        self.running = 0
        self.most = 0
        self.threads = set()

    def task(self, value, delay):
        with self.lock:
            self.running += 1
            self.most = max(self.most, self.running)
            self.threads.add(_thread.get_ident())
        try:
            time.sleep(delay)
            return value
        finally:
            with self.lock:
                self.running -= 1


class TaskError(Exception):
    pass


def _raise_task_error(message):
    raise TaskError(message)


@pytest.fixture
def pool():
    pool = ThreadPool(4)
    yield pool
    with verdigris.Timeout(BOUND):
        pool.kill()


@pytest.fixture
def quiet_errors():
    """Keep the tracebacks the hub prints for failed tasks out of the test output."""
    hub = verdigris.get_hub()
    hub.exception_stream = None
    yield
    del hub.exception_stream


# -- running tasks ---------------------------------------------------------------------------------

def test_blocking_tasks_run_concurrently_while_greenlets_keep_running(pool):
    ticker = Ticker()
    started = time.perf_counter()
    results = [pool.spawn(time.sleep, 0.3) for _ in range(4)]
    with verdigris.Timeout(BOUND):
        values = [result.get() for result in results]
    elapsed = time.perf_counter() - started
    ticks = ticker.stop()
    assert values == [None] * 4
    assert elapsed < 1.2 / 2, "4 x 0.3 s took %.2f s: the tasks did not overlap" % elapsed
    # 0.3 s of 10 ms ticks is 30; a blocked hub would have ticked once or not at all.
    assert ticks >= 10, "the ticker ticked only %d times: the hub was blocked" % ticks


def test_spawn_returns_an_async_result(pool):
    result = pool.spawn(lambda a, b=0: a + b, 1, b=2)
    assert result.wait(timeout=BOUND) == 3
    assert (result.ready(), result.successful(), result.value, result.exception) == \
        (True, True, 3, None)
    assert result.get() == 3


def test_tasks_run_in_other_os_threads(pool):
    idents = [pool.spawn(_thread.get_ident).get(timeout=BOUND) for _ in range(3)]
    assert _thread.get_ident() not in idents


def test_exception_propagates_with_its_traceback(pool, quiet_errors):
    failing = pool.spawn(_raise_task_error, "in a thread")
    fine = pool.spawn(lambda: "fine")
    with pytest.raises(TaskError, match="in a thread") as info:
        failing.get(timeout=BOUND)
    frames = [frame.name for frame in traceback.extract_tb(info.value.__traceback__)]
    assert "_raise_task_error" in frames
    assert (failing.ready(), failing.successful(), type(failing.exception)) == \
        (True, False, TaskError)
    assert fine.get(timeout=BOUND) == "fine"


def test_failed_task_is_reported_to_the_hub():
    hub = verdigris.get_hub()
    record = []
    original = hub.handle_error
    hub.handle_error = lambda context, type, value, tb: record.append((type, str(value)))
    pool = ThreadPool(1)
    try:
        result = pool.spawn(_raise_task_error, "reported")
        result.wait(timeout=BOUND)
        verdigris.sleep(0)
    finally:
        del hub.handle_error
        assert hub.handle_error == original
        with verdigris.Timeout(BOUND):
            pool.kill()
    assert record == [(TaskError, "reported")]


def test_apply_from_several_greenlets(pool):
    def worker(n):
        return pool.apply(lambda x, y: (x, y, _thread.get_ident()), (n,), {"y": -n})

    started = time.perf_counter()
    greenlets = [verdigris.spawn(worker, n) for n in range(4)]
    # Each apply also sleeps in its thread: four at once must overlap.
    sleepers = [verdigris.spawn(pool.apply, time.sleep, (0.3,)) for _ in range(4)]
    verdigris.joinall(greenlets + sleepers, timeout=BOUND, raise_error=True)
    elapsed = time.perf_counter() - started
    assert [g.value[:2] for g in greenlets] == [(n, -n) for n in range(4)]
    assert all(g.value[2] != _thread.get_ident() for g in greenlets)
    assert elapsed < 1.2 / 2


def test_apply_raises_the_task_exception(pool, quiet_errors):
    with pytest.raises(TaskError, match="applied"):
        pool.apply(_raise_task_error, ("applied",))


def test_apply_from_a_worker_thread_runs_directly(pool):
    # A task that itself calls apply() on its pool would deadlock a full pool: it runs inline.
    def outer():
        return pool.apply(_thread.get_ident), _thread.get_ident()

    inner_ident, outer_ident = pool.apply(outer)
    assert inner_ident == outer_ident


def test_apply_async_and_callback(pool):
    got = []
    greenlet = pool.apply_async(lambda x: x * 10, (4,), callback=got.append)
    assert isinstance(greenlet, verdigris.Greenlet)
    assert greenlet.get(timeout=BOUND) == 40
    assert got == [40]


def test_map_imap_keep_input_order(pool):
    # The first item finishes last, so completion order differs from input order.
    delays = [0.4, 0.0, 0.1, 0.0]

    def task(delay):
        time.sleep(delay)
        return delay

    with verdigris.Timeout(BOUND):
        assert pool.map(task, delays) == delays
        assert list(pool.imap(task, delays)) == delays
        assert list(pool.imap(lambda a, b: a + b, [1, 2, 3], [10, 20, 30])) == [11, 22, 33]
        unordered = list(pool.imap_unordered(task, [0.6, 0.0]))
    assert unordered == [0.0, 0.6]


def test_imap_raises_the_task_exception_in_order(pool, quiet_errors):
    def task(n):
        if n == 1:
            raise TaskError("item 1")
        return n

    iterator = pool.imap(task, range(3))
    with verdigris.Timeout(BOUND):
        assert next(iterator) == 0
        with pytest.raises(TaskError, match="item 1"):
            next(iterator)


def test_map_async(pool):
    got = []
    greenlet = pool.map_async(lambda x: -x, [1, 2], callback=got.append)
    assert greenlet.get(timeout=BOUND) == [-1, -2]
    assert got == [[-1, -2]]


# -- size ----------------------------------------------------------------------------------------

def test_maxsize_limits_concurrency():
    pool = ThreadPool(3)
    counter = Concurrency()
    try:
        with verdigris.Timeout(BOUND):
            results = [pool.spawn(counter.task, n, 0.1) for n in range(9)]
            assert [r.get() for r in results] == list(range(9))
        assert counter.most == 3
        assert pool.size == 3 and len(counter.threads) == 3
        assert len(pool) == 0
    finally:
        with verdigris.Timeout(BOUND):
            pool.kill()


def test_spawn_waits_for_a_slot_without_blocking_greenlets():
    pool = ThreadPool(1)
    ticker = Ticker()
    try:
        with verdigris.Timeout(BOUND):
            first = pool.spawn(time.sleep, 0.2)
            second = pool.spawn(time.sleep, 0.2)   # may wait for `first` in this greenlet
            third = pool.spawn(lambda: "third")
            assert third.get() == "third"
            assert first.ready() and second.ready()
    finally:
        ticks = ticker.stop()
        with verdigris.Timeout(BOUND):
            pool.kill()
    assert ticks >= 5


def test_threads_start_on_demand_and_size_is_settable():
    pool = ThreadPool(5)
    try:
        assert (pool.size, pool.maxsize, len(pool)) == (0, 5, 0)
        assert pool.spawn(lambda: 1).get(timeout=BOUND) == 1
        assert pool.size == 1
        with verdigris.Timeout(BOUND):
            pool.size = 3
            assert pool.size == 3
            pool.size = 1
            assert pool.size == 1
        with pytest.raises(ValueError):
            pool.size = 6
        with pytest.raises(ValueError):
            pool.size = -1
        with pytest.raises(TypeError):
            pool.maxsize = 2.5
        with pytest.raises(ValueError):
            pool.maxsize = -1
        pool.maxsize = 2
        assert pool.maxsize == 2
    finally:
        with verdigris.Timeout(BOUND):
            pool.kill()
    assert pool.size == 0


def test_len_counts_unfinished_tasks(pool):
    release = _thread.allocate_lock()
    release.acquire()
    result = pool.spawn(release.acquire, True, BOUND)
    assert len(pool) == 1 and pool
    release.release()
    assert result.get(timeout=BOUND) is True
    with verdigris.Timeout(BOUND):
        pool.join()
    assert len(pool) == 0 and not pool


def test_join_waits_for_every_task(pool):
    results = [pool.spawn(time.sleep, 0.1) for _ in range(3)]
    with verdigris.Timeout(BOUND):
        pool.join()
    assert all(result.ready() for result in results)


def test_kill_stops_the_threads_and_the_pool_stays_usable(pool):
    results = [pool.spawn(time.sleep, 0.05) for _ in range(4)]
    with verdigris.Timeout(BOUND):
        pool.kill()
        assert pool.size == 0
        # Tasks queued before kill() still ran.
        assert [result.get() for result in results] == [None] * 4
        assert pool.spawn(lambda: "again").get() == "again"


def test_spawn_from_another_thread_raises(pool):
    errors = []

    def other_thread():
        try:
            pool.spawn(lambda: None)
        except InvalidThreadUseError as error:
            errors.append(type(error))

    thread = threading.Thread(target=other_thread)
    thread.start()
    thread.join(BOUND)
    assert errors == [InvalidThreadUseError]


def test_hub_threadpool_is_created_lazily_with_the_hub_size():
    hub = verdigris.get_hub()
    pool = hub.threadpool
    assert isinstance(pool, ThreadPool)
    assert pool is hub.threadpool
    assert pool.maxsize == hub.threadpool_size


# -- the loop's lifetime ---------------------------------------------------------------------------

def test_outstanding_task_keeps_the_loop_alive_and_idle_pool_lets_it_exit():
    # The main greenlet only waits on the result: if the pool did not keep the loop alive, the
    # hub would find nothing to do and raise LoopExit into it. Once the result is in, the idle
    # threads must not keep the loop running (hub.join() returns) nor the process alive.
    proc = run_child("""
        pool = verdigris.get_hub().threadpool
        print(pool.spawn(lambda: time.sleep(0.3) or "slept").get())
        print(pool.size)
        print(verdigris.get_hub().join(timeout=30))
        print("end")
    """)
    assert (proc.returncode, proc.stdout.split()) == (0, ["slept", "1", "True", "end"]), \
        proc.stderr


def test_loop_exit_is_still_raised_when_the_pool_is_idle():
    proc = run_child("""
        from verdigris.event import Event
        from verdigris.exceptions import LoopExit
        pool = verdigris.get_hub().threadpool
        pool.spawn(time.sleep, 0.05).get()
        try:
            Event().wait()
        except LoopExit:
            print("LoopExit")
    """)
    assert (proc.returncode, proc.stdout.split()) == (0, ["LoopExit"]), proc.stderr


# -- fork ------------------------------------------------------------------------------------------

@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
def test_pool_works_in_a_forked_child():
    proc = run_child("""
        pool = verdigris.get_hub().threadpool
        # Threads exist in the parent before the fork.
        print("parent", pool.map(lambda x: x * 2, range(4)), pool.size > 0)
        # The library's fork (gevent's re-inits the hub only through gevent.fork); verdigris
        # also re-inits after a plain os.fork, through os.register_at_fork.
        pid = getattr(verdigris, "fork", os.fork)()
        if pid == 0:
            try:
                with verdigris.Timeout(20):
                    values = pool.map(lambda x: x + 1, range(4))
                    started = time.perf_counter()
                    slept = [pool.spawn(time.sleep, 0.3) for _ in range(3)]
                    [r.get() for r in slept]
                    overlapped = time.perf_counter() - started < 0.45
                print("child", values, overlapped, flush=True)
                os._exit(0)
            except BaseException as error:
                print("child failed", repr(error), flush=True)
                os._exit(1)
        _, status = os.waitpid(pid, 0)
        print("status", os.waitstatus_to_exitcode(status))
        print("parent again", pool.apply(lambda: "ok"))
    """)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.splitlines() == [
        "parent [0, 2, 4, 6] True",
        "child [1, 2, 3, 4] True",
        "status 0",
        "parent again ok",
    ], proc.stderr


@pytest.mark.verdigris_only
@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
def test_task_running_at_fork_is_dropped_in_the_child():
    # verdigris-only: gevent's child keeps the lost task's async watcher, so its loop never
    # runs out of work (hub.join() would time out). verdigris's child forgets the task: the
    # loop can end, and the pool is usable.
    proc = run_child("""
        pool = verdigris.get_hub().threadpool
        lost = pool.spawn(time.sleep, 1)
        pid = os.fork()
        if pid == 0:
            try:
                print("child", len(pool), pool.apply(lambda: "works"),
                      verdigris.get_hub().join(timeout=20), lost.ready(), flush=True)
                os._exit(0)
            except BaseException as error:
                print("child failed", repr(error), flush=True)
                os._exit(1)
        _, status = os.waitpid(pid, 0)
        print("status", os.waitstatus_to_exitcode(status))
        print("parent", lost.get(timeout=20), lost.ready())
    """)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.splitlines() == [
        "child 0 works True False", "status 0", "parent None True"], proc.stderr


# -- after monkey patching -------------------------------------------------------------------------

def test_pool_threads_stay_native_after_patch_all_and_futures_work_with_concurrent_futures():
    # patch_all() first, as programs do; the hub's pool is created afterwards, so it must find
    # the native _thread functions through monkey.get_original. With threading patched, the
    # module functions concurrent.futures.wait/as_completed wait cooperatively.
    proc = run_child("""
        from verdigris import monkey
        monkey.patch_all()
        import concurrent.futures
        from verdigris.threadpool import ThreadPoolExecutor
        native_ident = monkey.get_original("_thread", "get_ident")
        native_sleep = monkey.get_original("time", "sleep")
        pool = verdigris.get_hub().threadpool
        print("other thread", pool.spawn(native_ident).get(timeout=10) != native_ident())
        ticks = []
        def tick():
            while True:
                verdigris.sleep(0.01)
                ticks.append(1)
        ticker = verdigris.spawn(tick)
        with ThreadPoolExecutor(2) as executor:
            futures = [executor.submit(native_sleep, d) for d in (0.4, 0.0)]
            done, not_done = concurrent.futures.wait(futures, timeout=0.01)
            print("pending", len(not_done) >= 1)
            order = [futures.index(f) for f in concurrent.futures.as_completed(futures, timeout=10)]
            print("as_completed", order)
        ticker.kill()
        print("ticked", len(ticks) >= 10)
    """)
    assert (proc.returncode, proc.stdout.splitlines()) == (0, [
        "other thread True", "pending True", "as_completed [1, 0]", "ticked True"]), proc.stderr


# -- ThreadPoolExecutor ----------------------------------------------------------------------------

@pytest.fixture
def executor():
    executor = ThreadPoolExecutor(3)
    yield executor
    with verdigris.Timeout(BOUND):
        executor.shutdown()


def test_executor_submit_and_result_wait_cooperatively(executor):
    ticker = Ticker()
    future = executor.submit(lambda x: time.sleep(0.3) or x, "done")
    with pytest.raises(concurrent.futures.TimeoutError):
        future.result(timeout=0.01)
    assert not future.done() and not future.cancelled()
    assert future.result(timeout=BOUND) == "done"
    ticks = ticker.stop()
    assert future.done() and future.exception() is None
    assert ticks >= 10


@pytest.mark.verdigris_only
def test_executor_future_exception(executor, quiet_errors):
    # concurrent.futures' semantics: exception() returns the task's exception. gevent's proxy
    # raises it instead (its exception() calls AsyncResult.get()).
    future = executor.submit(_raise_task_error, "future")
    assert isinstance(future.exception(timeout=BOUND), TaskError)
    with pytest.raises(TaskError, match="future"):
        future.result()


def test_executor_futures_complete_with_iwait(executor):
    # gevent's way to wait on several futures without monkey-patching threading.
    def task(delay):
        time.sleep(delay)
        return delay

    futures = [executor.submit(task, delay) for delay in (0.6, 0.0)]
    finished = list(verdigris.iwait(futures, timeout=BOUND))
    assert [f.result() for f in finished] == [0.0, 0.6]
    assert finished == futures[::-1]


def test_executor_done_futures_work_with_concurrent_futures_functions(executor):
    futures = [executor.submit(lambda n=n: n) for n in range(3)]
    with verdigris.Timeout(BOUND):
        for future in futures:
            future.result()
    assert sorted(f.result() for f in concurrent.futures.as_completed(futures)) == [0, 1, 2]
    done, not_done = concurrent.futures.wait(futures)
    assert (done, not_done) == (set(futures), set())


def test_executor_pending_future_refuses_concurrent_futures_wait(executor):
    # Without patched threading, concurrent.futures.wait() would block the whole thread (the
    # hub too, so the result could never arrive): like gevent, the future refuses.
    future = executor.submit(time.sleep, 0.2)
    with pytest.raises(AttributeError):
        concurrent.futures.wait([future])
    assert future.result(timeout=BOUND) is None


def test_executor_add_done_callback(executor):
    called = []
    future = executor.submit(lambda: 5)
    future.add_done_callback(lambda f: called.append(f.result()))
    future.result(timeout=BOUND)
    verdigris.sleep(0.01)
    assert called == [5]
    future.add_done_callback(lambda f: called.append("again"))  # done: called at once
    assert called == [5, "again"]


def test_executor_map_and_shutdown():
    with ThreadPoolExecutor(2) as executor:
        started = time.perf_counter()
        with verdigris.Timeout(BOUND):
            assert list(executor.map(lambda d: time.sleep(d) or d, [0.3, 0.3])) == [0.3, 0.3]
        assert time.perf_counter() - started < 0.45
        late = executor.submit(time.sleep, 0.2)
    # Leaving the block shut the executor down after waiting for the pending task.
    assert late.done()
    with pytest.raises(RuntimeError):
        executor.submit(lambda: None)


def test_idle_threads_exit_after_idle_task_timeout():
    pool = ThreadPool(2, idle_task_timeout=0.05)
    try:
        with verdigris.Timeout(BOUND):
            assert pool.map(lambda x: x, [1, 2]) == [1, 2]
            assert pool.size >= 1
            while pool.size:     # bounded by the Timeout
                verdigris.sleep(0.02)
            # A task spawned after the threads left gets a new thread.
            assert pool.spawn(lambda: "new thread").get() == "new thread"
    finally:
        with verdigris.Timeout(BOUND):
            pool.kill()


def test_a_threads_own_hub_has_its_own_pool_and_destroy_stops_it():
    out = []

    def in_thread():
        hub = verdigris.get_hub()
        pool = hub.threadpool
        out.append(pool.apply(_thread.get_ident) != _thread.get_ident())
        out.append(pool.size)
        hub.destroy(destroy_loop=True)
        out.append(pool.size)

    thread = threading.Thread(target=in_thread)
    thread.start()
    thread.join(BOUND)
    assert not thread.is_alive()
    assert out == [True, 1, 0]
    assert verdigris.get_hub().threadpool is not None


def test_bad_sizes_raise_at_construction():
    with pytest.raises(TypeError):
        ThreadPool("3")
    with pytest.raises(ValueError):
        ThreadPool(-1)
