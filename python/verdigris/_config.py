"""verdigris's tunables: ``verdigris.config`` (gevent's ``gevent.config``).

Each setting is a property of :data:`config`. Its value comes, in this order, from an assignment
in code (``config.max_blocking_time = 0.5`` or ``config.set('max_blocking_time', 0.5)``), from
the environment, or from its default. The environment is read the first time the setting is
used, then remembered. Change settings before the parts that use them start: the hub reads
``loop`` when it is created, and the monitor settings when it first runs.

Every setting reads gevent's environment variable (``GEVENT_MONITOR_THREAD_ENABLE``, ...) and
the same name with ``VERDIGRIS`` in place of ``GEVENT`` (``VERDIGRIS_MONITOR_THREAD_ENABLE``);
when both are set, the ``VERDIGRIS_`` one wins. ``python -m verdigris._config`` prints them all.

Values given as text (in the environment, or assigned as ``str`` in code) are converted:
booleans accept ``1/true/on/yes`` and ``0/false/off/no``; byte counts accept a ``kb``, ``mb`` or
``gb`` suffix; importable settings accept a short name, a dotted ``module.name`` path, or a
comma-separated list of them tried in order (the first that can be imported wins). Invalid values
raise ValueError (ImportError for names that cannot be imported), as gevent's do.

.. note::
   ``monitor_thread`` defaults to True (gevent: False): verdigris's monitor costs one counter
   store per callback and a thread that sleeps without the GIL (see :mod:`verdigris._monitor`).
   ``loop`` accepts only verdigris's own loop (``'verdigris'``, or a subclass of
   :class:`verdigris._core.Loop`); gevent's ``libev-*`` and ``libuv`` names raise ImportError.
   ``resolver`` knows only ``'thread'``; ``threadpool_size`` is a verdigris addition (gevent
   uses the ``Hub.threadpool_size`` attribute only). ``libev_backend``, ``trace_malloc``,
   ``resolver_nameservers``, ``resolver_timeout`` and the ``ares_*`` settings are accepted and
   ignored.
"""
import os

__all__ = ['config', 'Config']


# -- conversions and checks ------------------------------------------------------------------

def _to_bool(value):
    if isinstance(value, str):
        text = value.strip().lower()
        if text in ('1', 'true', 'on', 'yes'):
            return True
        if text in ('0', 'false', 'off', 'no', ''):
            return False
        raise ValueError("Invalid boolean string: %r" % (value,))
    return bool(value)


def _to_positive_float(value):
    if not value:
        return None  # gevent's reading of 0, '' and None: "not set"
    value = float(value)
    if value <= 0:
        raise ValueError("Must be positive: %r" % (value,))
    return value


_BYTE_SUFFIXES = {'kb': 1024, 'mb': 1024 ** 2, 'gb': 1024 ** 3}


def _to_byte_count(value):
    if value is None or value == '':
        return None
    if isinstance(value, str):
        text = value.strip().lower()
        multiple = _BYTE_SUFFIXES.get(text[-2:])
        value = int(text[:-2]) * multiple if multiple else int(text)
    if value <= 0:
        raise ValueError("Must be positive: %r" % (value,))
    return value


def _anything(value):
    return value


def _dedent(text):
    # textwrap.dedent's regular expressions cost milliseconds at import for 26 settings.
    lines = text.strip('\n').splitlines()
    indent = min((len(l) - len(l.lstrip()) for l in lines if l.strip()), default=0)
    return '\n'.join(l[indent:] for l in lines).strip()


class Setting:
    """One tunable: its name, environment variable, default, and how values are checked.

    :param convert: turns a raw value (text from the environment, or what code assigned) into
        the setting's value, raising ValueError or ImportError when it is not acceptable.
    """

    def __init__(self, name, default, doc, convert=_anything, environment_key=None,
                 alias=True):
        self.name = name
        self.default = default
        self.convert = convert
        self.environment_key = environment_key or 'GEVENT_' + name.upper()
        keys = [self.environment_key]
        if alias and self.environment_key.startswith('GEVENT_'):
            keys.insert(0, 'VERDIGRIS_' + self.environment_key[len('GEVENT_'):])
        #: The environment variables read, the first that is set winning.
        self.environment_keys = tuple(keys)
        self.__doc__ = '%s\n\nThe default is %r. Environment: %s.' % (
            _dedent(doc), default, ', '.join('``%s``' % k for k in keys))

    def from_environment(self):
        """The raw value the environment gives, or the default."""
        for key in self.environment_keys:
            value = os.environ.get(key)
            if value is not None:
                return value
        return self.default

    def __repr__(self):
        return '<Setting %s>' % (self.name,)


