"""The :mod:`_thread` module for greenlets: "threads" that are greenlets, locks that switch.

What :func:`verdigris.monkey.patch_thread` puts into :mod:`_thread`: :func:`start_new_thread`
spawns a :class:`~verdigris.greenlet.Greenlet`, :func:`get_ident` identifies the current
greenlet, :class:`LockType` blocks only the calling greenlet, and :data:`_local` is
:class:`verdigris.local.local`. Everything else (``error``, ``TIMEOUT_MAX``, ``get_native_id``,
``interrupt_main``, the C ``RLock``...) is the standard library's.

This module is a helper for monkey patching; programs spawn greenlets with
:func:`verdigris.spawn` rather than through it.

Discussion: why a failed non-blocking acquire yields.
    ``lock.acquire(False)`` that finds the lock taken lets the other greenlets run before it
    returns False, as gevent's does. Code that polls a lock (or ``Thread.is_alive()``, which
    polls the thread's lock, or ``Condition.notify()``, which polls its plain lock to check that
    the caller holds it) would otherwise spin forever: the greenlet that could release the lock
    never gets to run. It does not yield when called from the hub, nor in a thread that has no
    hub.

.. note::
   The deprecated aliases ``allocate``, ``start_new`` and ``exit_thread`` are replaced along
   with the names they alias; gevent leaves them native.
"""
import _thread as _native
import functools
import sys
import weakref
from collections import deque
from time import monotonic

from greenlet import GreenletExit, getcurrent

from verdigris.exceptions import InvalidSwitchError
from verdigris.greenlet import Greenlet
from verdigris.hub import get_hub_if_exists, sleep
from verdigris.local import local as _local  # noqa: F401 - patched in as _thread._local
from verdigris.timeout import Timeout

__target__ = '_thread'

__implements__ = [
    'allocate_lock',
    'get_ident',
    'exit',
    'LockType',
    'stack_size',
    'start_new_thread',
    '_local',
]
# Old spellings of the same functions, where this Python still has them.
__implements__ += [name for name in ('allocate', 'start_new', 'exit_thread')
                   if hasattr(_native, name)]
if sys.version_info[:2] >= (3, 13):
    # 3.13 threading starts threads through joinable handles instead of sentinel locks.
    __implements__ += ['start_joinable_thread', 'lock', '_ThreadHandle', '_make_thread_handle']

__imports__ = [name for name in (
    'error', 'TIMEOUT_MAX', 'interrupt_main', 'get_native_id', 'daemon_threads_allowed', 'RLock',
    'set_name', '_count', '_excepthook', '_ExceptHookArgs',
) if hasattr(_native, name)]
__extensions__ = []

for _name in __imports__:
    globals()[_name] = getattr(_native, _name)
del _name

__all__ = [name for name in __implements__ + __imports__ if not name.startswith('_')]

# Captured now: patching replaces these attributes of _thread with the ones below.
_native_stack_size = _native.stack_size
_allocate_native_lock = _native.allocate_lock


def get_ident(gr=None):
    """Return an integer identifying greenlet *gr* (default: the current one) while it lives.

    Like a thread ident, the number may be reused once the greenlet is gone.
    """
    if gr is None:
        try:
            gr = getcurrent()
        except RuntimeError:
            # Very late in interpreter shutdown greenlet refuses to answer; the caller (a lock
            # checking its owner) still needs a number.
            gr = None
    return id(gr)


def _spawn(function, args, kwargs):
    if not callable(function):
        raise TypeError('first arg must be callable')
    if not isinstance(args, tuple):
        raise TypeError('2nd arg must be a tuple')
    if kwargs is not None and not isinstance(kwargs, dict):
        raise TypeError('optional 3rd arg must be a dictionary')
    if kwargs:
        # Through partial: a keyword named like a Greenlet parameter must reach *function*.
        return Greenlet.spawn(functools.partial(function, *args, **kwargs))
    return Greenlet.spawn(function, *args)


def start_new_thread(function, args, kwargs=None):
    """Run ``function(*args, **kwargs)`` in a new greenlet; return its :func:`get_ident`.

    The greenlet starts on the next loop turn. An exception escaping *function* is reported by
    the hub (printed), as for any greenlet.

    :raises TypeError: if *function* is not callable, *args* is not a tuple or *kwargs* not a dict.
    """
    return get_ident(_spawn(function, args, kwargs))


def exit():
    """End the current greenlet quietly (raises :class:`greenlet.GreenletExit`)."""
    raise GreenletExit


def stack_size(size=None):
    """Return (or set) the stack size of new *native* threads.

    Greenlets share their thread's stack, so only increases are passed on to the real
    ``_thread.stack_size`` (they can only help native threads); a smaller size is accepted and
    ignored, as shrinking the stack would hurt every greenlet of the threads created later.

    :raises ValueError: for a size below the platform minimum of 32 KiB (other than 0).
    """
    current = _native_stack_size()
    if size is None:
        return current
    if size == 0:
        return current
    if size < 32768:
        raise ValueError('size not valid: %d bytes' % size)
    if size > current:
        return _native_stack_size(size)
    return current


