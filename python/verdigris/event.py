"""Events between greenlets: :class:`Event` (a resettable flag) and :class:`AsyncResult`.

Both wake their waiters through :class:`~verdigris._linkable.AbstractLinkable`: ``set()`` only
schedules a notification round on the hub's loop, and the waiters then run in the order in which
they started waiting, after the setter yields. Both are for greenlets of one thread.
"""
from greenlet import getcurrent

from verdigris._linkable import AbstractLinkable
from verdigris.exceptions import InvalidSwitchError
from verdigris.timeout import Timeout

__all__ = ['Event', 'AsyncResult']

_NONE = object()  # "no value yet": None is a legitimate value


class Event(AbstractLinkable):
    """A flag greenlets can wait for, like :class:`threading.Event`.

    :meth:`set` makes the flag true and wakes every greenlet blocked in :meth:`wait`;
    :meth:`clear` makes it false again. The waiters wake after the setter yields, in the order in
    which they called :meth:`wait`. The flag may have been cleared again by the time a waiter
    runs: :meth:`wait` reports that it was set *at least once* during the wait.

    A greenlet that calls :meth:`wait` while the flag is set returns True without blocking, unless
    a notification round is still pending, in which case it first lets the woken waiters run.
    """

    __slots__ = ('_flag',)

    def __init__(self):
        AbstractLinkable.__init__(self)
        self._flag = False

    def __str__(self):
        return '<%s.%s at 0x%x %s _links[%s]>' % (
            type(self).__module__, type(self).__name__, id(self),
            'set' if self._flag else 'clear', len(self._links))

    def is_set(self):
        """Return the flag."""
        return self._flag

    #: :mod:`threading`'s old spelling.
    isSet = is_set

    def ready(self):
        """Return the flag (the name shared with AsyncResult and Greenlet)."""
        return self._flag

    def set(self):
        """Make the flag true and wake every waiting greenlet (after the caller yields).

        Callbacks from :meth:`rawlink` are called in the same notification round.
        """
        self._flag = True
        # Inlined _check_and_notify(): we know we are ready.
        if self._links and self._notifier is None:
            self._schedule_notify()

    def clear(self):
        """Make the flag false: later :meth:`wait` calls block until :meth:`set`."""
        self._flag = False

    def wait(self, timeout=None):
        """Block until the flag is set, or until *timeout* seconds elapse.

        :param timeout: seconds (a float), or None to wait without limit.
        :return: True if the flag was set before or during the wait, False if the timeout elapsed
            first. Without a timeout, always True.
        """
        if self._flag:
            if self._notifier is not None:
                self._wait_behind_round()
            return True
        if timeout is not None:
            return self._wait(timeout)
        # _wait(None), inlined: Event.set() waking thousands of waiters is benchmarked, and each
        # frame less between a parked greenlet and the hub is one less to bring back into cache.
        switch = getcurrent().switch
        self._links.append(switch)
        hub = self.hub
        if hub is None or hub.loop is None:
            hub = self._capture_hub()
        try:
            result = hub.switch()
        except BaseException:
            self.unlink(switch)
            raise
        if result is not self:
            self.unlink(switch)
            raise InvalidSwitchError('Invalid switch into Event.wait(): %r' % (result,))
        return True

    def _reset_internal_locks(self):
        # Called by threading's fork handling on Event objects once monkey-patched.
        pass


