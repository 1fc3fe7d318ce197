"""Locks for greenlets: :class:`Semaphore`, :class:`BoundedSemaphore`, :class:`DummySemaphore`
and the reentrant :class:`RLock`.

A semaphore counts ``release()`` calls minus ``acquire()`` calls plus its initial value;
``acquire()`` blocks while that count is zero. Blocked greenlets wake in the order in which they
blocked, through the notification rounds of :class:`~verdigris._linkable.AbstractLinkable`.

Discussion: the uncontended path.
    ``acquire()`` with a positive count and ``release()`` with nobody waiting touch only the
    counter (and test the link queue): no hub, no timer, no allocation. A greenlet that finds a
    positive count takes it even if earlier waiters have been notified but have not run yet, as
    in gevent; a waiter that loses such a race simply stays queued, at its place.
"""
from greenlet import getcurrent

from verdigris._linkable import AbstractLinkable

__all__ = ['Semaphore', 'BoundedSemaphore', 'DummySemaphore', 'RLock']


class Semaphore(AbstractLinkable):
    """Semaphore(value=1) -> a counting semaphore for greenlets.

    Any greenlet may :meth:`release`, whether or not it acquired; releasing more than was
    acquired raises the count above its initial value (see :class:`BoundedSemaphore` for the
    checked variant). The semaphore is a context manager: ``with sem:`` acquires and releases.

    :param value: the initial count; must be >= 0.
    :raises ValueError: if *value* is negative.

    .. note::
       gevent's semaphore can also be shared between threads, falling back to native locks;
       verdigris's, like its Event, belongs to the greenlets of one thread.
    """

    __slots__ = ('counter',)

    _notify_all = False

    def __init__(self, value=1, hub=None):
        if value < 0:
            raise ValueError('semaphore initial value must be >= 0')
        AbstractLinkable.__init__(self, hub)
        #: The current count: how many more :meth:`acquire` calls would not block.
        self.counter = value

    def __str__(self):
        return '<%s at 0x%x counter=%s _links[%s]>' % (
            type(self).__name__, id(self), self.counter, len(self._links))

    def locked(self):
        """Return True if :meth:`acquire` would block (the count is zero)."""
        return self.counter <= 0

    def ready(self):
        """Return True if :meth:`acquire` would not block."""
        return self.counter > 0

    def acquire(self, blocking=True, timeout=None):
        """Decrement the count, blocking while it is zero.

        :param blocking: if false, never block: return False at once when the count is zero.
        :param timeout: with *blocking*, the most seconds to wait; None waits without limit.
        :return: True if acquired; False if not blocking and not available, or if the timeout
            elapsed first.
        """
        if self.counter > 0:
            self.counter -= 1
            return True
        if not blocking:
            return False
        if not self._wait(timeout):
            return False
        # The round that woke us checked ready() and switched straight to us: nothing ran in
        # between, so the count is still positive.
        self.counter -= 1
        return True

    def release(self):
        """Increment the count and wake the longest waiting greenlet (after the caller yields).

        :return: the new count.
        """
        self.counter += 1
        # Inlined _check_and_notify(): the count is now positive, so we are ready.
        if self._links and self._notifier is None:
            self._schedule_notify()
        return self.counter

    def wait(self, timeout=None):
        """Wait until the semaphore could be acquired, without acquiring it.

        :param timeout: the most seconds to wait; None waits without limit.
        :return: the count when this returns; it can be 0 if the timeout elapsed or other
            greenlets acquired first.
        """
        if self.counter > 0:
            return self.counter
        self._wait(timeout)
        return self.counter

    def __enter__(self):
        self.acquire()

    def __exit__(self, typ, val, tb):
        self.release()


