"""The parts of :mod:`threading` that make its threads greenlets, and how threading's own state
is adjusted for them.

:func:`verdigris.monkey.patch_thread` copies the names of :data:`__implements__` into the
standard :mod:`threading` module, then calls the ``_patch_*`` functions below. Afterwards the
standard library's own ``threading.Thread`` runs as a greenlet: ``start()`` spawns one through
``_start_new_thread``, ``get_ident()`` tells greenlets apart, and the thread's "state lock"
(which the interpreter releases when a native thread ends, and which ``join()`` and
``is_alive()`` wait on) is a cooperative lock that the greenlet releases when it dies.
``Lock``, ``RLock`` (the pure-Python one, over cooperative locks), ``Condition``, ``Semaphore``,
``Barrier`` and ``Timer`` follow, since threading builds them all from ``_allocate_lock``.

This module is a helper for monkey patching; programs use :mod:`verdigris` directly.

Discussion: the main thread.
    ``threading.main_thread()`` stays the interpreter's main-thread object; patching re-keys it
    by the ident of the main thread's *main greenlet*, so ``current_thread()`` there still
    returns it. Its native state lock is swapped for a cooperative one that is held until
    interpreter exit: greenlets calling ``main_thread().join()`` then wait cooperatively. At exit
    the interpreter calls ``threading._shutdown()`` in the main greenlet; the patched version
    releases the cooperative lock, lets those joiners run, puts the native lock back and runs
    the original, which joins the remaining non-daemon threads (greenlets, cooperatively). If
    they can never finish (:exc:`~verdigris.exceptions.LoopExit`), the process exits anyway.

Discussion: greenlets that were not started as threads.
    ``current_thread()`` in such a greenlet returns a :class:`_DummyThread`, which is built
    without ``Thread.__init__`` (no Event, Condition or locks: logging asks for the current
    thread on every record) and removes itself from threading's registry when its greenlet
    ends, so the registry does not grow with every greenlet that ever logged.

.. note::
   gevent replaces ``threading.Thread`` (and ``Timer``) with subclasses; verdigris keeps the
   standard library's classes and releases the state lock from ``_start_new_thread`` instead,
   so ``Thread`` subclasses defined before patching work too.
"""
import os
import sys
import threading as _threading
import weakref

from greenlet import getcurrent

from verdigris.exceptions import LoopExit
from verdigris.hub import get_hub, sleep
from verdigris.local import local
from verdigris.lock import RLock
from verdigris.thread import (
    LockType,
    _make_thread_handle,
    _poll_until,
    _spawn,
    _ThreadHandle,
    get_ident,
)
from verdigris.thread import start_joinable_thread as _start_joinable_thread  # noqa: F401

_PY313 = sys.version_info[:2] >= (3, 13)

__implements__ = ['local', '_allocate_lock', 'Lock', 'get_ident', '_DummyThread']
if _PY313:
    __implements__ += ['_start_joinable_thread', '_ThreadHandle', '_make_thread_handle']
else:
    __implements__ += ['_start_new_thread', '_set_sentinel']
if hasattr(_threading, '_CRLock'):
    # threading.RLock() returns the C RLock when _CRLock is set; None selects the pure-Python
    # RLock, which is built on _allocate_lock and get_ident, both cooperative once patched.
    __implements__.append('_CRLock')
    _CRLock = None

__imports__ = ['Thread', 'Timer']
__extensions__ = ['RLock', 'main_native_thread']
__all__ = ['local', 'Lock', 'RLock', 'get_ident', 'Thread', 'Timer', 'main_native_thread']

Thread = _threading.Thread
Timer = _threading.Timer

_allocate_lock = Lock = LockType
_set_sentinel = LockType
allocate_lock = LockType  # gevent.threading's spelling

# Where 3.13's Thread keeps its handle (3.14 renamed it).
_HANDLE_ATTR = '_os_thread_handle' if hasattr(_threading.main_thread(), '_os_thread_handle') \
    else '_handle'


def main_native_thread():
    """The standard library's main-thread object (``threading.main_thread()``)."""
    return _threading.main_thread()


class _ReleaseStateLock:
    """Greenlet link: when a thread's greenlet dies, release the thread's state lock.

    This stands in for what the interpreter does when a native thread's state is deleted, and
    is what lets ``join()`` return and ``is_alive()`` turn false.
    """

    __slots__ = ('thread',)

    def __init__(self, thread):
        self.thread = thread

    def __call__(self, _greenlet):
        lock = self.thread._tstate_lock
        if lock is not None and lock.locked():
            lock.release()


def _start_new_thread(function, args, kwargs=None):
    """``threading``'s way to start a thread (before 3.13): a greenlet, linked to the thread."""
    glet = _spawn(function, args, kwargs)
    thread = getattr(function, '__self__', None)
    if isinstance(thread, _threading.Thread):
        glet.rawlink(_ReleaseStateLock(thread))
    return get_ident(glet)


start_new_thread = _start_new_thread  # gevent.threading's spelling


