"""Native threads for work that would block the hub: ThreadPool and ThreadPoolExecutor.

A greenlet hands a function to a pool of real OS threads and waits for its result without
blocking the other greenlets: :meth:`ThreadPool.spawn` returns an
:class:`~verdigris.event.AsyncResult` at once, a worker thread runs the function, and the result
comes back to the hub's thread through the loop's cross-thread wake-up (an ``async_`` watcher).
Good candidates are C functions that release the GIL and would otherwise stall every greenlet: the
system resolver (:mod:`verdigris.resolver`), file I/O, compression, hashing.

Discussion: how a result crosses back.
    The pool owns one ``async_`` watcher. A worker that finishes a task appends its
    :class:`ThreadResult` to a deque shared with the hub and calls ``send()``; sends that arrive
    before the hub runs coalesce, and one callback in the hub delivers every finished result,
    so a burst of completions costs one wake-up. The watcher is started (and keeps the loop alive)
    exactly while some task's result has not been delivered: a greenlet that only waits on a
    result never sees ``LoopExit``, and an idle pool lets the program end.

Discussion: what the threads share.
    Everything a worker touches lives in one :class:`_Shared` record: the task queue (a C
    ``_queue.SimpleQueue``, which blocks with the GIL released and is never monkey-patched), a
    native lock over the counters, and the deque of finished results. After ``os.fork()`` only the
    forking thread exists in the child, so :meth:`ThreadPool._on_fork` replaces the record
    wholesale: no lock a dead thread held, no task it had taken, survives.

Threads are started with the original ``_thread.start_new_thread`` (from
:func:`verdigris.monkey.get_original`), so they are real threads even after
:func:`verdigris.monkey.patch_thread`; the locks and thread idents the pool uses are native too.

.. note::
   gevent lets ``maxsize + 1`` tasks be outstanding before :meth:`ThreadPool.spawn` blocks;
   verdigris lets ``maxsize`` (with one thread each) be.
"""
import _thread
import concurrent.futures
from concurrent.futures import _base as _cf_base
import os
import sys
import threading as _threading  # the module object; its hooks are read, never its classes
import weakref
from _queue import Empty as _Empty
from _queue import SimpleQueue as _NativeQueue
from collections import deque

from greenlet import getcurrent

from verdigris.event import AsyncResult, Event
from verdigris.exceptions import InvalidThreadUseError
from verdigris.greenlet import Greenlet
from verdigris.hub import get_hub, get_hub_if_exists, sleep
from verdigris.lock import Semaphore
from verdigris.pool import IMap, IMapUnordered
from verdigris.timeout import Timeout

__all__ = ['ThreadPool', 'ThreadResult', 'ThreadPoolExecutor']


def _native_thread_functions():
    # monkey.patch_thread() replaces these names of _thread with greenlet versions, and this
    # module is usually imported after patching (the hub creates its pool lazily): take the
    # originals monkey saved, or _thread's own if nothing was patched.
    names = ['start_new_thread', 'allocate_lock', 'get_ident']
    try:
        from verdigris.monkey import get_original
    except ImportError:
        return [getattr(_thread, name) for name in names]
    return get_original('_thread', names)


_start_new_thread, _allocate_lock, _get_ident = _native_thread_functions()

_RETIRE = None  # the task-queue marker that asks one worker to exit


class ThreadResult:
    """The outcome of one task, set in a worker thread and delivered in the hub's thread.

    ``set(value)`` or ``handle_error(context, exc_info)`` may be called from any thread; the pool
    then hands the outcome to *receiver* (an :class:`~verdigris.event.AsyncResult`) in the hub.

    .. note:: gevent's constructor is ``ThreadResult(receiver, hub, call_when_ready)`` and each
       instance owns an async watcher; verdigris's instances share their pool's watcher, so the
       second argument is the pool's shared state. It is not meant to be built outside the pool.
    """

    __slots__ = ('receiver', 'value', 'exc_info', 'context', '_shared')

    def __init__(self, receiver, shared):
        self.receiver = receiver
        self.value = None
        self.exc_info = ()
        self.context = None
        self._shared = shared

    @property
    def exception(self):
        return self.exc_info[1] if self.exc_info else None

    def successful(self):
        return not self.exc_info

    def set(self, value):
        self.value = value
        self._shared.post(self)

    def handle_error(self, context, exc_info):
        self.context = context
        self.exc_info = exc_info
        self._shared.post(self)


