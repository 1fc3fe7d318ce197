"""Queues for greenlets: :class:`Queue` (joinable FIFO), :class:`SimpleQueue`,
:class:`LifoQueue`, :class:`PriorityQueue` and :class:`Channel`.

The API is the standard library's :mod:`queue` one, and :exc:`Empty`/:exc:`Full` are the
standard library's exceptions, but blocking switches greenlets instead of threads. Iterating over
a queue calls :meth:`~SimpleQueue.get` until it returns the ``StopIteration`` class itself.

Discussion: hand-off.
    ``put()`` stores the item and, if greenlets are blocked in ``get()``, schedules one *unlock*
    callback on the hub's loop (later puts in the same turn find it pending and add nothing).
    The callback wakes blocked getters in the order they blocked, one per available item, and
    blocked putters in order, one per free slot; each woken greenlet takes its item itself. A
    greenlet that calls ``get()`` while items are present takes one at once, even if getters that
    blocked earlier have been scheduled but not yet run: those find the queue empty when the
    callback reaches them and stay queued, at their place. This is gevent's algorithm, so
    programs see the same interleavings. Blocked greenlets are parked as themselves (their
    ``switch`` resumes them) rather than through :class:`~verdigris._waiter.Waiter` objects:
    one allocation less per blocking call on the producer/consumer path.

Subclasses may override the standard library's hooks ``_init``, ``_qsize``, ``_put`` and
``_get`` (and gevent's ``_peek`` and ``_create_queue``), as :class:`LifoQueue` and
:class:`PriorityQueue` do. A class that keeps the default deque storage skips the hooks on the
fast paths (an unbounded ``put()``, a ``get()`` that finds an item): producer/consumer hand-off
is benchmarked against gevent's compiled queue, and each avoided method call counts there.
"""
import collections
import heapq
import queue as _stdlib_queue
import sys
import types
import warnings

from greenlet import getcurrent

from verdigris.event import Event
from verdigris.exceptions import InvalidSwitchError
from verdigris.hub import get_hub
from verdigris.timeout import Timeout

Empty = _stdlib_queue.Empty
Full = _stdlib_queue.Full

if hasattr(_stdlib_queue, 'ShutDown'):  # Python 3.13+
    ShutDown = _stdlib_queue.ShutDown
else:
    class ShutDown(Exception):
        """Raised by put() and get() on a queue that was :meth:`~Queue.shutdown`."""

__implements__ = ['Queue', 'PriorityQueue', 'LifoQueue', 'SimpleQueue']
__extensions__ = ['JoinableQueue', 'Channel']
__imports__ = ['Empty', 'Full']
if ShutDown is getattr(_stdlib_queue, 'ShutDown', None):
    __imports__.append('ShutDown')
else:
    __extensions__.append('ShutDown')
__all__ = __implements__ + __extensions__ + __imports__


class _Putter:
    """A greenlet blocked in ``put()`` of a full queue, with the item it wants to put."""

    __slots__ = ('greenlet', 'item')

    def __init__(self, greenlet, item):
        self.greenlet = greenlet
        self.item = item


def _live_hub(queue):
    # The hub captured at creation (as gevent does), unless it was destroyed since.
    hub = queue.hub
    if hub.loop is None:
        hub = queue.hub = get_hub()
    return hub


def _discard(waiters, waiter):
    try:
        waiters.remove(waiter)
    except ValueError:
        pass  # already taken off by _unlock or shutdown


def _park(hub, waiters, waiter, timeout, timeout_error):
    """Switch to the hub until resumed, *waiter* being queued in *waiters* already.

    Whatever else ends the wait (the timeout, a kill) takes *waiter* off the queue. An untimed
    wait (the consumer's hot path) creates no timer at all.
    """
    timer = None if timeout is None else Timeout._start_new_or_dummy(timeout, timeout_error)
    try:
        return hub.switch()
    except BaseException:
        _discard(waiters, waiter)
        raise
    finally:
        if timer is not None:
            timer.cancel()


def _stray_switch(waiters, waiter, what, result):
    # Resumed by something other than the queue: leave the queue before complaining.
    _discard(waiters, waiter)
    return InvalidSwitchError('Invalid switch into %s: %r' % (what, result))


def _report_resume_error(hub, context):
    # In an ``except`` block of the hub, after switching into a blocked greenlet raised (a raw
    # greenlet dying lands in its parent): report it, the other greenlets must still be woken.
    handle_error = getattr(hub, 'handle_error', None)
    if handle_error is None:
        raise  # noqa: PLE0704 -- re-raises the exception being handled by our caller
    handle_error(context, *sys.exc_info())