class _AlwaysSet:
    """A dummy thread's ``_started`` event: set from the start, shared by all of them."""

    __slots__ = ()

    def is_set(self):
        return True

    isSet = is_set

    def set(self):
        pass

    def wait(self, timeout=None):
        return True

    def _at_fork_reinit(self):
        pass


def _forget_dummy(ident, thread):
    registry = _threading._active
    if registry.get(ident) is thread:
        del registry[ident]


class _DummyThread(_threading._DummyThread):
    """``current_thread()`` for a greenlet that was not started as a thread.

    It is daemonic, alive while its greenlet is, cannot be joined, and leaves
    ``threading._active`` when its greenlet ends (or is collected, for a raw greenlet).
    """

    # The state every dummy thread shares, as class attributes (see the module's discussion).
    _initialized = True
    _daemonic = True
    _is_stopped = False
    _tstate_lock = None
    _target = None
    _args = ()
    _kwargs = None
    _native_id = None
    _started = _AlwaysSet()

    def __init__(self):  # pylint:disable=super-init-not-called
        self._name = _threading._newname('Dummy-%d')
        glet = getcurrent()
        ident = self._ident = get_ident(glet)
        if hasattr(_threading, 'get_native_id'):
            self._native_id = _threading.get_native_id()
        if _PY313:
            setattr(self, _HANDLE_ATTR, _make_thread_handle())
        with _threading._active_limbo_lock:
            _threading._active[ident] = self
        rawlink = getattr(glet, 'rawlink', None)
        if rawlink is not None:
            rawlink(lambda _g: _forget_dummy(ident, self))
        else:
            weakref.finalize(glet, _forget_dummy, ident, self).atexit = False


# -- adjusting threading's state (called by verdigris.monkey.patch_thread) ---------------------

def _main_greenlet():
    glet = getcurrent()
    while glet.parent is not None:
        glet = glet.parent
    return glet


def _gevent_will_monkey_patch(target, items, warn):
    """Before the names are copied: re-key the main thread by its main greenlet's ident."""
    main = _threading.main_thread()
    if _threading.current_thread() is not main:
        warn('Monkey-patching threading from a thread other than the main one: the main '
             'thread keeps its native ident, and current_thread() in its greenlets returns '
             'dummy threads.')
        return
    ident = get_ident(_main_greenlet())
    with _threading._active_limbo_lock:
        if _threading._active.get(main.ident) is main:
            del _threading._active[main.ident]
        main._ident = ident
        _threading._active[ident] = main
    if _PY313:
        handle = _make_thread_handle()
        handle._bind(_main_greenlet())
        main._after_fork = lambda new_ident=None: None  # see _after_fork_in_child
        setattr(main, _HANDLE_ATTR, handle)


class _ThreadRegistry(dict):
    """``threading._active`` once patched: it also finds the native threads already running.

    Such a thread was registered under its native ident, but once ``get_ident()`` answers with
    greenlet idents it looks itself up under another number: ``current_thread()`` would return
    a dummy, and its removal at exit would print a KeyError (3.11+) or leave it registered
    forever (before). Misses are looked up by native thread id instead.
    """

    __slots__ = ('natives',)

    def __missing__(self, ident):
        thread = self.natives.get(_threading.get_native_id())
        if thread is None:
            raise KeyError(ident)
        return thread

    def __delitem__(self, ident):
        try:
            dict.__delitem__(self, ident)
        except KeyError:
            thread = self.natives.pop(_threading.get_native_id(), None)
            if thread is None:
                raise
            for key, value in list(self.items()):
                if value is thread:
                    dict.__delitem__(self, key)


def _patch_existing_threads(patch_item):
    """Keep native threads that were already running findable, and joinable from greenlets.

    Their ``join()`` would block the whole thread (and every greenlet in it) in a native lock;
    it polls instead.
    """
    main = _threading.main_thread()
    natives = {}
    for thread in list(_threading._active.values()):
        if thread is main or isinstance(thread, _DummyThread) or thread.native_id is None:
            continue
        natives[thread.native_id] = thread
        thread.join = _native_thread_join(thread)
    if not isinstance(_threading._active, _ThreadRegistry):
        registry = _ThreadRegistry(_threading._active)
        registry.natives = natives
        patch_item(_threading, '_active', registry)


def _native_thread_join(thread):
    def join(timeout=None):
        if _threading.current_thread() is thread:
            raise RuntimeError('cannot join current thread')
        if timeout is not None and timeout < 0:
            timeout = 0
        _poll_until(lambda: not thread.is_alive(), timeout)
    return join