class _Waiter:
    """A greenlet blocked in :meth:`LockType.acquire`, and the hub that resumes it."""

    __slots__ = ('switch', 'hub', 'waiting')

    def __init__(self, switch, hub):
        self.switch = switch
        self.hub = hub
        self.waiting = False


def _no_op():
    pass


def _wake(waiter, lock):
    # Runs in the waiter's hub. A waiter that gave up meanwhile (timeout, kill) is not resumed.
    if waiter.waiting:
        waiter.waiting = False
        waiter.switch(lock)


class LockType:
    """A non-reentrant lock whose ``acquire`` blocks only the calling greenlet.

    The API is that of the standard library's lock (``allocate_lock()``): ``acquire(blocking=True,
    timeout=-1)``, ``release()``, ``locked()``, the context manager, the ``*_lock`` aliases. Any
    greenlet, in any thread, may release it. Like the standard library's lock type, it cannot be
    subclassed.

    Discussion: one lock, several threads.
        Once ``_thread`` is patched, every lock the standard library allocates is one of these,
        the import system's module locks included, and native threads use them too (a thread
        pool's worker importing a codec). So the lock itself is a native lock, taken without
        blocking; only the waiting differs. A greenlet of a thread that runs a hub queues itself
        and switches to that hub; :meth:`release`, from whatever thread, pops the first waiter
        and resumes it through its own hub's loop (thread-safely when the hub belongs to another
        thread); the waiter then tries again, and queues again at the front if another caller
        took the lock first. A thread that runs no hub has no greenlet to switch to: it blocks
        natively, as it would on the standard library's lock. While other threads exist, a
        waiting greenlet keeps its loop alive: the release may come from one of them.

    :raises RuntimeError: (``_thread.error``) from :meth:`release` when it is not locked.

    .. note::
       gevent's lock type is a :class:`~verdigris.lock.BoundedSemaphore` (with ``rawlink``,
       ``wait``...); this one has only the standard library's API, and ``with lock:`` gives True
       like the standard library's (gevent's gives None). Waiting for a lock held by another
       thread does not end in :exc:`~verdigris.exceptions.LoopExit` when the loop has nothing
       else to do, as gevent's does.
    """

    __slots__ = ('_native', '_waiters', '__weakref__')

    def __init__(self):
        self._native = _allocate_native_lock()
        self._waiters = deque()

    def __init_subclass__(cls, **kwargs):
        raise TypeError("type '%s.%s' is not an acceptable base type"
                        % (LockType.__module__, LockType.__name__))

    def __repr__(self):
        return '<%s %s.%s object at 0x%x>' % (
            'locked' if self._native.locked() else 'unlocked', type(self).__module__,
            type(self).__name__, id(self))

    def acquire(self, blocking=True, timeout=-1):
        """Acquire the lock; with *blocking*, wait (at most *timeout* seconds unless -1).

        :return: True if acquired, False otherwise.
        :raises ValueError: for a timeout with ``blocking=False``, or a negative timeout other
            than -1.
        :raises OverflowError: for a timeout above ``TIMEOUT_MAX``.
        """
        if timeout == -1 or timeout is None:
            # None is what gevent's own code passes for "no limit"; accept it too.
            if self._native.acquire(False):
                return True
            timeout = None
        elif not blocking:
            raise ValueError("can't specify a timeout for a non-blocking call")
        elif timeout < 0:
            raise ValueError('timeout value must be positive')
        elif timeout > _native.TIMEOUT_MAX:
            raise OverflowError('timeout value is too large')
        elif self._native.acquire(False):
            return True
        hub = get_hub_if_exists()
        if not blocking:
            if hub is not None and getcurrent() is not hub:
                sleep()
            return False
        if hub is None:
            return self._native.acquire(True, -1 if timeout is None else timeout)
        return self._wait(hub, timeout)

    def _wait(self, hub, timeout):
        waiter = _Waiter(getcurrent().switch, hub)
        waiters = self._waiters
        waiters.append(waiter)
        queued = True
        timer = Timeout._start_new_or_dummy(timeout)
        keepalive = None
        if _native._count():
            # Other threads exist, and one of them may hold the lock: its release() wakes us
            # through the loop, which must not conclude meanwhile that nothing can ever happen
            # (LoopExit). Among greenlets alone, a lock nobody will release still ends in
            # LoopExit, as every other wait does.
            keepalive = hub.loop.async_()
            keepalive.start(_no_op)
        try:
            while True:
                # Tried after queueing too: a release from another thread may have come in
                # between our failed attempt and the append, and found nobody to wake.
                if self._native.acquire(False):
                    return True
                if not queued:
                    waiters.appendleft(waiter)
                    queued = True
                    continue
                waiter.waiting = True
                try:
                    result = hub.switch()
                except BaseException as ex:
                    if ex is timer:
                        return False
                    raise
                # release() popped us before resuming us.
                queued = False
                if result is not self:
                    raise InvalidSwitchError('Invalid switch into %s.acquire(): %r'
                                             % (type(self).__name__, result))
        finally:
            waiter.waiting = False
            timer.cancel()
            if keepalive is not None:
                keepalive.close()
            if queued:
                try:
                    waiters.remove(waiter)
                except ValueError:
                    # A release popped us and its wake-up is still on its way: pass it on, or
                    # the next waiter would sleep through a free lock.
                    self._wake_one()

    def _wake_one(self):
        try:
            waiter = self._waiters.popleft()
        except IndexError:
            return
        hub = waiter.hub
        if hub is get_hub_if_exists():
            hub.loop.run_callback(_wake, waiter, self)
        else:
            hub.loop.run_callback_threadsafe(_wake, waiter, self)

    def release(self):
        """Release the lock and resume the longest waiting greenlet (after the caller yields).

        :raises RuntimeError: if the lock is not locked.
        """
        try:
            self._native.release()
        except RuntimeError:
            raise _native.error('release unlocked lock') from None
        if self._waiters:
            self._wake_one()

    def locked(self):
        """Return whether the lock is held."""
        return self._native.locked()

    def __enter__(self):
        # acquire() inlined for the uncontended case: ``with lock:`` is the common use.
        if self._native.acquire(False):
            return True
        return self.acquire()

    def __exit__(self, typ, val, tb):
        self.release()

    def _at_fork_reinit(self):
        # Called by threading and logging in a forked child. The lock starts over unlocked;
        # greenlets of the forking thread that were waiting live on in the child, and try again.
        self._native = _allocate_native_lock()
        hub = get_hub_if_exists()
        alive = [waiter for waiter in self._waiters if waiter.hub is hub]
        self._waiters = deque(alive)
        if alive:
            self._wake_one()

    acquire_lock = acquire
    release_lock = release
    locked_lock = locked


