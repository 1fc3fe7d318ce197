"""Behaviour of verdigris.queue: Queue (joinable), SimpleQueue, LifoQueue, PriorityQueue and
Channel (gevent's semantics)."""
import queue as stdlib_queue
import warnings

import pytest

import verdigris
import verdigris.exceptions
from verdigris.queue import (
    Channel,
    Empty,
    Full,
    JoinableQueue,
    LifoQueue,
    PriorityQueue,
    Queue,
    ShutDown,
    SimpleQueue,
)


def _spawn_getters(q, record, count, **get_kwargs):
    def getter(i):
        try:
            record.append(('got', i, q.get(**get_kwargs)))
        except Empty:
            record.append(('empty', i))
    return [verdigris.spawn(getter, i) for i in range(count)]


# -- construction and introspection --------------------------------------------------------------

def test_empty_and_full_are_the_stdlib_exceptions():
    assert Empty is stdlib_queue.Empty
    assert Full is stdlib_queue.Full


def test_fifo_order_and_sizes():
    q = Queue()
    assert (q.qsize(), len(q), q.empty(), q.full(), q.maxsize) == (0, 0, True, False, None)
    for item in 'abc':
        q.put(item)
    assert (q.qsize(), len(q), q.empty()) == (3, 3, False)
    assert [q.get(), q.get_nowait(), q.get()] == ['a', 'b', 'c']


def test_queue_is_always_true_even_when_empty():
    assert bool(Queue()) is True
    assert bool(SimpleQueue()) is True
    assert bool(Channel()) is True


def test_maxsize_none_zero_and_negative_mean_unbounded():
    assert Queue(None).maxsize is None
    assert Queue(-1).maxsize is None
    assert Queue(3).maxsize == 3
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter('always')
        q = Queue(0)
    assert q.maxsize is None
    assert [w.category for w in caught] == [DeprecationWarning]
    for i in range(100):
        q.put_nowait(i)
    assert not q.full()


def test_initial_items():
    q = Queue(items=[1, 2, 3])
    assert (q.qsize(), q.unfinished_tasks, q.get()) == (3, 3, 1)


def test_full_bounded_queue():
    q = Queue(2)
    q.put(1)
    q.put_nowait(2)
    assert q.full()
    with pytest.raises(Full):
        q.put_nowait(3)
    with pytest.raises(Full):
        q.put(3, block=False)
    with pytest.raises(Full):
        q.put(3, timeout=0.01)
    assert q.get() == 1
    q.put_nowait('later')                   # the timed-out putters left without putting 3
    assert [q.get(), q.get()] == [2, 'later']


def test_get_from_empty_queue():
    q = Queue()
    with pytest.raises(Empty):
        q.get_nowait()
    with pytest.raises(Empty):
        q.get(block=False)
    with pytest.raises(Empty):
        q.get(timeout=0.01)
    q.put('after')
    assert q.get_nowait() == 'after'       # the timed-out getter left without taking it


def test_negative_timeout_is_a_value_error():
    with pytest.raises(ValueError):
        Queue().get(timeout=-1)
    with pytest.raises(ValueError):
        Queue().put(1, timeout=-1)


def test_copy_has_same_type_bound_and_items():
    q = LifoQueue(5, items=[1, 2])
    duplicate = q.copy()
    assert (type(duplicate), duplicate.maxsize, duplicate.qsize()) == (LifoQueue, 5, 2)
    duplicate.get()
    assert q.qsize() == 2


# -- blocking and hand-off -----------------------------------------------------------------------

def test_blocked_getters_receive_items_in_the_order_they_blocked():
    q = Queue()
    record = []
    getters = _spawn_getters(q, record, 3)
    verdigris.sleep(0)
    q.put('a')
    q.put('b')
    q.put('c')
    record.append('put returned')        # put() never switches
    verdigris.joinall(getters, timeout=5)
    assert record == ['put returned', ('got', 0, 'a'), ('got', 1, 'b'), ('got', 2, 'c')]


def test_get_timeout_raises_empty_in_blocked_getter():
    q = Queue()
    record = []
    verdigris.joinall(_spawn_getters(q, record, 2, timeout=0.01), timeout=5)
    assert record == [('empty', 0), ('empty', 1)]


def test_bounded_queue_blocks_putter_until_room():
    q = Queue(1)
    record = []

    def producer():
        for item in range(3):
            q.put(item)
            record.append(('put', item))

    g = verdigris.spawn(producer)
    verdigris.sleep(0)
    assert record == [('put', 0)]
    record.append(('get', q.get()))
    verdigris.sleep(0)
    record.append(('get', q.get()))
    verdigris.sleep(0)
    record.append(('get', q.get()))
    g.join(timeout=5)
    assert record == [('put', 0), ('get', 0), ('put', 1), ('get', 1), ('put', 2), ('get', 2)]


