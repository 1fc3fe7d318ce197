"""Behaviour of verdigris.pool: Group and Pool (gevent's semantics)."""
import queue as stdlib_queue

import pytest

import verdigris
from verdigris.greenlet import Greenlet
from verdigris.pool import Group, Pool, PoolFull
from verdigris.queue import Queue


class Concurrency:
    """Counts how many tasks run at once."""

    def __init__(self):
        self.running = 0
        self.most = 0

    def task(self, value, delay=0.001):
        self.running += 1
        self.most = max(self.most, self.running)
        try:
            verdigris.sleep(delay)
            return value
        finally:
            self.running -= 1


class Quiet(verdigris.GreenletExit):
    """A kill exception the hub does not print."""


def _fail(message):
    raise ValueError(message)


# -- Group ---------------------------------------------------------------------------------------

def test_group_tracks_greenlets_until_they_finish():
    group = Group()
    assert len(group) == 0 and not group
    g = group.spawn(verdigris.sleep, 0.01)
    assert (len(group), g in group, list(group), bool(group)) == (1, True, [g], True)
    assert group.greenlets == {g}
    assert group.join(timeout=5) is True
    assert (len(group), g in group, g.dead) == (0, False, True)


def test_group_from_existing_greenlets():
    first = verdigris.spawn(verdigris.sleep, 0)
    second = verdigris.spawn(verdigris.sleep, 0.01)
    group = Group([first, second])
    assert len(group) == 2
    verdigris.joinall([first, second], timeout=5)
    verdigris.sleep(0)
    assert len(group) == 0


@pytest.mark.verdigris_only
def test_group_join_waits_for_initial_greenlets():
    # gevent's Group(greenlets).join() returns at once: its "empty" flag starts out set.
    g = verdigris.spawn(verdigris.sleep, 0.01)
    group = Group([g])
    assert group.join(timeout=5) is True
    assert g.dead and len(group) == 0


def test_group_join_timeout_returns_false():
    group = Group()
    g = group.spawn(verdigris.sleep, 10)
    assert group.join(timeout=0.01) is False
    assert g in group
    group.kill(block=True, timeout=5)
    assert g.dead


def test_group_join_raise_error():
    group = Group()
    group.spawn(_fail, 'in group')
    with pytest.raises(ValueError, match='in group'):
        group.join(timeout=5, raise_error=True)
    group.spawn(_fail, 'ignored')
    assert group.join(timeout=5) is True


def test_group_kill_kills_every_greenlet():
    group = Group()
    greenlets = [group.spawn(verdigris.sleep, 10) for _ in range(3)]
    verdigris.sleep(0)
    group.kill(block=True, timeout=5)
    assert len(group) == 0
    assert [(g.dead, g.successful()) for g in greenlets] == [(True, True)] * 3


def test_group_kill_with_exception_and_no_block():
    group = Group()
    g = group.spawn(verdigris.sleep, 10)
    verdigris.sleep(0)
    group.kill(Quiet, block=False)
    g.join(timeout=5)
    assert (g.dead, isinstance(g.value, Quiet)) == (True, True)
    assert group.join(timeout=5) is True


def test_group_killone():
    group = Group()
    victim = group.spawn(verdigris.sleep, 10)
    survivor = group.spawn(verdigris.sleep, 0.01)
    verdigris.sleep(0)
    group.killone(victim, block=True, timeout=5)
    assert victim.dead and victim not in group
    group.killone(verdigris.spawn(lambda: None))     # not a member: ignored
    assert group.join(timeout=5) is True
    assert survivor.successful()


def test_group_add_start_and_discard():
    group = Group()
    g = Greenlet(verdigris.sleep, 0.01)
    group.start(g)
    assert g in group and g.started
    group.discard(g)
    assert g not in group
    assert group.join(timeout=0) is True
    g.join(timeout=5)
    assert g.successful()


def test_group_is_never_full():
    group = Group()
    assert group.full() is False
    assert group.wait_available(timeout=0) is None


def test_group_greenlet_class_attribute():
    class Custom(Greenlet):
        pass

    group = Group()
    group.greenlet_class = Custom
    g = group.spawn(lambda: 1)
    assert type(g) is Custom
    assert g.get(timeout=5) == 1


# -- Pool ----------------------------------------------------------------------------------------

def test_pool_rejects_negative_size():
    with pytest.raises(ValueError):
        Pool(-1)