class _Shared:
    """What the hub's thread and the worker threads of one pool share (see the module docs)."""

    __slots__ = ('tasks', 'lock', 'done', 'workers', 'unfinished', 'queued', 'retiring', 'wake',
                 'loop', 'idle_timeout', 'pool_ref')

    def __init__(self, pool, wake):
        self.tasks = _NativeQueue()
        self.lock = _allocate_lock()
        self.done = deque()         # finished ThreadResults; append/popleft are atomic
        self.workers = set()        # live _Worker objects (guarded by lock)
        self.unfinished = 0         # tasks queued or running (guarded by lock)
        self.queued = 0             # tasks queued, not yet taken by a worker (guarded by lock)
        self.retiring = 0           # _RETIRE markers queued, not yet taken (guarded by lock)
        self.wake = wake            # the async watcher's send(), safe from any thread
        self.loop = pool.hub.loop
        idle = pool._idle_task_timeout
        self.idle_timeout = idle if idle is not None and idle >= 0 else None  # None: forever
        self.pool_ref = weakref.ref(pool)  # a worker must not keep a forgotten pool alive

    def post(self, thread_result):
        """In a worker: queue a finished result for the hub and wake the hub's loop."""
        self.done.append(thread_result)
        try:
            self.wake()
        except Exception:  # the loop was destroyed: nobody is left to deliver to
            pass


def _thread_hook(name):
    # threading.settrace()/setprofile() hooks, installed in each worker for the task's duration
    # (what threading.Thread does for its threads; coverage tools rely on it).
    return getattr(_threading, name, None)


class _Worker:
    """One worker thread: takes tasks from the shared queue until told to retire."""

    __slots__ = ('shared', 'thread_ident', '__weakref__')

    def __init__(self, shared):
        self.shared = shared
        self.thread_ident = 0

    def __repr__(self):
        return '<ThreadPool worker at 0x%x thread_ident=0x%x>' % (id(self), self.thread_ident)

    def run(self):
        self.thread_ident = _get_ident()
        shared = self.shared
        timeout = shared.idle_timeout
        retired = False
        try:
            while True:
                try:
                    task = shared.tasks.get(timeout=timeout)
                except _Empty:
                    break  # idle for too long
                if task is _RETIRE:
                    retired = True
                    break
                with shared.lock:
                    shared.queued -= 1
                self._run_task(*task)
                del task
        except BaseException as error:  # only our bookkeeping can get here, never a task
            try:
                print('verdigris.threadpool: worker %r failed: %r' % (self, error),
                      file=sys.__stderr__)
            except Exception:
                pass
        finally:
            self._exit(retired)

    def _run_task(self, func, args, kwargs, thread_result):
        shared = self.shared
        trace = _thread_hook('_trace_hook')
        profile = _thread_hook('_profile_hook')
        if trace is not None:
            sys.settrace(trace)
        if profile is not None:
            sys.setprofile(profile)
        try:
            value = func(*args, **kwargs)
        except BaseException:
            error = sys.exc_info()
            value = None
        else:
            error = None
        finally:
            # Also clears hooks the task installed itself.
            if sys.gettrace() is not None:
                sys.settrace(None)
            if sys.getprofile() is not None:
                sys.setprofile(None)
        # Count the task as finished before posting, so that a spawn() running in the hub
        # meanwhile does not start a thread for it.
        with shared.lock:
            shared.unfinished -= 1
        if error is None:
            thread_result.set(value)
        else:
            thread_result.handle_error((self, func), error)

    def _exit(self, retired):
        shared = self.shared
        with shared.lock:
            shared.workers.discard(self)
            if retired:
                shared.retiring -= 1
            starved = shared.queued > 0
        if starved:
            # A task may be queued behind every remaining worker's _RETIRE marker, or have
            # arrived just as we timed out idle: let the hub decide whether to start a thread.
            try:
                shared.loop.run_callback_threadsafe(_adjust_later, shared.pool_ref)
            except Exception:
                pass
        # A task may have used verdigris in this thread, creating a hub: destroy it with us.
        hub = get_hub_if_exists()
        if hub is not None:
            try:
                hub.destroy(True)
            except Exception:
                pass


def _adjust_later(pool_ref):
    pool = pool_ref()
    if pool is not None:
        pool.adjust()


