"""Cooperative parts of :mod:`os`: non-blocking I/O on fds, ``fork`` and ``waitpid``.

Cooperative I/O
    :func:`nb_read` and :func:`nb_write` work on fds in non-blocking mode (see
    :func:`make_nonblocking`): they try the system call and, on ``EAGAIN``, park the calling
    greenlet until the loop reports the fd ready. :func:`tp_read` and :func:`tp_write` run the
    blocking call in the hub's thread pool instead, which also works for regular files. None of
    them is monkey patched: call them explicitly.

Child processes
    :func:`waitpid` waits for one child without blocking the loop. Linux (5.3+) gives every process
    a *pidfd* (``os.pidfd_open``) that becomes readable when the process exits; the loop waits for
    that like for any other fd, then ``waitpid`` collects the status without blocking. This needs no
    ``SIGCHLD`` handler, so it coexists with whatever the program does with that signal, and with
    children started by anybody (``subprocess``, ``multiprocessing``, plain ``os.fork``). Where
    there is no pidfd (older kernels, seccomp sandboxes), and for the requests a pidfd cannot
    express (``pid`` of 0 or -1 or a process group; ``WUNTRACED``/``WCONTINUED``),
    :func:`waitpid` polls with ``WNOHANG`` between cooperative sleeps growing from 1 ms to 50 ms.

    :func:`fork` is gevent's ``fork_and_watch``: the parent gets a watcher that reaps the child as
    soon as it exits and keeps its status for :func:`waitpid` (for 60 s), so children of a
    long-running server do not linger as zombies. The hub's ``reinit`` runs in the child through
    :func:`os.register_at_fork` (see :mod:`verdigris.hub`), so the child can go on using greenlets.

.. note::
   gevent watches children with libev's ``SIGCHLD`` machinery and its ``waitpid`` is
   cooperative only for children it forked itself; verdigris uses pidfds, so :func:`waitpid` is
   cooperative for any child, and ``SIGCHLD`` stays the program's own. For the same reason
   ``posix_spawn`` is the stdlib's (gevent wraps it to watch the child). ``waitpid(-1, 0)``
   without children raises :exc:`ChildProcessError`, as the stdlib's does (gevent waits), and
   :func:`close` wakes greenlets waiting on the fd with ``EBADF`` (gevent's leaves them waiting).
"""
import errno
import os
import time
from operator import index as _index

from verdigris._core import READ, WRITE
from verdigris.hub import get_hub, get_hub_if_exists, sleep

__implements__ = ["close", "fork", "waitpid"]
__extensions__ = [
    "fork_and_watch",
    "fork_gevent",
    "make_nonblocking",
    "nb_read",
    "nb_write",
    "tp_read",
    "tp_write",
]

# The originals, kept before anybody monkey patches ``os``.
_read = os.read
_write = os.write
_close = os.close
_raw_fork = os.fork
_waitpid = os.waitpid
_WNOHANG = os.WNOHANG
_pidfd_open = getattr(os, "pidfd_open", None)

#: errno values that mean "try again once the fd is ready" (gevent's name).
ignored_errors = [errno.EAGAIN, errno.EINTR]

#: Polling intervals (seconds) where no pidfd can be used: the first check, and the longest gap.
_POLL_FIRST = 0.001
_POLL_MAX = 0.05
#: How long the status of a watched child that nobody waited for is kept (seconds).
_KEEP_STATUS = 60.0


# -- cooperative I/O on fds ------------------------------------------------------------------

def make_nonblocking(fd):
    """Puts *fd* in non-blocking mode; returns True if it was blocking before, else None."""
    import fcntl

    flags = fcntl.fcntl(fd, fcntl.F_GETFL, 0)
    if not flags & os.O_NONBLOCK:
        fcntl.fcntl(fd, fcntl.F_SETFL, flags | os.O_NONBLOCK)
        return True
    return None


def nb_read(fd, n):
    """Reads up to *n* bytes from the non-blocking *fd*; returns ``b''`` at end of file.

    Parks the calling greenlet while no data is available.
    """
    while True:
        try:
            return _read(fd, n)
        except BlockingIOError:
            pass
        # keep=False: an arbitrary fd, maybe closed right after by its owner without telling us.
        get_hub().loop.wait_fd(fd, READ, None, True, False)


