"""Make the standard library cooperative: monkey patching.

Patching replaces, in place, the blocking parts of standard library modules with verdigris's
cooperative versions, so that code written for threads and blocking sockets (``requests``,
``urllib``, ``http.client``, database drivers) runs concurrently in greenlets unchanged. Patch as
early as possible, on the main thread, before other imports::

    from verdigris import monkey
    monkey.patch_all()

or run an unmodified program fully patched::

    python -m verdigris.monkey [--no-thread ...] script.py args...
    python -m verdigris.monkey --module package.module args...

Patching is driven by data: each module ``verdigris.X`` that mirrors the standard library module
``X`` lists in ``__implements__`` the names it replaces; :func:`patch_module` sets
``X.NAME = verdigris.X.NAME`` for each of them and keeps the original in :data:`saved`, where
:func:`get_original` finds it. Patching again is harmless: the first original is kept, and
:func:`patch_all` with the same arguments does nothing the second time.

A source module may customise its patching with gevent's hooks:
``_gevent_will_monkey_patch(target, items, warn)`` and ``_gevent_did_monkey_patch(target,
items, warn)`` run before and after, ``_gevent_do_monkey_patch(request)`` replaces the copying
itself. If :mod:`verdigris.events` exists, gevent's events are sent to its subscribers
(``GeventWillPatchAllEvent``, ``GeventWillPatchModuleEvent``, ``GeventDidPatchModuleEvent``,
``GeventDidPatchBuiltinModulesEvent``, ``GeventDidPatchAllEvent``); a subscriber raising
``DoNotPatch`` cancels the patch it was told about.

.. note::
   :func:`patch_all` skips the modules for which verdigris has no cooperative version on this
   platform (it checks that ``verdigris.X`` exists); calling ``patch_X()`` for one raises
   ImportError. gevent ships every module and has no such case.
"""
import sys

__all__ = [
    'patch_all', 'patch_builtins', 'patch_contextvars', 'patch_dns', 'patch_os', 'patch_queue',
    'patch_select', 'patch_selectors', 'patch_signal', 'patch_socket', 'patch_ssl',
    'patch_subprocess', 'patch_sys', 'patch_thread', 'patch_time',
    'get_original', 'is_module_patched', 'is_object_patched', 'patch_module', 'main',
    'MonkeyPatchWarning', 'saved',
]

# Imports stay inside the functions: this module must be importable, and patch, before the
# modules it patches have been imported by anybody.

PY314 = sys.version_info[:2] >= (3, 14)


class MonkeyPatchWarning(RuntimeWarning):
    """The category of the warnings monkey patching issues (patching too late, and so on)."""


class _BadImplements(AttributeError):
    def __init__(self, module):
        AttributeError.__init__(
            self, 'Module %r has a bad or missing value for __implements__' % (module,))


#: What was replaced: ``{module name: {attribute name: original value}}``. The first original
#: is kept if a name is patched again.
saved = {}


def is_module_patched(mod_name):
    """Return whether anything in the standard module *mod_name* (e.g. ``'socket'``) was patched."""
    return mod_name in saved


def is_object_patched(mod_name, item_name):
    """Return whether attribute *item_name* of the standard module *mod_name* was patched."""
    return mod_name in saved and item_name in saved[mod_name]


def get_original(mod_name, item_name):
    """Return the standard library's object(s), as they were before patching.

    :param mod_name: a module name, or a sequence of names to try in order (the first importable
        one supplies every item).
    :param item_name: an attribute name, or a sequence of names.
    :return: the original object for one name, a list of them for a sequence. A name that was
        never patched is fetched from the module as it is.
    :raises ImportError: if no module can be imported.
    :raises AttributeError: if the module has no such attribute.
    """
    mod_names = [mod_name] if isinstance(mod_name, str) else list(mod_name)
    single = isinstance(item_name, str)
    items = [item_name] if single else list(item_name)
    for name in mod_names:
        try:
            values = _originals(name, items)
        except ImportError:
            if name == mod_names[-1]:
                raise
            continue
        return values[0] if single else values
    raise ImportError('no module among %r' % (mod_names,))


