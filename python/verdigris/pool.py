"""Sets of greenlets: :class:`Group` tracks running greenlets, :class:`Pool` also bounds them.

A greenlet added to a group leaves it by itself when it finishes (the group ``rawlink``\\s it).
A group can wait for all of its greenlets (:meth:`Group.join`), kill them
(:meth:`Group.kill`) and run functions in them the way :mod:`multiprocessing.pool` does
(``apply``, ``map``, ``imap``, ...). A :class:`Pool` of size *n* never holds more than *n*:
``spawn`` blocks until one finishes.
"""
import functools

from greenlet import GreenletExit, getcurrent

import verdigris
from verdigris.event import Event
from verdigris.greenlet import Greenlet
from verdigris.lock import DummySemaphore, Semaphore
from verdigris.queue import Full as QueueFull
from verdigris.queue import SimpleQueue
from verdigris.timeout import Timeout

__all__ = ['Group', 'Pool', 'PoolFull']


def _reraise(greenlet):
    """Raise the exception a finished greenlet died with, with its traceback if known."""
    exc_info = getattr(greenlet, 'exc_info', None)
    exception = greenlet.exception
    if exc_info and exc_info[1] is exception and exc_info[2] is not None:
        raise exception.with_traceback(exc_info[2])
    raise exception


class _CallOnSuccess:
    """Greenlet link: call *callback* with the greenlet's value if it finished successfully."""

    __slots__ = ('callback',)

    def __init__(self, callback):
        self.callback = callback

    def __call__(self, greenlet):
        if greenlet.successful():
            self.callback(greenlet.value)

    def __eq__(self, other):
        # Lets ``greenlet.unlink(callback)`` find the wrapper.
        return self.callback == getattr(other, 'callback', other)

    def __hash__(self):
        return hash(self.callback)

    def __repr__(self):
        return repr(self.callback)


_END = object()  # queued by the feeder when every result has been queued


class _Stop:
    """Queued instead of _END when the input iterable raised: re-raised after the results."""

    __slots__ = ('error',)

    def __init__(self, error):
        self.error = error


class IMapUnordered(Greenlet):
    """The iterator returned by :meth:`Group.imap_unordered`: results as tasks finish.

    It is a greenlet itself, the *feeder*: it walks the input, spawning one task per item with
    *spawn* (a pool's ``spawn``, which blocks while the pool is full), while the consumer
    iterates in another greenlet. A task that raised re-raises its exception when its turn
    comes; iteration can go on afterwards.

    :param maxsize: if given, at most this many results may be finished but not yet consumed:
        the feeder waits before spawning more.

    .. note::
       If the input iterable itself raises, gevent's unordered iterator raises that error as soon
       as the feeder fails; verdigris raises it after the results of the items read before it,
       in both orders, and then stops.
    """

    def __init__(self, func, iterable, spawn, maxsize=None):
        Greenlet.__init__(self)
        self._func = func
        self._iterable = iterable  # of argument tuples
        self._spawn = spawn
        # (index, finished task or end marker); unbounded, so the hub can put into it.
        self._results = SimpleQueue()
        self._permits = Semaphore(maxsize) if maxsize else None
        self._outstanding = 0   # spawned tasks whose result is not queued yet
        self._count = None      # number of tasks, once the input is exhausted
        self._stop = _END
        self._exhausted = False

    def _run(self):  # the feeder
        index = 0
        try:
            for args in self._iterable:
                if self._permits is not None:
                    self._permits.acquire()
                task = self._spawn(self._func, *args)
                self._outstanding += 1
                task.rawlink(functools.partial(self._task_finished, index))
                index += 1
        except BaseException as error:
            self._stop = _Stop(error)
            raise
        finally:
            self._func = self._iterable = self._spawn = None
            self._count = index
            if not self._outstanding:
                self._results.put((index, self._stop))

    def _task_finished(self, index, task):
        # In the hub (rawlink): queue the result; after the last one, the end marker.
        self._outstanding -= 1
        self._results.put((index, task))
        if self._count is not None and not self._outstanding:
            self._results.put((self._count, self._stop))

    def __iter__(self):
        return self

    def __next__(self):
        if self._exhausted:
            raise StopIteration
        index, outcome = self._next_outcome()
        if outcome is _END or type(outcome) is _Stop:
            self._exhausted = True
            if outcome is _END:
                raise StopIteration
            raise outcome.error
        if self._permits is not None:
            self._permits.release()
        if outcome.successful():
            return outcome.value
        _reraise(outcome)

    def _next_outcome(self):
        return self._results.get()