class BoundedSemaphore(Semaphore):
    """BoundedSemaphore(value=1) -> a semaphore whose count may not exceed its initial value.

    Releasing it more often than it was acquired is almost always a bug, so it raises.

    :raises ValueError: from :meth:`release` when the count is already at its initial value.
    """

    __slots__ = ('_initial_value',)

    #: The exception :meth:`release` raises when over-released.
    _OVER_RELEASE_ERROR = ValueError

    def __init__(self, value=1, hub=None):
        Semaphore.__init__(self, value, hub)
        self._initial_value = value

    def release(self):
        """Like :meth:`Semaphore.release`, but raise ValueError if it would exceed the bound."""
        if self.counter >= self._initial_value:
            raise self._OVER_RELEASE_ERROR('Semaphore released too many times')
        return Semaphore.release(self)

    def _at_fork_reinit(self):
        # In a forked child nobody holds it any more: back to the initial count.
        Semaphore._at_fork_reinit(self)
        self.counter = self._initial_value


class DummySemaphore:
    """DummySemaphore(value=None) -> a semaphore that never blocks.

    It has :class:`Semaphore`'s API with an infinite count, so code can be parameterised on
    whether a resource is limited at all (``Pool(None)`` uses one).
    """

    def __init__(self, value=None):
        # *value* is accepted and ignored, for a Semaphore-compatible signature.
        pass

    def __str__(self):
        return '<%s>' % type(self).__name__

    def locked(self):
        """Never locked: False."""
        return False

    def ready(self):
        """Always acquirable: True."""
        return True

    def release(self):
        """Do nothing."""

    def rawlink(self, callback):
        """Do nothing: there is never anything to wait for."""

    def unlink(self, callback):
        """Do nothing."""

    def wait(self, timeout=None):
        """Return 1 at once."""
        return 1

    def acquire(self, blocking=True, timeout=None):
        """Return True at once; the arguments are ignored."""
        return True

    def __enter__(self):
        pass

    def __exit__(self, typ, val, tb):
        pass


class RLock:
    """A reentrant mutex for greenlets, with :class:`threading.RLock`'s API.

    The greenlet holding it may :meth:`acquire` it again; each acquire needs a matching
    :meth:`release`, and only the holder may release.
    """

    __slots__ = ('_block', '_owner', '_count', '__weakref__')

    def __init__(self, hub=None):
        self._block = Semaphore(1, hub)
        self._owner = None
        self._count = 0

    def __repr__(self):
        return '<%s at 0x%x _block=%s _count=%r _owner=%r)>' % (
            type(self).__name__, id(self), self._block, self._count, self._owner)

    def acquire(self, blocking=True, timeout=None):
        """Acquire the mutex, blocking if another greenlet holds it (see Semaphore.acquire).

        :return: a true value if acquired (1 when re-acquired by its holder, as in gevent).
        """
        me = getcurrent()
        if self._owner is me:
            self._count += 1
            return 1
        acquired = self._block.acquire(blocking, timeout)
        if acquired:
            self._owner = me
            self._count = 1
        return acquired

    def __enter__(self):
        return self.acquire()

    def release(self):
        """Release one level of ownership; the mutex is free when every acquire is released.

        :raises RuntimeError: if the current greenlet does not hold it.
        """
        if self._owner is not getcurrent():
            raise RuntimeError('cannot release un-acquired lock. Owner: %r Current: %r'
                               % (self._owner, getcurrent()))
        self._count -= 1
        if not self._count:
            self._owner = None
            self._block.release()

    def __exit__(self, typ, value, tb):
        self.release()

    def locked(self):
        """Return whether some greenlet holds the mutex."""
        return self._count > 0

    # threading.Condition uses these on the lock it is given.

    def _acquire_restore(self, count_owner):
        count, owner = count_owner
        self._block.acquire()
        self._count = count
        self._owner = owner

    def _release_save(self):
        count, owner = self._count, self._owner
        self._count = 0
        self._owner = None
        self._block.release()
        return count, owner

    def _is_owned(self):
        return self._owner is getcurrent()
