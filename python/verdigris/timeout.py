"""``Timeout``: raise an exception in a greenlet after some seconds.

A started timeout arms a timer on the hub's loop; when it fires, the exception is thrown into the
greenlet that started it, wherever it is blocked. Leaving a ``with Timeout(...)`` block, or
``cancel()``, disarms it, so most timeouts never fire: that is why arming and cancelling are
O(1) in the loop's timer wheel.
"""
from verdigris._core import TimeoutBase

__all__ = ["Timeout", "with_timeout"]


class _FakeTimer:
    """Stands in for the timer of a timeout that never fires (``seconds=None``)."""

    pending = False
    active = False
    seconds = None
    timer = None
    exception = None

    def start(self, *args, **kwargs):
        raise AssertionError("non-expiring timer cannot be started")

    def stop(self):
        return

    def cancel(self):
        return

    def close(self):
        return

    def __enter__(self):
        return self

    def __exit__(self, typ, value, tb):
        return


_FakeTimer = _FakeTimer()


class Timeout(TimeoutBase):
    """Raises *exception* in the current greenlet after *seconds* (gevent's ``Timeout``).

    ``Timeout(seconds=None, exception=None, ref=True)``:

    * ``exception=None``: the Timeout instance itself is raised (catch ``Timeout``);
    * an exception class or instance: that is raised instead;
    * a string: a Timeout carrying that message is raised;
    * ``False``: a silent timeout: leaving the ``with`` block swallows it.

    ``seconds=None`` never fires. A Timeout is a ``BaseException`` so that ``except Exception``
    in the guarded code does not swallow it. ``start()``, ``cancel()``, ``close()``,
    ``pending`` and the context manager are implemented natively (``TimeoutBase``).

    .. note:: gevent gives every Timeout a loop timer watcher (``timeout.timer``) when it is
       created. verdigris arms a timer inside the loop only when the timeout is started, which
       makes ``with Timeout(...)`` several times cheaper; there is no ``timer`` attribute, and
       ``priority`` is accepted and ignored. ``args`` holds the constructor's arguments
       (gevent's is empty).
    """

    @classmethod
    def start_new(cls, timeout=None, exception=None, ref=True, _one_shot=False):
        """Creates and starts a timeout; a Timeout passed in is (re)started and returned."""
        if isinstance(timeout, Timeout):
            if not timeout.pending:
                timeout.start()
            return timeout
        timeout = cls(timeout, exception, ref=ref)
        timeout.start()
        return timeout

    @staticmethod
    def _start_new_or_dummy(timeout, exception=None, ref=True):
        # A cheap stand-in when there is no timeout: blocking primitives call this on every wait.
        if timeout is None:
            return _FakeTimer
        return Timeout.start_new(timeout, exception, ref)

    def __repr__(self):
        classname = type(self).__name__
        pending = " pending" if self.pending else ""
        if self.exception is None:
            exception = ""
        else:
            exception = " exception=%r" % (self.exception,)
        return "<%s at %s seconds=%s%s%s>" % (classname, hex(id(self)), self.seconds, exception, pending)

    def __str__(self):
        if self.seconds is None:
            return ""
        suffix = "" if self.seconds == 1 else "s"
        if self.exception is None:
            return "%s second%s" % (self.seconds, suffix)
        if self.exception is False:
            return "%s second%s (silent)" % (self.seconds, suffix)
        return "%s second%s: %s" % (self.seconds, suffix, self.exception)


def with_timeout(seconds, function, *args, **kwds):
    """Calls ``function(*args, **kwds)`` under a ``Timeout(seconds)``.

    With the keyword ``timeout_value``, returns that value instead of raising when the timeout
    fires.
    """
    timeout_value = kwds.pop("timeout_value", _NONE)
    timeout = Timeout.start_new(seconds)
    try:
        try:
            return function(*args, **kwds)
        except Timeout as ex:
            if ex is timeout and timeout_value is not _NONE:
                return timeout_value
            raise
    finally:
        timeout.cancel()


_NONE = object()
