"""Publish/subscribe: what verdigris tells interested code about its own life (gevent's events).

When something worth knowing happens (the loop was blocked, memory use crossed a threshold,
monkey patching is about to touch a module), verdigris builds an *event* object and passes it to
:func:`notify`, which calls every function in :data:`subscribers` with it, in list order::

    from verdigris import events

    def on_event(event):
        if isinstance(event, events.EventLoopBlocked):
            log.warning("loop blocked %.2f s by %r", event.blocking_time, event.greenlet)

    events.subscribers.append(on_event)

The event classes and their attributes are gevent's. Each comes with an interface class of the
same name prefixed with ``I``; it is the implementation's base class, so both
``isinstance(event, IEventLoopBlocked)`` and zope's spelling
``IEventLoopBlocked.providedBy(event)`` work.

Where they come from: the monitor thread (:mod:`verdigris._monitor`) sends
:class:`EventLoopBlocked`, :class:`MemoryUsageThresholdExceeded`,
:class:`MemoryUsageUnderThreshold` (from the monitor thread, not the hub's) and
:class:`PeriodicMonitorThreadStartedEvent`; :mod:`verdigris.monkey` sends the patch events.
There is no event for greenlets being started: that hook is
:meth:`verdigris.greenlet.Greenlet.add_spawn_callback`, as in gevent.

.. note::
   gevent defines the interfaces with :mod:`zope.interface`; verdigris does not depend on it and
   makes them plain classes with the same attribute names. When :mod:`zope.event` is installed,
   :data:`subscribers` *is* ``zope.event.subscribers`` (as in gevent), so subscribers registered
   through zope see verdigris's events; without it, it is a list of this module's own.

.. note::
   :func:`notify_and_call_entry_points` looks for plugins under verdigris's own entry point
   groups (``verdigris.plugins.*``, each event's ``ENTRY_POINT_NAME``), not gevent's
   ``gevent.plugins.*``: gevent registers plugins of its own there, which would import gevent.
   It asks :mod:`importlib.metadata` once per group and remembers the answer.
"""

__all__ = [
    'subscribers',
    'notify',
    'notify_and_call_entry_points',
    'Interface',
    # monitor thread
    'IEventLoopBlocked',
    'EventLoopBlocked',
    'IMemoryUsageThresholdExceeded',
    'MemoryUsageThresholdExceeded',
    'IMemoryUsageUnderThreshold',
    'MemoryUsageUnderThreshold',
    # hub
    'IPeriodicMonitorThread',
    'IPeriodicMonitorThreadStartedEvent',
    'PeriodicMonitorThreadStartedEvent',
    # monkey
    'IGeventPatchEvent',
    'GeventPatchEvent',
    'IGeventWillPatchEvent',
    'DoNotPatch',
    'GeventWillPatchEvent',
    'IGeventDidPatchEvent',
    'GeventDidPatchEvent',
    'IGeventWillPatchModuleEvent',
    'GeventWillPatchModuleEvent',
    'IGeventDidPatchModuleEvent',
    'GeventDidPatchModuleEvent',
    'IGeventWillPatchAllEvent',
    'GeventWillPatchAllEvent',
    'IGeventDidPatchBuiltinModulesEvent',
    'GeventDidPatchBuiltinModulesEvent',
    'IGeventDidPatchAllEvent',
    'GeventDidPatchAllEvent',
]

try:
    from zope.event import subscribers
except ImportError:
    #: The functions :func:`notify` calls, in order, each with the event as only argument. An
    #: exception raised by one propagates to whoever sent the event, and the subscribers after
    #: it are not called.
    subscribers = []


def notify(event):
    """Calls every subscriber with *event*, in :data:`subscribers` order."""
    # Read the module global at each call: applications replace the list in tests.
    for subscriber in subscribers:
        subscriber(event)


# Entry point group name -> the plugin functions found for it (loaded on first use).
_entry_point_plugins = {}


def _plugins(group):
    plugins = _entry_point_plugins.get(group)
    if plugins is None:
        from importlib import metadata

        eps = metadata.entry_points()
        if hasattr(eps, "select"):  # Python 3.10+
            found = eps.select(group=group)
        else:  # Python 3.9: a dict of group -> entry points
            found = eps.get(group, ())
        plugins = _entry_point_plugins[group] = [ep.load() for ep in found]
    return plugins


def notify_and_call_entry_points(event):
    """:func:`notify`, then calls the plugins registered under ``event.ENTRY_POINT_NAME``.

    Plugins are setuptools entry points of that group; each is loaded and called with *event*.
    """
    notify(event)
    for plugin in _plugins(event.ENTRY_POINT_NAME):
        plugin(event)


class Interface:
    """Base of the event interfaces: a plain class standing in for ``zope.interface.Interface``."""

    @classmethod
    def providedBy(cls, obj):
        """True if *obj* implements this interface (zope's spelling of ``isinstance``)."""
        return isinstance(obj, cls)

    @classmethod
    def implementedBy(cls, klass):
        """True if instances of *klass* implement this interface."""
        return isinstance(klass, type) and issubclass(klass, cls)


