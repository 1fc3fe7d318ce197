"""Behaviour of verdigris.lock (Semaphore, BoundedSemaphore, DummySemaphore, RLock) and the
verdigris.coros alias module."""
import pytest

import verdigris
import verdigris.exceptions
from verdigris.lock import BoundedSemaphore, DummySemaphore, RLock, Semaphore


def _spawn_acquirers(sem, record, count, **acquire_kwargs):
    def acquirer(i):
        record.append(('acquired', i, sem.acquire(**acquire_kwargs)))
    return [verdigris.spawn(acquirer, i) for i in range(count)]


# -- Semaphore -----------------------------------------------------------------------------------

def test_counter_locked_and_nonblocking_acquire():
    sem = Semaphore(2)
    assert (sem.counter, sem.locked(), sem.ready()) == (2, False, True)
    assert sem.acquire() is True
    assert sem.acquire(blocking=False) is True
    assert (sem.counter, sem.locked(), sem.ready()) == (0, True, False)
    assert sem.acquire(blocking=False) is False
    assert sem.acquire(False) is False
    sem.release()
    assert sem.counter == 1


def test_default_value_is_one():
    sem = Semaphore()
    assert sem.counter == 1


def test_negative_initial_value_is_rejected():
    with pytest.raises(ValueError):
        Semaphore(-1)
    with pytest.raises(ValueError):
        BoundedSemaphore(-1)


def test_zero_semaphore_acquire_times_out():
    sem = Semaphore(0)
    assert sem.acquire(timeout=0.01) is False
    assert sem.acquire(blocking=True, timeout=0) is False
    assert sem.linkcount() == 0
    assert sem.counter == 0


def test_blocked_acquirers_wake_in_fifo_order_after_releaser_yields():
    sem = Semaphore(0)
    record = []
    acquirers = _spawn_acquirers(sem, record, 3)
    verdigris.sleep(0)
    assert sem.linkcount() == 3
    sem.release()
    sem.release()
    sem.release()
    record.append('released')           # release() never switches
    verdigris.joinall(acquirers, timeout=5)
    assert record == ['released', ('acquired', 0, True), ('acquired', 1, True),
                      ('acquired', 2, True)]
    assert sem.counter == 0


def test_one_release_wakes_exactly_one_waiter():
    sem = Semaphore(0)
    record = []
    acquirers = _spawn_acquirers(sem, record, 2)
    verdigris.sleep(0)
    sem.release()
    verdigris.sleep(0)
    verdigris.sleep(0)
    assert record == [('acquired', 0, True)]
    assert sem.linkcount() == 1
    sem.release()
    verdigris.joinall(acquirers, timeout=5)
    assert record == [('acquired', 0, True), ('acquired', 1, True)]


def test_releaser_that_reacquires_before_yielding_keeps_it_and_waiter_stays_queued():
    sem = Semaphore(1)
    sem.acquire()
    record = []
    acquirers = _spawn_acquirers(sem, record, 1)
    verdigris.sleep(0)
    sem.release()
    assert sem.acquire(blocking=False) is True   # the count is free until the waiter runs
    verdigris.sleep(0)
    assert record == []
    assert sem.linkcount() == 1
    sem.release()
    verdigris.joinall(acquirers, timeout=5)
    assert record == [('acquired', 0, True)]


def test_acquire_timeout_returns_false_and_leaves_the_queue():
    sem = Semaphore(0)
    record = []
    acquirers = _spawn_acquirers(sem, record, 2, timeout=0.01)
    verdigris.joinall(acquirers, timeout=5)
    assert record == [('acquired', 0, False), ('acquired', 1, False)]
    assert sem.linkcount() == 0
    sem.release()
    assert sem.counter == 1


def test_killed_waiter_does_not_consume_a_release():
    sem = Semaphore(0)
    record = []
    acquirers = _spawn_acquirers(sem, record, 2)
    verdigris.sleep(0)
    acquirers[0].kill(block=True, timeout=5)
    sem.release()
    verdigris.joinall(acquirers, timeout=5)
    assert record == [('acquired', 1, True)]
    assert sem.counter == 0


def test_context_manager_acquires_and_releases():
    sem = Semaphore(1)
    with sem:
        assert sem.counter == 0
    assert sem.counter == 1
    with pytest.raises(KeyError):
        with sem:
            raise KeyError('inside')
    assert sem.counter == 1


def test_wait_returns_count_without_acquiring():
    sem = Semaphore(2)
    assert sem.wait() == 2
    assert sem.counter == 2
    empty = Semaphore(0)
    assert empty.wait(timeout=0.01) == 0
    record = []

    def waiter():
        record.append(('waited', empty.wait()))

    g = verdigris.spawn(waiter)
    verdigris.sleep(0)
    empty.release()
    g.join(timeout=5)
    assert record == [('waited', 1)]
    assert empty.counter == 1


def test_uncontended_acquire_and_release_work_inside_a_loop_callback():
    # They never switch, so the hub itself may use them.
    sem = Semaphore(1)
    record = []

    def callback():
        record.append(sem.acquire())
        record.append(sem.release())

    verdigris.get_hub().loop.run_callback(callback)
    verdigris.sleep(0)
    assert record == [True, 1]


def test_rawlink_called_when_released(hub):
    sem = Semaphore(0)
    record = []
    sem.rawlink(lambda source: record.append(source.counter))
    sem.release()
    assert record == []
    verdigris.sleep(0)
    assert record == [1]