class _Importable:
    """Converts short names, dotted paths or lists of them into the first importable object."""

    def __init__(self, shortnames, unavailable=(), what='object', check=None):
        self.shortnames = shortnames
        self.unavailable = unavailable
        self.what = what
        self.check = check

    def __call__(self, value):
        if isinstance(value, str):
            value = [part.strip() for part in value.split(',') if part.strip()]
        if isinstance(value, (list, tuple)):
            if not value:
                raise ImportError('Cannot import %s from an empty list' % (self.what,))
            error = None
            for candidate in value:
                try:
                    value = self._import(candidate)
                    break
                except ImportError as ex:
                    error = ex
            else:
                raise error
        if self.check is not None:
            self.check(value)
        return value

    def _import(self, name):
        if not isinstance(name, str):
            return name
        if name in self.unavailable:
            raise ImportError('verdigris has no %r %s (gevent has); available: %s' % (
                name, self.what, ', '.join(repr(n) for n in self.shortnames)))
        path = self.shortnames.get(name, name)
        if '.' not in path or '/' in path:
            raise ImportError('Cannot import %r as a %s: give a dotted [package.]module.name '
                              'or one of %s' % (name, self.what, list(self.shortnames)))
        import importlib

        module_name, attr = path.rsplit('.', 1)
        module = importlib.import_module(module_name)
        try:
            return getattr(module, attr)
        except AttributeError:
            raise ImportError('Cannot import %r from %r' % (attr, module_name)) from None


def _check_loop_class(value):
    from verdigris._core import Loop

    if not (isinstance(value, type) and issubclass(value, Loop)):
        raise TypeError('config.loop must be verdigris._loop.Loop or a subclass of '
                        'verdigris._core.Loop, not %r' % (value,))


def _threadpool_idle_timeout(value):
    if value is None or value == '':
        return None
    value = float(value)
    if value <= 0 and value != -1:
        raise ValueError("Must be positive, or -1 for no timeout: %r" % (value,))
    return value


def _threadpool_size(value):
    value = int(value)
    if value < 1:
        raise ValueError("The thread pool needs at least one thread: %r" % (value,))
    return value


# -- the settings ----------------------------------------------------------------------------