def _originals(mod_name, items):
    originals = saved.get(mod_name, {})
    module = None
    values = []
    for item in items:
        if item in originals:
            values.append(originals[item])
            continue
        if module is None:
            module = __import__(mod_name)
            module = sys.modules.get(mod_name, module)
        values.append(getattr(module, item))
    return values


_MISSING = object()


def patch_item(module, attr, newitem):
    """Set ``module.attr = newitem``, remembering the original (the first one) in :data:`saved`."""
    old = getattr(module, attr, _MISSING)
    if old is not _MISSING:
        saved.setdefault(module.__name__, {}).setdefault(attr, old)
    setattr(module, attr, newitem)


def remove_item(module, attr):
    """Delete ``module.attr`` (if present), remembering it in :data:`saved`."""
    old = getattr(module, attr, _MISSING)
    if old is _MISSING:
        return
    saved.setdefault(module.__name__, {}).setdefault(attr, old)
    delattr(module, attr)


# -- events and warnings --------------------------------------------------------------------

class _NeverRaised(BaseException):
    """Stands in for ``DoNotPatch`` while :mod:`verdigris.events` does not exist."""


def _events():
    try:
        from verdigris import events
    except ImportError:
        return None
    return events


def _DoNotPatch():
    return getattr(_events(), 'DoNotPatch', _NeverRaised)


def _notify(event_name, args, _warnings=None):
    """Send gevent's event *event_name* (built from *args*) if verdigris.events defines it."""
    events = _events()
    event_class = getattr(events, event_name, None)
    if event_class is None:
        return
    event = event_class(*args)
    event._warnings = _warnings
    notify = getattr(events, 'notify_and_call_entry_points', None) or getattr(events, 'notify')
    notify(event)


def _ignores_DoNotPatch(func):
    import functools

    @functools.wraps(func)
    def patcher(*args, **kwargs):
        try:
            return func(*args, **kwargs)
        except _DoNotPatch():
            return False
    return patcher


def _queue_warning(message, _warnings):
    # Warnings wait until patching is over: issuing one imports the warnings machinery and
    # formats a stack, which should not happen half-way through.
    if _warnings is None:
        _process_warnings([message])
    else:
        _warnings.append(message)


def _process_warnings(_warnings):
    import warnings

    # Point at the first frame outside verdigris's patching code: the caller's patch_all().
    level, frame = 1, sys._getframe()
    while frame.f_back is not None and (
            frame.f_code.co_filename == __file__
            or str(frame.f_globals.get('__name__')).startswith('verdigris.')):
        frame = frame.f_back
        level += 1
    for message in _warnings:
        warnings.warn(message, MonkeyPatchWarning, stacklevel=level)


# -- patching modules -------------------------------------------------------------------------

class _PatchRequest:
    """What ``_gevent_do_monkey_patch(request)`` of a source module receives."""

    get_original = staticmethod(get_original)

    def __init__(self, target_module, source_module, items, patch_kwargs):
        self.target_module = target_module
        self.source_module = source_module
        self.items = items
        self.patch_kwargs = patch_kwargs or {}

    def __repr__(self):
        return '<%s target=%r source=%r items=%r kwargs=%r>' % (
            type(self).__name__, self.target_module, self.source_module, self.items,
            self.patch_kwargs)

    def default_patch_items(self):
        for attr in self.items:
            patch_item(self.target_module, attr, getattr(self.source_module, attr))

    def remove_item(self, target_module, *items):
        if isinstance(target_module, str):
            items = (target_module,) + items
            target_module = self.target_module
        for item in items:
            remove_item(target_module, item)


def _call_hook(source_module, when, target_module, items, _warnings):
    hook = getattr(source_module, '_gevent_%s_monkey_patch' % when, None)
    if hook is not None:
        hook(target_module, items, lambda message: _queue_warning(message, _warnings))


