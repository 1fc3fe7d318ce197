"""Signals for greenlets: :func:`signal_handler`, and gevent's :mod:`signal` module.

:func:`signal_handler` (gevent's ``gevent.signal_handler``) runs ``handler(*args, **kwargs)`` in a
new greenlet each time a signal arrives, so the handler may block cooperatively. It uses the
loop's ``signal`` watchers when the hub's loop has them (gevent's ``ILoop.signal``); otherwise it
is built here on the stdlib's :func:`signal.signal`: one Python-level dispatcher per signal
number, shared by every handler registered for it, which wakes each handler's hub through an
``async_`` watcher. Python
runs signal handlers in the main thread, between two bytecodes of whatever greenlet is running
(or when the loop's poll is interrupted by the signal); the dispatcher only queues work for the
hub, and the handlers run on the loop's next turn. When the last handler for a signal is
cancelled, the disposition found before the first one was registered comes back.

The rest of the module mirrors the stdlib's :mod:`signal` (gevent's ``gevent.signal``):
:func:`signal` and :func:`getsignal` are the stdlib's, except for ``SIGCHLD``, whose callable
handler runs in a new greenlet (as in gevent), with ``(signum, None)``. Every other name is the
stdlib's own.

.. note::
   gevent's ``SIGCHLD`` wrapper exists because libev owns that signal for its child watchers.
   verdigris reaps children through pidfds (see :mod:`verdigris.os`), so ``SIGCHLD`` is only
   the program's: the handler runs for every child that exits (not only those forked by
   ``verdigris.os.fork``), ``SIG_IGN``/``SIG_DFL`` go straight to the kernel, and a handler that
   reaps with ``os.waitpid(-1, ...)`` takes statuses from :mod:`verdigris.subprocess` as it would
   from the stdlib's. :func:`set_wakeup_fd` is the stdlib's, since Python's C-level handler still
   writes ``SIGCHLD`` to it.

.. note::
   Exceptions escaping a :func:`signal_handler` handler go to the hub's ``handle_error`` without
   a context, which re-raises them in the main greenlet, as gevent does.
"""
import signal as _signal
import sys

from verdigris.hub import get_hub
from verdigris.os import _copy_globals

__implements__ = ["signal", "getsignal"]
__extensions__ = []

_signal_signal = _signal.signal
_signal_getsignal = _signal.getsignal
_SIGCHLD = getattr(_signal, "SIGCHLD", None)

# signalnum -> [SignalHandler]: who the shared dispatcher wakes.
_registered = {}
# signalnum -> the Python-level handler found before our dispatcher was installed.
_previous = {}


def _dispatch(signum, frame):
    """The one stdlib-level handler per signal: wakes the hub of every registered handler."""
    for handler in tuple(_registered.get(signum, ())):
        watcher = handler.watcher
        if watcher is not None:
            watcher.send()
    if signum == _SIGCHLD and callable(_child_handler):
        get_hub().loop.run_callback(_run_child_handler, _child_handler, signum)


class SignalHandler:
    """What :func:`signal_handler` returns: call :meth:`cancel` to stop handling the signal.

    Keep it until cancelled. ``ref`` (default False) says whether a registered handler keeps the
    loop alive on its own, as a pending timer would.
    """

    #: Class of the greenlet each delivery runs in (default :class:`verdigris.Greenlet`).
    greenlet_class = None
    _dispatched = False

    def __init__(self, signalnum, handler, *args, **kwargs):
        if not callable(handler):
            raise TypeError("signal handler must be callable.")
        self.signalnum = signalnum
        self.hub = get_hub()
        self.handler = handler
        self.args = args
        self.kwargs = kwargs
        if self.greenlet_class is None:
            from verdigris.greenlet import Greenlet

            type(self).greenlet_class = Greenlet
        loop_signal = getattr(self.hub.loop, "signal", None)
        if loop_signal is not None:
            # The loop has gevent's signal watchers: use them, as gevent does, so that the
            # program has one registry of Python-level signal handlers, not two.
            self._dispatched = False
            self.watcher = loop_signal(signalnum, ref=False)
            self.watcher.start(self._start)
            return
        # Our own dispatcher, waking an async_ watcher of our hub (thread-safe; deliveries
        # coalesce, as libev's signal watchers do).
        self._dispatched = True
        self.watcher = self.hub.loop.async_(ref=False)
        self.watcher.start(self._start)
        try:
            _install(signalnum, self)
        except BaseException:
            self.watcher.close()
            self.watcher = None
            raise

    def __repr__(self):
        return "<%s signalnum=%r handler=%r %s>" % (
            type(self).__name__, self.signalnum, self.handler,
            "active" if self.watcher is not None else "cancelled")

    @property
    def ref(self):
        return self.watcher is not None and self.watcher.ref

    @ref.setter
    def ref(self, value):
        if self.watcher is not None:
            self.watcher.ref = value

    def cancel(self):
        """Stops handling the signal and drops the handler and its arguments (idempotent)."""
        watcher, self.watcher = self.watcher, None
        if watcher is None:
            return
        watcher.stop()
        watcher.close()
        if self._dispatched:
            _uninstall(self.signalnum, self)
        self.handler = self.args = self.kwargs = self.hub = None

    def _start(self):
        # In the hub: run the handler in a greenlet of its own, so that it may block.
        try:
            greenlet = self.greenlet_class(self.handle)
            greenlet.switch()
        except BaseException:
            self.hub.handle_error(None, *sys.exc_info())

    def handle(self):
        """Calls the handler (in the greenlet :meth:`_start` made for this delivery)."""
        hub = self.hub
        try:
            self.handler(*self.args, **self.kwargs)
        except BaseException:
            if hub is not None:
                hub.handle_error(None, *sys.exc_info())


