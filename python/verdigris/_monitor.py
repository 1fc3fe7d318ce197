"""The monitor thread: reports greenlets and callbacks that keep the loop from running.

A greenlet that computes for a second, or calls a blocking function that was not monkey
patched, stops every other greenlet of its thread for that second. The hub starts a
:class:`PeriodicMonitoringThread` when it first runs (``config.monitor_thread``, on by default)
to catch that:

* The blocking check is native (:meth:`verdigris._core.Loop.start_monitor`): the loop counts the
  entries it dispatches and a Rust thread, which never takes the GIL while things are fine, looks
  at the count every ``config.max_blocking_time`` seconds. When it has not moved and the loop is
  not waiting in poll, one callback or greenlet has held the loop that long, and the thread calls
  :meth:`PeriodicMonitoringThread.monitor_blocking` once for that episode.
* That method, run in the monitor thread with the GIL, finds the greenlet running in the hub's
  thread, captures that thread's stack (``sys._current_frames()``), formats a report like
  gevent's, sends :class:`verdigris.events.EventLoopBlocked` to the subscribers (who may edit
  its ``info`` lines), then prints it on the hub's ``exception_stream`` if
  ``config.print_blocking_reports``.
* Functions added with :meth:`~PeriodicMonitoringThread.add_monitoring_function` (and the memory
  check, when ``config.max_memory_usage`` is set) run in a Python thread of the monitor's own,
  started only when there is one.

Shutdown: a native thread calling into Python while the interpreter finalizes could crash it,
so an :mod:`atexit` handler stops every monitor first; after a ``fork`` the child never joins
the parent's monitor thread (it does not exist there) and starts its own.

.. note::
   Deviations from gevent: blocking is detected per loop dispatch, not with a
   ``greenlet.settrace`` function (which would cost a Python call per switch), so callbacks
   that block inside the hub are reported too (gevent attributes that time to the hub and
   stays silent). ``EventLoopBlocked.blocking_time`` is the measured time, not
   ``max_blocking_time``, and one episode gives one report (gevent repeats it every
   ``max_blocking_time`` while the loop stays blocked). The report lists the greenlets only when
   there are at most :attr:`PeriodicMonitoringThread.max_report_greenlets` of them.
   ``ignore_current_greenlet_blocking()`` lasts until ``monitor_current_greenlet_blocking()``
   (gevent: until the next switch). ``max_blocking_time`` is read when the monitor starts; and
   memory is watched only if ``max_memory_usage`` is set when it starts, using
   ``/proc/self/statm`` rather than psutil.
"""
import atexit
import collections
import gc
import os
import sys
import time
import traceback
import weakref

from greenlet import greenlet as RawGreenlet

from verdigris._config import config
from verdigris.util import _safe_repr
from verdigris.events import (
    EventLoopBlocked,
    IPeriodicMonitorThread,
    MemoryUsageThresholdExceeded,
    MemoryUsageUnderThreshold,
    notify,
)

__all__ = ['PeriodicMonitoringThread', 'MonitorWarning']


def _originals():
    # The monitor must use real threads and locks even when monkey patching replaced them.
    import _thread

    names = ['start_new_thread', 'allocate_lock', 'get_ident']
    try:
        from verdigris.monkey import get_original
    except ImportError:
        return [getattr(_thread, name) for name in names]
    return get_original('_thread', names)


_start_new_thread, _allocate_lock, _get_ident = _originals()
_is_active = RawGreenlet.__bool__

# Every monitor that may still call into Python; atexit stops them all.
_live = weakref.WeakSet()
# Native monitors inherited from a parent process: never stopped (their thread does not exist
# here and joining it would hang) and never freed.
_orphans = []
_exiting = False

MemoryInfo = collections.namedtuple('MemoryInfo', 'rss vms')


class MonitorWarning(RuntimeWarning):
    """The category of the monitor's warnings."""


def thread_names():
    """``{thread ident: description}`` of the monitors' threads (for run info reports)."""
    names = {}
    for monitor in list(_live):
        if monitor.native_thread_ident is not None:
            names[monitor.native_thread_ident] = 'native monitor %s' % (_safe_repr(monitor),)
        if monitor.monitor_thread_ident is not None:
            names[monitor.monitor_thread_ident] = 'monitor functions %s' % (_safe_repr(monitor),)
    return names


def _stop_all_monitors():
    global _exiting
    _exiting = True
    for monitor in list(_live):
        monitor.kill()


atexit.register(_stop_all_monitors)


def _gmctime():
    return time.strftime('%a %b %d %H:%M:%S %Y', time.gmtime())


def _root(glet):
    while glet.parent is not None:
        glet = glet.parent
    return glet


def _is_running(glet):
    # The greenlet a thread is running has no saved frame (its frames are the thread's).
    return _is_active(glet) and glet.gr_frame is None