def test_getter_blocks_and_wakes_putters_of_a_full_queue():
    q = Queue(1)
    q.put('first')
    record = []

    def putter(item):
        q.put(item)
        record.append(('put', item))

    putters = [verdigris.spawn(putter, item) for item in ('second', 'third')]
    verdigris.sleep(0)
    assert record == []
    got = [q.get(timeout=5) for _ in range(3)]
    verdigris.joinall(putters, timeout=5)
    assert got == ['first', 'second', 'third']
    assert record == [('put', 'second'), ('put', 'third')]


def test_killed_getter_does_not_lose_an_item():
    q = Queue()
    record = []
    getters = _spawn_getters(q, record, 2)
    verdigris.sleep(0)
    getters[0].kill(block=True, timeout=5)
    q.put('item')
    verdigris.joinall(getters, timeout=5)
    assert record == [('got', 1, 'item')]


def test_producer_consumer_through_small_bounded_queue():
    q = Queue(2)
    got = []

    def producer():
        for i in range(200):
            q.put(i)
        q.put(None)

    def consumer():
        while True:
            item = q.get()
            if item is None:
                return
            got.append(item)

    verdigris.joinall([verdigris.spawn(consumer), verdigris.spawn(producer)], timeout=10)
    assert got == list(range(200))


def test_peek_does_not_remove_and_blocks_until_an_item():
    q = Queue()
    with pytest.raises(Empty):
        q.peek_nowait()
    with pytest.raises(Empty):
        q.peek(timeout=0.01)
    record = []
    g = verdigris.spawn(lambda: record.append(('peeked', q.peek())))
    verdigris.sleep(0)
    q.put('x')
    g.join(timeout=5)
    assert record == [('peeked', 'x')]
    assert (q.peek(), q.peek_nowait(), q.qsize()) == ('x', 'x', 1)


def test_iteration_stops_at_the_stopiteration_class():
    q = Queue()

    def producer():
        for item in (1, 2, 3):
            q.put(item)
            verdigris.sleep(0)
        q.put(StopIteration)

    g = verdigris.spawn(producer)
    assert list(q) == [1, 2, 3]
    g.join(timeout=5)


# -- ordering variants ---------------------------------------------------------------------------

def test_lifo_queue_order():
    q = LifoQueue()
    for item in (1, 2, 3):
        q.put(item)
    assert q.peek() == 3
    assert [q.get() for _ in range(3)] == [3, 2, 1]


def test_priority_queue_order_and_heapified_initial_items():
    q = PriorityQueue(items=[5, 1, 4])
    q.put(3)
    q.put(2)
    assert [q.get() for _ in range(5)] == [1, 2, 3, 4, 5]


def test_stdlib_style_subclass_hooks_are_used():
    class NewestFirst(SimpleQueue):
        def _init(self, maxsize):
            self.queue = []

        def _put(self, item):
            self.queue.append(item)

        def _get(self):
            return self.queue.pop()

        def _peek(self):
            return self.queue[-1]

    q = NewestFirst()
    q.put('old')
    q.put('new')
    assert q.qsize() == 2
    assert [q.get(), q.get()] == ['new', 'old']
    record = []
    getters = _spawn_getters(q, record, 1)
    verdigris.sleep(0)
    q.put('late')
    verdigris.joinall(getters, timeout=5)
    assert record == [('got', 0, 'late')]


# -- task tracking -------------------------------------------------------------------------------

def test_join_waits_for_task_done():
    q = Queue()
    assert JoinableQueue is Queue
    assert q.join(timeout=5) is True
    record = []

    def worker():
        while True:
            item = q.get()
            verdigris.sleep(0)
            record.append(('done', item))
            q.task_done()

    w = verdigris.spawn(worker)
    for item in range(3):
        q.put(item)
    assert q.unfinished_tasks == 3
    assert q.join(timeout=5) is True
    record.append('joined')
    assert q.unfinished_tasks == 0
    w.kill(block=True, timeout=5)
    assert record == [('done', 0), ('done', 1), ('done', 2), 'joined']


def test_join_timeout_and_task_done_too_many_times():
    q = Queue()
    q.put(1)
    assert q.join(timeout=0.01) is False
    q.get()
    q.task_done()
    assert q.join(timeout=0.01) is True
    with pytest.raises(ValueError):
        q.task_done()


def test_join_after_new_puts_blocks_again():
    q = Queue()
    q.put(1)
    q.get()
    q.task_done()
    q.put(2)
    assert q.join(timeout=0.01) is False
    q.task_done()
    assert q.join(timeout=0.01) is True