class IMap(IMapUnordered):
    """The iterator returned by :meth:`Group.imap`: results in the order of the input."""

    def __init__(self, *args, **kwargs):
        IMapUnordered.__init__(self, *args, **kwargs)
        self._early = {}    # index -> outcome, finished before their turn
        self._next_index = 0

    def _next_outcome(self):
        index = self._next_index
        outcome = self._early.pop(index, None)
        while outcome is None:
            got_index, got = self._results.get()
            if got_index == index:
                outcome = got
            else:
                self._early[got_index] = got
        self._next_index = index + 1
        return index, outcome


class Group:
    """Group(greenlets=()) -> a set of running greenlets, each removed when it finishes.

    ``len(group)``, ``greenlet in group`` and iteration (in no particular order) look at the
    greenlets currently tracked, also available as the set :attr:`greenlets`. A group with no
    greenlets is false in a boolean context.

    .. attribute:: greenlet_class

       The class :meth:`spawn` instantiates: :class:`~verdigris.greenlet.Greenlet` or a subclass.

    .. note::
       ``Group(greenlets).join()`` waits for the initial greenlets; gevent's returns at once,
       because its "empty" flag is not cleared for them.
    """

    greenlet_class = Greenlet

    def __init__(self, *args):
        if len(args) > 1:
            raise TypeError('Group() takes at most one iterable of greenlets')
        self.greenlets = set()
        #: Greenlets being killed, so kill() does not kill one twice.
        self.dying = set()
        self._empty_event = Event()  # set exactly when no greenlet is tracked
        self._empty_event.set()
        for greenlet in (args[0] if args else ()):
            Group.add(self, greenlet)

    def __repr__(self):
        return '<%s at 0x%x %s>' % (type(self).__name__, id(self), self.greenlets)

    def __len__(self):
        return len(self.greenlets)

    def __contains__(self, item):
        return item in self.greenlets

    def __iter__(self):
        return iter(self.greenlets)

    # -- membership ----------------------------------------------------------------------------

    def add(self, greenlet):
        """Track *greenlet* until it finishes; it should not have been started yet."""
        rawlink = getattr(greenlet, 'rawlink', None)
        if rawlink is not None:  # a raw greenlet (the main one) cannot tell us it finished
            rawlink(self._discard)
        self.greenlets.add(greenlet)
        self._empty_event.clear()

    def _discard(self, greenlet):
        self.greenlets.discard(greenlet)
        self.dying.discard(greenlet)
        if not self.greenlets:
            self._empty_event.set()

    def discard(self, greenlet):
        """Stop tracking *greenlet* (it keeps running)."""
        self._discard(greenlet)
        unlink = getattr(greenlet, 'unlink', None)
        if unlink is not None:
            unlink(self._discard)

    def start(self, greenlet):
        """:meth:`add` the unstarted *greenlet*, then start it."""
        self.add(greenlet)
        greenlet.start()

    def spawn(self, *args, **kwargs):
        """Create a :attr:`greenlet_class` with the arguments, :meth:`start` it and return it."""
        greenlet = self.greenlet_class(*args, **kwargs)
        self.start(greenlet)
        return greenlet

    # -- waiting and killing -------------------------------------------------------------------

    def join(self, timeout=None, raise_error=False):
        """Wait until the group has been empty at least once.

        :param timeout: the most seconds to wait; None waits without limit.
        :param raise_error: if true, re-raise the exception of a greenlet (one that was in the
            group when join was called) that failed.
        :return: True if the group became empty, False if the timeout elapsed first.
        """
        watched = list(self.greenlets) if raise_error else ()
        emptied = self._empty_event.wait(timeout=timeout)
        for greenlet in watched:
            if greenlet.exception is not None:
                _reraise(greenlet)
        return emptied

    def kill(self, exception=GreenletExit, block=True, timeout=None):
        """Kill every greenlet in the group.

        :param exception: what to raise in each of them.
        :param block: wait until they are all dead (and gone from the group).
        :param timeout: with *block*, the most seconds to wait.
        """
        timer = Timeout._start_new_or_dummy(timeout)
        try:
            while self.greenlets:
                for greenlet in list(self.greenlets):
                    if greenlet not in self.dying:
                        self.dying.add(greenlet)
                        _kill(greenlet, exception)
                if not block:
                    break
                verdigris.joinall(list(self.greenlets))
                # Dead greenlets are removed by their links; a raw one has none.
                for greenlet in list(self.greenlets):
                    if greenlet.dead and getattr(greenlet, 'rawlink', None) is None:
                        self._discard(greenlet)
        except Timeout as error:
            if error is not timer:
                raise
        finally:
            timer.cancel()

    def killone(self, greenlet, exception=GreenletExit, block=True, timeout=None):
        """Kill *greenlet* if this group tracks it and is not already killing it.

        :param block: wait (up to *timeout* seconds) until it is dead.
        """
        if greenlet not in self.dying and greenlet in self.greenlets:
            self.dying.add(greenlet)
            greenlet.kill(exception, block=False)
            if block:
                greenlet.join(timeout)

    def full(self):
        """Return whether :meth:`add` would block: never, for a Group."""
        return False

    def wait_available(self, timeout=None):
        """Wait until :meth:`spawn` would not block: return at once, for a Group."""

    # -- multiprocessing.pool-style helpers ----------------------------------------------------

    def apply(self, func, args=None, kwds=None):
        """Run ``func(*args, **kwds)`` in a greenlet of the group and return its result.

        Called from one of the group's own greenlets, it runs *func* directly instead (a full
        pool would otherwise deadlock). Exceptions propagate.
        """
        args = () if args is None else args
        kwds = {} if kwds is None else kwds
        if getcurrent() in self:
            return func(*args, **kwds)
        return self.spawn(func, *args, **kwds).get()

    def apply_cb(self, func, args=None, kwds=None, callback=None):
        """:meth:`apply`, then run *callback* with the result in a new greenlet (not tracked)."""
        result = self.apply(func, args, kwds)
        if callback is not None:
            Greenlet.spawn(callback, result)
        return result

    def apply_async(self, func, args=None, kwds=None, callback=None):
        """Start ``func(*args, **kwds)`` and return the greenlet running it; never blocks.

        *callback*, if given, is called with the result once *func* succeeds. If the group is
        full, the returned greenlet waits for room outside the group, so joining the group does
        not necessarily wait for it: join the returned greenlet.
        """
        args = () if args is None else args
        kwds = {} if kwds is None else kwds
        if self.full():
            return Greenlet.spawn(self.apply_cb, func, args, kwds, callback)
        greenlet = self.spawn(func, *args, **kwds)
        if callback is not None:
            greenlet.link(_CallOnSuccess(callback))
        return greenlet

    def map(self, func, iterable):
        """Return ``[func(item) for item in iterable]``, computed in the group's greenlets.

        The first exception (in input order) propagates.

        .. note::
           gevent spawns the tasks from a helper greenlet and waits for it; verdigris spawns them
           from the caller, so killing the caller also stops the spawning.
        """
        tasks = [self.spawn(func, item) for item in iterable]
        return [task.get() for task in tasks]

    def map_cb(self, func, iterable, callback=None):
        """:meth:`map`, then call *callback* with the list of results."""
        result = self.map(func, iterable)
        if callback is not None:
            callback(result)
        return result

    def map_async(self, func, iterable, callback=None):
        """Start :meth:`map_cb` in a new greenlet and return that greenlet."""
        return Greenlet.spawn(self.map_cb, func, iterable, callback)

    def imap(self, func, *iterables, maxsize=None):
        """imap(func, *iterables, maxsize=None) -> iterator over ``func(*items)``, in order.

        Items are taken from the *iterables* in parallel (as :func:`zip` does) and computed in
        the group's greenlets, so a pool bounds how many run at once.

        :param maxsize: if given, at most this many finished results wait for the reader; the
            rest of the work waits until they are read.
        """
        return self._start_imap(IMap, func, iterables, maxsize)

    def imap_unordered(self, func, *iterables, maxsize=None):
        """Like :meth:`imap`, but yield results in the order they finish."""
        return self._start_imap(IMapUnordered, func, iterables, maxsize)

    def _start_imap(self, cls, func, iterables, maxsize):
        iterator = cls(func, zip(*iterables), self.spawn, maxsize)
        iterator.start()
        return iterator


