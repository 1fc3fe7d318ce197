"""The hub: the greenlet that runs a thread's event loop.

Every thread that uses verdigris gets one hub, created on first use by :func:`get_hub`. Blocking
operations park the current greenlet and switch to the hub; the hub runs the Rust loop
(:class:`verdigris._core.Loop`), which switches back into greenlets as their timers expire, their
fds become ready or their events are set.

The hub's ``run`` never returns: when the loop has nothing left that could ever wake anybody, it
throws :class:`~verdigris.exceptions.LoopExit` into its parent (the greenlet that created the hub,
normally the main one), which is what a program blocked forever sees.
"""
import os
import sys
import threading
import time
import traceback

from greenlet import GreenletExit
from greenlet import getcurrent
from greenlet import greenlet as RawGreenlet

from verdigris._config import config
from verdigris._core import Loop
from verdigris._core import hub_switch as _hub_switch
from verdigris._waiter import Waiter
from verdigris.exceptions import (
    BlockingSwitchOutError,
    ConcurrentObjectUseError,
    HubDestroyed,
    InvalidSwitchError,
    LoopExit,
)

__all__ = [
    "getcurrent",
    "GreenletExit",
    "spawn_raw",
    "sleep",
    "kill",
    "signal",
    "reinit",
    "get_hub",
    "get_hub_if_exists",
    "set_hub",
    "set_default_hub_class",
    "Hub",
    "Waiter",
    "LoopExit",
    "idle",
]

# The OS thread's identity, captured before monkey patching can make threading.get_ident
# answer per greenlet (verdigris/__init__ imports this module before monkey can patch).
import _thread  # noqa: E402

get_thread_ident = _thread.get_ident
MAIN_THREAD_IDENT = threading.main_thread().ident

_tls = threading.local()


class _readproperty:
    """A property that an instance attribute of the same name overrides (non-data descriptor)."""

    def __init__(self, func):
        self.func = func
        self.__doc__ = func.__doc__

    def __get__(self, inst, owner):
        if inst is None:
            return self
        return self.func(inst)


def gmctime():
    return time.strftime("%a %b %d %H:%M:%S %Y", time.gmtime())