def test_pool_spawn_blocks_when_full_and_bounds_concurrency():
    pool = Pool(2)
    measure = Concurrency()
    record = []
    for i in range(6):
        pool.spawn(measure.task, i)
        record.append(('spawned', i, len(pool)))
    assert pool.join(timeout=10) is True
    assert measure.most == 2
    assert max(entry[2] for entry in record) == 2


def test_pool_free_count_full_and_wait_available():
    pool = Pool(2)
    assert (pool.free_count(), pool.full()) == (2, False)
    first = pool.spawn(verdigris.sleep, 10)
    assert (pool.free_count(), pool.full()) == (1, False)
    pool.spawn(verdigris.sleep, 0.01)
    assert (pool.free_count(), pool.full()) == (0, True)
    assert pool.wait_available(timeout=5) == 1
    assert pool.free_count() == 1
    first.kill(block=True, timeout=5)
    assert pool.join(timeout=5) is True
    assert pool.free_count() == 2


def test_pool_of_size_zero_is_always_full():
    pool = Pool(0)
    assert (pool.free_count(), pool.full()) == (0, True)
    assert pool.wait_available(timeout=0.01) == 0
    with pytest.raises(PoolFull):
        pool.add(Greenlet(lambda: None), blocking=False)


def test_unbounded_pool():
    pool = Pool()
    assert (pool.size, pool.free_count(), pool.full()) == (None, 1, False)
    measure = Concurrency()
    for i in range(5):
        pool.spawn(measure.task, i)
    assert pool.join(timeout=5) is True
    assert measure.most == 5


def test_pool_add_when_full_raises_pool_full():
    assert issubclass(PoolFull, stdlib_queue.Full)
    pool = Pool(1)
    pool.spawn(verdigris.sleep, 10)
    with pytest.raises(PoolFull):
        pool.add(Greenlet(lambda: None), blocking=False)
    with pytest.raises(PoolFull):
        pool.start(Greenlet(lambda: None), timeout=0.01)
    assert len(pool) == 1
    pool.kill(block=True, timeout=5)
    assert pool.free_count() == 1


def test_pool_greenlet_class_argument():
    class Custom(Greenlet):
        pass

    pool = Pool(1, greenlet_class=Custom)
    assert type(pool.spawn(lambda: None)) is Custom
    assert pool.join(timeout=5)


def test_pool_discard_frees_the_slot():
    pool = Pool(1)
    g = pool.spawn(verdigris.sleep, 10)
    pool.discard(g)
    assert (pool.free_count(), pool.full()) == (1, False)
    g.kill(block=True, timeout=5)
    assert pool.free_count() == 1


@pytest.mark.verdigris_only
def test_pool_discard_of_a_stranger_does_not_free_a_slot():
    # gevent gives a slot back even for a greenlet that was never in the pool.
    pool = Pool(1)
    member = pool.spawn(verdigris.sleep, 10)
    pool.discard(verdigris.spawn(lambda: None))
    with pytest.raises(PoolFull):
        pool.add(Greenlet(lambda: None), blocking=False)
    member.kill(block=True, timeout=5)


def test_pool_kill():
    pool = Pool(3)
    greenlets = [pool.spawn(verdigris.sleep, 10) for _ in range(3)]
    pool.kill(timeout=5)
    assert all(g.dead for g in greenlets)
    assert (len(pool), pool.free_count()) == (0, 3)


# -- apply and map -------------------------------------------------------------------------------

def test_apply_returns_result_and_propagates_errors():
    pool = Pool(2)
    assert pool.apply(lambda a, b=0: a + b, (1,), {'b': 2}) == 3
    with pytest.raises(ValueError, match='apply'):
        pool.apply(_fail, ('apply',))


def test_apply_from_a_member_runs_inline_even_when_full():
    pool = Pool(1)
    outer = pool.spawn(lambda: pool.apply(lambda: verdigris.getcurrent()))
    assert outer.get(timeout=5) is outer


def test_apply_async_returns_greenlet_and_calls_back_on_success():
    pool = Pool(2)
    record = []
    g = pool.apply_async(lambda x: x * 2, (21,), callback=record.append)
    assert isinstance(g, Greenlet)
    assert g.get(timeout=5) == 42
    failing = pool.apply_async(_fail, ('async',), callback=record.append)
    failing.join(timeout=5)
    assert pool.join(timeout=5)
    verdigris.sleep(0.01)
    assert record == [42]
    assert isinstance(failing.exception, ValueError)


