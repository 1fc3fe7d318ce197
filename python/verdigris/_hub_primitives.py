"""Waiting on several objects at once: ``wait`` and ``iwait``.

An object can be waited on if it has ``rawlink(callback)`` (and ideally ``unlink``): greenlets,
events, async results, semaphores. ``callback(obj)`` is called in the hub once *obj* is ready.
"""
from verdigris._waiter import MultipleWaiter

__all__ = ["iwait_on_objects", "wait_on_objects"]


class _WaitIterator:
    """Yields objects as they become ready; stops after *count* of them or at *timeout*."""

    def __init__(self, objects, hub, timeout, count):
        self._hub = hub
        self._waiter = MultipleWaiter(hub)
        self._switch = self._waiter.switch
        self._timeout = timeout
        self._objects = objects
        self._timer = None
        self._begun = False
        self._count = len(objects) if count is None else min(count, len(objects))

    def _begin(self):
        if self._begun:
            return
        self._begun = True
        switch = self._switch
        for obj in self._objects:
            obj.rawlink(switch)
        if self._timeout is not None:
            self._timer = self._hub.loop.timer(self._timeout, priority=-1)
            self._timer.start(switch, self)

    def __iter__(self):
        return self

    def __next__(self):
        self._begin()
        if self._count == 0:
            self._cleanup()
            raise StopIteration()
        self._count -= 1
        try:
            item = self._waiter.get()
            if item is self:
                # The timer fired.
                self._cleanup()
                raise StopIteration()
            return item
        except BaseException:
            self._cleanup()
            raise

    def _cleanup(self):
        if self._timer is not None:
            self._timer.close()
            self._timer = None
        objs, self._objects = self._objects, ()
        switch = self._switch
        for obj in objs:
            unlink = getattr(obj, "unlink", None)
            if unlink is not None:
                unlink(switch)

    def __enter__(self):
        return self

    def __exit__(self, typ, value, tb):
        self._cleanup()


def iwait_on_objects(objects, timeout=None, count=None):
    """Iterates over *objects* as they become ready (gevent's ``iwait``).

    With *timeout*, stops after that many seconds; with *count*, after that many objects. With
    ``objects=None`` waits for the hub's loop to finish and yields nothing.
    """
    from verdigris.hub import get_hub

    hub = get_hub()
    if objects is None:
        return iter([hub.join(timeout=timeout)])
    return _WaitIterator(list(objects), hub, timeout, count)


def wait_on_objects(objects=None, timeout=None, count=None):
    """Waits for *objects* to become ready; returns the list of those that did (gevent's
    ``wait``). With ``objects=None``, waits for the loop to finish and returns True if it did."""
    if objects is None:
        from verdigris.hub import get_hub

        return get_hub().join(timeout=timeout)
    return list(iwait_on_objects(objects, timeout, count))