def patch_module(target_module, source_module, items=None, _warnings=None, _patch_kwargs=None,
                 _notify_did_subscribers=True):
    """patch_module(target_module, source_module, items=None)

    Replace attributes of *target_module* with the attributes of the same names in
    *source_module*: *items*, or by default the source's ``__implements__``.

    :return: True if patched, False if an event subscriber or hook cancelled it (DoNotPatch).
    :raises AttributeError: if *items* is None and the source has no ``__implements__``.
    """
    if items is None:
        items = getattr(source_module, '__implements__', None)
        if items is None:
            raise _BadImplements(source_module)
    try:
        _call_hook(source_module, 'will', target_module, items, _warnings)
        _notify('GeventWillPatchModuleEvent',
                (target_module.__name__, source_module, target_module, items), _warnings)
    except _DoNotPatch():
        return False
    request = _PatchRequest(target_module, source_module, items, _patch_kwargs)
    do_patch = getattr(source_module, '_gevent_do_monkey_patch', None)
    if do_patch is None:
        request.default_patch_items()
    else:
        do_patch(request)
    _call_hook(source_module, 'did', target_module, items, _warnings)
    if _notify_did_subscribers:
        _notify('GeventDidPatchModuleEvent', (target_module.__name__, source_module, target_module))
    return True


def _source(name):
    import importlib

    return importlib.import_module('verdigris.' + name)


def _available(name):
    """Whether verdigris has a cooperative version of the standard module *name*."""
    import importlib.util

    return importlib.util.find_spec('verdigris.' + name) is not None


def _patch_module(name, items=None, _warnings=None, _patch_kwargs=None, _notify_did=True):
    # The verdigris module is imported first, so its own imports see the unpatched stdlib.
    source = _source(name)
    target_name = getattr(source, '__target__', name)
    __import__(target_name)
    target = sys.modules[target_name]
    patch_module(target, source, items=items, _warnings=_warnings, _patch_kwargs=_patch_kwargs,
                 _notify_did_subscribers=_notify_did)
    return source, target


@_ignores_DoNotPatch
def patch_time():
    """Replace :func:`time.sleep` with :func:`verdigris.sleep`."""
    _patch_module('time')


@_ignores_DoNotPatch
def patch_queue():
    """Replace ``Queue``, ``LifoQueue``, ``PriorityQueue`` and ``SimpleQueue`` of :mod:`queue`
    with :mod:`verdigris.queue`'s (only their documented API is the same)."""
    _patch_module('queue')


@_ignores_DoNotPatch
def patch_os():
    """Replace :func:`os.fork` (and, on POSIX, ``os.waitpid``) with :mod:`verdigris.os`'s.

    Use with :func:`patch_signal`, which makes ``SIGCHLD`` handlers work with it.
    """
    _patch_module('os')


@_ignores_DoNotPatch
def patch_signal():
    """Make :func:`signal.signal` work with a patched :mod:`os` (see :mod:`verdigris.signal`)."""
    _patch_module('signal')


@_ignores_DoNotPatch
def patch_subprocess():
    """Replace :class:`subprocess.Popen` and the functions built on it with cooperative ones."""
    _patch_module('subprocess')


def patch_sys(stdin=True, stdout=True, stderr=True):
    """Do nothing: cooperative ``sys.std*`` hang the interpreter at exit (as in gevent)."""


def patch_builtins():
    """Do nothing: Python 3's import locks are per module (kept for gevent's API)."""


def patch_contextvars():
    """Do nothing: greenlet switches context variables itself (kept for gevent's API)."""


@_ignores_DoNotPatch
def patch_socket(dns=True, aggressive=True):
    """Replace the socket class and functions of :mod:`socket` with cooperative ones.

    :param dns: also replace the name resolution functions (those in ``__dns__``).
    :param aggressive: also remove what has no cooperative version (``socket.ssl``).
    """
    source = _source('socket')
    items = list(source.__implements__)
    if not dns:
        dns_names = set(getattr(source, '__dns__', ()))
        items = [name for name in items if name not in dns_names]
    _, target = _patch_module('socket', items=items)
    if aggressive and 'ssl' not in items:
        remove_item(target, 'ssl')


@_ignores_DoNotPatch
def patch_dns():
    """Replace the name resolution functions of :mod:`socket` with cooperative ones."""
    _patch_module('socket', items=list(getattr(_source('socket'), '__dns__', ())))


@_ignores_DoNotPatch
def patch_select(aggressive=True):
    """Replace :func:`select.select` and :func:`select.poll` with cooperative versions.

    :param aggressive: also remove the blocking ``epoll``, ``kqueue``, ``kevent``, ``devpoll``.
    """
    source, target = _patch_module('select', _patch_kwargs={'aggressive': aggressive})
    if aggressive and not hasattr(source, '_gevent_do_monkey_patch'):
        for name in ('epoll', 'kqueue', 'kevent', 'devpoll'):
            remove_item(target, name)


