"""The hub's loop class: the Rust loop plus the watchers of gevent's ``ILoop`` best done in Python.

:class:`Loop` subclasses :class:`verdigris._core.Loop` (the Rust event loop, which provides
``run``, ``run_callback[_threadsafe]``, ``io``, ``timer``, ``async_``, ``prepare``, ``check``,
``idle``, ``fork``, ``now``/``update_now``, ``destroy`` ...) and adds:

* ``signal(signum)``: fires when the process receives *signum*;
* ``child(pid)``: fires when child process *pid* exits, after reaping it;
* ``stat(path)``: fires when what ``os.stat(path)`` reports changes.

These are thin views over the Rust core's watchers, not a second loop: a signal watcher is an
``async_`` watcher woken by a Python-level signal handler, a child watcher an ``io`` watcher on the
child's pidfd, a stat watcher a repeating ``timer``. Each has gevent's ``IWatcher`` surface:
``start(callback, *args)``, ``stop()``, ``close()``, ``active``, ``pending``, ``ref``,
``priority``, ``callback``, ``args``, ``loop``, and use as a context manager (leaving the block
closes it). Callbacks run in the hub; an exception escaping one goes to the hub's
``handle_error`` with the watcher as context.

Signals
    Python runs signal handlers in the main thread only, between two bytecodes of whatever runs
    there, or when the loop's poll is interrupted. All the watchers of one signal share one
    handler, installed with :func:`signal.signal` when the first starts (so the first start must
    happen in the main thread, the stdlib's rule) and replaced by the handler found before when
    the last stops. The handler only ``send()``\\ s each watcher's async watcher, which is
    thread-safe and coalesces: several deliveries before the hub gets to run call the callback
    once, as with libev. While a watcher of the main thread's loop is started, the loop's signal
    pipe is the :func:`signal.set_wakeup_fd` (unless the program set one of its own), so a signal
    that arrives just before the loop blocks in poll still wakes it.

Children
    Linux's pidfds become readable when the process exits; the watcher then reaps it with
    ``os.waitpid(pid, WNOHANG)`` and sets ``rpid`` and ``rstatus`` (the raw wait status) before
    the callback runs. Every started watcher of that pid gets the same status. Without pidfds
    (old kernels, seccomp) and for ``pid`` 0 (any child), a 50 ms repeating timer polls instead.

.. note::
   Deviations from gevent/libev: child watchers work on any loop (libev: the default loop only);
   they report exits only (``trace`` is accepted and ignored: a pidfd does not see stops); a
   watcher of one pid stops itself once the child is reaped, and stops without firing if the
   child was reaped by somebody else (``os.waitpid``); a negative ``pid`` raises ValueError.
   ``install_sigchld``/``reset_sigchld`` do nothing: no ``SIGCHLD`` handler is needed. Stat
   watchers poll (every *interval* seconds, 0.1 s when it is 0) where libev uses inotify, and
   compare the time stamps to the nanosecond.
"""
import errno
import os
import signal as _signal
import sys
import _thread
import threading

from verdigris import _core

__all__ = ['Loop']

_pidfd_open = getattr(os, 'pidfd_open', None)
_waitpid = os.waitpid
_WNOHANG = os.WNOHANG
_stat = os.stat
_MAIN_THREAD_IDENT = threading.main_thread().ident

#: Seconds between two ``waitpid`` polls of a child watcher that cannot use a pidfd.
CHILD_POLL_INTERVAL = 0.05
#: Seconds between two ``stat`` calls of a stat watcher created with ``interval=0``.
STAT_DEFAULT_INTERVAL = 0.1
#: The shortest stat polling interval used, whatever was asked.
STAT_MIN_INTERVAL = 0.01


