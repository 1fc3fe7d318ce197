"""Waiting for I/O completion, cooperatively: :func:`select` and :class:`poll`.

Both give the stdlib's results (level-triggered: an fd with unread data is reported by every call)
and raise the stdlib's errors, but block only the calling greenlet.

How they wait
    Readiness is always decided by the kernel, with one zero-timeout ``poll(2)`` over all the fds
    (a stdlib ``select.poll`` object): first at once, and again after every wake-up. Between the
    two, the greenlet parks in the loop: on one fd, directly (``loop.wait_fd(..., keep=False)``,
    no watcher object; a socket closed meanwhile by another greenlet raises ``OSError(EBADF)``);
    on several, with one ``loop.io`` watcher per fd, all stopped as soon as one fires. A call that
    finds something ready at once (or has a zero timeout) still yields to the other greenlets
    once, as gevent's does, so a loop over an always-ready fd cannot starve them.

Everything else of :mod:`select` (``error``, the ``POLL*``/``EPOLL*`` constants, ``epoll``) is
re-exported unchanged (``__imports__``).

.. note:: fds are not limited to ``FD_SETSIZE`` (1024): ``select`` accepts any fd, where the
   stdlib's raises ValueError.
.. note:: An fd only in *xlist*, or registered with :class:`poll` for neither input nor output
   (only ``POLLPRI``/``POLLHUP``/``POLLERR``), cannot wake the loop by itself (its conditions
   are not what the loop watches); while there is one, the kernel is asked again every 50 ms.
   gevent ignores *xlist* altogether.
"""
import os as _os
import select as __select__
from errno import EBADF
from time import monotonic as _monotonic

from verdigris._waiter import Waiter
from verdigris.hub import get_hub

__implements__ = ["select", "poll"]
__extensions__ = []
__imports__ = [name for name in dir(__select__)
               if not name.startswith("_") and name not in __implements__]

for _name in __imports__:
    globals()[_name] = getattr(__select__, _name)
del _name

__all__ = __implements__ + __imports__

_READ = 1
_WRITE = 2

_P = __select__
# What the kernel's select(2) counts as readable, writable, exceptional (fs/select.c).
_IN_SET = _P.POLLIN | _P.POLLRDNORM | _P.POLLRDBAND | _P.POLLHUP | _P.POLLERR
_OUT_SET = _P.POLLOUT | _P.POLLWRNORM | _P.POLLWRBAND | _P.POLLERR
_EX_SET = _P.POLLPRI
_ASK_IN = _P.POLLIN | _P.POLLRDNORM | _P.POLLRDBAND
_ASK_OUT = _P.POLLOUT | _P.POLLWRNORM | _P.POLLWRBAND
# How often fds that cannot wake a wait by themselves are checked (see the module's notes).
_RECHECK = 0.05


def _fd_of(obj):
    """The fd of an int or of an object with ``fileno()``, checked as the stdlib checks it."""
    if isinstance(obj, int):
        fd = obj
    else:
        try:
            fileno = obj.fileno
        except AttributeError:
            raise TypeError("argument must be an int, or have a fileno() method.") from None
        fd = fileno()
        if not isinstance(fd, int):
            raise TypeError("fileno() returned a non-integer")
    if fd < 0:
        raise ValueError("file descriptor cannot be a negative integer (%d)" % fd)
    return fd


def _loop_events(mask):
    """The loop's READ/WRITE bits worth waiting for, for a poll(2) interest *mask*."""
    events = 0
    if mask & _ASK_IN:
        events = _READ
    if mask & _ASK_OUT:
        events |= _WRITE
    return events


def _timeout_seconds(timeout):
    if timeout is None:
        return None
    if isinstance(timeout, float):
        seconds = timeout
    elif isinstance(timeout, int):
        seconds = float(timeout)
    else:
        raise TypeError("timeout must be a float or None")
    if seconds != seconds:
        raise ValueError("Invalid value NaN (not a number)")
    if seconds < 0:
        raise ValueError("timeout must be non-negative")
    return seconds


def _as_list(seq):
    if isinstance(seq, (list, tuple)):
        return seq
    try:
        return list(seq)
    except TypeError:
        raise TypeError("arguments 1-3 must be sequences") from None


