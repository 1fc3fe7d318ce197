"""The old home of the synchronisation primitives, kept for code written against it.

Early gevent had one module, ``gevent.coros``, for its semaphores, events and queue; they now live
in :mod:`verdigris.lock`, :mod:`verdigris.event` and :mod:`verdigris.queue`. The tutorial that
verdigris follows still writes ``from gevent.coros import BoundedSemaphore``, so this module
re-exports those names. New code should import from the modules above.

.. note::
   gevent 26 no longer has ``gevent.coros`` (it was deprecated in 1.0 and later removed);
   verdigris keeps it, without a deprecation warning, so the tutorial runs unchanged.
"""
from verdigris.event import AsyncResult, Event
from verdigris.lock import BoundedSemaphore, DummySemaphore, RLock, Semaphore
from verdigris.queue import Channel, JoinableQueue, LifoQueue, PriorityQueue, Queue

__all__ = ['Semaphore', 'BoundedSemaphore', 'DummySemaphore', 'RLock',
           'Event', 'AsyncResult',
           'Queue', 'JoinableQueue', 'LifoQueue', 'PriorityQueue', 'Channel']