class Hub(RawGreenlet):
    """The greenlet that runs the event loop of one thread (gevent's ``Hub``).

    Subclass it and install the subclass with :func:`set_default_hub_class` to customise error
    handling; :attr:`SYSTEM_ERROR` exceptions are re-raised in the main greenlet,
    :attr:`NOT_ERROR` exceptions are not printed.
    """

    #: Exceptions that stop the program: re-raised in the hub's parent (the main greenlet).
    SYSTEM_ERROR = (KeyboardInterrupt, SystemExit, SystemError)
    #: Exceptions that end a greenlet without being worth a traceback.
    NOT_ERROR = (GreenletExit, SystemExit)

    name = ""
    #: The hub's monitor (:class:`verdigris._monitor.PeriodicMonitoringThread`) once it runs.
    periodic_monitoring_thread = None

    @_readproperty
    def loop_class(self):
        """Class of the loop a new hub creates (``config.loop``: :class:`verdigris._loop.Loop`)."""
        return config.loop

    @_readproperty
    def threadpool_size(self):
        """Size of the hub's thread pool when it is created (``config.threadpool_size``)."""
        return config.threadpool_size

    @_readproperty
    def exception_stream(self):
        """Where tracebacks of failed greenlets and callbacks go (default: the current
        ``sys.stderr``); assign None or False to silence them."""
        return sys.stderr

    def __init__(self, loop=None, default=None):
        RawGreenlet.__init__(self)
        self.thread_ident = get_thread_ident()
        if default is None:
            default = self.thread_ident == MAIN_THREAD_IDENT
        if loop is None:
            loop = self.loop_class(default)
        elif not isinstance(loop, Loop):
            raise TypeError("loop must be a verdigris._core.Loop, not %r" % (loop,))
        self.loop = loop
        loop.hub = self
        loop.error_handler = self
        self._threadpool = None
        self._resolver = None
        self.periodic_monitoring_thread = None

    def __repr__(self):
        if self.loop is None:
            info = "destroyed"
        else:
            try:
                info = repr(self.loop)
            except Exception as ex:  # noqa: BLE001 - e.g. asked from another thread
                info = "<loop of another thread: %s>" % (type(ex).__name__,)
        return "<%s %r at 0x%x %s thread_ident=0x%x>" % (
            type(self).__name__, self.name, id(self), info, self.thread_ident)

    @property
    def main_hub(self):
        """True for the hub of the main thread."""
        return self.thread_ident == MAIN_THREAD_IDENT

    # -- running ---------------------------------------------------------------------------

    def run(self):
        """The hub greenlet's body: runs the loop forever. Do not call it directly."""
        assert self is getcurrent(), "Do not call Hub.run() directly"
        self.start_periodic_monitoring_thread()
        while True:
            loop = self.loop
            if loop is None:
                return
            loop.error_handler = self
            try:
                loop.run()
            except BaseException:
                # A Python signal handler (Ctrl-C's KeyboardInterrupt) raised while the loop
                # polled, or the error handler itself failed: report it as a system error, which
                # throws it into the main greenlet, then go on looping if we are resumed.
                self.handle_error(None, *sys.exc_info())
                continue
            # Nothing can wake anybody any more. This function must never return: returning
            # would make the parent's switch() return an unexpected value.
            self.parent.throw(LoopExit("This operation would block forever", self))

    #: ``hub.switch()``: switches from the current greenlet to the hub and returns what is
    #: switched back into it later. Calls the current greenlet class's ``switch_out`` first
    #: (the hub's own raises :class:`BlockingSwitchOutError`). Native (``_core.hub_switch``),
    #: because every blocking call goes through it; it always targets the current thread's hub.
    switch = _hub_switch

    def switch_out(self):
        raise BlockingSwitchOutError("Impossible to call blocking function in the event loop callback")

    def start_periodic_monitoring_thread(self):
        """Starts the hub's monitor if ``config.monitor_thread`` and not yet done; returns it.

        Called by :meth:`run`. The monitor reports greenlets that block the loop for
        ``config.max_blocking_time`` (see :mod:`verdigris._monitor`).
        """
        if self.periodic_monitoring_thread is None and config.monitor_thread:
            from verdigris._monitor import PeriodicMonitoringThread
            from verdigris.events import PeriodicMonitorThreadStartedEvent
            from verdigris.events import notify_and_call_entry_points

            monitor = self.periodic_monitoring_thread = PeriodicMonitoringThread(self)
            if self.main_hub:
                monitor.install_monitor_memory_usage()
            notify_and_call_entry_points(PeriodicMonitorThreadStartedEvent(monitor))
        return self.periodic_monitoring_thread

    def wait(self, watcher):
        """Parks the current greenlet until *watcher* fires (then stops it)."""
        waiter = Waiter(self)
        watcher.start(waiter.switch, waiter)
        try:
            result = waiter.get()
            if result is not waiter:
                raise InvalidSwitchError(
                    "Invalid switch into %s: got %r (expected %r)" % (getcurrent(), result, waiter))
        finally:
            watcher.stop()

    def cancel_wait(self, watcher, error, close_watcher=False):
        """Makes a greenlet waiting on *watcher* raise *error*; optionally closes the watcher."""
        if watcher.callback is not None:
            self.loop.run_callback(self._cancel_wait, watcher, error, close_watcher)
        elif close_watcher:
            watcher.close()

    @staticmethod
    def _cancel_wait(watcher, error, close_watcher):
        active = watcher.active
        cb = watcher.callback
        if close_watcher:
            watcher.close()
        if active and cb is not None:
            glet = getattr(cb, "__self__", None)
            if isinstance(glet, Waiter):
                glet.throw(error)

    def join(self, timeout=None):
        """Waits (from the main greenlet) until the loop has nothing left to do.

        Returns True when the loop finished, False when *timeout* elapsed first.
        """
        assert getcurrent() is self.parent, "only possible from the MAIN greenlet"
        if self.dead:
            return True
        waiter = Waiter(self)
        timer = None
        if timeout is not None:
            timer = self.loop.timer(timeout, ref=False)
            timer.start(waiter.switch, None)
        try:
            try:
                waiter.get()
            except LoopExit:
                return True
        finally:
            if timer is not None:
                timer.stop()
                timer.close()
        return False

    def destroy(self, destroy_loop=None):
        """Stops the hub; destroys its loop (default: unless it is the main thread's)."""
        if self.periodic_monitoring_thread is not None:
            self.periodic_monitoring_thread.kill()
            self.periodic_monitoring_thread = None
        if self._threadpool is not None:
            self._threadpool.kill()
            self._threadpool = None
        if self._resolver is not None:
            close = getattr(self._resolver, "close", None)
            if close is not None:
                close()
            self._resolver = None
        loop = self.loop
        if destroy_loop is None:
            destroy_loop = not (loop is not None and loop.default)
        if not self.dead and getcurrent() is not self:
            try:
                self.throw(HubDestroyed(destroy_loop))
            except LoopExit:
                pass
        if loop is not None:
            loop.error_handler = None
            loop.hub = None
            if destroy_loop:
                loop.destroy()
        self.loop = None
        if getattr(_tls, "hub", None) is self:
            del _tls.hub

    # -- errors ------------------------------------------------------------------------------

    def handle_error(self, context, type, value, tb):
        """Called for every exception that escapes a greenlet or a loop callback.

        Prints it (unless it is a :attr:`NOT_ERROR`) and, for :attr:`SYSTEM_ERROR` exceptions or
        errors of the hub itself (``context`` None), re-raises it in the main greenlet.
        """
        if (type, value, tb) == (None, None, None):
            type, value, tb = sys.exc_info()
        if isinstance(value, str):
            # Old-style string exceptions; gevent accepts them too.
            value = type(value)
        if type is HubDestroyed:
            # destroy() threw it to end the hub: it must keep propagating.
            raise value.with_traceback(tb)
        if not issubclass(type, self.NOT_ERROR):
            self.print_exception(context, type, value, tb)
        if context is None or issubclass(type, self.SYSTEM_ERROR):
            self.handle_system_error(type, value, tb)

    def handle_system_error(self, type, value, tb=None):
        """Throws a system error into the main greenlet (the hub's parent)."""
        current = getcurrent()
        if current is self or current is self.parent or self.loop is None:
            self.parent.throw(type, value, tb)
            return
        # Raised in some other greenlet: let the main greenlet see it, and keep this greenlet
        # resumable in case the main greenlet handles it and life goes on.
        cb = None
        try:
            cb = self.loop.run_callback(current.switch)
        except Exception:  # pragma: no cover - the loop refused (destroyed)
            traceback.print_exc(file=self.exception_stream or sys.stderr)
        try:
            self.parent.throw(type, value, tb)
        finally:
            if cb is not None:
                cb.stop()

    def print_exception(self, context, type, value, tb):
        """Writes the traceback and what failed to :attr:`exception_stream`."""
        stream = self.exception_stream
        if not stream:
            return
        try:
            traceback.print_exception(type, value, tb, file=stream)
        except Exception:  # pragma: no cover - a broken exception object
            stream.write("%r\n" % (value,))
        if context is not None:
            if not isinstance(context, str):
                try:
                    context = self.format_context(context)
                except Exception:
                    context = repr(context)
            stream.write("%s %s failed with %s\n\n" % (
                gmctime(), context, getattr(type, "__name__", "exception")))
        else:
            stream.write("%s\n" % (gmctime(),))
        flush = getattr(stream, "flush", None)
        if flush is not None:
            try:
                flush()
            except Exception:
                pass

    @_readproperty
    def format_context(self):
        """Turns the context of a failure into text (``config.format_context``)."""
        return config.format_context

    # -- services ----------------------------------------------------------------------------

    @property
    def threadpool_class(self):
        """``config.threadpool`` (:class:`verdigris.threadpool.ThreadPool`)."""
        return config.threadpool

    @property
    def threadpool(self):
        """The hub's thread pool, created on first use."""
        if self._threadpool is None:
            self._threadpool = self.threadpool_class(
                self.threadpool_size, hub=self,
                idle_task_timeout=config.threadpool_idle_task_timeout)
        return self._threadpool

    @threadpool.setter
    def threadpool(self, value):
        self._threadpool = value

    @threadpool.deleter
    def threadpool(self):
        self._threadpool = None

    @property
    def resolver_class(self):
        """``config.resolver`` (:class:`verdigris.resolver.Resolver`)."""
        return config.resolver

    @property
    def resolver(self):
        """The hub's DNS resolver, created on first use."""
        if self._resolver is None:
            self._resolver = self.resolver_class(hub=self)
        return self._resolver

    @resolver.setter
    def resolver(self, value):
        self._resolver = value

    @resolver.deleter
    def resolver(self):
        self._resolver = None


