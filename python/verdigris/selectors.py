"""Cooperative high-level I/O multiplexing: :class:`GeventSelector`, the ``DefaultSelector``.

The stdlib's :mod:`selectors` API (``register``/``unregister``/``modify``/``select``/``get_key``/
``get_map``/``close``, :class:`~selectors.SelectorKey`, ``EVENT_READ``/``EVENT_WRITE``) on top of
the cooperative :class:`verdigris.select.poll`: ``select()`` blocks only the calling greenlet, and
reports readiness level-triggered, like the stdlib's selectors. The stdlib's other selector
classes are re-exported unchanged (``__imports__``); they block the whole thread.
"""
import math
import selectors as __selectors__

from verdigris.select import POLLIN, POLLOUT  # noqa: F401 - the constants are re-exported there
from verdigris.select import poll as _poll

__implements__ = ["DefaultSelector"]
__extensions__ = ["GeventSelector"]
__imports__ = [name for name in dir(__selectors__)
               if not name.startswith("_") and name not in __implements__
               and name not in ("math", "select", "sys", "ABCMeta", "abstractmethod", "Mapping",
                                "namedtuple")]

for _name in __imports__:
    globals()[_name] = getattr(__selectors__, _name)
del _name

__all__ = __implements__ + __extensions__ + __imports__

EVENT_READ = __selectors__.EVENT_READ
EVENT_WRITE = __selectors__.EVENT_WRITE


# _BaseSelectorImpl is the base of every stdlib selector (since 3.4): it keeps the fileobj -> key
# map and its checks (ValueError for a bad fd or mask, KeyError for a duplicate), so the errors are
# the stdlib's exactly.
class GeventSelector(__selectors__._BaseSelectorImpl):
    """A selector whose :meth:`select` waits cooperatively (gevent's ``GeventSelector``).

    *hub* is accepted for gevent's signature; the selector always uses the current thread's hub.
    """

    def __init__(self, hub=None):
        super().__init__()
        self._poll = _poll()

    def register(self, fileobj, events, data=None):
        key = super().register(fileobj, events, data)
        mask = (POLLIN if events & EVENT_READ else 0) | (POLLOUT if events & EVENT_WRITE else 0)
        try:
            self._poll.register(key.fd, mask)
        except BaseException:
            super().unregister(fileobj)
            raise
        return key

    def unregister(self, fileobj):
        key = super().unregister(fileobj)
        try:
            self._poll.unregister(key.fd)
        except KeyError:
            pass
        return key

    def select(self, timeout=None):
        """Waits until some registered file object is ready, or *timeout* seconds (None: forever;
        <= 0: only checks); returns ``[(key, events), ...]``."""
        if timeout is None:
            milliseconds = None
        elif timeout <= 0:
            milliseconds = 0
        else:
            # Rounded up, so that a short timeout does not become a busy zero.
            milliseconds = math.ceil(timeout * 1e3)
        ready = []
        try:
            revents_list = self._poll.poll(milliseconds)
        except InterruptedError:
            return ready
        for fd, revents in revents_list:
            key = self._key_from_fd(fd)
            if key is None:
                continue
            # Anything but POLLOUT (data, hang-up, error) makes it readable, anything but POLLIN
            # writable; then only what the key asked for is reported.
            events = (EVENT_READ if revents & ~POLLOUT else 0) | \
                (EVENT_WRITE if revents & ~POLLIN else 0)
            if events & key.events:
                ready.append((key, events & key.events))
        return ready

    def close(self):
        super().close()
        self._poll = None


DefaultSelector = GeventSelector