@_ignores_DoNotPatch
def patch_selectors(aggressive=True):
    """Replace :class:`selectors.DefaultSelector` with a cooperative selector.

    :param aggressive: also remove ``EpollSelector``, ``KqueueSelector``, ``DevpollSelector``.
    """
    source, target = _patch_module('selectors', _patch_kwargs={'aggressive': aggressive})
    if aggressive and not hasattr(source, '_gevent_do_monkey_patch'):
        for name in ('EpollSelector', 'KqueueSelector', 'DevpollSelector'):
            remove_item(target, name)


def _module_references(obj, excluding):
    """Modules holding *obj* in a global (``from ssl import SSLContext``), and subclasses of it."""
    import gc

    modules, subclasses = set(), set()
    for referrer in gc.get_referrers(obj):
        if isinstance(referrer, dict) and '__name__' in referrer:
            name = referrer['__name__']
            if name in excluding or str(name).startswith('verdigris.'):
                continue
            if any(value is obj for value in referrer.values()):
                modules.add((name, referrer.get('__file__', '<unknown>')))
        elif isinstance(referrer, type) and obj in referrer.__bases__ and \
                not referrer.__module__.startswith('verdigris.'):
            subclasses.add(referrer)
    return modules, subclasses


@_ignores_DoNotPatch
def patch_ssl(_warnings=None, _first_time=True):
    """Replace :class:`ssl.SSLContext`, :class:`ssl.SSLSocket` and the wrapping functions of
    :mod:`ssl` with cooperative versions. Call it before :mod:`ssl` is imported: modules that
    already hold the original classes (``from ssl import SSLContext``) keep them, and a
    :class:`MonkeyPatchWarning` names them.
    """
    previous = sys.modules.get('ssl')
    original_context = getattr(previous, 'SSLContext', None) if _first_time else None
    _, target = _patch_module('ssl', _warnings=_warnings)
    if original_context is None or target.SSLContext is original_context:
        return
    modules, subclasses = _module_references(original_context, excluding=('ssl',))
    if not (modules or subclasses):
        return
    details = ''
    if modules:
        details += 'Modules that had direct imports (NOT patched): %s. ' % (
            sorted('%s (%s)' % item for item in modules),)
    if subclasses:
        details += 'Subclasses (NOT patched): %s. ' % (sorted(str(t) for t in subclasses),)
    _queue_warning('Monkey-patching ssl after ssl has already been imported may lead to errors, '
                   'including RecursionError, and to code silently using blocking sockets. '
                   'Please monkey-patch earlier. ' + details, _warnings)


@_ignores_DoNotPatch
def patch_thread(threading=True, _threading_local=True, Event=True, logging=True,
                 existing_locks=True, _warnings=None):
    """patch_thread(threading=True, _threading_local=True, Event=True, logging=True, \
existing_locks=True)

    Make :mod:`_thread` (and with *threading*, :mod:`threading`) spawn greenlets instead of
    threads; see :mod:`verdigris.threading` for what that means for ``Thread``, the main thread
    and interpreter exit.

    :param threading: also patch :mod:`threading` (``Thread`` runs as a greenlet; ``Lock``,
        ``RLock``, ``Condition``, ``Semaphore``, ``local``... become cooperative).
    :param _threading_local: also replace :class:`_threading_local.local`.
    :param Event: make ``threading.Event`` :class:`verdigris.event.Event`.
    :param logging: give the locks of an already imported :mod:`logging` cooperative ones.
    :param existing_locks: re-own the locks held right now by this thread under its native ident
        (an import in progress, pure-Python RLocks), and give ``concurrent.futures`` a fresh
        shutdown lock (its fork handlers would otherwise deadlock).

    .. caution:: ``multiprocessing.Queue`` and ``ProcessPoolExecutor`` need real threads and
       hang once threads are patched, as with gevent.
    """
    threading_mod = __import__('threading')  # before _thread: it copies names from _thread
    native_ident = get_original('_thread', 'get_ident')()
    first_time = not is_object_patched('threading', '_shutdown')
    if threading:
        # Before get_ident changes: a native thread ending meanwhile must find itself.
        _source('threading')._patch_existing_threads(patch_item)
    thread_source, thread_target = _patch_module('thread', _warnings=_warnings, _notify_did=False)
    threading_source = None
    if threading:
        threading_source, _ = _patch_module('threading', _warnings=_warnings, _notify_did=False)
        if Event:
            from verdigris.event import Event as GreenEvent

            patch_item(threading_mod, 'Event', GreenEvent)
        if existing_locks and first_time:
            threading_source._patch_existing_locks(native_ident, patch_item)
        if logging and first_time and 'logging' in sys.modules:
            threading_source._patch_logging(patch_item)
    if _threading_local:
        from verdigris.local import local

        patch_item(__import__('_threading_local'), 'local', local)
    if threading and first_time:
        threading_source._patch_shutdown(
            patch_item, lambda message: _queue_warning(message, _warnings))
    _notify('GeventDidPatchModuleEvent', ('thread', thread_source, thread_target))
    if threading_source is not None:
        _notify('GeventDidPatchModuleEvent', ('threading', threading_source, threading_mod))