def select(rlist, wlist, xlist, timeout=None):
    """Waits until some of the objects (ints or objects with ``fileno()``) are ready; returns
    three lists of those ready for reading, writing and exceptional conditions, as
    ``select.select`` does. *timeout* in seconds; None waits forever, 0 only checks.

    Errors are the stdlib's: TypeError for an unusable object, ValueError for a negative fd or
    timeout, ``OSError(EBADF)`` for a closed fd.
    """
    seconds = _timeout_seconds(timeout)
    lists = (_as_list(rlist), _as_list(wlist), _as_list(xlist))
    asks = (_ASK_IN, _ASK_OUT, _P.POLLPRI)
    interest = {}
    fds = []
    for objs, ask in zip(lists, asks):
        fds.append([_fd_of(obj) for obj in objs])
        for fd in fds[-1]:
            interest[fd] = interest.get(fd, 0) | ask
    poller = __select__.poll()
    for fd, mask in interest.items():
        poller.register(fd, mask)
    deadline = None if seconds is None else _monotonic() + seconds
    while True:
        revents = dict(poller.poll(0))
        if revents:
            for bits in revents.values():
                if bits & _P.POLLNVAL:
                    raise OSError(EBADF, _os.strerror(EBADF))
            result = tuple(
                [obj for obj, fd in zip(objs, fdlist) if revents.get(fd, 0) & ready]
                for objs, fdlist, ready in zip(lists, fds, (_IN_SET, _OUT_SET, _EX_SET)))
            if result[0] or result[1] or result[2]:
                get_hub().loop.sleep(0)
                return result
        if deadline is not None and _monotonic() >= deadline:
            get_hub().loop.sleep(0)
            return [], [], []
        _wait_any(interest, deadline)


def _wait_any(masks, deadline):
    """Parks until one of the fds of *masks* (``{fd: poll(2) interest}``) may be ready, or until
    *deadline*; the caller then asks the kernel what is ready."""
    fd_events = {}
    unwatched = False
    for fd, mask in masks.items():
        events = _loop_events(mask)
        if events:
            fd_events[fd] = events
        else:
            unwatched = True
    timeout = None if deadline is None else max(deadline - _monotonic(), 0.0)
    if unwatched and (timeout is None or timeout > _RECHECK):
        timeout = _RECHECK
    loop = get_hub().loop
    if not fd_events:
        loop.sleep(1e9 if timeout is None else timeout)
    elif len(fd_events) == 1:
        ((fd, events),) = fd_events.items()
        # eagain=True: poll(2) just said the fd is not ready, which is as good as EAGAIN, and no
        # epoll_wait ran since, so the edge of its next readiness cannot have been harvested yet.
        loop.wait_fd(fd, events, timeout, True, False)
    else:
        _wait_watchers(loop, fd_events, timeout)


def _wait_watchers(loop, fd_events, timeout):
    waiter = Waiter(get_hub())
    watchers = []
    try:
        for fd, events in fd_events.items():
            watcher = loop.io(fd, events)
            watchers.append(watcher)
            watcher.start(waiter.switch, None)
        if timeout is not None:
            watcher = loop.timer(timeout)
            watchers.append(watcher)
            watcher.start(waiter.switch, None)
        waiter.get()
    finally:
        for watcher in watchers:
            watcher.stop()
            watcher.close()


class poll:
    """A cooperative ``select.poll()`` object: :meth:`register`, :meth:`modify`,
    :meth:`unregister`, and :meth:`poll`, which blocks only the calling greenlet.

    Results are the stdlib's ``[(fd, revents), ...]``: ``POLLHUP``/``POLLERR`` are reported
    whatever the mask, a closed fd as ``POLLNVAL``.
    """

    def __init__(self):
        self._poller = __select__.poll()
        self._masks = {}

    def register(self, fd, eventmask=_P.POLLIN | _P.POLLPRI | _P.POLLOUT):
        """Adds *fd* (an int or an object with ``fileno()``) with *eventmask*, or changes its
        mask if it is registered already."""
        fd = _fd_of(fd)
        self._poller.register(fd, eventmask)
        self._masks[fd] = eventmask

    def modify(self, fd, eventmask):
        """Changes the mask of a registered *fd*; FileNotFoundError if it is not registered."""
        fd = _fd_of(fd)
        self._poller.modify(fd, eventmask)
        self._masks[fd] = eventmask

    def unregister(self, fd):
        """Removes *fd*; KeyError if it is not registered."""
        fd = _fd_of(fd)
        self._poller.unregister(fd)
        del self._masks[fd]

    def poll(self, timeout=None):
        """Waits until some registered fd has events; returns ``[(fd, revents), ...]``.

        *timeout* in milliseconds; None or a negative value waits forever, 0 only checks.
        """
        if timeout is None:
            seconds = None
        elif isinstance(timeout, (int, float)):
            if timeout != timeout:
                raise ValueError("Invalid value NaN (not a number)")
            seconds = None if timeout < 0 else timeout / 1000.0
        else:
            raise TypeError("timeout must be an integer or None")
        deadline = None if seconds is None else _monotonic() + seconds
        while True:
            result = self._poller.poll(0)
            if result:
                get_hub().loop.sleep(0)
                return result
            if deadline is not None and _monotonic() >= deadline:
                get_hub().loop.sleep(0)
                return []
            _wait_any(self._masks, deadline)
