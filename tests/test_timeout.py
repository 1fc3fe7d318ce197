"""Timeout: arming, cancelling, the context manager, what is raised and in which greenlet.

Every test bounds its waits; elapsed times are compared only with generous bounds.
"""
import time

import pytest

import verdigris as gevent
from verdigris import Timeout
from verdigris.timeout import with_timeout

BOUND = 5


class TooLong(Exception):
    pass


def test_timeout_is_a_base_exception_not_an_exception():
    # ``except Exception`` in user code must not swallow a timeout.
    assert issubclass(Timeout, BaseException)
    assert not issubclass(Timeout, Exception)


def test_constructor_defaults():
    t = Timeout()
    assert t.seconds is None
    assert t.exception is None
    assert not t.pending
    t = Timeout(1.5, TooLong)
    assert t.seconds == 1.5
    assert t.exception is TooLong
    assert not t.pending  # constructing does not start it


def test_start_raises_the_timeout_itself_in_the_current_greenlet():
    t = Timeout(0.05)
    t.start()
    assert t.pending
    t0 = time.perf_counter()
    with pytest.raises(Timeout) as info:
        gevent.sleep(BOUND)
    assert info.value is t
    assert time.perf_counter() - t0 < BOUND
    assert not t.pending


def test_start_new_creates_and_starts():
    t = Timeout.start_new(0.05)
    assert isinstance(t, Timeout)
    assert t.pending
    with pytest.raises(Timeout) as info:
        gevent.sleep(BOUND)
    assert info.value is t


def test_start_new_with_exception():
    t = Timeout.start_new(0.05, TooLong)
    try:
        with pytest.raises(TooLong):
            gevent.sleep(BOUND)
    finally:
        t.cancel()


def test_start_new_with_a_timeout_instance_starts_and_returns_it():
    t = Timeout(0.05)
    assert Timeout.start_new(t) is t
    assert t.pending
    t.cancel()
    assert not t.pending


def test_cancel_prevents_firing():
    t = Timeout.start_new(0.05)
    t.cancel()
    assert not t.pending
    gevent.sleep(0.1)  # nothing is raised


def test_cancel_then_start_again_rearms():
    t = Timeout(0.05)
    t.start()
    t.cancel()
    gevent.sleep(0.1)
    t.start()
    assert t.pending
    with pytest.raises(Timeout) as info:
        gevent.sleep(BOUND)
    assert info.value is t


def test_cancel_is_idempotent_and_safe_before_start():
    t = Timeout(0.05)
    t.cancel()
    t.start()
    t.cancel()
    t.cancel()
    assert not t.pending
    gevent.sleep(0.1)


def test_close_cancels():
    t = Timeout.start_new(0.05)
    t.close()
    assert not t.pending
    gevent.sleep(0.1)


def test_context_manager_returns_the_started_timeout_and_cancels_on_exit():
    with Timeout(0.1) as t:
        assert isinstance(t, Timeout)
        assert t.pending
    assert not t.pending
    gevent.sleep(0.2)  # cancelled on exit: nothing is raised


def test_context_manager_cancels_when_the_block_raises():
    with pytest.raises(KeyError):
        with Timeout(0.05) as t:
            raise KeyError("inside")
    assert not t.pending
    gevent.sleep(0.1)


def test_context_manager_raises_itself():
    record = []
    with pytest.raises(Timeout) as info:
        with Timeout(0.05) as t:
            gevent.sleep(BOUND)
            record.append("not reached")
    assert info.value is t
    assert record == []


def test_timeout_false_is_silent():
    record = []
    t0 = time.perf_counter()
    with Timeout(0.05, False):
        gevent.sleep(BOUND)
        record.append("not reached")
    record.append("after")
    assert record == ["after"]
    assert time.perf_counter() - t0 < BOUND


def test_silent_timeout_lets_a_finished_block_complete():
    record = []
    with Timeout(BOUND, False):
        gevent.sleep(0.01)
        record.append("inside")
    assert record == ["inside"]


def test_exception_class_is_instantiated_and_raised():
    with pytest.raises(TooLong) as info:
        with Timeout(0.05, TooLong):
            gevent.sleep(BOUND)
    assert type(info.value) is TooLong


def test_exception_instance_is_raised_as_is():
    exc = TooLong("exactly this one")
    with pytest.raises(TooLong) as info:
        with Timeout(0.05, exc):
            gevent.sleep(BOUND)
    assert info.value is exc


