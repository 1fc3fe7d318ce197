"""Exceptions of verdigris, with gevent's names and base classes."""
from greenlet import GreenletExit

__all__ = [
    "LoopExit",
    "BlockingSwitchOutError",
    "InvalidSwitchError",
    "ConcurrentObjectUseError",
    "InvalidThreadUseError",
    "HubDestroyed",
    "GreenletExit",
]


class LoopExit(Exception):
    """Raised in a greenlet that waits when the hub's loop has nothing left that could wake it.

    Typical causes: every greenlet is blocked on something no other greenlet will ever do (a
    deadlock on a lock, waiting on an ``Event`` nobody sets), or an object bound to another
    thread's hub is used from this one.
    """

    @property
    def hub(self):
        """The hub that raised the error, when the hub raised it."""
        if len(self.args) >= 2:
            return self.args[1]
        return None

    def __str__(self):
        if len(self.args) >= 2:
            return "%s (hub: %r)" % (self.args[0], self.args[1])
        return Exception.__str__(self)


class BlockingSwitchOutError(AssertionError):
    """A blocking call was made from inside the hub (an event loop callback)."""


class InvalidSwitchError(AssertionError):
    """A waiting greenlet was resumed in a way the loop did not expect (a stray ``switch``)."""


class ConcurrentObjectUseError(AssertionError):
    """Two greenlets waited on an object that supports only one waiter at a time."""


class InvalidThreadUseError(RuntimeError):
    """An object bound to one thread's hub was used from another thread."""


class HubDestroyed(GreenletExit):
    """Thrown into the hub greenlet to make it exit when the hub is destroyed."""

    def __init__(self, destroy_loop):
        GreenletExit.__init__(self, destroy_loop)
        self.destroy_loop = destroy_loop