def test_tutorial_bounded_semaphore_of_two_limits_concurrency():
    # The tutorial's example (seed 07) and the interleaving gevent 26 prints for it.
    sem = BoundedSemaphore(2)
    record = []

    def worker(n):
        sem.acquire()
        record.append('%d acquired' % n)
        verdigris.sleep(0)
        sem.release()
        record.append('%d released' % n)

    verdigris.joinall([verdigris.spawn(worker, i) for i in range(6)], timeout=5)
    assert record == ['0 acquired', '1 acquired', '0 released', '1 released',
                      '2 acquired', '3 acquired', '2 released', '3 released',
                      '4 acquired', '5 acquired', '4 released', '5 released']


def test_semaphore_guards_a_resource_across_switches():
    sem = Semaphore(2)
    holders = []
    most = []

    def worker():
        with sem:
            holders.append(1)
            most.append(len(holders))
            verdigris.sleep(0.001)
            holders.pop()

    verdigris.joinall([verdigris.spawn(worker) for _ in range(10)], timeout=10)
    assert len(most) == 10
    assert max(most) == 2


# -- BoundedSemaphore ----------------------------------------------------------------------------

def test_bounded_semaphore_rejects_over_release():
    sem = BoundedSemaphore(2)
    with pytest.raises(ValueError):
        sem.release()
    sem.acquire()
    sem.release()
    with pytest.raises(ValueError):
        sem.release()
    assert sem.counter == 2


def test_bounded_semaphore_is_a_semaphore():
    sem = BoundedSemaphore()
    assert isinstance(sem, Semaphore)
    assert sem.acquire(blocking=False) is True
    assert sem.acquire(blocking=False) is False


# -- DummySemaphore ------------------------------------------------------------------------------

def test_dummy_semaphore_never_blocks():
    sem = DummySemaphore()
    assert DummySemaphore(5).acquire() is True
    for _ in range(3):
        assert sem.acquire() is True
    assert sem.acquire(blocking=False, timeout=0) is True
    assert (sem.locked(), sem.ready(), sem.wait(), sem.wait(timeout=0)) == (False, True, 1, 1)
    sem.release()
    sem.rawlink(print)
    sem.unlink(print)
    with sem:
        pass


# -- RLock ---------------------------------------------------------------------------------------

def test_rlock_is_reentrant_for_its_owner():
    lock = RLock()
    assert lock.locked() is False
    assert lock.acquire()
    assert lock.acquire()
    assert lock.locked() is True
    lock.release()
    assert lock.locked() is True
    lock.release()
    assert lock.locked() is False


def test_rlock_blocks_other_greenlets_until_fully_released():
    lock = RLock()
    record = []

    def other():
        record.append(('nonblocking', bool(lock.acquire(blocking=False))))
        record.append(('blocking', bool(lock.acquire())))
        lock.release()

    lock.acquire()
    lock.acquire()
    g = verdigris.spawn(other)
    verdigris.sleep(0)
    lock.release()
    verdigris.sleep(0)
    record.append('main released once')
    lock.release()
    g.join(timeout=5)
    assert record == [('nonblocking', False), 'main released once', ('blocking', True)]
    assert lock.locked() is False


def test_rlock_acquire_timeout():
    lock = RLock()
    lock.acquire()
    result = []
    g = verdigris.spawn(lambda: result.append(bool(lock.acquire(timeout=0.01))))
    g.join(timeout=5)
    assert result == [False]
    lock.release()


def test_rlock_release_by_non_owner_raises_runtime_error():
    lock = RLock()
    with pytest.raises(RuntimeError, match='cannot release un-acquired lock'):
        lock.release()
    lock.acquire()
    errors = []

    def intruder():
        try:
            lock.release()
        except RuntimeError as ex:
            errors.append(str(ex))

    verdigris.spawn(intruder).join(timeout=5)
    assert len(errors) == 1 and errors[0].startswith('cannot release un-acquired lock')
    assert lock.locked() is True
    lock.release()


def test_rlock_context_manager():
    lock = RLock()
    with lock:
        with lock:
            assert lock.locked()
    assert not lock.locked()


# -- coros ---------------------------------------------------------------------------------------

@pytest.mark.verdigris_only
def test_coros_reexports_the_primitives_for_old_code():
    # gevent 26 removed gevent.coros; verdigris keeps it for the tutorial.
    from verdigris import coros, event, lock, queue
    assert coros.BoundedSemaphore is lock.BoundedSemaphore
    assert coros.Semaphore is lock.Semaphore
    assert coros.RLock is lock.RLock
    assert coros.DummySemaphore is lock.DummySemaphore
    assert coros.Event is event.Event
    assert coros.AsyncResult is event.AsyncResult
    assert coros.Queue is queue.Queue
    assert coros.JoinableQueue is queue.JoinableQueue


def test_blocking_acquire_inside_a_loop_callback_is_refused():
    sem = Semaphore(0)
    record = []

    def callback():
        try:
            sem.acquire()
        except verdigris.exceptions.BlockingSwitchOutError:
            record.append('refused')

    verdigris.get_hub().loop.run_callback(callback)
    verdigris.sleep(0)
    assert record == ['refused']
    assert sem.linkcount() == 0


def test_acquire_forever_with_nothing_else_to_run_raises_loop_exit():
    sem = Semaphore(0)
    # The unreferenced guard does not keep the loop alive; it only bounds a leaky test suite.
    with verdigris.Timeout(10, ref=False):
        with pytest.raises(verdigris.exceptions.LoopExit):
            sem.acquire()
    assert sem.linkcount() == 0


def test_bounded_semaphore_fork_reinit_restores_the_initial_count():
    # threading and logging call _at_fork_reinit on their locks in a forked child.
    sem = BoundedSemaphore(2)
    sem.acquire()
    sem.acquire()
    sem._at_fork_reinit()
    assert sem.counter == 2
    assert sem.acquire(blocking=False) is True