def test_string_exception_is_a_message_on_the_timeout():
    with pytest.raises(Timeout) as info:
        with Timeout(0.05, "took too long") as t:
            gevent.sleep(BOUND)
    assert info.value is t
    assert "took too long" in str(info.value)


def test_nested_inner_fires_first():
    with Timeout(BOUND) as outer:
        with pytest.raises(Timeout) as info:
            with Timeout(0.05):
                gevent.sleep(BOUND)
        assert info.value is not outer
        assert outer.pending
    assert not outer.pending


def test_nested_outer_fires_first_and_passes_through_the_inner_block():
    record = []
    with pytest.raises(Timeout) as info:
        with Timeout(0.05) as outer:
            with Timeout(BOUND) as inner:
                gevent.sleep(BOUND)
            record.append("not reached")
    assert info.value is outer
    assert not inner.pending
    assert record == []


def test_nested_silent_inner_does_not_swallow_the_outer():
    record = []
    with pytest.raises(Timeout) as info:
        with Timeout(0.05) as outer:
            with Timeout(BOUND, False):
                gevent.sleep(BOUND)
            record.append("not reached")
    assert info.value is outer
    assert record == []


def test_nested_silent_outer_swallows_only_itself():
    record = []
    with Timeout(0.05, False):
        with pytest.raises(TooLong):
            with Timeout(0.01, TooLong):
                gevent.sleep(BOUND)
        record.append("inner fired")
        gevent.sleep(BOUND)
        record.append("not reached")
    assert record == ["inner fired"]


def test_timeout_none_never_fires():
    t = Timeout(None)
    t.start()
    assert not t.pending
    with Timeout(None) as t2:
        gevent.sleep(0.1)
    assert not t2.pending
    t.cancel()


def test_timeout_zero_fires_once_the_loop_runs():
    with pytest.raises(Timeout):
        with Timeout(0):
            gevent.sleep(0.05)


def test_timeout_zero_without_yielding_does_not_fire():
    record = []
    with Timeout(0):
        record.append("no switch, no timeout")
    assert record == ["no switch, no timeout"]
    gevent.sleep(0.05)  # left unarmed on exit: nothing is raised later


def test_timeout_fires_in_the_greenlet_that_started_it():
    record = []

    def worker():
        try:
            with Timeout(0.05):
                gevent.sleep(BOUND)
        except Timeout:
            record.append("worker timed out")
        return "done"

    g = gevent.spawn(worker)
    gevent.sleep(0.3)  # main is not interrupted
    record.append("main fine")
    assert g.get(timeout=BOUND) == "done"
    assert record == ["worker timed out", "main fine"]


def test_timeout_started_in_main_interrupts_main_not_the_joined_greenlet():
    g = gevent.spawn(gevent.sleep, 0.5)
    t = Timeout.start_new(0.05)
    try:
        with pytest.raises(Timeout) as info:
            g.join()
        assert info.value is t
        assert not g.dead  # the greenlet it waited on goes on
        g.join(timeout=BOUND)
        assert g.successful()
    finally:
        t.cancel()


def test_many_timeouts_fire_in_deadline_order():
    record = []

    def worker(seconds):
        try:
            with Timeout(seconds):
                gevent.sleep(BOUND)
        except Timeout:
            record.append(seconds)

    gs = [gevent.spawn(worker, s) for s in (0.15, 0.05, 0.1, 0.01)]
    gevent.joinall(gs, timeout=BOUND)
    assert record == [0.01, 0.05, 0.1, 0.15]


# --- with_timeout ----------------------------------------------------------------------------

def test_with_timeout_passes_args_and_returns_result():
    assert with_timeout(BOUND, lambda a, b=0: a * b, 6, b=7) == 42


def test_with_timeout_raises_timeout_without_timeout_value():
    with pytest.raises(Timeout):
        with_timeout(0.05, gevent.sleep, BOUND)


@pytest.mark.parametrize("value", [None, 0, "", False, "late"])
def test_with_timeout_returns_timeout_value_whatever_it_is(value):
    assert with_timeout(0.05, gevent.sleep, BOUND, timeout_value=value) is value


def test_with_timeout_in_time_ignores_timeout_value():
    assert with_timeout(BOUND, lambda: "real", timeout_value="fallback") == "real"