def _resume(hub, resume, *args):
    try:
        resume(*args)
    except:  # noqa: E722
        _report_resume_error(hub, resume)


class SimpleQueue:
    """SimpleQueue(maxsize=None, items=()) -> a FIFO queue without task tracking.

    :param maxsize: the most items the queue holds before ``put()`` blocks; None, 0 or a
        negative number means unbounded (0 also warns: it used to mean a :class:`Channel`).
    :param items: initial contents.

    ``len(q)`` is :meth:`qsize`, but a queue is always true in a boolean context.
    """

    __slots__ = ('_maxsize', 'getters', 'putters', 'hub', '_event_unlock', 'queue',
                 'is_shutdown', '_fast_get', '_fast_put', '__weakref__')

    __class_getitem__ = classmethod(types.GenericAlias)

    # True when this class stores items exactly as put()/get() assume when they skip the hooks
    # (a deque, appended by ``_inlined_put``); computed for every subclass.
    _default_storage = True

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        cls._default_storage = (
            cls._init is SimpleQueue._init and cls._create_queue is SimpleQueue._create_queue
            and cls._qsize is SimpleQueue._qsize and cls._get is SimpleQueue._get
            and cls._put is cls._inlined_put)

    def __init__(self, maxsize=None, items=(), _warn_depth=2):
        if maxsize is not None and maxsize <= 0:
            if maxsize == 0:
                warnings.warn('Queue(0) now equivalent to Queue(None); if you want a channel, '
                              'use Channel', DeprecationWarning, stacklevel=_warn_depth)
            maxsize = None
        self._maxsize = -1 if maxsize is None else maxsize
        # Greenlets blocked in get() (parked as themselves) and put() (as _Putter), FIFO.
        self.getters = collections.deque()
        self.putters = collections.deque()
        self.hub = get_hub()
        self._event_unlock = None
        self.is_shutdown = False
        self.queue = None
        self._fast_get = type(self)._default_storage
        self._update_fast_put()
        # The stdlib's _init takes only maxsize; pass items only when there are some, so
        # subclasses written for the stdlib keep working.
        if items:
            self._init(maxsize, items)
        else:
            self._init(maxsize)

    # -- the storage hooks (the standard library's names) --------------------------------------

    def _init(self, maxsize, items=()):
        self.queue = self._create_queue(items)

    def _create_queue(self, items=()):
        return collections.deque(items)

    def _qsize(self):
        return len(self.queue)

    def _put(self, item):
        self.queue.append(item)

    _inlined_put = _put  # what put() does itself on the fast path

    def _get(self):
        return self.queue.popleft()

    def _peek(self):
        return self.queue[0]

    def _update_fast_put(self):
        # put() may skip the checks and hooks: default storage, no bound, not shut down.
        self._fast_put = self._fast_get and self._maxsize == -1 and not self.is_shutdown

    # -- introspection -------------------------------------------------------------------------

    @property
    def maxsize(self):
        """The bound given at creation, or None if unbounded. Assigning None or <= 0 unbounds.

        .. note::
           Raising the bound wakes putters blocked on the old one; gevent leaves them blocked
           until the next ``get()``.
        """
        return self._maxsize if self._maxsize > 0 else None

    @maxsize.setter
    def maxsize(self, value):
        self._maxsize = -1 if value is None or value <= 0 else value
        self._update_fast_put()
        if self.putters and self._event_unlock is None:
            self._schedule_unlock()

    def copy(self):
        """Return a new queue of the same type, bound and items (no waiters)."""
        return type(self)(self.maxsize, self.queue)

    def __repr__(self):
        return '<%s at %s%s>' % (type(self).__name__, hex(id(self)), self._format())

    def _format(self):
        return ' maxsize=%r queue=%r getters[%s] putters[%s]' % (
            self.maxsize, self.queue, len(self.getters), len(self.putters))

    def qsize(self):
        """Return the number of items in the queue."""
        return self._qsize()

    def __len__(self):
        return self._qsize()

    def __bool__(self):
        # Always true, as before queues had a len(): "if q:" meant "if q is not None".
        return True

    def empty(self):
        """Return True if the queue holds no items."""
        return not self._qsize()

    def full(self):
        """Return True if the queue holds *maxsize* items; an unbounded queue is never full."""
        return self._maxsize > 0 and self._qsize() >= self._maxsize

    # -- put -----------------------------------------------------------------------------------

    def put(self, item, block=True, timeout=None):
        """Put *item* into the queue, blocking while it is full.

        :param block: if false, raise :exc:`Full` at once instead of blocking.
        :param timeout: with *block*, the most seconds to block before raising :exc:`Full`.
        :raises ValueError: if *block* and *timeout* is negative (and there is room).
        :raises ShutDown: if the queue was shut down.
        """
        if self._fast_put and timeout is None:
            self.queue.append(item)
            if self.getters and self._event_unlock is None:
                self._schedule_unlock()
            return
        self._put_checked(item, block, timeout)

    def _put_checked(self, item, block, timeout):
        # put() through the hooks, with every check.
        if self.is_shutdown:
            raise ShutDown
        if self._maxsize == -1 or self._qsize() < self._maxsize:
            if block and timeout is not None and timeout < 0:
                raise ValueError("'timeout' must be a non-negative number")
            self._put(item)
            if self.getters and self._event_unlock is None:
                self._schedule_unlock()
            return
        hub = _live_hub(self)
        current = getcurrent()
        if current is hub:
            # A loop callback cannot block; it can let blocked getters drain the queue first.
            while self.getters and self._qsize() and self._qsize() >= self._maxsize:
                self.getters.popleft().switch(self)
            if self._qsize() < self._maxsize:
                self._put(item)
                return
            raise Full
        if not block or (timeout is not None and timeout < 0):
            raise Full
        putter = _Putter(current, item)
        self.putters.append(putter)
        if self.getters and self._event_unlock is None:
            self._schedule_unlock()
        result = _park(hub, self.putters, putter, timeout, Full)
        if result is not self:
            raise _stray_switch(self.putters, putter, 'Queue.put', result)

    def put_nowait(self, item):
        """Put *item* if there is room right now, else raise :exc:`Full`."""
        self.put(item, False)

    # -- get and peek --------------------------------------------------------------------------

    def get(self, block=True, timeout=None):
        """Remove and return the next item, blocking while the queue is empty.

        :param block: if false, raise :exc:`Empty` at once instead of blocking.
        :param timeout: with *block*, the most seconds to block before raising :exc:`Empty`.
        :raises ValueError: if *block* and *timeout* is negative (and the queue is empty).
        :raises ShutDown: if the queue was shut down and is empty.
        """
        if self._fast_get:
            queue = self.queue
            if queue:
                if self.putters and self._event_unlock is None:
                    self._schedule_unlock()
                return queue.popleft()
        elif self._qsize():
            if self.putters and self._event_unlock is None:
                self._schedule_unlock()
            return self._get()
        return self._wait_for_item(self._get, block, timeout)

    def get_nowait(self):
        """Remove and return an item if one is there right now, else raise :exc:`Empty`."""
        return self.get(False)

    def peek(self, block=True, timeout=None):
        """Return the next item without removing it, blocking while the queue is empty.

        Arguments and errors are as for :meth:`get`.
        """
        if self._qsize():
            return self._peek()
        return self._wait_for_item(self._peek, block, timeout)

    def peek_nowait(self):
        """Return the next item if there is one right now, else raise :exc:`Empty`."""
        return self.peek(False)

    def _wait_for_item(self, take, block, timeout):
        # The queue is empty: block (or not) until an item arrives, then ``take()`` it.
        if self.is_shutdown:
            raise ShutDown
        if block and timeout is not None and timeout < 0:
            raise ValueError("'timeout' must be a non-negative number")
        hub = _live_hub(self)
        current = getcurrent()
        if current is hub:
            # A loop callback cannot block; blocked putters can fill the queue for it.
            while self.putters:
                self._admit_putter(self.putters.popleft())
                if self._qsize():
                    return take()
            raise Empty
        if not block:
            raise Empty
        self.getters.append(current)
        if self.putters and self._event_unlock is None:
            self._schedule_unlock()
        result = _park(hub, self.getters, current, timeout, Empty)
        if result is not self:
            raise _stray_switch(self.getters, current, 'Queue.get', result)
        return take()

    # -- waking blocked greenlets (in the hub) -------------------------------------------------

    def _schedule_unlock(self):
        self._event_unlock = _live_hub(self).loop.run_callback(self._unlock)

    def _admit_putter(self, putter):
        # Put a blocked putter's item on its behalf, then resume it (or hand it the error).
        try:
            self._put(putter.item)
        except BaseException:
            _resume(self.hub, putter.greenlet.throw, *sys.exc_info())
        else:
            _resume(self.hub, putter.greenlet.switch, self)

    def _unlock(self):
        # Cleared first: a greenlet resumed below may need another pass after this one ends.
        self._event_unlock = None
        getters = self.getters
        putters = self.putters
        while True:
            progressed = False
            if putters and (self._maxsize == -1 or self._qsize() < self._maxsize):
                progressed = True
                self._admit_putter(putters.popleft())
            if getters and self._qsize():
                progressed = True
                getter = getters.popleft()
                try:  # _resume() inlined: this is the consumer's hot path
                    getter.switch(self)
                except:  # noqa: E722
                    _report_resume_error(self.hub, getter)
            if not progressed:
                return

    # -- iteration -----------------------------------------------------------------------------

    def __iter__(self):
        return self

    def __next__(self):
        item = self.get()
        if item is StopIteration:
            raise item
        return item


