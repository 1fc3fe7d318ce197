"""Behaviour of verdigris.event: Event and AsyncResult (gevent's semantics)."""
import sys

import pytest

import verdigris
import verdigris.exceptions
from verdigris.event import AsyncResult, Event
from verdigris.timeout import Timeout


def _spawn_waiters(event, record, count, method='wait'):
    def waiter(i):
        record.append(('woke', i, getattr(event, method)()))
    return [verdigris.spawn(waiter, i) for i in range(count)]


# -- Event ---------------------------------------------------------------------------------------

def test_new_event_is_clear():
    ev = Event()
    assert (ev.is_set(), ev.isSet(), ev.ready()) == (False, False, False)
    ev.set()
    assert (ev.is_set(), ev.isSet(), ev.ready()) == (True, True, True)
    ev.clear()
    assert ev.is_set() is False


def test_set_wakes_every_waiter_in_wait_order_after_setter_yields():
    ev = Event()
    record = []
    waiters = _spawn_waiters(ev, record, 3)
    verdigris.sleep(0)                  # let them block
    assert ev.linkcount() == 3
    ev.set()
    record.append('set returned')       # set() itself never switches
    verdigris.joinall(waiters, timeout=5)
    assert record == ['set returned', ('woke', 0, True), ('woke', 1, True), ('woke', 2, True)]
    assert ev.linkcount() == 0


def test_wait_on_set_event_returns_true_without_yielding():
    ev = Event()
    ev.set()
    record = []
    other = verdigris.spawn(record.append, 'other ran')
    assert ev.wait() is True
    assert ev.wait(timeout=5) is True
    record.append('main')
    other.join(timeout=5)
    assert record == ['main', 'other ran']


def test_wait_timeout_returns_false_and_unlinks():
    ev = Event()
    assert ev.wait(timeout=0.01) is False
    assert ev.linkcount() == 0
    assert ev.wait(0) is False


def test_wait_reports_a_set_that_was_cleared_before_the_waiter_ran():
    ev = Event()
    record = []
    waiters = _spawn_waiters(ev, record, 2)
    verdigris.sleep(0)
    ev.set()
    ev.clear()
    verdigris.joinall(waiters, timeout=5)
    assert record == [('woke', 0, True), ('woke', 1, True)]
    assert ev.is_set() is False


def test_clear_makes_wait_block_again():
    ev = Event()
    ev.set()
    ev.clear()
    assert ev.wait(timeout=0.01) is False


def test_waiter_that_waits_again_after_clear_is_not_rewoken_by_same_set():
    ev = Event()
    record = []

    def waiter():
        record.append(('first', ev.wait()))
        ev.clear()
        record.append(('second', ev.wait(timeout=0.05)))

    g = verdigris.spawn(waiter)
    verdigris.sleep(0)
    ev.set()
    g.join(timeout=5)
    assert record == [('first', True), ('second', False)]


def test_wait_on_set_event_with_pending_round_runs_after_blocked_waiters():
    # gevent issue 1520: a greenlet that did not have to block runs after those that did.
    ev = Event()
    record = []
    waiters = _spawn_waiters(ev, record, 2)
    verdigris.sleep(0)
    ev.set()
    assert ev.wait() is True
    record.append('main')
    verdigris.joinall(waiters, timeout=5)
    assert record == [('woke', 0, True), ('woke', 1, True), 'main']


def test_outer_timeout_propagates_from_wait():
    ev = Event()
    with pytest.raises(Timeout):
        with Timeout(0.01):
            ev.wait()
    assert ev.linkcount() == 0


def test_killed_waiter_is_unlinked():
    ev = Event()
    record = []
    waiters = _spawn_waiters(ev, record, 2)
    verdigris.sleep(0)
    waiters[0].kill(block=True, timeout=5)
    assert ev.linkcount() == 1
    ev.set()
    verdigris.joinall(waiters, timeout=5)
    assert record == [('woke', 1, True)]


def test_rawlink_called_once_in_hub_after_set():
    ev = Event()
    hub = verdigris.get_hub()
    record = []
    ev.rawlink(lambda source: record.append((source is ev, verdigris.getcurrent() is hub)))
    ev.set()
    assert record == []                 # never called synchronously
    verdigris.sleep(0)
    assert record == [(True, True)]
    assert ev.linkcount() == 0          # unlinked before being called
    ev.clear()
    ev.set()
    verdigris.sleep(0)
    assert record == [(True, True)]


def test_rawlink_on_set_event_is_scheduled(hub):
    # With the hub in place (the fixture): gevent calls links synchronously when there is none.
    ev = Event()
    ev.set()
    record = []
    ev.rawlink(record.append)
    assert record == []
    verdigris.sleep(0)
    assert record == [ev]


def test_rawlink_rejects_non_callable():
    with pytest.raises(TypeError):
        Event().rawlink(42)


def test_unlink_removes_callback_and_tolerates_unknown():
    ev = Event()
    record = []
    ev.rawlink(record.append)
    ev.unlink(record.append)
    ev.unlink(record.append)            # not linked any more: no error
    ev.set()
    verdigris.sleep(0)
    assert record == []


def test_each_registration_of_a_callback_is_called(hub):
    # gevent calls a repeated callable in the next round, verdigris in the same one: after a
    # few loop turns, both have made one call per registration.
    ev = Event()
    record = []

    def callback(source):
        record.append('called')

    ev.rawlink(callback)
    ev.rawlink(callback)
    ev.rawlink(callback)
    ev.unlink(callback)                 # takes back one registration of three
    assert ev.linkcount() == 2
    ev.set()
    for _ in range(5):
        verdigris.sleep(0)
    assert record == ['called', 'called']
    assert ev.linkcount() == 0


