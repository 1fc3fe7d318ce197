"""Load one library under test behind the small gevent-shaped surface the workloads use.

gevent and verdigris share gevent's API, so they are loaded the same way, by module name.
eventlet differs in a few names only; :func:`_eventlet` renames them with aliases (never
wrappers), so that no library pays for an extra Python call inside a timed loop.
asyncio libraries are not loaded here as a namespace: :func:`new_asyncio_loop` gives their loop.

Each loader imports its library; an ImportError propagates and the caller reports the library
as "n/a" with the error's text.
"""
from __future__ import annotations

import importlib
import warnings
from types import SimpleNamespace


def load(name: str) -> SimpleNamespace:
    """The library ``name`` as a namespace: spawn, joinall, sleep, Event, Queue, Timeout,
    Semaphore, socket (the module), plus ``version`` and ``detail`` for the report."""
    if name == "eventlet":
        return _eventlet()
    return _gevent_like(name)


class _Missing:
    """Stands in for a submodule that failed to import. A library still being written may
    lack one (say ``verdigris.socket``): only the workloads that touch it fail, with the
    import error as their reason, and the others still run."""

    def __init__(self, module: str, error: Exception):
        self._message = f"{module}: {type(error).__name__}: {error}"

    def __getattr__(self, attribute):
        raise ImportError(self._message)


def _submodule(module: str):
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        return _Missing(module, exc)


def _attribute(namespace, attribute: str, module: str):
    """``namespace.attribute`` now, or a callable that raises the reason it is missing."""
    try:
        return getattr(namespace, attribute)
    except (AttributeError, ImportError) as exc:
        message = f"{module}.{attribute}: {exc}"

        def missing(*args, **kwargs):
            raise ImportError(message)

        return missing


def _gevent_like(name: str) -> SimpleNamespace:
    top = importlib.import_module(name)
    sub = {m: _submodule(f"{name}.{m}") for m in ("event", "queue", "lock", "socket")}
    loop = type(top.get_hub().loop)
    missing = [m for m, module in sub.items() if isinstance(module, _Missing)]
    return SimpleNamespace(
        name=name, spawn=top.spawn, joinall=top.joinall, sleep=top.sleep,
        Event=_attribute(sub["event"], "Event", f"{name}.event"),
        Queue=_attribute(sub["queue"], "Queue", f"{name}.queue"),
        Timeout=_attribute(top, "Timeout", name),
        Semaphore=_attribute(sub["lock"], "Semaphore", f"{name}.lock"),
        socket=sub["socket"],
        version=getattr(top, "__version__", "?"),
        detail=f"loop {loop.__module__}.{loop.__name__}"
               + (f"; missing {', '.join(missing)}" if missing else ""),
    )


def _eventlet() -> SimpleNamespace:
    warnings.simplefilter("ignore")  # eventlet warns on import that it is deprecated
    import eventlet
    import eventlet.event
    import eventlet.green.socket
    import eventlet.hubs
    import eventlet.queue
    import eventlet.semaphore

    class Event(eventlet.event.Event):
        # eventlet's one-shot Event says send() where gevent says set(); an alias costs nothing.
        set = eventlet.event.Event.send

    def joinall(threads):
        for thread in threads:
            thread.wait()

    return SimpleNamespace(
        name="eventlet", spawn=eventlet.spawn, joinall=joinall, sleep=eventlet.sleep,
        Event=Event, Queue=eventlet.queue.Queue, Timeout=eventlet.Timeout,
        Semaphore=eventlet.semaphore.Semaphore, socket=eventlet.green.socket,
        version=eventlet.__version__, detail=f"hub {eventlet.hubs.get_hub().__module__}",
    )


def new_asyncio_loop(name: str):
    """A fresh event loop for ``uvloop`` or ``asyncio`` (the stdlib's default loop)."""
    import asyncio

    if name == "uvloop":
        import uvloop

        return uvloop.new_event_loop()
    if name == "asyncio":
        return asyncio.new_event_loop()
    raise ValueError(f"not an asyncio library: {name}")


def describe_asyncio(name: str) -> dict:
    """Version and loop class of an asyncio library, for the report."""
    import asyncio
    import platform

    loop = new_asyncio_loop(name)
    try:
        kind = type(loop)
        if name == "uvloop":
            import uvloop

            version = uvloop.__version__
        else:
            version = platform.python_version()
        return {"version": version, "detail": f"loop {kind.__module__}.{kind.__name__}"}
    finally:
        loop.close()
        asyncio.set_event_loop(None)


def greenlet_version() -> str:
    try:
        import greenlet

        return greenlet.__version__
    except ImportError:
        return "n/a"
