"""The hub: LoopExit, references, error handling, blocking in the hub, Ctrl-C, fork, concurrency.

Whatever needs a clean hub or a whole process (LoopExit, signals, fork, exit codes) runs in a
child interpreter; the rest runs on this process's hub. Every wait is bounded.
"""
import os
import select
import signal
import subprocess
import sys
import textwrap
import time

import pytest

import verdigris as gevent
from verdigris.event import Event
from verdigris.exceptions import BlockingSwitchOutError

BOUND = 5

# The first lines of every child script: import verdigris, or gevent under that name when the
# tests run against gevent (the same aliasing as conftest.py does in this process).
CHILD_PREAMBLE = """\
import importlib, os, sys
if os.environ.get("VERDIGRIS_TEST_AGAINST") == "gevent":
    import gevent
    sys.modules["verdigris"] = gevent
    for _n in ("hub", "greenlet", "timeout", "event", "queue", "lock", "local", "pool",
               "exceptions", "monkey", "socket"):
        sys.modules["verdigris." + _n] = importlib.import_module("gevent." + _n)
    sys.modules["verdigris.coros"] = sys.modules["verdigris.lock"]
import verdigris
"""


def _child_argv(body):
    return [sys.executable, "-c", CHILD_PREAMBLE + textwrap.dedent(body)]


def _child_env():
    # The child must import the same verdigris as this process: same interpreter, same path.
    return dict(os.environ, PYTHONPATH=os.pathsep.join(p for p in sys.path if p))


def run_child(body):
    """Run *body* after `CHILD_PREAMBLE` in a fresh interpreter; return the CompletedProcess."""
    return subprocess.run(_child_argv(body), env=_child_env(), capture_output=True, text=True,
                          timeout=60)


@pytest.fixture
def errors():
    """Record ``(context, type)`` for each call of the hub's error handler, which still runs."""
    hub = gevent.get_hub()
    original = hub.handle_error
    record = []

    def handle_error(context, type, value, tb):
        record.append((context, type))
        original(context, type, value, tb)

    hub.handle_error = handle_error
    yield record
    del hub.handle_error


# --- LoopExit and references -----------------------------------------------------------------

def test_waiting_on_something_that_can_never_happen_raises_loop_exit():
    proc = run_child("""
        import time
        from verdigris.event import Event
        from verdigris.exceptions import LoopExit
        t0 = time.perf_counter()
        try:
            Event().wait()
        except LoopExit:
            print("LoopExit", time.perf_counter() - t0 < 10)
        # The hub is still usable afterwards.
        g = verdigris.spawn(lambda: (verdigris.sleep(0.01), "still works")[1])
        print(g.get(timeout=10))
    """)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == "LoopExit True\nstill works\n"


def test_loop_exit_when_joining_a_greenlet_that_waits_forever():
    proc = run_child("""
        from verdigris.event import Event
        from verdigris.exceptions import LoopExit
        g = verdigris.spawn(Event().wait)
        try:
            g.join()
        except LoopExit:
            print("LoopExit", g.dead)
    """)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == "LoopExit False\n"


def test_ref_false_sleep_does_not_keep_the_loop_alive():
    proc = run_child("""
        import time
        from verdigris.exceptions import LoopExit
        t0 = time.perf_counter()
        try:
            verdigris.sleep(30, ref=False)
        except LoopExit:
            print("LoopExit", time.perf_counter() - t0 < 10)
    """)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == "LoopExit True\n"


def test_ref_false_sleep_in_a_greenlet_does_not_keep_the_loop_alive():
    proc = run_child("""
        import time
        from verdigris.exceptions import LoopExit
        g = verdigris.spawn(verdigris.sleep, 30, ref=False)
        t0 = time.perf_counter()
        try:
            g.join()
        except LoopExit:
            print("LoopExit", time.perf_counter() - t0 < 10)
    """)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == "LoopExit True\n"


def test_ref_false_timeout_does_not_keep_the_loop_alive():
    proc = run_child("""
        from verdigris.event import Event
        from verdigris.exceptions import LoopExit
        try:
            with verdigris.Timeout(30, ref=False):
                Event().wait()
        except LoopExit:
            print("LoopExit")
    """)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == "LoopExit\n"