def nb_write(fd, buf):
    """Writes some of *buf* to the non-blocking *fd*; returns how many bytes were written.

    Parks the calling greenlet while the fd cannot take any data.
    """
    while True:
        try:
            return _write(fd, buf)
        except BlockingIOError:
            pass
        get_hub().loop.wait_fd(fd, WRITE, None, True, False)


def tp_read(fd, n):
    """Reads up to *n* bytes from *fd* in the hub's thread pool (works for regular files)."""
    return get_hub().threadpool.apply(_read, (fd, n))


def tp_write(fd, buf):
    """Writes *buf* to *fd* in the hub's thread pool; returns how many bytes were written."""
    return get_hub().threadpool.apply(_write, (fd, buf))


def close(fd):
    """Closes *fd* after telling the loop (gevent's cooperative ``os.close``).

    Greenlets parked on *fd* raise ``OSError(EBADF)`` instead of waiting forever on a number that
    may be reused, and the loop drops its registration before the kernel forgets the fd.
    """
    hub = get_hub_if_exists()
    if hub is not None and hub.loop is not None:
        hub.loop.close_fd(fd)
    _close(fd)


# -- waiting for children ----------------------------------------------------------------------

def _open_pidfd(pid):
    """A pidfd for *pid*, or -1 where this kernel or sandbox does not offer them."""
    if _pidfd_open is None:
        return -1
    try:
        return _pidfd_open(pid)
    except OSError as ex:
        # ENOSYS: kernel < 5.3; EPERM: a seccomp filter; EMFILE/ENFILE: out of fds; ESRCH: the
        # pid is gone (already reaped by somebody else). Polling copes with all of them.
        if ex.errno in (errno.ENOSYS, errno.EPERM, errno.EACCES, errno.EMFILE, errno.ENFILE,
                        errno.ESRCH, errno.EINVAL):
            return -1
        raise


def _wait_exited(pid):
    """Parks the current greenlet until *pid* has exited (not reaped). False: no pidfd."""
    pidfd = _open_pidfd(pid)
    if pidfd < 0:
        return False
    try:
        get_hub().loop.wait_fd(pidfd, READ, None, True, False)
    finally:
        _close(pidfd)
    return True


class _ChildWatcher:
    """Calls ``on_exit()`` in the hub whenever child *pid* may have exited.

    ``on_exit`` returns True once it has reaped the child; the watcher then closes itself. With a
    pidfd that is one call, when the child exits; without one, a timer polls every 50 ms.
    ``ref=False`` keeps the watcher from holding the loop alive on its own (gevent's ``ref``).
    """

    __slots__ = ("pid", "rpid", "rstatus", "loop", "_on_exit", "_pidfd", "_watcher")

    def __init__(self, pid, on_exit, loop=None, ref=True):
        loop = loop if loop is not None else get_hub().loop
        self.loop = loop
        self.pid = pid
        self.rpid = 0
        self.rstatus = 0
        self._on_exit = on_exit
        self._pidfd = _open_pidfd(pid)
        if self._pidfd >= 0:
            self._watcher = loop.io(self._pidfd, READ, ref=ref)
        else:
            self._watcher = loop.timer(_POLL_FIRST, _POLL_MAX, ref=ref)
        self._watcher.start(self._check)

    def __repr__(self):
        return "<_ChildWatcher pid=%s pidfd=%s %s>" % (
            self.pid, self._pidfd, "active" if self.active else "closed")

    @property
    def active(self):
        return self._watcher is not None

    @property
    def ref(self):
        return self._watcher is not None and self._watcher.ref

    @ref.setter
    def ref(self, value):
        if self._watcher is not None:
            self._watcher.ref = value

    def _check(self):
        if self._on_exit():
            self.close()

    def close(self):
        """Stops watching and releases the pidfd (idempotent)."""
        watcher, self._watcher = self._watcher, None
        if watcher is not None:
            watcher.stop()
            watcher.close()
        pidfd, self._pidfd = self._pidfd, -1
        if pidfd >= 0:
            _close(pidfd)
        self._on_exit = None