# -- everything at once -----------------------------------------------------------------------

_SETTINGS_KEY = '_gevent_saved_patch_all_module_settings'


def _check_repatching(_warnings, settings):
    """Which settings still need patching; a second call can only add patches."""
    done = saved.setdefault(_SETTINGS_KEY, {})
    first_time = not done
    if not first_time and done != settings:
        _queue_warning('Patching more than once will result in the union of all True '
                       'parameters being patched', _warnings)
    todo = {}
    for key, value in settings.items():
        if key not in done or (value and not done[key]):
            todo[key] = done[key] = value
    return first_time, todo


def _signal_os_warning(will_signal, will_os, _warnings):
    message = ('Patching signal but not os will result in SIGCHLD handlers installed after this '
               'not being called and os.waitpid may not function correctly if '
               'verdigris.subprocess is used.')
    if will_signal and not will_os:
        _queue_warning(message, _warnings)


def patch_all(socket=True, dns=True, time=True, select=True, thread=True, os=True, ssl=True,
              subprocess=True, sys=False, aggressive=True, Event=True, builtins=True,
              signal=True, queue=True, contextvars=True, **kwargs):
    """Do all the default patching: every ``patch_*`` function of this module, in the order
    that their dependencies need (os, thread, time, sys, socket, select, ssl, subprocess,
    builtins, signal, queue).

    Calling it again with other arguments only adds patches (with a warning); nothing is
    unpatched. *kwargs* are passed to event subscribers (prefix them with your library's name).

    :return: True if patching happened, False if a subscriber cancelled it, None if the call had
        nothing left to do.
    """
    _warnings = []
    settings = dict(socket=socket, dns=dns, time=time, select=select, thread=thread, os=os,
                    ssl=ssl, subprocess=subprocess, sys=sys, aggressive=aggressive, Event=Event,
                    builtins=builtins, signal=signal, queue=queue, contextvars=contextvars)
    first_time, todo = _check_repatching(_warnings, settings)
    if not todo:
        _process_warnings(_warnings)
        return None
    # A repeated call patches only what it newly asks for. dns, aggressive and Event are options
    # of other patches: newly set, they redo those patches (with this call's values).
    on = {key: todo.get(key, False) for key in settings}
    for option, modules in (('Event', ('thread',)), ('dns', ('socket',)),
                            ('aggressive', ('socket', 'select'))):
        for name in modules:
            on[name] = on[name] or (on[option] and settings[name])
    try:
        _notify('GeventWillPatchAllEvent', (todo, kwargs), _warnings)
    except _DoNotPatch():
        return False
    _signal_os_warning(on['signal'], on['os'], _warnings)

    def want(name):
        return on[name] and _available(name)

    if want('os'):
        patch_os()
    if want('thread'):
        patch_thread(Event=settings['Event'], _warnings=_warnings)
    if want('time'):
        # After thread: threading may still need the real time.sleep while being patched.
        patch_time()
    if on['sys']:
        patch_sys()
    if want('socket'):
        patch_socket(dns=settings['dns'], aggressive=settings['aggressive'])
    if on['select']:
        # From 3.14 selectors probes select's implementations when imported: patch it first,
        # or probing the patched select would create the hub.
        order = ('selectors', 'select') if PY314 else ('select', 'selectors')
        for name in order:
            if _available(name):
                globals()['patch_' + name](aggressive=settings['aggressive'])
    if want('ssl'):
        patch_ssl(_warnings=_warnings, _first_time=first_time)
    if want('subprocess'):
        patch_subprocess()
    if on['builtins']:
        patch_builtins()
    if want('signal'):
        patch_signal()
    if want('queue'):
        patch_queue()
    if on['contextvars']:
        patch_contextvars()
    _notify('GeventDidPatchBuiltinModulesEvent', (todo, kwargs), _warnings)
    _notify('GeventDidPatchAllEvent', (todo, kwargs), _warnings)
    _process_warnings(_warnings)
    return True