# Every pool, for re-initialisation after fork (see _reinit_pools_after_fork).
_all_pools = weakref.WeakSet()


class ThreadPool:
    """ThreadPool(maxsize, hub=None, idle_task_timeout=-1) -> a pool of native worker threads.

    :meth:`spawn` queues ``func(*args, **kwargs)`` for a worker thread and returns an
    :class:`~verdigris.event.AsyncResult`; the pool starts threads on demand, at most *maxsize*,
    and :meth:`spawn` blocks (the calling greenlet only) while *maxsize* tasks are outstanding.
    An exception raised by the function is re-raised, with its traceback, by the result's
    ``get()``, and is also reported to the hub's ``handle_error`` (which prints it unless it is
    one of the hub's ``NOT_ERROR``). It has the mapping helpers of
    :class:`~verdigris.pool.Pool` (``apply``, ``map``, ``imap``, ...).

    Use it from the thread that runs its hub; the hub's own pool is ``get_hub().threadpool``.
    ``len(pool)`` is the number of unfinished tasks, so a pool with none is false.

    :param idle_task_timeout: seconds after which an idle thread exits; -1 keeps threads forever.

    .. note:: gevent's :meth:`map` spawns the tasks from a helper greenlet; verdigris spawns them
       from the caller, so killing the caller also stops the spawning.

    .. note:: Tasks queued or running when ``os.fork()`` is called are lost in the child; their
       results are never set there (gevent's stay pending too, and keep the child's loop alive).
    """

    def __init__(self, maxsize, hub=None, idle_task_timeout=-1):
        if hub is None:
            hub = get_hub()
        self.hub = hub
        # The native ident of the creating thread, which must be the hub's: hub.thread_ident
        # may be a greenlet's ident once threading is monkey-patched.
        self._thread_ident = _get_ident()
        self._idle_task_timeout = idle_task_timeout
        self._maxsize = 0
        self._slots = Semaphore(0, hub)
        self._all_delivered = Event()
        self._all_delivered.set()
        self._undelivered = 0       # spawned tasks whose result is not delivered yet (hub only)
        self._reset_shared()
        self.maxsize = maxsize

    def _reset_shared(self):
        self._pid = os.getpid()
        self._keepalive = self.hub.loop.async_()
        self._shared = _Shared(self, self._keepalive.send)
        _all_pools.add(self)

    def __repr__(self):
        return '<%s at 0x%x tasks=%s size=%s maxsize=%s hub=%r>' % (
            type(self).__name__, id(self), len(self), self.size, self.maxsize, self.hub)

    def __len__(self):
        return self._shared.unfinished

    def __del__(self):
        # Let the threads of a forgotten pool exit instead of blocking forever on its queue.
        try:
            self._retire(len(self._shared.workers) - self._shared.retiring)
        except Exception:
            pass

    # -- size --------------------------------------------------------------------------------

    @property
    def maxsize(self):
        """The most worker threads (and outstanding tasks); setting it adjusts the pool."""
        return self._maxsize

    @maxsize.setter
    def maxsize(self, maxsize):
        if not isinstance(maxsize, int):
            raise TypeError('maxsize must be integer: %r' % (maxsize,))
        if maxsize < 0:
            raise ValueError('maxsize must not be negative: %r' % (maxsize,))
        self._slots.counter += maxsize - self._maxsize
        self._maxsize = maxsize
        self.adjust()
        self._slots._check_and_notify()  # wake spawn() calls waiting for a slot that now exists

    @property
    def size(self):
        """The number of running worker threads; setting it starts or stops threads.

        Shrinking waits, in the calling greenlet, until the extra threads have finished their
        current task and exited (unless called from the hub).
        """
        return len(self._shared.workers)

    @size.setter
    def size(self, size):
        if size < 0:
            raise ValueError('Size of the pool cannot be negative: %r' % (size,))
        if size > self._maxsize:
            raise ValueError('Size of the pool cannot be bigger than maxsize: %r > %r'
                             % (size, self._maxsize))
        self._resize(size, wait=True)

    def _live(self):
        shared = self._shared
        with shared.lock:
            return len(shared.workers) - shared.retiring

    def _add_worker(self):
        shared = self._shared
        worker = _Worker(shared)
        with shared.lock:
            shared.workers.add(worker)
        try:
            _start_new_thread(worker.run, ())
        except BaseException:
            with shared.lock:
                shared.workers.discard(worker)
            raise

    def _retire(self, count):
        if count <= 0:
            return
        shared = self._shared
        with shared.lock:
            shared.retiring += count
        for _ in range(count):
            shared.tasks.put(_RETIRE)

    def _resize(self, size, wait):
        live = self._live()
        for _ in range(size - live):
            self._add_worker()
        self._retire(live - size)
        if wait and getcurrent() is not self.hub:
            delay = 0.001
            while len(self._shared.workers) > size:
                sleep(delay)
                delay = min(delay * 2, 0.05)
                # adjust() may have started a thread meanwhile, for a task queued behind the
                # _RETIRE markers: it runs that task, then retires too.
                self._retire(self._live() - size)

    def adjust(self):
        """Start threads for queued tasks (up to :attr:`maxsize`); stop threads above it."""
        shared = self._shared
        with shared.lock:
            total = len(shared.workers)
            live = total - shared.retiring
            unfinished = shared.unfinished
            queued = shared.queued
        maxsize = self._maxsize
        # One thread per unfinished task, counting the retiring threads (they run the tasks
        # queued before their marker) ...
        add = min(maxsize, unfinished) - total
        if add <= 0 and queued and live <= 0:
            # ... but a task queued behind every marker needs a thread that stays.
            add = 1
        for _ in range(min(add, maxsize - live)):
            self._add_worker()
        self._retire(live - maxsize)

    def join(self):
        """Wait until every task spawned so far has finished and its result is delivered."""
        while self._undelivered:
            self._all_delivered.wait()

    def kill(self):
        """Stop every worker thread once the tasks already queued are done (``size = 0``).

        Waits, in the calling greenlet, for the threads to exit. The pool stays usable: a later
        :meth:`spawn` starts threads again.
        """
        self._resize(0, wait=True)

    # -- fork ----------------------------------------------------------------------------------

    def _on_fork(self):
        """In a forked child: forget the parent's threads, tasks and locks (idempotent)."""
        if os.getpid() == self._pid:
            return
        old = self._keepalive
        try:
            old.stop()
            old.close()
        except Exception:
            pass
        self._reset_shared()
        self._undelivered = 0
        self._all_delivered.set()
        self._slots.counter = self._maxsize
        self._slots._check_and_notify()

    # -- running tasks -------------------------------------------------------------------------

    def spawn(self, func, *args, **kwargs):
        """Queue ``func(*args, **kwargs)`` for a worker thread; return an AsyncResult for it.

        Blocks the calling greenlet while :attr:`maxsize` tasks are outstanding.

        :raises InvalidThreadUseError: if called from a thread other than the hub's.
        """
        if _get_ident() != self._thread_ident:
            raise InvalidThreadUseError(
                'ThreadPool.spawn() called from thread 0x%x; the pool belongs to the hub of '
                'thread 0x%x' % (_get_ident(), self._thread_ident))
        self._slots.acquire()
        shared = self._shared
        result = AsyncResult()
        try:
            thread_result = ThreadResult(result, shared)
            with shared.lock:
                shared.unfinished += 1
                shared.queued += 1
            if not self._undelivered:
                self._keepalive.start(self._deliver)
                self._all_delivered.clear()
            self._undelivered += 1
            shared.tasks.put((func, args, kwargs, thread_result))
        except BaseException:
            self._slots.release()
            raise
        self.adjust()
        return result

    def _deliver(self):
        """The async watcher's callback, in the hub: hand finished results to their waiters."""
        done = self._shared.done
        batch = []
        while done:
            batch.append(done.popleft())
        # Bookkeeping first: handle_error() below may switch away (a SYSTEM_ERROR goes to the
        # main greenlet), and the pool must be consistent if it does.
        self._undelivered -= len(batch)
        for _ in batch:
            self._slots.release()
        if not self._undelivered:
            self._keepalive.stop()
            self._all_delivered.set()
        hub = self.hub
        for thread_result in batch:
            receiver = thread_result.receiver
            thread_result.receiver = None
            if thread_result.exc_info:
                exc_info = thread_result.exc_info
                receiver.set_exception(exc_info[1], exc_info)
                hub.handle_error(thread_result.context, *exc_info)
            else:
                receiver.set(thread_result.value)

    def _apply_immediately(self):
        # In another thread (a worker applying recursively), waiting for a result would need
        # a hub there: run the function in place instead.
        return _get_ident() != self._thread_ident

    def apply(self, func, args=None, kwds=None):
        """Run ``func(*args, **kwds)`` in a worker thread and return (or raise) its outcome.

        Called from another thread (such as one of the workers), it runs *func* directly.
        """
        args = () if args is None else args
        kwds = {} if kwds is None else kwds
        if self._apply_immediately():
            return func(*args, **kwds)
        return self.spawn(func, *args, **kwds).get()

    def apply_cb(self, func, args=None, kwds=None, callback=None):
        """:meth:`apply`, then call *callback* with the result in the current greenlet."""
        result = self.apply(func, args, kwds)
        if callback is not None:
            callback(result)
        return result

    def apply_async(self, func, args=None, kwds=None, callback=None):
        """Return a new greenlet running :meth:`apply_cb`; never blocks."""
        return Greenlet.spawn(self.apply_cb, func, args, kwds, callback)

    def map(self, func, iterable):
        """Return ``[func(item) for item in iterable]``, computed in worker threads, in order."""
        tasks = [self.spawn(func, item) for item in iterable]
        return [task.get() for task in tasks]

    def map_cb(self, func, iterable, callback=None):
        """:meth:`map`, then call *callback* with the list of results."""
        result = self.map(func, iterable)
        if callback is not None:
            callback(result)
        return result

    def map_async(self, func, iterable, callback=None):
        """Return a new greenlet running :meth:`map_cb`."""
        return Greenlet.spawn(self.map_cb, func, iterable, callback)

    def imap(self, func, *iterables, maxsize=None):
        """Iterate over ``func(*items)`` for items zipped from *iterables*, in input order."""
        iterator = IMap(func, zip(*iterables), self.spawn, maxsize)
        iterator.start()
        return iterator

    def imap_unordered(self, func, *iterables, maxsize=None):
        """Like :meth:`imap`, but yield results in the order they finish."""
        iterator = IMapUnordered(func, zip(*iterables), self.spawn, maxsize)
        iterator.start()
        return iterator