# pid -> _Watched while a child forked by fork() runs, then (pid, status, time reaped) until
# somebody waits for it.
_watched_children = {}


class _Watched:
    """A child forked by :func:`fork_and_watch`: its watcher, callback and waiting greenlets."""

    __slots__ = ("pid", "watcher", "callback", "done", "waiters")

    def __init__(self, pid, callback, loop, ref):
        from verdigris.event import Event

        self.pid = pid
        self.callback = callback
        self.done = Event()
        self.waiters = 0
        self.watcher = _ChildWatcher(pid, self.reap, loop, ref)

    def reap(self):
        """Collects the child's status if it has exited; True once it is reaped (non-blocking)."""
        if self.done.is_set():
            return True
        try:
            result = _waitpid(self.pid, _WNOHANG)
        except ChildProcessError:
            # Reaped behind our back (SIGCHLD ignored, a raw os.waitpid): the status is gone.
            result = None
        else:
            if result[0] == 0:
                return False
        self.finish(result, keep=True)
        return True

    def finish(self, result, keep):
        """The child was reaped with *result* (None: status lost); *keep* it for waitpid?"""
        watcher = self.watcher
        watcher.close()
        if _watched_children.get(self.pid) is self:
            if keep and result is not None:
                _forget_old_statuses()
                _watched_children[self.pid] = (result[0], result[1], time.time())
            else:
                del _watched_children[self.pid]
        self.done.set()
        callback, self.callback = self.callback, None
        if result is not None:
            watcher.rpid, watcher.rstatus = result
            if callback is not None:
                # Always in the hub, as gevent's child watchers call it, whoever reaped.
                watcher.loop.run_callback(callback, watcher)


def _forget_old_statuses():
    # Statuses nobody asked for would pile up in a long-running server; gevent drops them too.
    oldest = time.time() - _KEEP_STATUS
    stale = [pid for pid, v in _watched_children.items() if isinstance(v, tuple) and v[2] < oldest]
    for pid in stale:
        del _watched_children[pid]


def _watch_child(pid, callback=None, loop=None, ref=False):
    _watched_children[pid] = _Watched(pid, callback, loop, ref)


def _take_status(pid):
    """Pops the kept status of watched child *pid*; ChildProcessError if there is none."""
    entry = _watched_children.get(pid)
    if isinstance(entry, tuple):
        del _watched_children[pid]
        return entry[0], entry[1]
    raise ChildProcessError(errno.ECHILD, os.strerror(errno.ECHILD))


def _take_oldest_status():
    finished = [(v[2], pid) for pid, v in _watched_children.items() if isinstance(v, tuple)]
    return _take_status(min(finished)[1]) if finished else None


def _claim(result):
    """A raw waitpid returned *result*: a watcher of that child has nothing left to reap."""
    entry = _watched_children.get(result[0]) if result[0] > 0 else None
    if isinstance(entry, _Watched):
        entry.finish(result, keep=False)
    return result


def waitpid(pid, options):
    """Waits for a child to change state, without blocking other greenlets (:func:`os.waitpid`).

    Returns ``(pid, status)``, or ``(0, 0)`` with ``WNOHANG`` if nothing changed yet. Raises
    :exc:`ChildProcessError` at once when there is no such child. Children forked by :func:`fork`
    are reaped by their watcher, which keeps their status for this function.

    A specific *pid* with *options* 0 waits on a pidfd; every other request (*pid* 0, -1 or a
    process group, ``WUNTRACED``, ``WCONTINUED``, no pidfd) polls with ``WNOHANG`` between
    cooperative sleeps of 1 ms growing to 50 ms.
    """
    pid = _index(pid)
    options = _index(options)
    if pid == -1:
        status = _take_oldest_status()
        if status is not None:
            return status
    entry = _watched_children.get(pid) if pid > 0 else None
    if entry is not None:
        return _waitpid_watched(pid, entry, options)
    result = _claim(_waitpid(pid, options | _WNOHANG))
    if result[0] != 0 or options & _WNOHANG:
        return result
    if pid > 0 and options == 0 and _wait_exited(pid):
        return _waitpid(pid, options)
    delay = _POLL_FIRST
    while True:
        sleep(delay)
        delay = min(delay * 2, _POLL_MAX)
        if pid == -1:
            # A watcher may have reaped a child of ours meanwhile: that counts as "any child".
            status = _take_oldest_status()
            if status is not None:
                return status
        result = _claim(_waitpid(pid, options | _WNOHANG))
        if result[0] != 0:
            return result


