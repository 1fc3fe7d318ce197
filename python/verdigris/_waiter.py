"""``Waiter``: the rendezvous between a greenlet that blocks and the hub that wakes it.

A greenlet calls :meth:`Waiter.get`, which switches to the hub; later, code running in the hub
calls :meth:`Waiter.switch` (or :meth:`Waiter.throw`), which switches back. Either side may come
first: a value delivered before ``get()`` is kept and returned at once.
"""
import sys

from greenlet import getcurrent

from verdigris.exceptions import ConcurrentObjectUseError

__all__ = ["Waiter", "MultipleWaiter"]

_NONE = object()


class Waiter:
    """A one-shot channel from the hub to one waiting greenlet (gevent's ``Waiter``).

    .. caution:: ``switch``/``throw`` must be called from the hub greenlet (a loop callback);
       ``get`` from any other greenlet.
    """

    __slots__ = ("hub", "greenlet", "value", "_exception")

    def __init__(self, hub=None):
        if hub is None:
            from verdigris.hub import get_hub

            hub = get_hub()
        self.hub = hub
        self.greenlet = None
        self.value = None
        self._exception = _NONE

    def clear(self):
        self.greenlet = None
        self.value = None
        self._exception = _NONE

    def __str__(self):
        if self._exception is _NONE:
            return "<%s greenlet=%s>" % (type(self).__name__, self.greenlet)
        if self._exception is None:
            return "<%s greenlet=%s value=%r>" % (type(self).__name__, self.greenlet, self.value)
        return "<%s greenlet=%s exc_info=%r>" % (type(self).__name__, self.greenlet, self.exc_info)

    def ready(self):
        """True once a value or an exception was delivered."""
        return self._exception is not _NONE

    def successful(self):
        """True if a value (not an exception) was delivered; None while not ready."""
        if self._exception is not _NONE:
            return self._exception is None
        return None

    @property
    def exc_info(self):
        """The delivered exception's ``(type, value, tb)``, if any."""
        if self._exception is not _NONE:
            return self._exception
        return None

    def switch(self, value):
        """Delivers *value*: wakes the waiting greenlet, or stores it for a later ``get()``."""
        greenlet = self.greenlet
        if greenlet is None:
            self.value = value
            self._exception = None
            return
        if getcurrent() is not self.hub:
            raise AssertionError("Can only use Waiter.switch method from the Hub greenlet")
        switch = greenlet.switch
        try:
            switch(value)
        except:  # noqa: E722 - whatever the woken greenlet raised into us belongs to the hub
            self.hub.handle_error(switch, *sys.exc_info())

    def switch_args(self, *args):
        return self.switch(args)

    def throw(self, *throw_args):
        """Raises ``throw_args`` in the waiting greenlet (now, or at its ``get()``)."""
        greenlet = self.greenlet
        if greenlet is None:
            self._exception = throw_args
            return
        if getcurrent() is not self.hub:
            raise AssertionError("Can only use Waiter.throw method from the Hub greenlet")
        throw = greenlet.throw
        try:
            throw(*throw_args)
        except:  # noqa: E722
            self.hub.handle_error(throw, *sys.exc_info())

    def get(self):
        """Blocks until a value or exception is delivered; returns or raises it."""
        if self._exception is not _NONE:
            if self._exception is None:
                return self.value
            getcurrent().throw(*self._exception)
        if self.greenlet is not None:
            raise ConcurrentObjectUseError("This Waiter is already used by %r" % (self.greenlet,))
        self.greenlet = getcurrent()
        try:
            return self.hub.switch()
        finally:
            self.greenlet = None

    def __call__(self, source):
        """Use as a link: delivers a finished greenlet's value or exception."""
        if source.exception is None:
            self.switch(source.value)
        else:
            self.throw(source.exception)


class MultipleWaiter(Waiter):
    """A Waiter that queues several values; each ``get()`` returns the oldest one."""

    __slots__ = ("_values",)

    def __init__(self, hub=None):
        Waiter.__init__(self, hub)
        self._values = []

    def switch(self, value):
        self._values.append(value)
        Waiter.switch(self, True)

    def get(self):
        if not self._values:
            Waiter.get(self)
            Waiter.clear(self)
        return self._values.pop(0)