def _reinit_pools_after_fork():
    # Pools not owned by the hub (ThreadPoolExecutor's) are not reached by hub.reinit(); only
    # the forking thread survives, so only its pools can be used in the child.
    ident = _get_ident()
    for pool in list(_all_pools):
        if pool._thread_ident == ident and pool.hub.loop is not None:
            try:
                pool._on_fork()
            except Exception:
                pass


if hasattr(os, 'register_at_fork'):
    os.register_at_fork(after_in_child=_reinit_pools_after_fork)


# -- concurrent.futures ---------------------------------------------------------------------------

def _threading_is_patched():
    try:
        from verdigris import monkey
    except ImportError:
        return False
    return monkey.is_module_patched('threading')


class _FutureProxy:
    """A :class:`concurrent.futures.Future` look-alike over a pool's AsyncResult.

    ``result()`` and ``exception()`` block only the calling greenlet; the proxy can be passed to
    :func:`verdigris.wait`/:func:`verdigris.iwait` (it has ``rawlink``). The module functions
    :func:`concurrent.futures.wait` and :func:`~concurrent.futures.as_completed` work on it when
    :mod:`threading` is monkey-patched, or once it is done; otherwise they would block the whole
    thread, so they fail with AttributeError (``_condition``), as with gevent.
    """

    def __init__(self, asyncresult):
        self.asyncresult = asyncresult
        self._cf_condition = None
        self._cf_waiters = None

    # -- the parts of concurrent.futures' private protocol that wait()/as_completed() use ------

    @property
    def _condition(self):
        # One per future: concurrent.futures acquires and releases it in separate accesses.
        if self._cf_condition is None:
            if not (self.done() or _threading_is_patched()):
                raise AttributeError(
                    '_condition: waiting on a pending future with concurrent.futures needs '
                    'threading monkey-patched; use verdigris.wait/iwait instead')
            self._cf_condition = _threading.Condition()
        return self._cf_condition

    @property
    def _waiters(self):
        if self._cf_waiters is None:
            self._cf_waiters = []
            if not self.done():  # a done future is seen as FINISHED; no notification to add
                self.asyncresult.rawlink(self._notify_cf_waiters)
        return self._cf_waiters

    def _notify_cf_waiters(self, _):
        for waiter in list(self._cf_waiters):
            if self.asyncresult.successful():
                waiter.add_result(self)
            else:
                waiter.add_exception(self)

    @property
    def _state(self):
        return _cf_base.FINISHED if self.done() else _cf_base.RUNNING

    def set_running_or_notify_cancel(self):
        return True

    # -- the public Future API -------------------------------------------------------------------

    def result(self, timeout=None):
        try:
            return self.asyncresult.result(timeout=timeout)
        except Timeout:
            raise concurrent.futures.TimeoutError() from None

    def exception(self, timeout=None):
        self.asyncresult.wait(timeout)  # never raises the task's exception
        if not self.asyncresult.ready():
            raise concurrent.futures.TimeoutError()
        return self.asyncresult.exception

    def done(self):
        return self.asyncresult.ready()

    def running(self):
        return not self.asyncresult.ready()

    def cancel(self):
        """A task handed to a thread cannot be cancelled: always False."""
        return False

    def cancelled(self):
        return False

    def add_done_callback(self, fn):
        """Call ``fn(future)`` (in the hub) once done, or now if done; its errors are printed."""
        if self.done():
            fn(self)
            return
        self.asyncresult.rawlink(_DoneCallback(self, fn))

    def rawlink(self, fn):
        self.asyncresult.rawlink(_ProxyLink(self, fn))

    def unlink(self, fn):
        self.asyncresult.unlink(_ProxyLink(self, fn))

    def __str__(self):
        return str(self.asyncresult)

    def __getattr__(self, name):
        # ready(), successful(), get(), wait(), value, exc_info...
        if name == 'asyncresult':  # not set yet (copy, unpickling): no infinite recursion
            raise AttributeError(name)
        return getattr(self.asyncresult, name)