def signal_handler(signalnum, handler, *args, **kwargs):
    """Runs ``handler(*args, **kwargs)`` in a new greenlet whenever *signalnum* arrives.

    Returns a :class:`SignalHandler`; its ``cancel()`` stops the deliveries. Several handlers
    may be registered for one signal; each runs once per delivery. The first registration for a
    signal must be made in the main thread (the stdlib's rule, raising :exc:`ValueError`).

    :raises TypeError: if *handler* is not callable.
    """
    return SignalHandler(signalnum, handler, *args, **kwargs)


def _install(signalnum, handler):
    handlers = _registered.get(signalnum)
    if handlers:
        handlers.append(handler)
        return
    previous = getsignal(signalnum)
    _signal_signal(signalnum, _dispatch)
    _previous[signalnum] = previous
    _registered[signalnum] = [handler]


def _uninstall(signalnum, handler):
    handlers = _registered.get(signalnum, [])
    if handler in handlers:
        handlers.remove(handler)
    if handlers or signalnum not in _registered:
        return
    del _registered[signalnum]
    previous = _previous.pop(signalnum, _signal.SIG_DFL)
    if signalnum == _SIGCHLD and callable(_child_handler):
        return  # our dispatcher also serves the SIGCHLD handler: leave it installed
    # Somebody may have installed their own handler since: leave theirs alone.
    if _signal_getsignal(signalnum) is _dispatch:
        if previous is None:
            previous = _signal.SIG_DFL  # installed outside Python: we cannot restore it
        _signal_signal(signalnum, previous)


# -- the stdlib's signal module, with SIGCHLD handled in a greenlet ----------------------------

_UNSET = object()
_child_handler = _UNSET


def _run_child_handler(handler, signum):
    from verdigris.greenlet import Greenlet

    Greenlet(handler, signum, None).switch()


def getsignal(signalnum):
    """:func:`signal.getsignal`; for ``SIGCHLD``, the handler given to :func:`signal`.

    While :func:`signal_handler` handlers are registered for a signal, the stdlib reports the
    dispatcher they share; giving that back to :func:`signal` later keeps them working.
    """
    if signalnum != _SIGCHLD or _SIGCHLD is None:
        return _signal_getsignal(signalnum)
    global _child_handler
    if _child_handler is _UNSET:
        _child_handler = _signal_getsignal(_SIGCHLD)
    return _child_handler


def signal(signalnum, handler):
    """:func:`signal.signal`; a callable ``SIGCHLD`` handler runs in a new greenlet.

    Returns the previous handler, as :func:`getsignal` reports it.
    """
    if signalnum != _SIGCHLD or _SIGCHLD is None:
        # As in gevent, this replaces the dispatcher of signal_handler() registrations, if any.
        return _signal_signal(signalnum, handler)
    if handler not in (_signal.SIG_IGN, _signal.SIG_DFL) and not callable(handler):
        # The stdlib's own message.
        raise TypeError(
            "signal handler must be signal.SIG_IGN, signal.SIG_DFL, or a callable object")
    global _child_handler
    old = getsignal(_SIGCHLD)
    if callable(handler):
        _signal_signal(_SIGCHLD, _dispatch)
    else:
        _signal_signal(_SIGCHLD, handler)
    _child_handler = handler
    return old


set_wakeup_fd = _signal.set_wakeup_fd

__imports__ = _copy_globals(_signal, globals(), skip=set(globals()))
__all__ = __implements__ + __extensions__ + ["set_wakeup_fd", "signal_handler"]