def running_greenlet(hub):
    """The greenlet running in *hub*'s thread (None if none is found). Call it from another
    thread: in the hub's own thread, that is ``getcurrent()``."""
    for glet in (hub, hub.parent):
        if glet is not None and _is_running(glet):
            return glet
    root = _root(hub)
    for obj in gc.get_objects():
        if isinstance(obj, RawGreenlet) and _is_running(obj) and _root(obj) is root:
            return obj
    return None


def memory_usage():
    """``(bytes resident, MemoryInfo(rss, vms))`` of this process, read from /proc."""
    with open('/proc/self/statm', 'rb') as f:
        fields = f.read().split()
    page = os.sysconf('SC_PAGE_SIZE')
    info = MemoryInfo(int(fields[1]) * page, int(fields[0]) * page)
    return info.rss, info


class _MonitorEntry:
    __slots__ = ('function', 'period', 'last_run_time')

    def __init__(self, function, period):
        self.function = function
        self.period = period
        self.last_run_time = 0

    def __repr__(self):
        return repr((self.function, self.period, self.last_run_time))


class PeriodicMonitoringThread(IPeriodicMonitorThread):
    """A hub's monitor: the native blocking check plus periodic monitoring functions.

    Created by ``hub.start_periodic_monitoring_thread()`` in the hub's thread; ``kill()`` stops
    it (the hub does on ``destroy()``).
    """

    #: Seconds the function thread sleeps when no function wants to run.
    inactive_sleep_time = 2.0
    #: The shortest sleep of the function thread, whatever the periods.
    min_sleep_time = 0.005
    #: The shortest period of the memory check (reading memory use is not free).
    min_memory_monitor_period = 2
    #: A blocking report lists the greenlets only when there are at most this many (a busy
    #: server's thousands would bury the stack that matters).
    max_report_greenlets = 100

    def __init__(self, hub):
        self._hub_ref = weakref.ref(hub)
        self.pid = os.getpid()
        self.should_run = True
        self.max_blocking_time = config.max_blocking_time
        self._native = None
        self._functions = []
        self._function_thread = None  # the wake-up lock of the running function thread
        self._memory_exceeded = 0
        self._ignored = None
        #: The function thread's ident, once started.
        self.monitor_thread_ident = None
        #: The native thread's ident, known once it first reported.
        self.native_thread_ident = None
        self._start_native(hub)
        _live.add(self)

    def _start_native(self, hub):
        if self.max_blocking_time and not _exiting:
            self._native = hub.loop.start_monitor(self.max_blocking_time, self._on_blocked)

    @property
    def hub(self):
        """The monitored hub, or None once it is gone."""
        return self._hub_ref()

    def __repr__(self):
        return '<%s at 0x%x for %s max_blocking_time=%r>' % (
            type(self).__name__, id(self), _safe_repr(self._hub_ref()), self.max_blocking_time)

    # -- stopping ------------------------------------------------------------------------------

    def kill(self):
        """Stops the native thread and the function thread (idempotent)."""
        if not self.should_run:
            return
        self.should_run = False
        _live.discard(self)
        self._drop_native()
        self._wake_function_thread()

    def _drop_native(self):
        native, self._native = self._native, None
        if native is None:
            return
        if os.getpid() == self.pid:
            native.stop()
        else:
            _orphans.append(native)

    def _on_fork(self):
        """In a forked child (called by ``hub.reinit()``): start the threads again."""
        if os.getpid() == self.pid:
            return
        self._drop_native()
        self.pid = os.getpid()
        hub = self.hub
        if hub is None or not self.should_run:
            return
        self._start_native(hub)
        if self._function_thread is not None:
            self._function_thread = None
            self._start_function_thread()

    # -- blocking ------------------------------------------------------------------------------

    def _on_blocked(self, blocked_seconds):
        # The native monitor thread, with the GIL: the loop has not moved for a while.
        if not self.should_run:
            return
        self.native_thread_ident = _get_ident()
        hub = self.hub
        if hub is None or hub.loop is None or os.getpid() != self.pid:
            self.kill()
            return
        self.monitor_blocking(hub, blocked_seconds)

    def monitor_blocking(self, hub, blocked_seconds=None):
        """Reports that *hub*'s loop is blocked; returns ``(greenlet, report lines)``, or None
        when there is nothing to report (the hub's thread is gone, or the blocking greenlet is
        ignored)."""
        frame = sys._current_frames().get(hub.thread_ident)
        if frame is None:
            # The hub's thread exited without destroying the hub: nothing to watch any more.
            self.kill()
            return None
        glet = running_greenlet(hub)
        ignored = self._ignored() if self._ignored is not None else None
        if glet is not None and glet is ignored:
            return None
        if blocked_seconds is None:
            blocked_seconds = self.max_blocking_time
        report = self._format_report(hub, glet, frame, blocked_seconds)
        del frame
        # Subscribers first: ``info`` is the report itself, which they may edit.
        notify(EventLoopBlocked(glet, blocked_seconds, report, hub=hub))
        return self._show_blocking_report(hub, report, glet)

    def _format_report(self, hub, glet, frame, blocked_seconds):
        from verdigris.util import format_run_info  # noqa: PLC0415 (cycle-free, but heavy)

        report = [
            '=' * 80,
            '\n%s : Greenlet %s appears to be blocked (the loop has not run for %.2f s)' % (
                _gmctime(), _safe_repr(glet), blocked_seconds),
            '    Reported by %r' % (self,),
            'Blocked Stack (for thread id %s):' % (hex(hub.thread_ident),),
            ''.join(traceback.format_stack(frame)),
            'Info:',
        ]
        report.extend(format_run_info(greenlet_stacks=False, current_thread_ident=_get_ident(),
                                      max_greenlets=self.max_report_greenlets))
        return report

    def _show_blocking_report(self, hub, report, glet):
        if config.print_blocking_reports:
            stream = hub.exception_stream
            if stream:
                for line in report:
                    # One line at a time: a huge single write could interleave badly anyway.
                    print(line, file=stream)
        return glet, report

    def ignore_current_greenlet_blocking(self):
        """Stops reporting the greenlet calling this (e.g. one known to block on purpose)."""
        from greenlet import getcurrent

        self._ignored = weakref.ref(getcurrent())

    def monitor_current_greenlet_blocking(self):
        """Reports the current greenlet again (undoes :meth:`ignore_current_greenlet_blocking`)."""
        self._ignored = None

    # -- periodic functions --------------------------------------------------------------------

    def monitoring_functions(self):
        """The ``_MonitorEntry`` list of the functions run periodically."""
        return list(self._functions)

    def add_monitoring_function(self, function, period):
        """Calls ``function(hub)`` about every *period* seconds, in the monitor's thread.

        *period* None removes *function*; adding it again updates its period.

        :raises ValueError: if *function* is not callable or *period* is <= 0.
        """
        if not callable(function):
            raise ValueError("function must be callable")
        if period is None:
            self._functions = [e for e in self._functions if e.function != function]
            return
        if period <= 0:
            raise ValueError("Period must be positive.")
        entries = [e for e in self._functions if e.function != function]
        entries.append(_MonitorEntry(function, period))
        self._functions = entries
        if self._function_thread is None and self.should_run:
            self._start_function_thread()
        else:
            self._wake_function_thread()  # the new period may be shorter than the current sleep

    def calculate_sleep_time(self):
        """How long the function thread sleeps before looking at the functions again."""
        periods = [e.period for e in self._functions]
        if not periods:
            return self.inactive_sleep_time
        return max(min(periods), self.min_sleep_time)

    def _start_function_thread(self):
        wake = _allocate_lock()
        wake.acquire()
        self._function_thread = wake
        self.monitor_thread_ident = _start_new_thread(self._run_functions, (wake,))

    def _wake_function_thread(self):
        wake = self._function_thread
        if wake is not None and wake.locked():
            try:
                wake.release()
            except RuntimeError:
                pass  # released concurrently

    def _run_functions(self, wake):
        while self.should_run and self._function_thread is wake:
            if wake.acquire(True, self.calculate_sleep_time()):
                continue  # woken early: periods changed, or stopping
            hub = self.hub
            if hub is None:
                self.kill()
                break
            now = time.perf_counter()
            for entry in self._functions:
                if entry.last_run_time + entry.period <= now:
                    entry.last_run_time = now
                    try:
                        entry.function(hub)
                    except Exception:
                        # The hub's error handling belongs to the hub's thread; just print.
                        traceback.print_exc()
            del hub

    # -- memory --------------------------------------------------------------------------------

    def can_monitor_memory_usage(self):
        """True where this process's memory use can be read (/proc is mounted)."""
        return os.path.exists('/proc/self/statm')

    def install_monitor_memory_usage(self):
        """Checks memory every ``config.memory_monitor_period`` seconds if a limit is set."""
        if not config.max_memory_usage:
            return
        if not self.can_monitor_memory_usage():
            import warnings

            warnings.warn("Unable to monitor memory usage: /proc/self/statm is not readable.",
                          MonitorWarning)
            return
        period = max(config.memory_monitor_period or 0, self.min_memory_monitor_period)
        self.add_monitoring_function(self.monitor_memory_usage, period)

    def monitor_memory_usage(self, _hub):
        """Sends the memory events if usage crossed ``config.max_memory_usage``; returns the
        event sent (None if none, -1 when no limit is set)."""
        max_allowed = config.max_memory_usage
        if not max_allowed:
            return -1
        mem_usage, info = memory_usage()
        event = None
        if mem_usage > max_allowed:
            if mem_usage > self._memory_exceeded:
                # Still growing: say so again.
                event = MemoryUsageThresholdExceeded(mem_usage, max_allowed, info)
                notify(event)
            self._memory_exceeded = mem_usage
        else:
            if self._memory_exceeded:
                event = MemoryUsageUnderThreshold(mem_usage, max_allowed, info,
                                                  self._memory_exceeded)
                notify(event)
            self._memory_exceeded = 0
        return event
