"""``Greenlet``: a green thread with a result, links, ``join``, ``get`` and ``kill``.

A :class:`Greenlet` is a ``greenlet.greenlet`` whose parent is the hub. :meth:`Greenlet.start`
queues its first switch on the loop; when its function returns or raises, the result is stored,
and the callbacks linked to it (``rawlink``) run in the hub on the next loop turn. Exceptions
other than ``GreenletExit`` are also handed to the hub's ``handle_error``, which prints them:
a failing greenlet never takes its spawner down with it.
"""
import sys
import weakref
from itertools import count as _count

from greenlet import GreenletExit
from greenlet import getcurrent
from greenlet import greenlet as RawGreenlet

from verdigris._hub_primitives import iwait_on_objects, wait_on_objects
from verdigris._waiter import Waiter
from verdigris.exceptions import InvalidSwitchError
from verdigris.hub import get_hub
from verdigris.timeout import Timeout

__all__ = ["Greenlet", "joinall", "killall"]


class _StartCompleted:
    """Stands in for ``_start_event`` once the greenlet runs: nothing left to cancel."""

    pending = False

    def stop(self):
        pass

    def close(self):
        pass


_start_completed = _StartCompleted()


class _Cancelled(_StartCompleted):
    """Stands in for ``_start_event`` of a greenlet killed before it started."""


_cancelled_start = _Cancelled()


class SpawnedLink:
    """A link that runs its callback in a new greenlet (what ``Greenlet.link`` installs)."""

    __slots__ = ("callback",)

    def __init__(self, callback):
        if not callable(callback):
            raise TypeError("Expected callable: %r" % (callback,))
        self.callback = callback

    def __call__(self, source):
        g = RawGreenlet(self.callback, get_hub())
        g.switch(source)

    def __hash__(self):
        return hash(self.callback)

    def __eq__(self, other):
        return self.callback == getattr(other, "callback", other)

    def __str__(self):
        return str(self.callback)

    def __repr__(self):
        return repr(self.callback)

    def __getattr__(self, item):
        assert item != "callback"
        return getattr(self.callback, item)


class SuccessSpawnedLink(SpawnedLink):
    """Runs the callback only if the greenlet succeeded."""

    __slots__ = ()

    def __call__(self, source):
        if source.successful():
            return SpawnedLink.__call__(self, source)
        return None


class FailureSpawnedLink(SpawnedLink):
    """Runs the callback only if the greenlet failed."""

    __slots__ = ()

    def __call__(self, source):
        if not source.successful():
            return SpawnedLink.__call__(self, source)
        return None


class _IdentRegistry:
    """Small integers for greenlets, reused once a greenlet is gone (``minimal_ident``)."""

    def __init__(self):
        self._registry = weakref.WeakKeyDictionary()
        self._available = []
        self._counter = _count()

    def get_ident(self, obj):
        try:
            return self._registry[obj][0]
        except KeyError:
            pass
        if self._available:
            ident = self._available.pop()
        else:
            ident = next(self._counter)
        self._registry[obj] = (ident, weakref.ref(obj, lambda _, i=ident: self._available.append(i)))
        return ident


_idents = _IdentRegistry()