# -- the monitor thread and the hub -------------------------------------------------------------

class IPeriodicMonitorThread(Interface):
    """What a hub's monitor thread offers (see :mod:`verdigris._monitor`).

    ``add_monitoring_function(function, period)`` calls ``function(hub)`` about every *period*
    seconds in the monitor's thread (not the hub's, so it must not use the cooperative API);
    *period* None removes it, and a period <= 0 raises ValueError.
    """

    def add_monitoring_function(self, function, period):
        raise NotImplementedError


class IPeriodicMonitorThreadStartedEvent(Interface):
    """Sent when a hub starts its monitor thread; add monitoring functions to it here.

    ``monitor``: the :class:`IPeriodicMonitorThread` that was started.
    """

    monitor = None


class PeriodicMonitorThreadStartedEvent(IPeriodicMonitorThreadStartedEvent):
    """The implementation of :class:`IPeriodicMonitorThreadStartedEvent`."""

    #: The entry point group of the plugins called with this event.
    ENTRY_POINT_NAME = 'verdigris.plugins.hub.periodic_monitor_thread_started'

    def __init__(self, monitor):
        self.monitor = monitor


class IEventLoopBlocked(Interface):
    """Sent, from the monitor thread, when one greenlet or callback has held the loop too long.

    ``greenlet``: the greenlet that was running (the hub when a callback blocked);
    ``blocking_time``: about how long the loop had been blocked, in seconds;
    ``info``: the report, a list of text lines (subscribers may change it before it is printed);
    ``hub``: the hub that was blocked.
    """

    greenlet = None
    blocking_time = None
    info = None
    hub = None


class EventLoopBlocked(IEventLoopBlocked):
    """The implementation of :class:`IEventLoopBlocked`."""

    def __init__(self, greenlet, blocking_time, info, *, hub=None):
        self.greenlet = greenlet
        self.blocking_time = blocking_time
        self.info = info
        self.hub = hub

    def __repr__(self):
        return '<%s greenlet=%r blocking_time=%.3f>' % (
            type(self).__name__, self.greenlet, self.blocking_time)


class IMemoryUsageThresholdExceeded(Interface):
    """Sent, from the monitor thread, while the process's memory keeps growing above the limit.

    ``mem_usage``: the memory in use, in bytes; ``max_allowed``: the limit
    (``config.max_memory_usage``); ``memory_info``: the raw figures it was computed from.
    Sent again only while usage keeps growing, and after it went back under the limit.
    """

    mem_usage = None
    max_allowed = None
    memory_info = None


class _AbstractMemoryEvent:

    def __init__(self, mem_usage, max_allowed, memory_info):
        self.mem_usage = mem_usage
        self.max_allowed = max_allowed
        self.memory_info = memory_info

    def __repr__(self):
        return '<%s used=%d max=%d details=%r>' % (
            type(self).__name__, self.mem_usage, self.max_allowed, self.memory_info)


class MemoryUsageThresholdExceeded(_AbstractMemoryEvent, IMemoryUsageThresholdExceeded):
    """The implementation of :class:`IMemoryUsageThresholdExceeded`.

    .. note::
       ``memory_info`` is a ``(rss, vms)`` named tuple read from ``/proc/self/statm`` (bytes),
       not psutil's ``memory_full_info()``: verdigris does not depend on psutil.
    """


class IMemoryUsageUnderThreshold(Interface):
    """Sent, from the monitor thread, the first time memory is back under the limit.

    The attributes of :class:`IMemoryUsageThresholdExceeded`, and ``max_memory_usage``: the
    usage reported by the last threshold-exceeded event.
    """

    mem_usage = None
    max_allowed = None
    max_memory_usage = None
    memory_info = None


class MemoryUsageUnderThreshold(_AbstractMemoryEvent, IMemoryUsageUnderThreshold):
    """The implementation of :class:`IMemoryUsageUnderThreshold`."""

    def __init__(self, mem_usage, max_allowed, memory_info, max_usage):
        _AbstractMemoryEvent.__init__(self, mem_usage, max_allowed, memory_info)
        self.max_memory_usage = max_usage


# -- monkey patching ----------------------------------------------------------------------------

class IGeventPatchEvent(Interface):
    """The base of every monkey patching event: ``source`` (verdigris's object holding the
    replacements) and ``target`` (what gets patched)."""

    source = None
    target = None


class GeventPatchEvent(IGeventPatchEvent):
    """The implementation of :class:`IGeventPatchEvent`."""

    def __init__(self, source, target):
        self.source = source
        self.target = target

    def __repr__(self):
        return '<%s source=%r target=%r at %x>' % (
            type(self).__name__, self.source, self.target, id(self))


class IGeventWillPatchEvent(IGeventPatchEvent):
    """Sent before something is patched; a subscriber raising :class:`DoNotPatch` vetoes it."""