class Loop(_core.Loop):
    """The event loop a verdigris hub runs: :class:`verdigris._core.Loop` with gevent's
    ``signal``, ``child`` and ``stat`` watchers.

    ``Loop(flags=None, default=None)``: *flags* (gevent's libev backend flags) is accepted and
    ignored; *default* marks the main thread's loop.
    """

    __slots__ = ()

    #: Priorities are accepted for compatibility; the loop runs callbacks in FIFO order.
    MINPRI = -2
    MAXPRI = 2

    def __new__(cls, flags=None, default=None):
        if default is None and isinstance(flags, bool):
            # Called as loop_class(default), the way the hub calls the Rust loop.
            flags, default = None, flags
        return _core.Loop.__new__(cls, bool(default))

    def __init__(self, flags=None, default=None):
        pass  # everything happened in __new__ (the Rust constructor)

    #: gevent's older name of :meth:`update_now`.
    update = _core.Loop.update_now

    def signal(self, signum, ref=True, priority=None):
        """A watcher that fires when the process receives signal *signum*.

        :raises ValueError: if *signum* is not a valid signal number.
        """
        return SignalWatcher(self, signum, ref, priority)

    def child(self, pid, trace=0, ref=True):
        """A watcher that fires when child process *pid* (0: any child) exits, once reaped."""
        return ChildWatcher(self, pid, trace, ref)

    def stat(self, path, interval=0.0, ref=True, priority=None):
        """A watcher that fires when ``os.stat(path)`` changes (checked every *interval* s)."""
        return StatWatcher(self, path, interval, ref, priority)

    def install_sigchld(self):
        """Does nothing: child watchers use pidfds, not a ``SIGCHLD`` handler."""

    def reset_sigchld(self):
        """Does nothing: child watchers use pidfds, not a ``SIGCHLD`` handler."""

    def closing_fd(self, fd):
        """Tells the loop that *fd* is about to be closed (see ``close_fd``); returns False:
        nothing needs to run before the fd may be closed."""
        self.close_fd(fd)
        return False

    def destroy(self):
        """Stops this loop's signal and child watchers (giving back the wake-up fd and the
        pidfds), then destroys the loop."""
        _signals.forget_loop(self)
        for watchers in list(_children.values()):
            for watcher in list(watchers):
                if watcher.loop is self:
                    watcher.stop()
        _core.Loop.destroy(self)


def _report(watcher):
    """Hands the exception being handled to the loop's error handler, context *watcher*."""
    handler = watcher.loop.error_handler
    if handler is None:
        raise  # noqa: PLE0704 - re-raised to the Rust loop, which prints it
    handler.handle_error(watcher, *sys.exc_info())


class _Watcher:
    """The common part of the Python watchers: a Rust watcher (``_inner``) that the loop fires,
    and the callback and arguments given to :meth:`start`."""

    __slots__ = ('loop', '_inner', 'callback', 'args', '_closed', '__weakref__')

    def __init__(self, loop, inner):
        self.loop = loop
        self._inner = inner
        self.callback = None
        self.args = ()
        self._closed = False

    def start(self, callback, *args):
        """Starts watching: ``callback(*args)`` runs in the hub each time the watcher fires."""
        if self._closed:
            raise ValueError('operation on a closed watcher: %r' % (self,))
        if not callable(callback):
            raise TypeError('Expected callable, not %r' % (callback,))
        self.callback = callback
        self.args = args
        if not self.active:
            self._start()

    def _start(self):
        self._inner.start(self._fire)

    def stop(self):
        """Stops watching; :meth:`start` may be called again later."""
        self._inner.stop()
        self.callback = None
        self.args = ()

    def close(self):
        """Stops watching for good and releases what the watcher holds."""
        self.stop()
        self._inner.close()
        self._closed = True

    def _fire(self):
        callback = self.callback
        if callback is None:
            return
        try:
            callback(*self.args)
        except BaseException:  # noqa: B902 - SystemExit & co. go to the hub, as in gevent
            _report(self)

    @property
    def active(self):
        """True while started."""
        return self._inner.active

    @property
    def pending(self):
        """True when the watcher fired and its callback has not run yet."""
        return self._inner.pending

    @property
    def closed(self):
        return self._closed

    @property
    def ref(self):
        """Whether the started watcher keeps the loop alive on its own."""
        return self._inner.ref

    @ref.setter
    def ref(self, value):
        self._inner.ref = value

    @property
    def priority(self):
        return self._inner.priority

    @priority.setter
    def priority(self, value):
        self._inner.priority = value

    def __enter__(self):
        return self

    def __exit__(self, *exc_info):
        self.close()
        return False

    def _details(self):
        return ''

    def __repr__(self):
        state = 'closed' if self._closed else ('active' if self.active else 'stopped')
        if not self._closed and self.pending:
            state += ' pending'
        text = '<%s at 0x%x %s%s' % (type(self).__name__, id(self), state, self._details())
        if self.callback is not None:
            text += ' callback=%r' % (self.callback,)
        if self.args:
            text += ' args=%r' % (self.args,)
        return text + '>'


# -- signals ------------------------------------------------------------------------------------