class AsyncResult(AbstractLinkable):
    """A one-shot result: a value (:meth:`set`) or an exception (:meth:`set_exception`).

    Greenlets blocked in :meth:`get` or :meth:`wait` wake when it is set, in the order in which
    they started waiting; later calls return at once. An instance is also a link callback:
    ``greenlet.link(result)`` copies the greenlet's value or exception into it. It has the parts
    of :class:`concurrent.futures.Future` that make sense without cancellation (``result``,
    ``set_result``, ``done``, ``cancel``, ``cancelled``).

    .. note::
       gevent keeps the traceback of a stored exception in a serialised form (``_tblib``);
       verdigris keeps the traceback object itself, which also keeps its frames alive until the
       AsyncResult is dropped.
    """

    __slots__ = ('_value', '_exc_info')

    def __init__(self):
        AbstractLinkable.__init__(self)
        self._value = _NONE
        self._exc_info = ()

    def __str__(self):
        parts = ['<%s ' % type(self).__name__]
        if self._value is not _NONE:
            parts.append('value=%r ' % (self._value,))
        if self._exc_info:
            parts.append('exception=%r ' % (self._exc_info[1],))
        if not self.ready():
            parts.append('unset ')
        parts.append(' _links[%s]>' % len(self._links))
        return ''.join(parts)

    @property
    def value(self):
        """The value given to :meth:`set`, or None if it was not called."""
        value = self._value
        return None if value is _NONE else value

    @property
    def exception(self):
        """The exception given to :meth:`set_exception`, or None if it was not called."""
        return self._exc_info[1] if self._exc_info else None

    @property
    def exc_info(self):
        """``(type, value, traceback)`` of the stored exception, or ``()`` if there is none."""
        return self._exc_info

    def ready(self):
        """Return whether a value or an exception is stored."""
        return self._value is not _NONE or bool(self._exc_info)

    def successful(self):
        """Return whether a value (not an exception) is stored."""
        return self._value is not _NONE

    def set(self, value=None):
        """Store *value* and wake every waiter; later :meth:`get` calls return it at once."""
        self._value = value
        if self._links and self._notifier is None:
            self._schedule_notify()

    def set_exception(self, exception, exc_info=None):
        """Store *exception* and wake every waiter; :meth:`get` will raise it.

        :param exc_info: optional ``(type, value, traceback)`` as from :func:`sys.exc_info`, used
            to re-raise with the original traceback.
        """
        if exc_info:
            self._exc_info = (exc_info[0], exc_info[1], exc_info[2])
        else:
            self._exc_info = (type(exception), exception, None)
        if self._links and self._notifier is None:
            self._schedule_notify()

    def _raise_exception(self):
        _, value, tb = self._exc_info
        if tb is not None:
            raise value.with_traceback(tb)
        raise value

    def get(self, block=True, timeout=None):
        """Return the stored value or raise the stored exception, blocking until there is one.

        :param block: if false and nothing is stored, raise :class:`~verdigris.timeout.Timeout`
            at once.
        :param timeout: seconds to block at most; when they elapse, the
            :class:`~verdigris.timeout.Timeout` is raised.
        """
        if self._value is not _NONE:
            return self._value
        if self._exc_info:
            self._raise_exception()
        if not block:
            raise Timeout()
        self._wait(timeout, raise_timeout=True)
        return self.get(block=False)

    def get_nowait(self):
        """Return the value or raise the exception; raise Timeout if nothing is stored yet."""
        return self.get(block=False)

    def wait(self, timeout=None):
        """Block until something is stored or *timeout* elapses; never raises the exception.

        :return: the stored value; None if an exception is stored or the timeout elapsed.
        """
        if self.ready():
            if self._notifier is not None:
                self._wait_behind_round()
        else:
            self._wait(timeout)
        return self.value

    def __call__(self, source):
        """Link protocol: copy *source*'s outcome (a finished greenlet) into this result."""
        if source.successful():
            self.set(source.value)
        else:
            self.set_exception(source.exception, getattr(source, 'exc_info', None))

    # concurrent.futures.Future-like spellings

    def result(self, timeout=None):
        """Same as :meth:`get` with *timeout*."""
        return self.get(timeout=timeout)

    set_result = set

    def done(self):
        """Same as :meth:`ready`."""
        return self.ready()

    def cancel(self):
        """An AsyncResult cannot be cancelled: always False."""
        return False

    def cancelled(self):
        """Always False (see :meth:`cancel`)."""
        return False