def _waitpid_watched(pid, entry, options):
    if isinstance(entry, tuple) or entry.reap():
        return _take_status(pid)
    if options & _WNOHANG:
        return 0, 0
    # The watcher alone does not keep the loop alive (ref=False); a greenlet waiting for it must,
    # or the hub would find nothing left to do and raise LoopExit.
    entry.waiters += 1
    entry.watcher.ref = True
    try:
        entry.done.wait()
    finally:
        entry.waiters -= 1
        if not entry.waiters:
            entry.watcher.ref = False
    return _take_status(pid)


# -- fork --------------------------------------------------------------------------------------

def fork_gevent():
    """Forks with the original :func:`os.fork`; the child's hub is re-initialised.

    The hub's ``reinit`` runs in the child through :func:`os.register_at_fork`, before this
    returns there. The parent does not watch the child: use :func:`waitpid` for it.
    """
    pid = _raw_fork()
    if not pid:
        _forget_parents_children()
    return pid


def _forget_parents_children():
    # In a child, the parent's children are not ours: their statuses can never be collected here.
    for entry in list(_watched_children.values()):
        if isinstance(entry, _Watched):
            entry.watcher.close()
    _watched_children.clear()


def fork_and_watch(callback=None, loop=None, ref=False, fork=fork_gevent):
    """Forks and, in the parent, watches the child (gevent's ``fork_and_watch``).

    When the child exits, the watcher reaps it, keeps its status for :func:`waitpid`, and calls
    ``callback(watcher)`` in the hub (``watcher.pid``, ``watcher.rpid``, ``watcher.rstatus``).
    ``ref=False``: the watcher alone does not keep the loop alive.
    """
    pid = fork()
    if pid:
        _watch_child(pid, callback, loop, ref)
    return pid


def fork(*args, **kwargs):
    """Forks a child the parent watches (see :func:`fork_and_watch`); returns 0 in the child."""
    return fork_and_watch(*args, **kwargs)


if hasattr(os, "forkpty"):
    _raw_forkpty = os.forkpty

    def forkpty_gevent():
        """:func:`os.forkpty` with the child's hub re-initialised; returns ``(pid, master_fd)``.

        *master_fd* is left in blocking mode (use :func:`make_nonblocking` and :func:`nb_read`).
        """
        pid, master_fd = _raw_forkpty()
        if not pid:
            _forget_parents_children()
        return pid, master_fd

    def forkpty_and_watch(callback=None, loop=None, ref=False, forkpty=forkpty_gevent):
        """:func:`fork_and_watch` for :func:`forkpty_gevent`; returns ``(pid, master_fd)``."""
        pid, master_fd = forkpty()
        if pid:
            _watch_child(pid, callback, loop, ref)
        return pid, master_fd

    def forkpty(*args, **kwargs):
        """Like :func:`fork`, with a pseudo-terminal (see :func:`forkpty_and_watch`)."""
        return forkpty_and_watch(*args, **kwargs)

    __implements__.append("forkpty")
    __extensions__ += ["forkpty_gevent", "forkpty_and_watch"]


def _copy_globals(source, target, skip, private=True):
    """Re-exports the names of module *source* not in *skip*: public ones, and with *private*
    also single-underscore ones (``os._exit``), as gevent's ``copy_globals`` does."""
    names = []
    for name in dir(source):
        if name.startswith("__") or name in skip or (not private and name.startswith("_")):
            continue
        target[name] = getattr(source, name)
        names.append(name)
    return names


# Everything else is the stdlib's own (gevent's ``__imports__``); names defined here win.
__imports__ = _copy_globals(os, globals(), skip=set(globals()))

__all__ = __implements__ + __extensions__