class _SignalRegistry:
    """Which watchers each signal wakes, the handlers they displaced, and the wake-up fd."""

    def __init__(self):
        self.watchers = {}    # signum -> [SignalWatcher] (started)
        self.previous = {}    # signum -> the handler found before ours was installed
        self.wakeup_loop = None  # the loop whose signal pipe we made the wakeup fd

    def dispatch(self, signum, frame):
        # The Python-level handler, run in the main thread: only wakes the hubs.
        for watcher in tuple(self.watchers.get(signum, ())):
            watcher._inner.send()

    def add(self, watcher):
        signum = watcher.signum
        watchers = self.watchers.get(signum)
        if watchers is None:
            # Raises ValueError outside the main thread, OSError for SIGKILL & co.
            previous = _signal.signal(signum, self.dispatch)
            self.previous[signum] = previous
            watchers = self.watchers[signum] = []
        watchers.append(watcher)
        self._claim_wakeup_fd(watcher.loop)

    def remove(self, watcher):
        signum = watcher.signum
        watchers = self.watchers.get(signum)
        if not watchers or watcher not in watchers:
            return
        watchers.remove(watcher)
        if not watchers:
            del self.watchers[signum]
            previous = self.previous.pop(signum, _signal.SIG_DFL)
            if previous is None:
                previous = _signal.SIG_DFL  # installed outside Python: cannot be restored
            # Leave a handler installed since by somebody else alone.
            if _signal.getsignal(signum) == self.dispatch:
                _signal.signal(signum, previous)
        if self.wakeup_loop is not None and not any(
                w.loop is self.wakeup_loop for ws in self.watchers.values() for w in ws):
            self._release_wakeup_fd()

    def _claim_wakeup_fd(self, loop):
        # Only the main thread may set it, and only the loop polling there benefits from it.
        if self.wakeup_loop is not None or _thread.get_ident() != _MAIN_THREAD_IDENT:
            return
        ours = loop.signal_wakeup_fd()
        old = _signal.set_wakeup_fd(ours, warn_on_full_buffer=False)
        if old not in (-1, ours):
            _signal.set_wakeup_fd(old)  # the program's own (asyncio, ...): keep it
            return
        self.wakeup_loop = loop

    def _release_wakeup_fd(self):
        loop, self.wakeup_loop = self.wakeup_loop, None
        if _thread.get_ident() != _MAIN_THREAD_IDENT:
            return
        current = _signal.set_wakeup_fd(-1)
        if current != loop.signal_wakeup_fd():
            _signal.set_wakeup_fd(current)  # replaced by somebody else since: keep theirs

    def forget_loop(self, loop):
        for watchers in list(self.watchers.values()):
            for watcher in list(watchers):
                if watcher.loop is loop:
                    watcher.stop()
        if self.wakeup_loop is loop:
            self._release_wakeup_fd()


_signals = _SignalRegistry()


class SignalWatcher(_Watcher):
    """``loop.signal(signum)``: fires, in the hub, when the process receives *signum*."""

    __slots__ = ('signum',)

    def __init__(self, loop, signum, ref=True, priority=None):
        signum = int(signum)
        if not 0 < signum < _signal.NSIG:
            raise ValueError('illegal signal number: %r' % (signum,))
        _Watcher.__init__(self, loop, loop.async_(ref, priority))
        self.signum = signum

    def _start(self):
        self._inner.start(self._fire)
        try:
            _signals.add(self)
        except BaseException:
            self._inner.stop()
            raise

    def stop(self):
        _signals.remove(self)
        _Watcher.stop(self)

    def _details(self):
        return ' signum=%d' % (self.signum,)


# -- children -----------------------------------------------------------------------------------

# pid (0: any child) -> the started ChildWatchers of that pid.
_children = {}


def _deliver_child_status(rpid, status):
    """Child *rpid* was reaped with *status*: every watcher of it, or of any child, fires."""
    for watcher in tuple(_children.get(rpid, ())) + tuple(_children.get(0, ())):
        watcher._exited(rpid, status)