def _kill(greenlet, exception):
    kill = getattr(greenlet, 'kill', None)
    if kill is not None:
        kill(exception, block=False)
    else:
        # A raw greenlet: raise in it from the hub, where switching into it is allowed.
        verdigris.get_hub().loop.run_callback(greenlet.throw, exception)


class PoolFull(QueueFull):
    """Raised by :meth:`Pool.add` when the pool stayed full (not blocking, or timed out)."""


class Pool(Group):
    """Pool(size=None, greenlet_class=None) -> a :class:`Group` of at most *size* greenlets.

    :param size: the most greenlets at once. None means no bound. 0 makes a pool nothing can
        enter (adding blocks until its timeout); useful only with :meth:`wait_available` and
        :meth:`free_count`.
    :param greenlet_class: overrides :attr:`Group.greenlet_class`.
    :raises ValueError: if *size* is negative.

    .. note::
       gevent's ``discard()`` of a greenlet that is not in the pool frees a slot anyway
       (the pool can then exceed *size*); verdigris frees slots only for members.
    """

    def __init__(self, size=None, greenlet_class=None):
        if size is not None and size < 0:
            raise ValueError('size must not be negative: %r' % (size,))
        Group.__init__(self)
        self.size = size
        if greenlet_class is not None:
            self.greenlet_class = greenlet_class
        # One permit per free slot; taken in add(), given back when a member leaves.
        self._semaphore = DummySemaphore() if size is None else Semaphore(size)

    def wait_available(self, timeout=None):
        """Block until a greenlet could be added without blocking.

        :param timeout: the most seconds to wait; None waits without limit (forever for size 0).
        :return: how many greenlets could be added (0 if the timeout elapsed).
        """
        return self._semaphore.wait(timeout=timeout)

    def full(self):
        """Return whether :meth:`add` would block."""
        return self.free_count() <= 0

    def free_count(self):
        """Return how many more greenlets fit (1 for an unbounded pool)."""
        if self.size is None:
            return 1
        return max(0, self.size - len(self))

    def add(self, greenlet, blocking=True, timeout=None):
        """Track the unstarted *greenlet*, blocking while the pool is full.

        :param blocking: if false, raise :exc:`PoolFull` at once when full.
        :param timeout: with *blocking*, the most seconds to wait before raising PoolFull.
        :raises PoolFull: if no slot became free.
        """
        if not self._semaphore.acquire(blocking=blocking, timeout=timeout):
            raise PoolFull()
        try:
            Group.add(self, greenlet)
        except BaseException:
            self._semaphore.release()
            raise

    def start(self, greenlet, blocking=True, timeout=None):
        """:meth:`add` the unstarted *greenlet* (same arguments), then start it."""
        self.add(greenlet, blocking, timeout)
        greenlet.start()

    def _discard(self, greenlet):
        # Only a member gives its slot back: discarding a stranger must not over-release.
        was_member = greenlet in self.greenlets
        Group._discard(self, greenlet)
        if was_member:
            self._semaphore.release()