class _ProxyLink:
    """A link on the AsyncResult that calls *fn* with the proxy instead (so iwait yields it)."""

    __slots__ = ('proxy', 'fn')

    def __init__(self, proxy, fn):
        self.proxy = proxy
        self.fn = fn

    def __call__(self, _):
        self.fn(self.proxy)

    def __eq__(self, other):
        return isinstance(other, _ProxyLink) and other.proxy is self.proxy and other.fn == self.fn

    def __hash__(self):
        return hash(self.fn)


class _DoneCallback(_ProxyLink):
    __slots__ = ()

    def __call__(self, _):
        try:
            self.fn(self.proxy)
        except Exception:
            hub = get_hub()
            hub.print_exception((self.fn, self.proxy), *sys.exc_info())


class ThreadPoolExecutor(concurrent.futures.ThreadPoolExecutor):
    """A :class:`concurrent.futures.ThreadPoolExecutor` whose threads are native even after
    monkey patching and whose futures greenlets can wait on cooperatively.

    ``submit`` returns a future whose ``result()``/``exception()`` block only the calling
    greenlet and that :func:`verdigris.wait`/:func:`verdigris.iwait` accept (see
    :class:`_FutureProxy` for :func:`concurrent.futures.wait`/``as_completed``). The first
    argument is *max_workers*; the other arguments of the stdlib class are accepted and ignored.

    .. note:: ``shutdown(wait=False)`` does not block (gevent's waits for the threads anyway);
       ``cancel_futures=True`` is accepted and ignored, as with gevent: tasks already submitted
       still run.
    """

    def __init__(self, *args, **kwargs):
        concurrent.futures.ThreadPoolExecutor.__init__(self, *args, **kwargs)
        self._threadpool = ThreadPool(self._max_workers)

    def submit(self, fn, /, *args, **kwargs):
        with self._shutdown_lock:
            if self._shutdown:
                raise RuntimeError('cannot schedule new futures after shutdown')
            pool = self._threadpool
        # spawn() may wait for a slot: not while holding the lock, which is a native one unless
        # threading is patched (a second submit() would then block the hub's thread for good).
        return _FutureProxy(pool.spawn(fn, *args, **kwargs))

    def shutdown(self, wait=True, **kwargs):
        concurrent.futures.ThreadPoolExecutor.shutdown(self, wait, **kwargs)
        pool, self._threadpool = self._threadpool, None
        if pool is None:
            return
        if wait:
            pool.join()
            pool.kill()
        else:
            pool._resize(0, wait=False)

    kill = shutdown

    def _adjust_thread_count(self):
        # The ThreadPool starts its own threads.
        pass