class ChildWatcher(_Watcher):
    """``loop.child(pid)``: fires, in the hub, once child *pid* exited and was reaped.

    ``rpid`` and ``rstatus`` (the raw status, for ``os.WEXITSTATUS`` & co.) are set before the
    callback runs. The pidfd (or polling timer) exists only while the watcher is started.
    """

    __slots__ = ('pid', 'rpid', 'rstatus', '_pidfd', '_scheduled', '_ref')

    def __init__(self, loop, pid, trace=0, ref=True):
        pid = int(pid)
        if pid < 0:
            raise ValueError('child watchers take a pid, or 0 for any child, not %r' % (pid,))
        _Watcher.__init__(self, loop, None)
        self.pid = pid
        self.rpid = 0
        self.rstatus = 0
        self._pidfd = -1
        self._scheduled = None
        self._ref = bool(ref)

    def _make_inner(self):
        if self.pid and _pidfd_open is not None:
            try:
                self._pidfd = _pidfd_open(self.pid)
            except OSError as ex:
                # ENOSYS: kernel < 5.3; EPERM: seccomp; ESRCH: already reaped; EMFILE: no fds.
                # Polling copes with all of them.
                if ex.errno not in (errno.ENOSYS, errno.EPERM, errno.EACCES, errno.ESRCH,
                                    errno.EMFILE, errno.ENFILE, errno.EINVAL):
                    raise
            else:
                return self.loop.io(self._pidfd, _core.READ, self._ref)
        return self.loop.timer(CHILD_POLL_INTERVAL, CHILD_POLL_INTERVAL, self._ref)

    def _start(self):
        self._inner = self._make_inner()
        try:
            self._inner.start(self._check)
        except BaseException:
            self._release()
            raise
        _children.setdefault(self.pid, []).append(self)

    def _release(self):
        """Stops and frees the pidfd or timer (nothing more can happen, or nobody listens)."""
        inner, self._inner = self._inner, None
        if inner is not None:
            inner.close()
        pidfd, self._pidfd = self._pidfd, -1
        if pidfd >= 0:
            os.close(pidfd)

    def stop(self):
        self._unregister()
        scheduled, self._scheduled = self._scheduled, None
        if scheduled is not None:
            scheduled.stop()
        self._release()
        self.callback = None
        self.args = ()

    def close(self):
        self.stop()
        self._closed = True

    def _unregister(self):
        watchers = _children.get(self.pid)
        if watchers and self in watchers:
            watchers.remove(self)
            if not watchers:
                del _children[self.pid]

    def _check(self):
        # In the hub: the pidfd is readable (the child exited), or it is time to poll.
        try:
            rpid, status = _waitpid(self.pid or -1, _WNOHANG)
        except ChildProcessError:
            if self.pid:
                # Reaped by somebody else (a raw os.waitpid): its status is gone, and this pid
                # will never change again.
                self._unregister()
                self._release()
            return
        if rpid:
            _deliver_child_status(rpid, status)

    def _exited(self, rpid, status):
        if self.loop.destroyed:
            self.stop()
            return
        self.rpid = rpid
        self.rstatus = status
        if self.pid:
            self._unregister()
            self._release()   # a pidfd stays readable: nothing more will happen
        if self._scheduled is None:
            if self.loop.owned_by_current_thread():
                self._scheduled = self.loop.run_callback(self._run)
            else:
                self._scheduled = self.loop.run_callback_threadsafe(self._run)

    def _run(self):
        self._scheduled = None
        self._fire()

    @property
    def active(self):
        inner = self._inner
        return (inner is not None and inner.active) or self._scheduled is not None

    @property
    def pending(self):
        return self._scheduled is not None

    @property
    def ref(self):
        return self._ref

    @ref.setter
    def ref(self, value):
        self._ref = bool(value)
        if self._inner is not None:
            self._inner.ref = self._ref

    @property
    def priority(self):
        return 0

    @priority.setter
    def priority(self, value):
        pass  # child watchers take no priority (libev's neither)

    def _details(self):
        return ' pid=%r rstatus=%r' % (self.pid, self.rstatus)


# -- stat ---------------------------------------------------------------------------------------

def _signature(st):
    """What must stay equal for a path to count as unchanged (libev's fields, ns precision)."""
    if st is None:
        return None
    return (st.st_dev, st.st_ino, st.st_mode, st.st_nlink, st.st_uid, st.st_gid,
            st.st_rdev, st.st_size, st.st_atime_ns, st.st_mtime_ns, st.st_ctime_ns)


def _stat_or_none(path):
    try:
        return _stat(path)
    except (FileNotFoundError, NotADirectoryError):
        return None


class StatWatcher(_Watcher):
    """``loop.stat(path, interval)``: fires, in the hub, when ``os.stat(path)`` changes.

    ``attr`` is the latest stat result and ``prev`` the one before the last change (each None
    while the path does not exist). Both are refreshed when the watcher starts.
    """

    __slots__ = ('path', 'interval', 'attr', 'prev')

    def __init__(self, loop, path, interval=0.0, ref=True, priority=None):
        path = os.fspath(path)
        interval = float(interval)
        period = interval if interval > 0 else STAT_DEFAULT_INTERVAL
        period = max(period, STAT_MIN_INTERVAL)
        _Watcher.__init__(self, loop, loop.timer(period, period, ref, priority))
        self.path = path
        self.interval = interval
        self.attr = None
        self.prev = None

    def _start(self):
        self.attr = _stat_or_none(self.path)
        self._inner.start(self._check)

    def _check(self):
        current = _stat_or_none(self.path)
        if _signature(current) == _signature(self.attr):
            return
        self.prev, self.attr = self.attr, current
        self._fire()

    def _details(self):
        return ' path=%r' % (self.path,)
