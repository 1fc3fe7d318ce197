"""The base of everything a greenlet can wait on: :class:`AbstractLinkable`.

:class:`~verdigris.event.Event`, :class:`~verdigris.event.AsyncResult` and
:class:`~verdigris.lock.Semaphore` share one protocol, gevent's "linkable" protocol:

* ``rawlink(callback)`` registers a callable that is called with the object once it is
  :meth:`~AbstractLinkable.ready`; ``unlink(callback)`` takes it back. A link is removed
  before it is called, so it fires once per registration.
* Links are never called from inside ``set()`` or ``release()``. The first state change that
  finds links schedules one *notification round* as a callback on the hub's loop; the round runs
  in the hub greenlet on the loop's next turn and calls the links in the order they were added.
* A blocked greenlet is just a link: its bound ``switch`` method. Calling it resumes the
  greenlet at once, inside the round, and the round continues when that greenlet blocks again
  or dies (its parent is the hub). So waiters wake first come, first served.

Discussion: what one round covers.
    A round calls only the links that were present when it began. A waiter woken by the round
    that immediately waits again (``ev.clear(); ev.wait()``) appends a new link behind that
    boundary, so it is not woken by the very notification it has just consumed. For repeatable
    events (Event) the round calls every one of its links even if the object stopped being ready
    meanwhile: all of them saw it ready at least once. For counting objects (Semaphore,
    ``_notify_all = False``) the round stops as soon as the object is no longer ready, because
    each woken waiter consumes what it was woken for. Whatever is left when the round ends is
    looked at again: if the object is ready and links remain, a new round is scheduled.

Discussion: the hot paths.
    ``Event.set()`` with 10,000 waiters and an uncontended ``Semaphore.acquire()/release()`` are
    benchmarked against gevent's compiled code, so the structures are chosen for them: links live
    in a :class:`collections.deque` (O(1) append and pop from the front; ``unlink`` is O(n), but it
    is only needed when a wait is abandoned, e.g. on timeout), scheduling a round costs one
    attribute test when one is already pending, and a wait without a timeout never creates a timer.
    A round does nothing per link but pop and call it: a callable linked twice is called twice.

.. note::
   gevent calls the links synchronously, inside ``set()``, when the thread has no hub yet;
   verdigris always schedules the round, creating the hub if needed.

.. note::
   gevent skips a callable's second registration within a round and calls it in the next
   round; verdigris calls both registrations in the same round.

.. note::
   gevent lets a few of these objects be used from several threads (it detects the owning hub
   and raises ``InvalidThreadUseError``). verdigris's linkables belong to the thread whose hub
   runs their notification round: like gevent's own ``Event`` and ``AsyncResult``, use them
   among greenlets of one thread only.
"""
import sys
import traceback
from collections import deque

from greenlet import getcurrent

from verdigris.exceptions import InvalidSwitchError
from verdigris.hub import get_hub
from verdigris.timeout import Timeout

__all__ = ['AbstractLinkable']


class _Running:
    """Stands in ``_notifier`` while a notification round is running.

    A scheduled round can be cancelled (``unlink`` of the last link stops it), a running one must
    not be; this marker tells the two apart without asking the loop.
    """

    __slots__ = ()

    def __repr__(self):
        return '<notification round running>'


_RUNNING = _Running()