class Queue(SimpleQueue):
    """Queue(maxsize=None, items=(), unfinished_tasks=None) -> a FIFO queue that tracks tasks.

    Every item put counts as an unfinished task until a consumer calls :meth:`task_done`;
    :meth:`join` blocks until none are left. *unfinished_tasks* defaults to ``len(items)``.
    Other arguments are as for :class:`SimpleQueue`.
    """

    __slots__ = ('_cond', 'unfinished_tasks')

    def __init__(self, maxsize=None, items=(), unfinished_tasks=None):
        SimpleQueue.__init__(self, maxsize, items, _warn_depth=3)
        # join() waits on it; task_done() sets it when the count reaches zero. join() clears it
        # itself before waiting, so put() only counts: the hot path stays one increment.
        self._cond = Event()
        if unfinished_tasks:
            self.unfinished_tasks = unfinished_tasks
        elif items:
            self.unfinished_tasks = len(items)
        else:
            self.unfinished_tasks = 0
        if not self.unfinished_tasks:
            self._cond.set()

    def copy(self):
        """Return a new queue with the same type, bound, items and unfinished task count."""
        return type(self)(self.maxsize, self.queue, self.unfinished_tasks)

    def _format(self):
        return SimpleQueue._format(self) + ' tasks=%s' % (self.unfinished_tasks,)

    def put(self, item, block=True, timeout=None):
        # SimpleQueue.put with this class's task accounting inlined on the fast path.
        if self._fast_put and timeout is None:
            self.queue.append(item)
            self.unfinished_tasks += 1
            if self.getters and self._event_unlock is None:
                self._schedule_unlock()
            return
        self._put_checked(item, block, timeout)

    put.__doc__ = SimpleQueue.put.__doc__

    def _put(self, item):
        self.queue.append(item)
        self._did_put_task()

    _inlined_put = _put

    def _did_put_task(self):
        self.unfinished_tasks += 1

    def task_done(self):
        """Mark one task taken with ``get()`` as finished; wake :meth:`join` at zero.

        :raises ValueError: if called more times than items were put.
        """
        if self.unfinished_tasks <= 0:
            raise ValueError('task_done() called too many times')
        self.unfinished_tasks -= 1
        if self.unfinished_tasks == 0:
            self._cond.set()

    def join(self, timeout=None):
        """Block until every item put has been marked done with :meth:`task_done`.

        :param timeout: the most seconds to wait; None waits without limit.
        :return: True if all tasks finished, False if the timeout elapsed first.
        """
        cond = self._cond
        if self.unfinished_tasks:
            # Earlier joiners still pending wake anyway: a round wakes all it started with.
            cond.clear()
        else:
            cond.set()
        return cond.wait(timeout=timeout)

    def shutdown(self, immediate=False):
        """Shut the queue down: ``put()`` raises :exc:`ShutDown`, and so does ``get()`` once the
        queue is empty. Every blocked putter and getter is woken with :exc:`ShutDown`.

        :param immediate: also drop the remaining items (marking each as a finished task), so
            ``get()`` raises at once.
        """
        self.is_shutdown = True
        self._update_fast_put()
        if immediate:
            while self._qsize():
                self._get()
                self.task_done()
        blocked = [getter for getter in self.getters]
        blocked.extend(putter.greenlet for putter in self.putters)
        self.getters.clear()
        self.putters.clear()
        for greenlet in blocked:
            _live_hub(self).loop.run_callback(greenlet.throw, ShutDown)