def _patch_existing_locks(native_ident, patch_item):
    """Locks held right now by this thread's code were taken under its native ident.

    The pure-Python RLocks and the import system's module locks (``patch_all()`` called while a
    module is being imported) compare their owner with ``get_ident()`` when released, which now
    answers with the main greenlet's ident: re-own them. C RLocks cannot be reached; they keep
    working because they are reentrant per native thread.
    """
    import gc
    import importlib._bootstrap as bootstrap

    green_ident = get_ident(_main_greenlet())
    module_lock = getattr(bootstrap, '_ModuleLock', ())
    rlock_type = _threading._PyRLock
    for obj in gc.get_objects():
        if isinstance(obj, rlock_type):
            if obj._owner == native_ident:
                obj._owner = green_ident
        elif isinstance(obj, module_lock):
            if obj.owner == native_ident:
                obj.owner = green_ident

    # concurrent.futures.thread registers its _global_shutdown_lock with os.register_at_fork
    # (acquired before fork), and Executor.submit holds it across Thread.start(), which now
    # switches greenlets: a greenlet forking while another one submits would block forever.
    # Hand submit a fresh lock; the fork handlers keep one that nobody else ever holds.
    import concurrent.futures.thread as cf_thread

    if hasattr(cf_thread, '_global_shutdown_lock'):
        patch_item(cf_thread, '_global_shutdown_lock', LockType())


def _patch_logging(patch_item):
    """Give logging's module lock and its existing handlers cooperative RLocks."""
    logging = sys.modules['logging']
    if getattr(logging, '_lock', None) is not None:
        patch_item(logging, '_lock', _threading.RLock())
    for ref in list(getattr(logging, '_handlerList', ())):
        handler = ref() if callable(ref) else ref
        if handler is not None and getattr(handler, 'lock', None) is not None:
            handler.lock = _threading.RLock()


def _patch_shutdown(patch_item, warn):
    """Install the ``threading._shutdown`` that exit can run with greenlet threads around."""
    main = _threading.main_thread()
    orig_shutdown = _threading._shutdown

    def finish():
        try:
            orig_shutdown()
        except LoopExit:
            # Non-daemon threads blocked forever: nothing could ever wake them, so exiting is
            # the only way forward (natively this would hang).
            pass
        _threading._shutdown = orig_shutdown

    if _threading.current_thread() is not main:
        warn('Monkey-patching not on the main thread; threading.main_thread().join() would '
             'hang if called from a greenlet.')

        def _shutdown():
            # The main thread object kept its native ident; the original compares it with the
            # (greenlet) ident of the caller before releasing the main thread's state lock.
            main._ident = get_ident()
            finish()
    elif _PY313:
        _shutdown = _shutdown_313(main, finish)
    else:
        _shutdown = _shutdown_legacy(main, finish)
    patch_item(_threading, '_shutdown', _shutdown)
    if hasattr(os, 'register_at_fork'):
        os.register_at_fork(after_in_child=_after_fork_in_child)


def _let_joiners_run(lock):
    """Wake the greenlets waiting on *lock* (just released) and let them run once."""
    if lock._waiters:
        try:
            sleep()
        except BaseException:  # noqa: B036 - the main greenlet has nowhere to pass it to
            get_hub().print_exception(getcurrent(), *sys.exc_info())


def _shutdown_legacy(main, finish):
    native_lock = main._tstate_lock
    green_lock = LockType()
    green_lock.acquire()
    main._tstate_lock = green_lock

    def _shutdown():
        # (In a child forked from another greenlet, threading has another main thread.)
        if _threading._main_thread is main and green_lock.locked():
            green_lock.release()
            _let_joiners_run(green_lock)
            # A joiner marked the main thread stopped; the interpreter is not done with it yet.
            main._is_stopped = False
            main._tstate_lock = native_lock
        finish()
    return _shutdown


def _shutdown_313(main, finish):
    def _shutdown():
        handle = getattr(main, _HANDLE_ATTR)
        if isinstance(handle, _ThreadHandle) and not handle.is_done():
            handle._set_done(enter_hub=False)
            sleep()
        setattr(main, _HANDLE_ATTR, _make_thread_handle())
        getattr(main, _HANDLE_ATTR)._bind(_main_greenlet())
        # The native shutdown joins only native threads. Run threading's atexit calls first
        # (concurrent.futures stops its workers there), then join the greenlet threads.
        _threading._SHUTTING_DOWN = True
        for call in reversed(_threading._threading_atexits):
            call()
        del _threading._threading_atexits[:]
        try:
            for thread in list(_threading.enumerate()):
                if not thread.daemon and thread is not main and \
                        isinstance(getattr(thread, _HANDLE_ATTR, None), _ThreadHandle):
                    thread.join()
        except LoopExit:
            pass
        # The original marks the main thread done through its handle and waits for native
        # threads; give it a handle that forgets the greenlet.
        getattr(main, _HANDLE_ATTR)._greenlet_ref = None
        finish()
    return _shutdown


def _after_fork_in_child():
    """After ``fork()`` from a greenlet that was not the main one, make a real main thread.

    threading's own after-fork hook makes the forking thread's object the main thread. For a
    :class:`_DummyThread` that object has no state lock, and the child's exit would fail.
    """
    current = _threading._main_thread
    if not isinstance(current, _DummyThread):
        return
    main = _threading._MainThread()
    main._ident = get_ident()
    with _threading._active_limbo_lock:
        _threading._active[main._ident] = main
    _threading._main_thread = main