_default_hub_class = Hub


def set_default_hub_class(hubtype):
    """Makes :func:`get_hub` create hubs of *hubtype* (a :class:`Hub` subclass) from now on."""
    global _default_hub_class
    if not (isinstance(hubtype, type) and issubclass(hubtype, Hub)):
        raise TypeError("hub class must be a subclass of verdigris.hub.Hub, not %r" % (hubtype,))
    _default_hub_class = hubtype


def get_hub_class():
    return _default_hub_class


def get_hub(*args, **kwargs):
    """The current thread's hub, created on first use."""
    try:
        return _tls.hub
    except AttributeError:
        hub = _tls.hub = _default_hub_class(*args, **kwargs)
        return hub


def get_hub_if_exists():
    """The current thread's hub, or None if none was created yet."""
    return getattr(_tls, "hub", None)


def set_hub(hub):
    _tls.hub = hub


def get_loop():
    return get_hub().loop


#: ``sleep(seconds=0, ref=True)``: suspends the current greenlet for *seconds* (gevent's
#: ``sleep``); ``sleep(0)`` (or any value <= 0) yields: every greenlet already scheduled runs
#: before this one resumes. With ``ref=False`` the sleep does not keep the loop alive on its
#: own. Implemented natively: the thread's loop parks the greenlet without any Python frame.
from verdigris._core import sleep  # noqa: E402