class DoNotPatch(BaseException):
    """Raised by a subscriber of a will-patch event: leave that item unpatched."""


class GeventWillPatchEvent(GeventPatchEvent, IGeventWillPatchEvent):
    """The implementation of :class:`IGeventWillPatchEvent`."""


class IGeventDidPatchEvent(IGeventPatchEvent):
    """Sent after something was patched."""


class GeventDidPatchEvent(GeventPatchEvent, IGeventDidPatchEvent):
    """The implementation of :class:`IGeventDidPatchEvent`."""


class IGeventWillPatchModuleEvent(IGeventWillPatchEvent):
    """Sent before one module is patched; ``source`` and ``target`` are modules.

    ``module_name``: ``target.__name__``; ``target_item_names``: the names about to be replaced
    (a list that subscribers may edit, with care).
    """

    module_name = None
    target_item_names = None


class GeventWillPatchModuleEvent(GeventWillPatchEvent, IGeventWillPatchModuleEvent):
    """The implementation of :class:`IGeventWillPatchModuleEvent`."""

    #: The entry point group of the plugins called with this event.
    ENTRY_POINT_NAME = 'verdigris.plugins.monkey.will_patch_module'

    def __init__(self, module_name, source, target, items):
        GeventWillPatchEvent.__init__(self, source, target)
        self.module_name = module_name
        self.target_item_names = items


class IGeventDidPatchModuleEvent(IGeventDidPatchEvent):
    """Sent after one module was patched. ``module_name``: ``target.__name__``."""

    module_name = None


class GeventDidPatchModuleEvent(GeventDidPatchEvent, IGeventDidPatchModuleEvent):
    """The implementation of :class:`IGeventDidPatchModuleEvent`."""

    #: The entry point group of the plugins called with this event.
    ENTRY_POINT_NAME = 'verdigris.plugins.monkey.did_patch_module'

    def __init__(self, module_name, source, target):
        GeventDidPatchEvent.__init__(self, source, target)
        self.module_name = module_name


class IGeventWillPatchAllEvent(IGeventWillPatchEvent):
    """Sent when ``patch_all`` begins; :class:`DoNotPatch` from a subscriber cancels it all.

    Module events follow for each module, then :class:`IGeventDidPatchBuiltinModulesEvent`
    (the moment to patch third-party libraries), then :class:`IGeventDidPatchAllEvent`.
    ``patch_all_arguments`` / ``patch_all_kwargs``: copies of ``patch_all``'s arguments;
    ``will_patch_module(name)``: whether that module is going to be patched. ``source`` and
    ``target`` are undefined.
    """

    patch_all_arguments = None
    patch_all_kwargs = None

    def will_patch_module(self, module_name):
        raise NotImplementedError


class _PatchAllMixin:
    def __init__(self, patch_all_arguments, patch_all_kwargs):
        super().__init__(None, None)
        self._patch_all_arguments = patch_all_arguments
        self._patch_all_kwargs = patch_all_kwargs

    @property
    def patch_all_arguments(self):
        return self._patch_all_arguments.copy()

    @property
    def patch_all_kwargs(self):
        return self._patch_all_kwargs.copy()

    def __repr__(self):
        return '<%s %r at %x>' % (type(self).__name__, self._patch_all_arguments, id(self))


class GeventWillPatchAllEvent(_PatchAllMixin, GeventWillPatchEvent, IGeventWillPatchAllEvent):
    """The implementation of :class:`IGeventWillPatchAllEvent`."""

    #: The entry point group of the plugins called with this event.
    ENTRY_POINT_NAME = 'verdigris.plugins.monkey.will_patch_all'

    def will_patch_module(self, module_name):
        return self._patch_all_arguments.get(module_name)


class IGeventDidPatchBuiltinModulesEvent(IGeventDidPatchEvent):
    """Sent once ``patch_all`` patched the standard library: patch third-party modules now.

    ``patch_all_arguments`` / ``patch_all_kwargs`` as for :class:`IGeventWillPatchAllEvent`.
    """

    patch_all_arguments = None
    patch_all_kwargs = None


class GeventDidPatchBuiltinModulesEvent(_PatchAllMixin, GeventDidPatchEvent,
                                        IGeventDidPatchBuiltinModulesEvent):
    """The implementation of :class:`IGeventDidPatchBuiltinModulesEvent`."""

    #: The entry point group of the plugins called with this event.
    ENTRY_POINT_NAME = 'verdigris.plugins.monkey.did_patch_builtins'


class IGeventDidPatchAllEvent(IGeventDidPatchEvent):
    """Sent when ``patch_all`` is over, plugins included."""


class GeventDidPatchAllEvent(_PatchAllMixin, GeventDidPatchEvent, IGeventDidPatchAllEvent):
    """The implementation of :class:`IGeventDidPatchAllEvent`."""

    #: The entry point group of the plugins called with this event.
    ENTRY_POINT_NAME = 'verdigris.plugins.monkey.did_patch_all'
