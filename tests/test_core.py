"""The top-level API: spawning, joining, killing, sleeping, waiting.

Every test runs real greenlets on the real hub; order is asserted as ``record == [...]`` and every
wait is bounded. Durations are compared with the sequential time, never with a tight absolute bound.
"""
import os
import subprocess
import sys
import textwrap
import time

import greenlet as raw_greenlet
import pytest

import verdigris as gevent
from verdigris import Greenlet, GreenletExit, Timeout
from verdigris.event import Event

# A bound for waits that should end almost at once; generous for a noisy 2-core machine.
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


def run_child(body):
    """Run *body* in a fresh interpreter after `CHILD_PREAMBLE`; return its stdout.

    The child imports the same verdigris as this process (same interpreter, same path) and must
    exit 0 within 60 seconds.
    """
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(p for p in sys.path if p))
    proc = subprocess.run([sys.executable, "-c", CHILD_PREAMBLE + textwrap.dedent(body)],
                          env=env, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


# --- spawn / spawn_later / spawn_raw ---------------------------------------------------------

def test_spawn_returns_started_greenlet_that_runs_later():
    record = []
    g = gevent.spawn(record.append, "ran")
    assert isinstance(g, Greenlet)
    assert g.started
    # spawn only schedules: nothing has run until the current greenlet yields.
    assert record == []
    g.join(timeout=BOUND)
    assert record == ["ran"]
    assert g.dead


def test_spawn_passes_args_and_kwargs_and_keeps_the_value():
    g = gevent.spawn(lambda a, b=0, *, c: (a, b, c), 1, b=2, c=3)
    assert g.args == (1,)
    assert g.kwargs == {"b": 2, "c": 3}
    assert g.get(timeout=BOUND) == (1, 2, 3)
    assert g.value == (1, 2, 3)


def test_spawned_greenlets_run_in_spawn_order():
    record = []
    gs = [gevent.spawn(record.append, i) for i in range(5)]
    gevent.joinall(gs, timeout=BOUND)
    assert record == [0, 1, 2, 3, 4]


def test_spawn_later_runs_after_the_delay_in_deadline_order():
    record = []
    t0 = time.perf_counter()
    late = gevent.spawn_later(0.2, record.append, "late")
    early = gevent.spawn_later(0.05, record.append, "early")
    now = gevent.spawn(record.append, "now")
    assert isinstance(late, Greenlet)
    gevent.joinall([late, early, now], timeout=BOUND)
    assert record == ["now", "early", "late"]
    assert time.perf_counter() - t0 >= 0.2 * 0.9


def test_spawn_later_passes_kwargs():
    g = gevent.spawn_later(0.01, dict, a=1)
    assert g.get(timeout=BOUND) == {"a": 1}


def test_spawn_raw_runs_a_plain_greenlet_with_args_and_kwargs():
    record = []
    g = gevent.spawn_raw(lambda a, b=None: record.append((a, b)), 1, b=2)
    assert isinstance(g, raw_greenlet.greenlet)
    assert not isinstance(g, Greenlet)
    assert record == []
    gevent.sleep(0)
    assert record == [(1, 2)]
    assert g.dead


# --- joinall ---------------------------------------------------------------------------------

def test_joinall_waits_for_all_and_returns_them_in_completion_order():
    a = gevent.spawn(gevent.sleep, 0.15)
    b = gevent.spawn(gevent.sleep, 0.01)
    c = gevent.spawn(gevent.sleep, 0.08)
    done = gevent.joinall([a, b, c], timeout=BOUND)
    assert done == [b, c, a]
    assert all(g.dead for g in (a, b, c))


def test_joinall_timeout_returns_only_the_finished_ones():
    quick = gevent.spawn(gevent.sleep, 0.01)
    slow = gevent.spawn(gevent.sleep, 10)
    try:
        t0 = time.perf_counter()
        done = gevent.joinall([quick, slow], timeout=0.2)
        assert time.perf_counter() - t0 < BOUND
        assert done == [quick]
        assert not slow.dead
    finally:
        slow.kill(block=True, timeout=BOUND)


def test_joinall_count_stops_after_count_greenlets():
    a = gevent.spawn(gevent.sleep, 10)
    b = gevent.spawn(gevent.sleep, 0.01)
    c = gevent.spawn(gevent.sleep, 0.05)
    try:
        done = gevent.joinall([a, b, c], timeout=BOUND, count=2)
        assert done == [b, c]
        assert not a.dead
    finally:
        a.kill(block=True, timeout=BOUND)


def test_joinall_does_not_raise_by_default(capfd):
    bad = gevent.spawn(lambda: 1 / 0)
    good = gevent.spawn(lambda: "ok")
    done = gevent.joinall([bad, good], timeout=BOUND)
    assert set(done) == {bad, good}
    assert good.value == "ok"
    assert isinstance(bad.exception, ZeroDivisionError)
    assert "ZeroDivisionError" in capfd.readouterr().err


def test_joinall_raise_error_raises_the_first_failure(capfd):
    slow = gevent.spawn(gevent.sleep, 10)
    bad = gevent.spawn(lambda: 1 / 0)
    try:
        # Bounded by a Timeout rather than timeout=: abandoning the wait early must not leave the
        # wait's own timer behind to keep the loop alive in later tests.
        with pytest.raises(ZeroDivisionError), Timeout(BOUND):
            gevent.joinall([slow, bad], raise_error=True)
        # It raised as soon as the failure was known, without waiting for the slow one.
        assert not slow.dead
    finally:
        slow.kill(block=True, timeout=BOUND)
    capfd.readouterr()


def test_joinall_of_nothing_returns_empty():
    assert gevent.joinall([], timeout=BOUND) == []


# --- kill / killall --------------------------------------------------------------------------

def _sleeper(record, name, seconds=10):
    try:
        gevent.sleep(seconds)
    except BaseException as e:
        record.append((name, type(e).__name__))
        raise


def test_killall_kills_every_greenlet_and_blocks_until_dead():
    record = []
    gs = [gevent.spawn(_sleeper, record, i) for i in range(3)]
    gevent.sleep(0)
    gevent.killall(gs, timeout=BOUND)
    assert all(g.dead for g in gs)
    assert sorted(record) == [(0, "GreenletExit"), (1, "GreenletExit"), (2, "GreenletExit")]
    assert all(g.successful() for g in gs)
    assert all(isinstance(g.value, GreenletExit) for g in gs)


def test_killall_with_exception_class(capfd):
    record = []
    gs = [gevent.spawn(_sleeper, record, i) for i in range(2)]
    gevent.sleep(0)
    gevent.killall(gs, exception=KeyError, timeout=BOUND)
    assert sorted(record) == [(0, "KeyError"), (1, "KeyError")]
    assert all(isinstance(g.exception, KeyError) for g in gs)
    capfd.readouterr()


def test_killall_not_blocking_returns_at_once_and_kills_asynchronously():
    record = []
    gs = [gevent.spawn(_sleeper, record, i) for i in range(3)]
    gevent.sleep(0)
    gevent.killall(gs, block=False)
    assert [g.dead for g in gs] == [False, False, False]
    gevent.joinall(gs, timeout=BOUND)
    assert [g.dead for g in gs] == [True, True, True]
    assert sorted(record) == [(0, "GreenletExit"), (1, "GreenletExit"), (2, "GreenletExit")]


def test_killall_timeout_raises_timeout_when_greenlets_refuse_to_die():
    def stubborn():
        try:
            gevent.sleep(10)
        except GreenletExit:
            gevent.sleep(1)
            return "outlived"

    gs = [gevent.spawn(stubborn) for _ in range(2)]
    gevent.sleep(0)
    t0 = time.perf_counter()
    with pytest.raises(Timeout):
        gevent.killall(gs, timeout=0.05)
    assert time.perf_counter() - t0 < 0.8  # well before the greenlets' 1 s
    gevent.joinall(gs, timeout=BOUND)
    assert [g.value for g in gs] == ["outlived", "outlived"]


def test_killall_of_unstarted_and_finished_greenlets():
    done = gevent.spawn(lambda: 1)
    done.join(timeout=BOUND)
    pending = gevent.spawn(lambda: 2)
    gevent.killall([done, pending], timeout=BOUND)
    assert done.value == 1
    assert pending.dead
    assert isinstance(pending.value, GreenletExit)


def test_kill_raw_greenlet_is_asynchronous():
    record = []

    def raw():
        try:
            gevent.sleep(10)
        except GreenletExit:
            record.append("exit")

    g = gevent.spawn_raw(raw)
    gevent.sleep(0)
    gevent.kill(g)
    # For a raw greenlet, kill() only schedules the exception.
    assert record == []
    assert not g.dead
    gevent.sleep(0.01)
    assert record == ["exit"]
    assert g.dead


def test_kill_raw_greenlet_with_exception():
    record = []

    def raw():
        try:
            gevent.sleep(10)
        except ValueError as e:
            record.append(e.args)

    g = gevent.spawn_raw(raw)
    gevent.sleep(0)
    gevent.kill(g, ValueError("x"))
    gevent.sleep(0.01)
    assert record == [("x",)]


def test_kill_greenlet_instance():
    record = []
    g = gevent.spawn(_sleeper, record, "g")
    gevent.sleep(0)
    gevent.kill(g)
    g.join(timeout=BOUND)
    assert record == [("g", "GreenletExit")]
    assert g.dead


# --- sleep -----------------------------------------------------------------------------------

def _round_robin(seconds):
    record = []

    def worker(name):
        for i in range(3):
            record.append(name + str(i))
            gevent.sleep(seconds)

    gevent.joinall([gevent.spawn(worker, n) for n in "abc"], timeout=BOUND)
    return record


def test_sleep_zero_yields_in_fifo_order():
    assert _round_robin(0) == ["a0", "b0", "c0", "a1", "b1", "c1", "a2", "b2", "c2"]


def test_sleep_negative_behaves_like_zero():
    t0 = time.perf_counter()
    assert _round_robin(-1) == ["a0", "b0", "c0", "a1", "b1", "c1", "a2", "b2", "c2"]
    assert time.perf_counter() - t0 < BOUND


def test_sleep_zero_in_main_lets_spawned_greenlets_run():
    record = []
    gevent.spawn(record.append, 1)
    gevent.spawn(record.append, 2)
    gevent.sleep(0)
    assert record == [1, 2]


def test_sleep_returns_none_and_waits_at_least_the_duration():
    t0 = time.perf_counter()
    assert gevent.sleep(0.1) is None
    assert time.perf_counter() - t0 >= 0.1 * 0.9


def test_sleeps_wake_in_deadline_order():
    record = []
    gs = [gevent.spawn(lambda d=d: (gevent.sleep(d), record.append(d))) for d in (0.15, 0.05, 0.1)]
    gevent.joinall(gs, timeout=BOUND)
    assert record == [0.05, 0.1, 0.15]


def test_sleep_ref_false_still_wakes_while_something_else_keeps_the_loop_alive():
    record = []
    keeper = gevent.spawn(gevent.sleep, 0.3)
    light = gevent.spawn(lambda: (gevent.sleep(0.05, ref=False), record.append("woke")))
    gevent.joinall([keeper, light], timeout=BOUND)
    assert record == ["woke"]


# --- idle / getcurrent / get_hub / reinit ----------------------------------------------------

def test_idle_lets_ready_greenlets_run():
    record = []
    gevent.spawn(record.append, 1)
    gevent.spawn(record.append, 2)
    assert gevent.idle() is None
    assert record == [1, 2]


def test_getcurrent_in_main_and_in_a_greenlet():
    assert gevent.getcurrent() is raw_greenlet.getcurrent()
    g = gevent.spawn(gevent.getcurrent)
    assert g.get(timeout=BOUND) is g


def test_get_hub_is_a_per_thread_singleton_and_the_parent_of_spawned_greenlets():
    hub = gevent.get_hub()
    assert gevent.get_hub() is hub
    assert hub.parent is raw_greenlet.getcurrent()
    g = gevent.spawn(gevent.get_hub)
    assert g.get(timeout=BOUND) is hub
    assert g.parent is hub


def test_reinit_keeps_the_hub_usable():
    record = []
    gevent.spawn(record.append, "before")
    assert gevent.reinit() is None
    g = gevent.spawn(lambda: (gevent.sleep(0.01), record.append("after")))
    g.join(timeout=BOUND)
    assert record == ["before", "after"]


# --- wait / iwait ----------------------------------------------------------------------------

def test_wait_on_objects_returns_them_in_ready_order():
    evt = Event()
    a = gevent.spawn(gevent.sleep, 0.1)
    b = gevent.spawn(gevent.sleep, 0.01)
    gevent.spawn_later(0.05, evt.set)
    assert gevent.wait([a, evt, b], timeout=BOUND) == [b, evt, a]


def test_wait_timeout_returns_what_is_ready():
    slow = gevent.spawn(gevent.sleep, 10)
    quick = gevent.spawn(gevent.sleep, 0.01)
    try:
        assert gevent.wait([slow, quick], timeout=0.2) == [quick]
    finally:
        slow.kill(block=True, timeout=BOUND)


def test_wait_count():
    slow = gevent.spawn(gevent.sleep, 10)
    quick = gevent.spawn(gevent.sleep, 0.01)
    try:
        assert gevent.wait([slow, quick], timeout=BOUND, count=1) == [quick]
    finally:
        slow.kill(block=True, timeout=BOUND)


def test_wait_without_objects_waits_for_the_loop_to_finish():
    # In a fresh process: in this one, earlier tests may have left watchers behind.
    out = run_child("""
        gs = [verdigris.spawn(verdigris.sleep, d) for d in (0.1, 0.05)]
        gs.append(verdigris.spawn_later(0.1, verdigris.sleep, 0.05))
        print(verdigris.wait(timeout=30), [g.dead for g in gs])
    """)
    assert out == "True [True, True, True]\n"


def test_wait_without_objects_timeout_returns_false():
    slow = gevent.spawn(gevent.sleep, 10)
    try:
        t0 = time.perf_counter()
        assert gevent.wait(timeout=0.05) is False
        assert time.perf_counter() - t0 < BOUND
        assert not slow.dead
    finally:
        slow.kill(block=True, timeout=BOUND)


def test_iwait_yields_objects_as_they_become_ready():
    record = []
    gs = [gevent.spawn(lambda d=d: (gevent.sleep(d), d)[1]) for d in (0.15, 0.01, 0.08)]
    for g in gevent.iwait(gs, timeout=BOUND):
        record.append(g.value)
    assert record == [0.01, 0.08, 0.15]


def test_iwait_with_objects_already_ready():
    evt = Event()
    evt.set()
    g = gevent.spawn(lambda: 1)
    g.join(timeout=BOUND)
    assert set(gevent.iwait([evt, g], timeout=BOUND)) == {evt, g}


def test_iwait_timeout():
    slow = gevent.spawn(gevent.sleep, 10)
    quick = gevent.spawn(gevent.sleep, 0.01)
    try:
        assert list(gevent.iwait([slow, quick], timeout=0.2)) == [quick]
    finally:
        slow.kill(block=True, timeout=BOUND)


def test_iwait_count():
    slow = gevent.spawn(gevent.sleep, 10)
    later = gevent.spawn(gevent.sleep, 0.1)
    sooner = gevent.spawn(gevent.sleep, 0.01)
    try:
        assert list(gevent.iwait([slow, later, sooner], timeout=BOUND, count=2)) == [sooner, later]
    finally:
        slow.kill(block=True, timeout=BOUND)


# --- with_timeout ----------------------------------------------------------------------------

def test_with_timeout_returns_the_value_when_in_time():
    assert gevent.with_timeout(BOUND, lambda a, b: a + b, 1, b=2) == 3


def test_with_timeout_raises_timeout():
    with pytest.raises(Timeout):
        gevent.with_timeout(0.05, gevent.sleep, 10)


def test_with_timeout_timeout_value_is_returned_instead():
    assert gevent.with_timeout(0.05, gevent.sleep, 10, timeout_value="late") == "late"
    assert gevent.with_timeout(0.05, gevent.sleep, 10, timeout_value=None) is None


def test_with_timeout_does_not_swallow_other_exceptions():
    with pytest.raises(ZeroDivisionError):
        gevent.with_timeout(BOUND, lambda: 1 / 0, timeout_value="x")


def test_with_timeout_does_not_fire_after_returning():
    gevent.with_timeout(0.05, lambda: None)
    gevent.sleep(0.1)  # the timeout was cancelled: nothing is raised here