def idle(priority=0):
    """Waits until the loop has nothing else to do (nothing queued, nothing ready)."""
    get_hub().loop.idle_wait()


def spawn_raw(function, *args, **kwargs):
    """Starts a plain ``greenlet.greenlet`` running ``function(*args, **kwargs)``.

    Cheaper than :func:`verdigris.spawn`: no links, no value, no join. An exception escaping
    *function* goes to the hub's error handler.
    """
    if not callable(function):
        raise TypeError("function must be callable")
    hub = get_hub()
    if kwargs:
        import functools

        function = functools.partial(function, *args, **kwargs)
        g = RawGreenlet(function, hub)
        hub.loop.run_callback(g.switch)
    else:
        g = RawGreenlet(function, hub)
        hub.loop.run_callback(g.switch, *args)
    return g


def kill(greenlet, exception=GreenletExit):
    """Kills *greenlet* asynchronously: raises *exception* in it on the next loop turn."""
    if not greenlet.dead:
        if hasattr(greenlet, "kill"):
            greenlet.kill(exception=exception, block=False)
        else:
            get_hub().loop.run_callback(greenlet.throw, exception)


class signal:
    """Runs ``handler(*args)`` in a new greenlet whenever *signalnum* arrives.

    Defined by :mod:`verdigris.signal`; see :func:`verdigris.signal_handler`.
    """

    def __new__(cls, *args, **kwargs):
        from verdigris.signal import signal_handler

        return signal_handler(*args, **kwargs)


def reinit(hub=None):
    """Prepares the hub for use in a forked child: a fresh poller, threads dropped.

    Called automatically after :func:`os.fork`; calling it again is harmless.
    """
    hub = hub if hub is not None else get_hub_if_exists()
    if hub is None or hub.loop is None:
        return
    hub.loop.reinit()
    if hub._threadpool is not None:
        reinit_pool = getattr(hub._threadpool, "_on_fork", None)
        if reinit_pool is not None:
            reinit_pool()
        else:
            hub._threadpool = None
    if hub._resolver is not None:
        hub._resolver = None
    if hub.periodic_monitoring_thread is not None:
        hub.periodic_monitoring_thread._on_fork()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=reinit)

from verdigris._hub_primitives import iwait_on_objects as iwait  # noqa: E402
from verdigris._hub_primitives import wait_on_objects as wait  # noqa: E402