class Greenlet(RawGreenlet):
    """A green thread running ``run(*args, **kwargs)`` (gevent's ``Greenlet``).

    .. note:: gevent records the spawning stack of every greenlet (``spawning_stack``) by
       default; verdigris sets it to None to keep ``spawn`` cheap. ``spawning_greenlet`` and
       ``spawn_tree_locals`` are kept.
    """

    #: gevent compatibility: the class that ``spawn`` makes.
    spawning_stack = None
    spawning_stack_limit = 10

    _spawn_callbacks = None

    def __init__(self, run=None, *args, **kwargs):
        hub = get_hub()
        RawGreenlet.__init__(self, None, hub)
        if run is not None:
            self._run = run
        # A function passed as `run` wins over a subclass's `_run`; a subclass overriding
        # `_run` is the gevent way to give a greenlet a body.
        if not callable(self._run):
            raise TypeError("The run argument or self._run must be callable")
        self.args = args
        self.kwargs = kwargs
        self.value = None
        self._exc_info = None
        self._start_event = None
        self._links = []
        self._notifier = None
        self._ident = None
        self._name = None
        current = getcurrent()
        self.spawning_greenlet = weakref.ref(current)
        try:
            self.spawn_tree_locals = current.spawn_tree_locals
        except AttributeError:
            self.spawn_tree_locals = {}
            if current.parent is not None:
                try:
                    current.spawn_tree_locals = self.spawn_tree_locals
                except AttributeError:  # a greenlet type with __slots__
                    pass

    # -- properties -------------------------------------------------------------------------

    @property
    def loop(self):
        return self.parent.loop

    @property
    def minimal_ident(self):
        """A small integer identifying this greenlet, reused after it is gone."""
        if self._ident is None:
            self._ident = _idents.get_ident(self)
        return self._ident

    @property
    def name(self):
        """``Greenlet-N`` (N = :attr:`minimal_ident`) unless assigned."""
        if self._name is None:
            self._name = "Greenlet-%d" % (self.minimal_ident,)
        return self._name

    @name.setter
    def name(self, value):
        self._name = value

    def __bool__(self):
        # True while started and not finished (gevent's definition).
        return self._start_event is not None and self._exc_info is None

    @property
    def started(self):
        """True once ``start()`` was called and until the greenlet finishes."""
        return bool(self)

    @property
    def dead(self):
        """True once finished, or killed before it started."""
        return (self._start_event is _cancelled_start) or RawGreenlet.dead.__get__(self)

    def ready(self):
        """True once finished (successfully or not)."""
        return self.dead or self._exc_info is not None

    def successful(self):
        """True if finished without an exception (``GreenletExit`` counts as success)."""
        return self._exc_info is not None and self._exc_info[1] is None

    @property
    def exception(self):
        """The exception that ended the greenlet, or None."""
        return self._exc_info[1] if self._exc_info is not None else None

    @property
    def exc_info(self):
        """``(type, value, tb)`` of the failure, or None."""
        ei = self._exc_info
        if ei is not None and ei[0] is not None:
            return ei
        return None

    def __repr__(self):
        return "<%s %r at %s: %s>" % (type(self).__name__, self.name, hex(id(self)), self._formatinfo())

    __str__ = __repr__

    def _formatinfo(self):
        func = getattr(self, "_run", None)
        if func is None:
            return ""
        name = getattr(func, "__qualname__", None) or getattr(func, "__name__", None) or repr(func)
        im_self = getattr(func, "__self__", None)
        if im_self is self:
            name = "%s.%s" % (type(self).__name__, getattr(func, "__name__", name))
        args = [repr(a)[:50] for a in self.args]
        args.extend("%s=%s" % (k, repr(v)[:50]) for k, v in self.kwargs.items())
        return "%s(%s)" % (name, ", ".join(args))

    # -- starting ----------------------------------------------------------------------------

    def start(self):
        """Schedules the greenlet to run on the next loop turn. Idempotent."""
        if self._start_event is None:
            if Greenlet._spawn_callbacks:
                for cb in list(Greenlet._spawn_callbacks):
                    cb(self)
            self._start_event = self.parent.loop.run_callback(self.switch)

    def start_later(self, seconds):
        """Schedules the greenlet to run after *seconds*."""
        if self._start_event is None:
            if Greenlet._spawn_callbacks:
                for cb in list(Greenlet._spawn_callbacks):
                    cb(self)
            timer = self.parent.loop.timer(seconds)
            timer.start(self.switch)
            self._start_event = timer

    @classmethod
    def spawn(cls, *args, **kwargs):
        """Creates a greenlet running ``args[0](*args[1:], **kwargs)`` and starts it."""
        g = cls(*args, **kwargs)
        g.start()
        return g

    @classmethod
    def spawn_later(cls, seconds, *args, **kwargs):
        """Like :meth:`spawn`, but starts after *seconds*."""
        g = cls(*args, **kwargs)
        g.start_later(seconds)
        return g

    @classmethod
    def add_spawn_callback(cls, callback):
        """Calls ``callback(greenlet)`` whenever any Greenlet is started."""
        if Greenlet._spawn_callbacks is None:
            Greenlet._spawn_callbacks = set()
        Greenlet._spawn_callbacks.add(callback)

    @classmethod
    def remove_spawn_callback(cls, callback):
        if Greenlet._spawn_callbacks is not None:
            Greenlet._spawn_callbacks.discard(callback)
            if not Greenlet._spawn_callbacks:
                Greenlet._spawn_callbacks = None

    def _handle_death_before_start(self, args):
        # The greenlet never ran and never will: record the kill exception as its outcome.
        if self._exc_info is None and self.dead:
            if len(args) == 1:
                arg = args[0]
                if isinstance(arg, type) and issubclass(arg, BaseException):
                    args = (arg, arg(), None)
                else:
                    args = (type(arg), arg, None)
            elif not args:
                args = (GreenletExit, GreenletExit(), None)
            self._report_error(args)

    def _kill_before_start(self):
        """Cancels a pending start; returns True if the greenlet will now never run."""
        event = self._start_event
        if event is _start_completed or event is _cancelled_start:
            return event is _cancelled_start
        if RawGreenlet.__bool__(self) or RawGreenlet.dead.__get__(self):
            return False  # already running (or a raw switch started it)
        if event is not None:
            event.stop()
            event.close()
        self._start_event = _cancelled_start
        return True

    # -- running -----------------------------------------------------------------------------

    def run(self):
        try:
            self._start_event = _start_completed
            try:
                result = self._run(*self.args, **self.kwargs)
            except:  # noqa: E722 - every failure is the greenlet's outcome
                self._report_error(sys.exc_info())
                return
            self._report_result(result)
        finally:
            self.__dict__.pop("_run", None)
            self.args = ()
            self.kwargs.clear()

    def _run(self):
        """The greenlet's body when no ``run`` function was given: subclasses override it."""
        return None

    def _report_result(self, result):
        self._exc_info = (None, None, None)
        self.value = result
        if self._links and self._notifier is None:
            self._notifier = self.parent.loop.run_callback(self._notify_links)

    def _report_error(self, exc_info):
        if isinstance(exc_info[1], GreenletExit):
            self._report_result(exc_info[1])
            return
        self._exc_info = exc_info[0], exc_info[1], exc_info[2]
        hub = self.parent
        if self._links and self._notifier is None:
            self._notifier = hub.loop.run_callback(self._notify_links)
        try:
            hub.handle_error(self, *exc_info)
        finally:
            del exc_info

    def _raise_exception(self):
        exc = self._exc_info[1]
        raise exc.with_traceback(self._exc_info[2])

    # -- links -------------------------------------------------------------------------------

    def rawlink(self, callback):
        """Calls ``callback(self)`` in the hub once the greenlet is finished."""
        if not callable(callback):
            raise TypeError("Expected callable: %r" % (callback,))
        self._links.append(callback)
        if self._notifier is None and self.ready():
            self._notifier = self.parent.loop.run_callback(self._notify_links)

    def link(self, callback, SpawnedLink=SpawnedLink):
        """Calls ``callback(self)`` in a new greenlet once this one is finished."""
        self.rawlink(SpawnedLink(callback))

    def unlink(self, callback):
        """Removes a callback installed by :meth:`rawlink`/:meth:`link`."""
        try:
            self._links.remove(callback)
        except ValueError:
            pass

    def unlink_all(self):
        del self._links[:]

    def link_value(self, callback, SpawnedLink=SuccessSpawnedLink):
        """Like :meth:`link`, but only if the greenlet succeeded."""
        self.link(callback, SpawnedLink=SpawnedLink)

    def link_exception(self, callback, SpawnedLink=FailureSpawnedLink):
        """Like :meth:`link`, but only if the greenlet failed."""
        self.link(callback, SpawnedLink=SpawnedLink)

    def has_links(self):
        return bool(self._links)

    def _notify_links(self):
        links = self._links
        while links:
            link = links.pop(0)
            try:
                link(self)
            except:  # noqa: E722
                self.parent.handle_error((link, self), *sys.exc_info())
        self._notifier = None

    # -- waiting and killing -----------------------------------------------------------------

    def join(self, timeout=None):
        """Waits until the greenlet finishes or *timeout* seconds pass; never raises its error."""
        if self.ready():
            return
        switch = getcurrent().switch
        self.rawlink(switch)
        try:
            t = Timeout._start_new_or_dummy(timeout)
            try:
                result = self.parent.switch()
                if result is not self:
                    raise InvalidSwitchError(
                        "Invalid switch into Greenlet.join(): %r" % (result,))
            finally:
                t.cancel()
        except Timeout as ex:
            self.unlink(switch)
            if ex is not t:
                raise
        except:  # noqa: E722
            self.unlink(switch)
            raise

    def get(self, block=True, timeout=None):
        """The greenlet's return value; re-raises its exception.

        Waits for it to finish (at most *timeout* seconds, then raises ``Timeout``); with
        ``block=False`` raises ``Timeout`` at once if it has not finished.
        """
        if self.ready():
            if self.successful():
                return self.value
            self._raise_exception()
        if not block:
            raise Timeout()
        switch = getcurrent().switch
        self.rawlink(switch)
        try:
            t = Timeout._start_new_or_dummy(timeout)
            try:
                result = self.parent.switch()
                if result is not self:
                    raise InvalidSwitchError("Invalid switch into Greenlet.get(): %r" % (result,))
            finally:
                t.cancel()
        except:  # noqa: E722
            self.unlink(switch)
            raise
        if self.ready():
            if self.successful():
                return self.value
            self._raise_exception()
        return None

    def throw(self, *args):
        """Raises an exception in the greenlet at once (it must not be the current one)."""
        if self._kill_before_start():
            self._handle_death_before_start(args)
            return
        if not self.dead:
            RawGreenlet.throw(self, *args)

    def kill(self, exception=GreenletExit, block=True, timeout=None):
        """Raises *exception* (default ``GreenletExit``) in the greenlet.

        A greenlet that has not started yet never will. With ``block=True`` waits (up to
        *timeout*) for it to finish; a greenlet that catches the exception may keep running.
        """
        if self._kill_before_start():
            self._handle_death_before_start((exception,))
            return
        if self.dead:
            return
        waiter = Waiter() if block else None
        self.parent.loop.run_callback(_kill, self, exception, waiter)
        if block:
            waiter.get()
            self.join(timeout)