#: The old name of :class:`Queue`, from before every Queue was joinable.
JoinableQueue = Queue


class PriorityQueue(Queue):
    """A :class:`Queue` that returns the smallest item first (:mod:`heapq` order).

    Items are typically ``(priority, data)`` tuples; initial *items* are heapified.
    """

    __slots__ = ()

    def _create_queue(self, items=()):
        heap = list(items)
        heapq.heapify(heap)
        return heap

    def _put(self, item):
        heapq.heappush(self.queue, item)
        self._did_put_task()

    def _get(self):
        return heapq.heappop(self.queue)


class LifoQueue(Queue):
    """A :class:`Queue` that returns the most recently put item first."""

    __slots__ = ()

    def _create_queue(self, items=()):
        return list(items)

    def _put(self, item):
        self.queue.append(item)
        self._did_put_task()

    def _get(self):
        return self.queue.pop()

    def _peek(self):
        return self.queue[-1]


class Channel:
    """Channel(maxsize=1) -> a rendezvous: ``put()`` blocks until a ``get()`` takes the item.

    A channel holds no items (:meth:`qsize` is 0, it is both :meth:`empty` and :meth:`full`);
    :attr:`balance` is the number of blocked putters minus blocked getters.

    :raises ValueError: if *maxsize* is not 1.
    """

    __slots__ = ('getters', 'putters', 'hub', '_event_unlock', '__weakref__')

    __class_getitem__ = classmethod(types.GenericAlias)

    def __init__(self, maxsize=1):
        if maxsize != 1:
            raise ValueError('Channels have a maxsize of 1')
        self.getters = collections.deque()   # blocked getter greenlets
        self.putters = collections.deque()   # _Putter of blocked putters
        self.hub = get_hub()
        self._event_unlock = None

    def __repr__(self):
        return '<%s at %s getters[%s] putters[%s]>' % (
            type(self).__name__, hex(id(self)), len(self.getters), len(self.putters))

    @property
    def balance(self):
        """Blocked putters minus blocked getters."""
        return len(self.putters) - len(self.getters)

    def qsize(self):  # a channel holds nothing: always 0, empty and full
        return 0

    def empty(self):
        return True

    def full(self):
        return True

    def put(self, item, block=True, timeout=None):
        """Hand *item* to a getter, blocking until one takes it.

        :param block: if false, give a getter that is already waiting the chance to take the
            item (this yields to the hub once), else raise :exc:`Full`.
        :param timeout: the most seconds to wait for a getter before raising :exc:`Full`.
        """
        current = getcurrent()
        hub = _live_hub(self)
        if current is hub:
            if self.getters:
                self.getters.popleft().switch(item)
                return
            raise Full
        if not block:
            timeout = 0
        putter = _Putter(current, item)
        self.putters.append(putter)
        if self.getters and self._event_unlock is None:
            self._schedule_unlock()
        result = _park(hub, self.putters, putter, timeout, Full)
        if result is not self:
            raise _stray_switch(self.putters, putter, 'Channel.put', result)

    def put_nowait(self, item):
        self.put(item, False)

    def get(self, block=True, timeout=None):
        """Take an item from a putter, blocking until one offers one.

        :param block: if false, take from a putter that is already waiting (this yields to the
            hub once), else raise :exc:`Empty`.
        :param timeout: the most seconds to wait for a putter before raising :exc:`Empty`.
        """
        current = getcurrent()
        hub = _live_hub(self)
        if current is hub and self.putters:
            putter = self.putters.popleft()
            hub.loop.run_callback(putter.greenlet.switch, self)
            return putter.item
        if not block:
            timeout = 0
        self.getters.append(current)
        if self.putters and self._event_unlock is None:
            self._schedule_unlock()
        return _park(hub, self.getters, current, timeout, Empty)

    def get_nowait(self):
        return self.get(False)

    def _schedule_unlock(self):
        self._event_unlock = _live_hub(self).loop.run_callback(self._unlock)

    def _unlock(self):
        self._event_unlock = None
        while self.putters and self.getters:
            getter = self.getters.popleft()
            putter = self.putters.popleft()
            _resume(self.hub, getter.switch, putter.item)
            _resume(self.hub, putter.greenlet.switch, self)

    def __iter__(self):
        return self

    def __next__(self):
        item = self.get()
        if item is StopIteration:
            raise item
        return item