def test_links_run_in_link_order_and_an_error_does_not_stop_the_round(capsys):
    ev = Event()
    record = []

    def broken(source):
        record.append('broken')
        raise ZeroDivisionError('link failed')

    ev.rawlink(lambda source: record.append('first'))
    ev.rawlink(broken)
    ev.rawlink(lambda source: record.append('last'))
    ev.set()
    verdigris.sleep(0)
    assert record == ['first', 'broken', 'last']
    assert 'ZeroDivisionError' in capsys.readouterr().err


def test_many_waiters_wake_in_fifo_order():
    ev = Event()
    record = []

    def waiter(i):
        ev.wait()
        record.append(i)

    waiters = [verdigris.spawn(waiter, i) for i in range(1000)]
    verdigris.sleep(0)
    ev.set()
    verdigris.joinall(waiters, timeout=30)
    assert record == list(range(1000))


# -- AsyncResult ---------------------------------------------------------------------------------

def test_async_result_unset_state():
    result = AsyncResult()
    assert (result.ready(), result.successful(), result.value, result.exception) == \
        (False, False, None, None)
    assert result.exc_info == ()
    assert (result.done(), result.cancel(), result.cancelled()) == (False, False, False)


def test_async_result_set_wakes_getters_in_order_with_value():
    result = AsyncResult()
    record = []
    getters = _spawn_waiters(result, record, 3, method='get')
    verdigris.sleep(0)
    result.set('hello')
    record.append('set returned')
    verdigris.joinall(getters, timeout=5)
    assert record == ['set returned', ('woke', 0, 'hello'), ('woke', 1, 'hello'),
                      ('woke', 2, 'hello')]
    assert (result.ready(), result.successful(), result.value) == (True, True, 'hello')
    assert result.get() == 'hello'
    assert result.get_nowait() == 'hello'
    assert result.wait() == 'hello'
    assert result.result() == 'hello'


def test_async_result_none_is_a_value():
    result = AsyncResult()
    result.set()
    assert (result.ready(), result.successful(), result.get()) == (True, True, None)


def test_async_result_set_exception_raises_in_getters():
    result = AsyncResult()
    record = []

    def getter():
        try:
            result.get()
        except KeyError as ex:
            record.append(('raised', ex.args))

    g = verdigris.spawn(getter)
    verdigris.sleep(0)
    result.set_exception(KeyError('boom'))
    g.join(timeout=5)
    assert record == [('raised', ('boom',))]
    assert (result.ready(), result.successful(), result.value) == (True, False, None)
    assert isinstance(result.exception, KeyError)
    assert result.exc_info[:2] == (KeyError, result.exception)
    assert result.wait() is None        # wait never raises the stored exception
    with pytest.raises(KeyError):
        result.get_nowait()


def test_async_result_set_exception_keeps_given_traceback():
    def failing_function():
        raise ValueError('deep')

    try:
        failing_function()
    except ValueError:
        exc_info = sys.exc_info()
    result = AsyncResult()
    result.set_exception(exc_info[1], exc_info)
    with pytest.raises(ValueError) as raised:
        result.get()
    names = [entry.name for entry in raised.traceback]
    assert 'failing_function' in names


def test_async_result_get_nonblocking_unset_raises_timeout():
    result = AsyncResult()
    with pytest.raises(Timeout):
        result.get(block=False)
    with pytest.raises(Timeout):
        result.get_nowait()


def test_async_result_get_timeout_raises_timeout_and_unlinks():
    result = AsyncResult()
    with pytest.raises(Timeout):
        result.get(timeout=0.01)
    assert result.linkcount() == 0


def test_async_result_wait_timeout_returns_none():
    result = AsyncResult()
    assert result.wait(timeout=0.01) is None
    assert result.linkcount() == 0


def test_async_result_as_link_copies_greenlet_value():
    result = AsyncResult()
    verdigris.spawn(lambda: 42).link(result)
    assert result.get(timeout=5) == 42


def test_async_result_as_link_copies_greenlet_exception_with_traceback():
    def worker_function():
        raise ZeroDivisionError('in greenlet')

    result = AsyncResult()
    g = verdigris.spawn(worker_function)
    g.link(result)
    with pytest.raises(ZeroDivisionError) as raised:
        result.get(timeout=5)
    assert 'worker_function' in [entry.name for entry in raised.traceback]
    assert result.exception is g.exception


def test_async_result_rawlink_after_set_is_called():
    result = AsyncResult()
    result.set_result(7)
    record = []
    result.rawlink(lambda source: record.append(source.get()))
    verdigris.sleep(0)
    assert record == [7]


def test_wait_inside_a_loop_callback_cannot_block():
    ev = Event()
    record = []

    def callback():
        try:
            ev.wait()
        except verdigris.exceptions.BlockingSwitchOutError:
            record.append('refused')

    verdigris.get_hub().loop.run_callback(callback)
    verdigris.sleep(0)
    assert record == ['refused']
    assert ev.linkcount() == 0


def test_waiting_forever_with_nothing_else_to_run_raises_loop_exit():
    ev = Event()
    # The unreferenced guard does not keep the loop alive; it only bounds a leaky test suite.
    with Timeout(10, ref=False):
        with pytest.raises(verdigris.exceptions.LoopExit):
            ev.wait()
    assert ev.linkcount() == 0


def test_stray_switch_into_a_waiter_raises_invalid_switch_error_and_unlinks():
    ev = Event()
    record = []

    def waiter():
        try:
            ev.wait()
        except verdigris.exceptions.InvalidSwitchError:
            record.append('invalid switch')

    g = verdigris.spawn(waiter)
    verdigris.sleep(0)
    verdigris.get_hub().loop.run_callback(g.switch, 'bogus')
    g.join(timeout=5)
    assert record == ['invalid switch']
    assert ev.linkcount() == 0