def _kill(glet, exception, waiter):
    try:
        if isinstance(exception, tuple) and len(exception) == 3:
            glet.throw(*exception)
        else:
            glet.throw(exception)
    except:  # noqa: E722
        glet.parent.handle_error(glet, *sys.exc_info())
    if waiter is not None:
        waiter.switch(None)


def joinall(greenlets, timeout=None, raise_error=False, count=None):
    """Waits for the *greenlets* to finish; returns those that did.

    With ``raise_error=True`` the first failure is re-raised; *count* stops after that many.
    """
    if not raise_error:
        return wait_on_objects(greenlets, timeout=timeout, count=count)
    done = []
    for obj in iwait_on_objects(greenlets, timeout=timeout, count=count):
        if getattr(obj, "exception", None) is not None:
            if hasattr(obj, "_raise_exception"):
                obj._raise_exception()
            else:
                raise obj.exception
        done.append(obj)
    return done


def _killall3(glets, exception, waiter):
    diehards = []
    for g in glets:
        if not g.dead:
            try:
                g.throw(exception)
            except:  # noqa: E722
                g.parent.handle_error(g, *sys.exc_info())
            if not g.dead:
                diehards.append(g)
    waiter.switch(diehards)


def _killall(glets, exception):
    for g in glets:
        if not g.dead:
            try:
                g.throw(exception)
            except:  # noqa: E722
                g.parent.handle_error(g, *sys.exc_info())


def killall(greenlets, exception=GreenletExit, block=True, timeout=None):
    """Kills every greenlet in *greenlets*.

    Greenlets that have not started never will. With ``block``, waits for the others to die;
    with *timeout* as well, raises ``Timeout`` if they have not died by then.
    """
    need_killed = []
    glet = None
    for glet in greenlets:
        kill_before_start = getattr(glet, "_kill_before_start", None)
        if kill_before_start is not None and kill_before_start():
            glet._handle_death_before_start((exception,))
        else:
            need_killed.append(glet)
    if not need_killed:
        return
    loop = get_hub().loop
    if block:
        waiter = Waiter()
        loop.run_callback(_killall3, need_killed, exception, waiter)
        t = Timeout._start_new_or_dummy(timeout)
        try:
            alive = waiter.get()
            if alive:
                joinall(alive, raise_error=False)
        finally:
            t.cancel()
    else:
        loop.run_callback(_killall, need_killed, exception)