# -- python -m verdigris.monkey -----------------------------------------------------------------

def _script_help():
    import inspect

    names = [p.name for p in inspect.signature(patch_all).parameters.values()
             if p.kind is p.POSITIONAL_OR_KEYWORD]
    modules = [name for name in names if 'patch_' + name in globals()]
    text = (
        'verdigris.monkey - monkey patch the standard library, then run a program.\n\n'
        'USAGE: python -m verdigris.monkey [MONKEY OPTIONS] [--module] (script|module) '
        '[SCRIPT OPTIONS]\n\n'
        'Without MONKEY OPTIONS everything is patched, as by patch_all(). --no-<name> leaves\n'
        'one thing unpatched (--no-thread); --<name> patches only the modules named that way\n'
        '(--socket --time). --module runs a module (like python -m) instead of a script.\n\n'
        'MONKEY OPTIONS: --verbose %s' % ', '.join('--[no-]%s' % name for name in names))
    return text, names, modules


def main():
    """Run ``python -m verdigris.monkey [options] [--module] script args...``.

    Patches (``patch_all()``, adjusted by the options), then runs the script (or, with
    ``--module``, the module) as ``__main__`` with ``sys.argv`` set to ``[script, args...]``.

    .. note::
       For a script, ``sys.path[0]`` becomes the script's directory, and ``--module`` runs the
       module as ``python -m`` would (``sys.argv[0]`` is its file), as the interpreter itself
       does; gevent keeps the current directory and the module name.
    """
    import os

    help_text, names, modules = _script_help()
    argv = sys.argv[1:]
    args = {}
    verbose = False
    run_module = False
    while argv and argv[0].startswith('--'):
        option = argv.pop(0)[2:]
        if option == '':
            break
        if option == 'verbose':
            verbose = True
        elif option == 'module':
            run_module = True
        elif option.startswith('no-') and option[3:] in names:
            args[option[3:]] = False
        elif option in names:
            args[option] = True
            if option in modules:
                # Naming a module means "only the modules named".
                for name in modules:
                    args.setdefault(name, False)
        else:
            sys.exit(help_text + '\n\nCannot patch %r' % (option,))
    if verbose:
        import pprint

        print('verdigris.monkey.patch_all(%s)' % ', '.join('%s=%s' % kv for kv in args.items()))
        print('sys.version=%s' % (sys.version.strip().replace('\n', ' '),))
        print('sys.path=%s' % pprint.pformat(sys.path))
        print('sys.modules=%s' % pprint.pformat(sorted(sys.modules)))
        print('cwd=%s' % os.getcwd())
    if not argv:
        print(help_text)
        return None
    # Run as __main__, this module would be imported a second time, as verdigris.monkey, by a
    # program that imports it: two `saved` dicts, patching twice. Make both names one module.
    this = sys.modules[__name__]
    sys.modules['verdigris.monkey'] = this
    setattr(__import__('verdigris'), 'monkey', this)
    sys.argv[:] = argv
    patch_all(**args)

    import runpy

    if run_module:
        return runpy.run_module(argv[0], run_name='__main__', alter_sys=True)
    if os.path.isfile(argv[0]):
        sys.path[0] = os.path.dirname(os.path.abspath(argv[0]))
    return runpy.run_path(argv[0], run_name='__main__')


if __name__ == '__main__':
    main()