class AbstractLinkable:
    """Base for objects that wake linked callbacks, FIFO, when they become :meth:`ready`.

    Subclasses define :meth:`ready` and call :meth:`_check_and_notify` (or the inlined
    equivalent) when they may have become ready; blocking methods call :meth:`_wait`.

    :param hub: the hub that runs notification rounds and that waiters switch to; by default
        the hub of the thread that first needs one (so a module-level instance does not create a
        hub at import time).
    """

    __slots__ = ('hub', '_links', '_notifier', '__weakref__')

    #: True: a round calls all of its links (Event, AsyncResult). False: a round stops as soon
    #: as :meth:`ready` turns false, as each woken waiter consumes the readiness (Semaphore).
    _notify_all = True

    def __init__(self, hub=None):
        self.hub = hub
        self._links = deque()
        # None: no round scheduled; a loop callback handle: scheduled; _RUNNING: running.
        self._notifier = None

    def ready(self):
        """Return whether waiting on this object would return immediately."""
        raise NotImplementedError

    def linkcount(self):
        """Return how many callbacks (including blocked greenlets) are linked right now."""
        return len(self._links)

    def rawlink(self, callback):
        """Register *callback* to be called with this object when it is :meth:`ready`.

        The callback runs in the hub greenlet, so it must not block; it is unlinked before it is
        called. If the object is already ready, a notification round is scheduled.

        :raises TypeError: if *callback* is not callable.
        """
        if not callable(callback):
            raise TypeError('Expected callable: %r' % (callback,))
        self._links.append(callback)
        self._check_and_notify()

    def unlink(self, callback):
        """Remove *callback* registered with :meth:`rawlink`; do nothing if it is not linked."""
        links = self._links
        try:
            links.remove(callback)
        except ValueError:
            pass
        notifier = self._notifier
        if not links and notifier is not None and notifier is not _RUNNING:
            # Nobody left to notify: drop the scheduled round, and with it the reference cycle
            # self -> loop callback -> bound _notify_links -> self.
            notifier.stop()
            self._notifier = None

    def _at_fork_reinit(self):
        """Forget the parent's hub and scheduled round in a forked child.

        :mod:`threading` and :mod:`logging` call this on their locks after ``fork()``; the
        loop callback of a pending round belongs to the parent's loop.
        """
        self.hub = None
        self._notifier = None

    # -- notification --------------------------------------------------------------------------

    def _check_and_notify(self):
        """Schedule a notification round if we are ready, have links and have none scheduled."""
        if self._links and self._notifier is None and self.ready():
            self._schedule_notify()

    def _capture_hub(self):
        """Return the hub that owns this object: the one given, or the first one used.

        A hub that was destroyed since (its ``loop`` is None) is replaced by the current one.
        """
        hub = self.hub
        if hub is None or hub.loop is None:
            hub = self.hub = get_hub()
        return hub

    def _schedule_notify(self):
        # Callers have checked that links exist and no round is pending or running.
        self._notifier = self._capture_hub().loop.run_callback(self._notify_links)

    def _notify_links(self):
        """Run one notification round (in the hub greenlet); see the module's discussion."""
        self._notifier = _RUNNING
        try:
            if self._notify_all:
                # The fan-out path (Event.set() waking thousands): nothing but pop and call.
                links = self._links
                popleft = links.popleft
                for _ in range(len(links)):
                    try:
                        link = popleft()
                    except IndexError:  # links unlinked by earlier ones
                        break
                    try:
                        link(self)
                    except:  # noqa: E722 -- we run in the hub: report every error, never escape
                        self._report_link_error(link)
            else:
                links = self._links
                for _ in range(len(links)):
                    if not links or not self.ready():
                        break
                    link = links.popleft()
                    try:
                        link(self)
                    except:  # noqa: E722
                        self._report_link_error(link)
        finally:
            self._notifier = None
        # A link may have made us ready again, or links may have arrived behind the boundary.
        self._check_and_notify()

    def _report_link_error(self, link):
        handle_error = getattr(self._capture_hub(), 'handle_error', None)
        if handle_error is not None:
            handle_error((link, self), *sys.exc_info())
        else:
            traceback.print_exc()

    # -- waiting -------------------------------------------------------------------------------

    def _wait(self, timeout=None, raise_timeout=False):
        """Block the current greenlet until a notification round calls it, or *timeout* elapses.

        The caller has checked that the object is not ready (or that a round is already scheduled
        and will reach this waiter): nothing here schedules a round.

        :param timeout: seconds, or None to wait without a timer.
        :param raise_timeout: if true, the elapsed :class:`~verdigris.timeout.Timeout` is raised
            instead of returning False (``AsyncResult.get``).
        :return: True if notified, False if *timeout* elapsed.
        :raises InvalidSwitchError: if something other than a notification resumed us.
        """
        switch = getcurrent().switch
        self._links.append(switch)
        hub = self.hub
        if hub is None or hub.loop is None:  # _capture_hub(), inlined on the waiters' path
            hub = self._capture_hub()
        if timeout is None:
            try:
                result = hub.switch()
            except BaseException:
                self.unlink(switch)
                raise
        else:
            timer = Timeout._start_new_or_dummy(timeout)
            try:
                try:
                    result = hub.switch()
                except BaseException as ex:
                    self.unlink(switch)
                    if ex is timer and not raise_timeout:
                        return False
                    raise
            finally:
                timer.cancel()
        if result is not self:
            # A stray switch: we are still linked, and must not be woken later by a round.
            self.unlink(switch)
            raise InvalidSwitchError('Invalid switch into %s wait(): %r'
                                     % (type(self).__name__, result))
        return True

    def _wait_behind_round(self):
        """Yield until the pending or running notification round has woken its waiters.

        Used by ``wait()`` on an object that is already ready while a round is in flight: a
        greenlet that did not have to block runs after those that did (gevent issue #1520).
        """
        hub = self._capture_hub()
        handle = hub.loop.run_callback(getcurrent().switch, self)
        try:
            result = hub.switch()
        except BaseException:
            handle.stop()
            raise
        if result is not self:
            handle.stop()
            raise InvalidSwitchError('Invalid switch into %s wait(): %r'
                                     % (type(self).__name__, result))