def test_ref_false_loop_timer_does_not_keep_the_loop_alive():
    proc = run_child("""
        from verdigris.event import Event
        from verdigris.exceptions import LoopExit
        timer = verdigris.get_hub().loop.timer(30, ref=False)
        timer.start(print, "timer fired")
        try:
            Event().wait()
        except LoopExit:
            print("LoopExit")
    """)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == "LoopExit\n"


def test_a_referenced_sleeper_keeps_the_loop_alive_for_an_unreferenced_one():
    proc = run_child("""
        record = []
        keeper = verdigris.spawn(verdigris.sleep, 0.2)
        light = verdigris.spawn(lambda: (verdigris.sleep(0.05, ref=False), record.append("woke")))
        verdigris.joinall([keeper, light], timeout=10)
        print(record, keeper.dead, light.dead)
    """)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == "['woke'] True True\n"


# --- callbacks and the error handler ---------------------------------------------------------

def test_callbacks_run_in_fifo_order():
    record = []
    loop = gevent.get_hub().loop
    for i in range(5):
        loop.run_callback(record.append, i)
    gevent.sleep(0.01)
    assert record == [0, 1, 2, 3, 4]


def test_exception_in_a_callback_goes_to_the_error_handler_and_the_loop_goes_on(capfd, errors):
    record = []
    loop = gevent.get_hub().loop

    def bad():
        raise ArithmeticError("in callback")

    loop.run_callback(record.append, "before")
    loop.run_callback(bad)
    loop.run_callback(record.append, "after")
    gevent.sleep(0.01)
    g = gevent.spawn(lambda: "greenlets still run")
    assert g.get(timeout=BOUND) == "greenlets still run"
    assert record == ["before", "after"]
    assert [t for _, t in errors] == [ArithmeticError]
    err = capfd.readouterr().err
    assert "ArithmeticError: in callback" in err
    assert "bad" in err


def test_exception_in_a_timer_callback_goes_to_the_error_handler(capfd, errors):
    loop = gevent.get_hub().loop
    timer = loop.timer(0.01)
    timer.start(lambda: {}["nope"])
    try:
        gevent.sleep(0.1)
    finally:
        timer.stop()
    assert [t for _, t in errors] == [KeyError]
    assert "KeyError" in capfd.readouterr().err


def test_system_exit_in_a_greenlet_is_raised_in_main():
    proc = run_child("""
        import sys
        verdigris.spawn(sys.exit, 3)
        verdigris.sleep(10)
        print("not reached")
    """)
    assert proc.returncode == 3, proc.stderr
    assert proc.stdout == ""


def test_keyboard_interrupt_in_a_greenlet_is_raised_in_main():
    proc = run_child("""
        def interrupt():
            raise KeyboardInterrupt

        verdigris.spawn(interrupt)
        try:
            verdigris.sleep(10)
        except KeyboardInterrupt:
            print("main got KeyboardInterrupt")
        print(verdigris.spawn(lambda: "hub still works").get(timeout=10))
    """)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == "main got KeyboardInterrupt\nhub still works\n"


# --- blocking in the hub ---------------------------------------------------------------------

def test_sleeping_in_a_callback_raises_blocking_switch_out_error():
    record = []

    def blocks():
        try:
            gevent.sleep(0.01)
        except BlockingSwitchOutError:
            record.append("BlockingSwitchOutError")

    gevent.get_hub().loop.run_callback(blocks)
    gevent.sleep(0.05)
    assert record == ["BlockingSwitchOutError"]


def test_waiting_in_a_rawlink_callback_raises_blocking_switch_out_error():
    record = []

    def blocks(source):
        try:
            Event().wait(timeout=1)
        except BlockingSwitchOutError:
            record.append("BlockingSwitchOutError")

    g = gevent.spawn(lambda: None)
    g.rawlink(blocks)
    g.join(timeout=BOUND)
    gevent.sleep(0.05)
    assert record == ["BlockingSwitchOutError"]


def test_uncaught_blocking_switch_out_error_goes_to_the_error_handler(capfd, errors):
    gevent.get_hub().loop.run_callback(gevent.sleep, 0.01)
    gevent.sleep(0.05)
    assert [t for _, t in errors] == [BlockingSwitchOutError]
    assert "BlockingSwitchOutError" in capfd.readouterr().err


# --- Ctrl-C ----------------------------------------------------------------------------------