_SETTINGS = [
    Setting('loop', 'verdigris', """
        The class of the event loop each hub creates.

        verdigris has one loop, :class:`verdigris._loop.Loop` (short name ``verdigris``, also
        ``default``); a subclass of :class:`verdigris._core.Loop` may be given in code.""",
            _Importable({'verdigris': 'verdigris._loop.Loop', 'default': 'verdigris._loop.Loop'},
                        ('libev-cext', 'libev-cffi', 'libuv-cffi', 'libuv'), 'loop',
                        _check_loop_class)),
    Setting('resolver', ['thread', 'dnspython', 'ares', 'block'], """
        The class of ``hub.resolver`` (the DNS resolver).

        verdigris has ``thread`` only (:class:`verdigris.resolver.Resolver`: the system's own
        resolver, run in the hub's thread pool).""",
            _Importable({'thread': 'verdigris.resolver.Resolver'},
                        ('ares', 'dnspython', 'block'), 'resolver')),
    Setting('threadpool', 'verdigris.threadpool.ThreadPool', """
        The class of ``hub.threadpool``.""", _Importable({}, (), 'thread pool')),
    Setting('threadpool_size', 10, """
        How many threads ``hub.threadpool`` may run at once (a subclass of the hub may still
        set ``threadpool_size`` itself).""", _threadpool_size, 'VERDIGRIS_THREADPOOL_SIZE'),
    Setting('threadpool_idle_task_timeout', 5.0, """
        Seconds after which an idle thread of ``hub.threadpool`` exits; -1 keeps idle threads.""",
            _threadpool_idle_timeout),
    Setting('format_context', 'pprint.saferepr', """
        The function that turns the context of a failed callback into the text the hub
        prints.""", _Importable({}, (), 'function')),
    Setting('libev_backend', None, """
        gevent's libev backend choice; accepted and ignored (verdigris polls with epoll).""",
            _anything, 'GEVENT_BACKEND'),
    Setting('fileobject', ['posix', 'thread'], """
        The class of ``verdigris.fileobject.FileObject``: ``posix``, ``thread`` or ``block``.""",
            _Importable({'posix': 'verdigris.fileobject.FileObjectPosix',
                         'thread': 'verdigris.fileobject.FileObjectThread',
                         'block': 'verdigris.fileobject.FileObjectBlock'}, (), 'file object'),
            'GEVENT_FILE'),
    Setting('disable_watch_children', False, """
        Whether *not* to watch children forked with ``verdigris.os.fork``.""",
            _to_bool, 'GEVENT_NOWAITPID'),
    Setting('trace_malloc', False, """
        gevent's FFI allocation tracking; accepted and ignored.""",
            _anything, 'PYTHONTRACEMALLOC', alias=False),
    Setting('track_greenlet_tree', True, """
        Whether greenlets record who spawned them (``spawning_greenlet``,
        ``spawn_tree_locals``); False makes spawning a little cheaper.""", _to_bool),
    Setting('monitor_thread', True, """
        Whether each hub starts a monitor thread when it first runs.

        The monitor reports, on the hub's exception stream and as an
        :class:`verdigris.events.EventLoopBlocked` event, any greenlet or callback that keeps
        the loop from running for ``max_blocking_time`` seconds; with ``max_memory_usage`` set
        it also watches the process's memory. See :mod:`verdigris._monitor`.""",
            _to_bool, 'GEVENT_MONITOR_THREAD_ENABLE'),
    Setting('max_blocking_time', 0.1, """
        Seconds one greenlet or callback may hold the loop before the monitor reports it. Read
        when the monitor starts.""", _to_positive_float),
    Setting('print_blocking_reports', True, """
        Whether the monitor prints its report of a blocked loop (the event is sent either
        way).""", _to_bool, 'GEVENT_MONITOR_PRINT_BLOCKING_REPORTS'),
    Setting('memory_monitor_period', 5, """
        Seconds between two checks of the process's memory (at least 2 are used).""",
            _to_positive_float, 'GEVENT_MONITOR_MEMORY_PERIOD'),
    Setting('max_memory_usage', None, """
        Bytes of memory above which the monitor sends
        :class:`verdigris.events.MemoryUsageThresholdExceeded` events (a ``kb``, ``mb`` or
        ``gb`` suffix may be used). None: memory is not watched.""",
            _to_byte_count, 'GEVENT_MONITOR_MEMORY_MAX'),
    Setting('resolver_nameservers', None, """
        Name servers for resolvers that query DNS themselves; ignored by the ``thread``
        resolver.""", _anything),
    Setting('resolver_timeout', None, """
        Total time a DNS query may take, for resolvers that query DNS themselves; ignored by the
        ``thread`` resolver.""", _to_positive_float),
]

_SETTINGS.extend(
    Setting('ares_' + name, None, "c-ares resolver option; accepted and ignored.", _anything,
            'GEVENTARES_' + name.upper())
    for name in ('flags', 'timeout', 'tries', 'ndots', 'udp_port', 'tcp_port', 'servers'))

_NOT_SET = object()


class Config:
    """verdigris's settings; there is one instance, :data:`config`.

    Read and assign settings as attributes; :meth:`set` does the same by name. Unknown names
    raise AttributeError.
    """

    def __init__(self):
        object.__setattr__(self, 'settings', {s.name: s for s in _SETTINGS})
        object.__setattr__(self, '_values', {})

    def get(self, name):
        """The value of setting *name* (read from the environment on first use)."""
        value = self._values.get(name, _NOT_SET)
        if value is _NOT_SET:
            setting = self._setting(name)
            value = self._values[name] = setting.convert(setting.from_environment())
        return value

    def set(self, name, value):
        """Sets setting *name* to *value* (checked and converted as the environment's text)."""
        self._values[name] = self._setting(name).convert(value)

    def _setting(self, name):
        try:
            return self.settings[name]
        except KeyError:
            raise AttributeError("No configuration setting for: %r" % (name,)) from None

    def __getattr__(self, name):
        # Only reached for names that are not settings (those are properties).
        raise AttributeError("No configuration setting for: %r" % (name,))

    def __setattr__(self, name, value):
        if name in self.settings:
            self.set(name, value)
        else:
            object.__setattr__(self, name, value)

    def __dir__(self):
        return list(self.settings)

    def print_help(self):
        """Prints every setting with its description and environment variables."""
        import textwrap

        for name, setting in self.settings.items():
            print(name)
            print(textwrap.indent(setting.__doc__, '    '))
            print()


def _property(setting):
    def fget(self):
        return self.get(setting.name)

    def fset(self, value):
        self.set(setting.name, value)

    return property(fget, fset, doc=setting.__doc__)


for _setting in _SETTINGS:
    setattr(Config, _setting.name, _property(_setting))
del _setting

#: The settings object (``verdigris.config``).
config = Config()


if __name__ == '__main__':
    config.print_help()