def test_apply_async_on_full_pool_does_not_block():
    pool = Pool(1)
    blocker = pool.spawn(verdigris.sleep, 0.02)
    g = pool.apply_async(lambda: 'later')
    assert not blocker.dead
    assert g.get(timeout=5) == 'later'


def test_apply_cb():
    pool = Pool(2)
    record = []
    assert pool.apply_cb(lambda: 5, callback=record.append) == 5
    verdigris.sleep(0.01)
    assert record == [5]


def test_map_keeps_input_order():
    pool = Pool(3)
    measure = Concurrency()
    delays = [0.03, 0.01, 0.02, 0.0, 0.01]
    assert pool.map(lambda d: measure.task(d, d), delays) == delays
    assert measure.most == 3
    assert pool.map(str, []) == []


def test_map_propagates_an_error():
    pool = Pool(2)
    with pytest.raises(ValueError, match='map'):
        pool.map(_fail, ['map'])
    assert pool.join(timeout=5)


def test_map_async_and_map_cb():
    pool = Pool(2)
    record = []
    g = pool.map_async(lambda x: x + 1, [1, 2, 3], callback=record.append)
    assert g.get(timeout=5) == [2, 3, 4]
    assert record == [[2, 3, 4]]
    assert pool.map_cb(abs, [-1, -2]) == [1, 2]


# -- imap ----------------------------------------------------------------------------------------

def _sleep_and_return(x):
    verdigris.sleep(x / 100.0)
    return x


def test_imap_yields_in_input_order():
    pool = Pool(3)
    assert list(pool.imap(_sleep_and_return, [3, 1, 2, 0])) == [3, 1, 2, 0]


def test_imap_unordered_yields_in_completion_order():
    pool = Pool(3)
    assert list(pool.imap_unordered(_sleep_and_return, [3, 1, 2])) == [1, 2, 3]


def test_imap_unordered_with_pool_of_one_is_sequential():
    pool = Pool(1)
    assert list(pool.imap_unordered(_sleep_and_return, [3, 1, 2])) == [3, 1, 2]


def test_imap_on_empty_input():
    pool = Pool(2)
    assert list(pool.imap(str, [])) == []
    assert list(pool.imap_unordered(str, [])) == []


def test_imap_takes_several_iterables_in_parallel():
    group = Group()
    assert list(group.imap(lambda a, b: a * b, [1, 2, 3], [10, 20, 30])) == [10, 40, 90]


def test_imap_rejects_unknown_keywords():
    with pytest.raises(TypeError):
        Pool(1).imap(str, [1], chunksize=2)


def test_imap_reraises_a_failed_item_and_goes_on():
    pool = Pool(2)

    def maybe_fail(x):
        if x == 1:
            raise ValueError('item 1')
        return x

    iterator = pool.imap(maybe_fail, [0, 1, 2])
    record = []
    for _ in range(3):
        try:
            record.append(next(iterator))
        except ValueError as ex:
            record.append(str(ex))
    assert record == [0, 'item 1', 2]
    with pytest.raises(StopIteration):
        next(iterator)


def test_imap_reads_an_iterable_that_blocks():
    # gevent issue 423: the input is read in the feeder greenlet, which may block.
    q = Queue()
    q.put(123)
    verdigris.spawn_later(0.01, q.put, StopIteration)
    assert list(Pool(2).imap(lambda x: x, q)) == [123]


def test_imap_maxsize_bounds_unread_results():
    pool = Pool(10)
    started = []

    def task(i):
        started.append(i)
        return i

    for method in (pool.imap, pool.imap_unordered):
        del started[:]
        iterator = method(task, range(20), maxsize=1)
        results = []
        for i, value in enumerate(iterator):
            assert len(started) <= i + 2
            results.append(value)
            verdigris.sleep(0.001)
        assert sorted(results) == list(range(20))


def test_imap_raises_an_error_of_the_input_after_the_earlier_results():
    def numbers():
        yield 1
        yield 2
        raise KeyError('input failed')

    iterator = Pool(2).imap(lambda x: x * 10, numbers())
    assert next(iterator) == 10
    assert next(iterator) == 20
    with pytest.raises(KeyError):
        next(iterator)