def test_simple_queue_has_no_task_tracking():
    q = SimpleQueue()
    q.put(1)
    assert not hasattr(q, 'task_done')
    assert q.get() == 1


# -- shutdown ------------------------------------------------------------------------------------

def test_shutdown_rejects_puts_and_drains_then_rejects_gets():
    q = Queue()
    q.put(1)
    q.shutdown()
    with pytest.raises(ShutDown):
        q.put(2)
    assert q.get() == 1
    with pytest.raises(ShutDown):
        q.get()


def test_shutdown_wakes_blocked_getters_with_shutdown():
    q = Queue()
    record = []

    def getter():
        try:
            q.get()
        except ShutDown:
            record.append('shut down')

    g = verdigris.spawn(getter)
    verdigris.sleep(0)
    q.shutdown()
    g.join(timeout=5)
    assert record == ['shut down']


def test_shutdown_immediate_drops_items_and_finishes_their_tasks():
    q = Queue()
    q.put(1)
    q.put(2)
    q.shutdown(immediate=True)
    assert (q.qsize(), q.unfinished_tasks) == (0, 0)
    with pytest.raises(ShutDown):
        q.get_nowait()
    assert q.join(timeout=5) is True


# -- Channel -------------------------------------------------------------------------------------

def test_channel_rejects_other_sizes_and_is_always_empty_and_full():
    with pytest.raises(ValueError):
        Channel(2)
    ch = Channel()
    assert (ch.qsize(), ch.empty(), ch.full(), ch.balance) == (0, True, True, 0)


def test_channel_put_blocks_until_a_getter_takes_the_item():
    ch = Channel()
    record = []

    def putter():
        ch.put('hello')
        record.append('put returned')

    g = verdigris.spawn(putter)
    verdigris.sleep(0)
    assert ch.balance == 1
    record.append(('got', ch.get(timeout=5)))
    g.join(timeout=5)
    assert record == [('got', 'hello'), 'put returned']
    assert ch.balance == 0


def test_channel_getters_take_in_order():
    ch = Channel()
    record = []
    getters = _spawn_getters(ch, record, 2)
    verdigris.sleep(0)
    assert ch.balance == -2
    ch.put('a')
    ch.put('b')
    verdigris.joinall(getters, timeout=5)
    assert record == [('got', 0, 'a'), ('got', 1, 'b')]


def test_channel_nowait_without_partner():
    ch = Channel()
    with pytest.raises(Full):
        ch.put_nowait(1)
    with pytest.raises(Empty):
        ch.get_nowait()
    with pytest.raises(Full):
        ch.put(1, timeout=0.01)
    with pytest.raises(Empty):
        ch.get(timeout=0.01)
    assert ch.balance == 0


def test_channel_iteration():
    ch = Channel()

    def producer():
        for item in ('x', 'y', StopIteration):
            ch.put(item)

    g = verdigris.spawn(producer)
    assert list(ch) == ['x', 'y']
    g.join(timeout=5)


@pytest.mark.verdigris_only
def test_raising_maxsize_wakes_blocked_putters():
    # gevent leaves them blocked until the next get().
    q = Queue(1)
    q.put(0)
    record = []
    g = verdigris.spawn(lambda: record.append(q.put(1)))
    verdigris.sleep(0)
    q.maxsize = 2
    g.join(timeout=5)
    assert record == [None]
    assert list(q.queue) == [0, 1]


def test_get_inside_a_loop_callback_never_blocks():
    q = Queue()
    record = []

    def callback():
        try:
            q.get()
        except Empty:
            record.append('empty')
        q.put('x')
        record.append(q.get())

    verdigris.get_hub().loop.run_callback(callback)
    verdigris.sleep(0)
    assert record == ['empty', 'x']


def test_put_inside_a_loop_callback_on_full_queue_raises_full():
    q = Queue(1)
    q.put(0)
    record = []

    def callback():
        try:
            q.put(1)
        except Full:
            record.append('full')

    verdigris.get_hub().loop.run_callback(callback)
    verdigris.sleep(0)
    assert record == ['full']


def test_stray_switch_into_a_getter_raises_and_leaves_the_queue():
    q = Queue()
    record = []

    def getter():
        try:
            q.get()
        except verdigris.exceptions.InvalidSwitchError:
            record.append('invalid switch')

    g = verdigris.spawn(getter)
    verdigris.sleep(0)
    verdigris.get_hub().loop.run_callback(g.switch, 'bogus')
    g.join(timeout=5)
    q.put('kept')
    verdigris.sleep(0)
    assert record == ['invalid switch']
    assert q.get_nowait() == 'kept'