def _interrupt(body, *, after=0.3):
    """Start *body*, wait for its "ready" line, send it SIGINT; return (proc, out, err, seconds).

    *seconds* is the time from the signal to the child's exit.
    """
    proc = subprocess.Popen(_child_argv(body), env=_child_env(), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    try:
        readable, _, _ = select.select([proc.stdout], [], [], 30)
        assert readable, "the child never said it was ready"
        assert proc.stdout.readline() == "ready\n"
        time.sleep(after)  # let it park in the hub
        t0 = time.perf_counter()
        os.kill(proc.pid, signal.SIGINT)
        out, err = proc.communicate(timeout=30)
        return proc, out, err, time.perf_counter() - t0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate(timeout=30)


def test_ctrl_c_while_main_sleeps_raises_keyboard_interrupt():
    proc, out, err, seconds = _interrupt("""
        verdigris.sleep(0.01)
        print("ready", flush=True)
        verdigris.sleep(60)
        print("not reached")
    """)
    assert "KeyboardInterrupt" in err
    assert "Traceback" in err
    assert out == ""
    # Python's own exit for an uncaught KeyboardInterrupt: it dies by SIGINT.
    assert proc.returncode == -signal.SIGINT
    assert seconds < 20  # promptly, not after the 60 s sleep


def test_ctrl_c_while_main_joins_sleeping_greenlets():
    proc, out, err, seconds = _interrupt("""
        gs = [verdigris.spawn(verdigris.sleep, 60) for _ in range(3)]
        verdigris.sleep(0.01)
        print("ready", flush=True)
        verdigris.joinall(gs)
        print("not reached")
    """)
    assert "KeyboardInterrupt" in err
    assert proc.returncode == -signal.SIGINT
    assert seconds < 20


def test_ctrl_c_can_be_caught_in_main_and_the_hub_goes_on():
    proc, out, err, seconds = _interrupt("""
        import time
        verdigris.sleep(0.01)
        print("ready", flush=True)
        t0 = time.perf_counter()
        try:
            verdigris.sleep(60)
        except KeyboardInterrupt:
            print("caught")
        g = verdigris.spawn(lambda: (verdigris.sleep(0.01), "hub still works")[1])
        print(g.get(timeout=10))
    """)
    assert proc.returncode == 0, err
    assert out == "caught\nhub still works\n"
    assert seconds < 20


# --- fork ------------------------------------------------------------------------------------

FORK_SCRIPT = """
    import os, time
    REINIT = {reinit}
    verdigris.spawn(verdigris.sleep, 0.01).join(timeout=10)  # the hub is running before the fork
    pid = os.fork()
    if pid == 0:
        try:
            if REINIT:
                verdigris.reinit()
            record = []
            gs = [verdigris.spawn(lambda i=i: (verdigris.sleep(0.05 * (3 - i)), record.append(i)))
                  for i in range(3)]
            verdigris.joinall(gs, timeout=10)
            print("child", record, flush=True)
        finally:
            os._exit(0)
    g = verdigris.spawn(lambda: (verdigris.sleep(0.05), "parent still works")[1])
    value = g.get(timeout=10)
    deadline = time.monotonic() + 30
    done, status = 0, None
    while not done and time.monotonic() < deadline:
        done, status = os.waitpid(pid, os.WNOHANG)
        verdigris.sleep(0.02)
    print("child exit", done == pid and os.waitstatus_to_exitcode(status))
    print(value)
"""


@pytest.mark.parametrize("reinit", [True, False], ids=["reinit", "plain"])
def test_sleep_and_spawn_in_a_forked_child(reinit):
    proc = run_child(FORK_SCRIPT.format(reinit=reinit))
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == "child [2, 1, 0]\nchild exit 0\nparent still works\n"


# --- concurrency -----------------------------------------------------------------------------

def test_sleeps_run_concurrently():
    n, seconds = 100, 0.2
    t0 = time.perf_counter()
    gs = [gevent.spawn(gevent.sleep, seconds) for _ in range(n)]
    done = gevent.joinall(gs, timeout=n * seconds)
    elapsed = time.perf_counter() - t0
    assert len(done) == n
    sequential = n * seconds
    # Concurrent sleeps take about one sleep; sequential ones would take 20 s. A wide margin
    # (a quarter of the sequential time) keeps this stable on a noisy 2-core machine.
    assert elapsed < sequential / 4