allocate_lock = LockType
if hasattr(_native, 'allocate'):
    allocate = LockType
if hasattr(_native, 'start_new'):
    start_new = start_new_thread
if hasattr(_native, 'exit_thread'):
    exit_thread = exit


class _ThreadHandle:
    """What Python 3.13's :mod:`threading` holds for a started thread: here, its greenlet.

    The greenlet is referenced weakly, so that a finished thread's greenlet can be collected;
    a handle whose greenlet is gone is done.
    """

    __slots__ = ('_greenlet_ref', '_started', '__weakref__')

    def __init__(self, *args, **kwargs):
        # The standard library's constructor accepts and ignores any arguments.
        self._greenlet_ref = None
        self._started = False

    def __repr__(self):
        return '<%s.%s at 0x%x greenlet=%r>' % (
            type(self).__module__, type(self).__name__, id(self), self._greenlet())

    def _bind(self, glet):
        self._greenlet_ref = weakref.ref(glet)
        self._started = True

    def _greenlet(self):
        ref = self._greenlet_ref
        return ref() if ref is not None else None

    @property
    def ident(self):
        glet = self._greenlet()
        return get_ident(glet) if glet is not None else None

    def is_done(self):
        """True once the greenlet finished (or was marked done)."""
        glet = self._greenlet()
        return glet is None or glet.dead

    def _set_done(self, enter_hub=True):
        """Mark the thread finished; by default let the loop turn so that joiners see it."""
        if not self._started:
            raise RuntimeError('thread not started')
        self._greenlet_ref = None
        if enter_hub:
            sleep(0.001)

    def join(self, timeout=None):
        """Wait until the greenlet finished, at most *timeout* seconds (None or -1: no limit).

        :raises RuntimeError: if the thread was not started, or is the current greenlet.
        """
        if timeout is not None and timeout < 0:
            timeout = None
        if not self._started:
            raise RuntimeError('thread not started')
        glet = self._greenlet()
        if glet is None or glet.dead:
            return
        if glet is getcurrent():
            raise RuntimeError('Cannot join current thread')
        if isinstance(glet, Greenlet):
            glet.join(timeout)
            return
        # A raw greenlet (the main greenlet of a thread): nothing to link to; poll.
        _poll_until(self.is_done, timeout)


def _poll_until(done, timeout):
    """Sleep in short steps until ``done()`` or *timeout* seconds (None: no limit) elapsed."""
    deadline = None if timeout is None else monotonic() + timeout
    while not done():
        if deadline is not None and monotonic() >= deadline:
            return False
        sleep(0.005)
    return True


def start_joinable_thread(function, handle=None, daemon=True):
    """Python 3.13's way to start a thread: run *function* in a new greenlet bound to *handle*.

    *daemon* is accepted for the signature's sake: at exit, verdigris's ``threading._shutdown``
    joins the non-daemon threads itself.

    :return: the handle (a new :class:`_ThreadHandle` if none was given).
    :raises RuntimeError: if *handle* was already used.
    """
    if handle is None:
        handle = _ThreadHandle()
    elif not isinstance(handle, _ThreadHandle):
        raise TypeError('handle must be a %s, not %r' % (_ThreadHandle.__name__, handle))
    elif handle._started:
        raise RuntimeError('thread already started')
    handle._bind(_spawn(function, (), None))
    return handle


def _make_thread_handle(*args):
    """A handle for the current greenlet (3.13 calls it for the current thread after fork)."""
    handle = _ThreadHandle()
    handle._bind(getcurrent())
    return handle


lock = LockType
