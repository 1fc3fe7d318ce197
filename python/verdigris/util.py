"""Low-level utilities (gevent's ``gevent.util``): what is running, and did it switch?

* :func:`format_run_info` / :func:`print_run_info`: every thread's stack, then every greenlet
  (found through the garbage collector) as a tree of who spawned whom, with running stacks,
  spawn-tree locals and greenlet-local values. Meant for humans debugging a stuck program; the
  text format is not a contract.
* :class:`GreenletTree`: that tree as objects.
* :class:`wrap_errors`: makes a function return chosen exceptions instead of raising them.
* :class:`assert_switches`: a context manager failing when its body did not let other
  greenlets run (for tests).

.. note::
   :class:`assert_switches` with ``max_blocking_time`` measures every stretch the body held the
   thread, including the last one before the block ends; gevent measures only some of them (its
   tracer misses the final stretch, and with ``hub_only=True`` counts a long cooperative sleep as
   blocking). Results agree wherever gevent's are not an artefact of that.
"""
import functools
import pprint
import sys
import time
import traceback

from greenlet import getcurrent
from greenlet import greenlet as RawGreenlet
from greenlet import settrace

__all__ = [
    'format_run_info',
    'print_run_info',
    'GreenletTree',
    'wrap_errors',
    'assert_switches',
]

_NONE = object()
_is_active = RawGreenlet.__bool__


def _safe_repr(obj):
    # The monitor thread formats greenlets of other threads, and some of their objects (a loop)
    # refuse to describe themselves outside their own thread.
    try:
        return repr(obj)
    except Exception as ex:  # noqa: BLE001
        return '<%s at 0x%x (%s)>' % (type(obj).__name__, id(obj), ex)


class wrap_errors:
    """``wrap_errors(errors, func)``: a callable running *func* that returns, instead of raising,
    any exception of class *errors* (a class or a tuple of classes).

    Useful for greenlets whose expected failures should be a value, not a logged traceback.
    ``str``, ``repr`` and other attributes are those of *func*.
    """

    def __init__(self, errors, func):
        self.__errors = errors
        self.__func = func
        functools.update_wrapper(self, func)

    def __call__(self, *args, **kwargs):
        try:
            return self.__func(*args, **kwargs)
        except self.__errors as ex:
            return ex

    def __str__(self):
        return str(self.__func)

    def __repr__(self):
        return repr(self.__func)

    def __getattr__(self, name):
        return getattr(self.__func, name)


# -- what is running ---------------------------------------------------------------------------

def print_run_info(thread_stacks=True, greenlet_stacks=True, limit=_NONE, file=None):
    """Writes :func:`format_run_info` to *file* (default: ``sys.stderr``)."""
    lines = format_run_info(thread_stacks=thread_stacks, greenlet_stacks=greenlet_stacks,
                            limit=limit)
    file = sys.stderr if file is None else file
    for line in lines:
        print(line, file=file)


def format_run_info(thread_stacks=True, greenlet_stacks=True, limit=_NONE,
                    current_thread_ident=None, max_greenlets=None):
    """Text lines describing the process's threads and greenlets.

    :param thread_stacks: include each thread's stack.
    :param greenlet_stacks: include the stack of each greenlet of the calling thread (those of
        other threads are never shown: their saved frame is not meaningful from here).
    :param limit: passed to :func:`traceback.format_stack` (default: whole stacks).
    :param current_thread_ident: the thread marked CURRENT (default: the calling one).
    :param max_greenlets: if given and there are more greenlets, list none (say how many).
    """
    if current_thread_ident is None:
        from verdigris.monkey import get_original

        current_thread_ident = get_original('_thread', 'get_ident')()
    limit = None if limit is _NONE else limit
    lines = []
    _format_threads(lines, thread_stacks, limit, current_thread_ident)
    _format_greenlets(lines, greenlet_stacks, limit, max_greenlets)
    return lines


def _format_threads(lines, thread_stacks, limit, current_thread_ident):
    import threading

    names = {t.ident: t.name for t in threading.enumerate()}
    monitor = sys.modules.get('verdigris._monitor')
    if monitor is not None:
        names.update(monitor.thread_names())
    lines.append('*' * 80)
    lines.append('* Threads')
    for ident, frame in sys._current_frames().items():
        lines.append('*' * 80)
        name = names.get(ident)
        if ident == current_thread_ident:
            name = '%s) (CURRENT' % (name,)
        lines.append('Thread 0x%x (%s)\n' % (ident, name))
        if thread_stacks:
            lines.append(''.join(traceback.format_stack(frame, limit)))
        else:
            lines.append('\t...stack elided...')
    del frame


def _format_greenlets(lines, greenlet_stacks, limit, max_greenlets=None):
    lines.append('*' * 80)
    lines.append('* Greenlets')
    lines.append('*' * 80)
    if max_greenlets is not None:
        count = len(_reachable_greenlets())
        if count > max_greenlets:
            lines.append('(%d greenlets: verdigris.util.print_run_info() lists them all)' % count)
            return
    trees = sorted(GreenletTree.forest(),
                   key=lambda t: '' if t.is_current_tree else _safe_repr(t.greenlet))
    for tree in trees:
        lines.append('---- Thread boundary')
        lines.extend(tree.format_lines(details={
            'running_stacks': greenlet_stacks if tree.is_current_tree else False,
            'running_stack_limit': limit,
        }))


def _spawning_parent(glet):
    ref = getattr(glet, 'spawning_greenlet', None)
    return ref() if ref is not None else None


def _reachable_greenlets():
    import gc

    return [obj for obj in gc.get_objects()
            if isinstance(obj, RawGreenlet)
            and not getattr(obj, 'greenlet_tree_is_ignored', False)]


class GreenletTree:
    """A greenlet and the trees of the greenlets it spawned.

    Greenlets are arranged by ``spawning_greenlet`` (who spawned them), not by ``parent`` (for
    most it is the hub); those with no living spawner hang under their thread's root greenlet.
    ``str()`` gives the bare tree; :meth:`format` adds stacks and locals. Other attributes are
    the greenlet's.
    """

    #: The greenlet this node stands for.
    greenlet = None
    #: True for the root of the calling thread's tree.
    is_current_tree = False

    DEFAULT_DETAILS = {
        'running_stacks': True,
        'running_stack_limit': None,
        'spawning_stacks': True,
        'locals': True,
    }

    def __init__(self, greenlet):
        self.greenlet = greenlet
        self.child_trees = []

    def add_child(self, tree):
        if tree is not self:
            self.child_trees.append(tree)

    @property
    def root(self):
        """True if the greenlet is a thread's main greenlet."""
        return self.greenlet.parent is None

    def __getattr__(self, name):
        return getattr(self.greenlet, name)

    def format_lines(self, details=True):
        """The tree as a list of lines; *details* (True, False or a dict of
        :attr:`DEFAULT_DETAILS` keys) says what to show beyond the tree itself."""
        if isinstance(details, dict):
            chosen = dict(self.DEFAULT_DETAILS)
            chosen.update(details)
        elif details:
            chosen = dict(self.DEFAULT_DETAILS)
        else:
            chosen = {}
        return self._render(chosen)

    def format(self, details=True):
        """:meth:`format_lines` joined with newlines."""
        return '\n'.join(self.format_lines(details))

    def __str__(self):
        return self.format(False)

    def _label(self):
        glet = self.greenlet
        label = _safe_repr(glet)
        if not _is_active(glet):
            ready = getattr(glet, 'ready', None)
            if ready is not None and ready():
                label += '; finished'
                value = getattr(glet, 'value', None)
                if value is not None:
                    label += ' with value ' + repr(value)[:30]
                elif getattr(glet, 'exception', None) is not None:
                    label += ' with exception ' + repr(glet.exception)
            else:
                label += '; not running'
        return label

    def _data(self, details):
        """The lines under this node's label."""
        glet = self.greenlet
        data = ['Parent: ' + _safe_repr(glet.parent)]
        if details.get('running_stacks') and _is_active(glet):
            # gr_frame is None for the greenlet running now: format_stack then shows ours.
            data.append('Running:')
            stack = traceback.format_stack(glet.gr_frame, details.get('running_stack_limit'))
            data.extend(''.join(stack).splitlines())
        spawning_stack = getattr(glet, 'spawning_stack', None)
        if spawning_stack is not None and details.get('spawning_stacks'):
            data.append('Spawned at:')
            data.extend(''.join(traceback.format_stack(spawning_stack)).splitlines())
        tree_locals = getattr(glet, 'spawn_tree_locals', None)
        spawner = _spawning_parent(glet)
        if tree_locals and tree_locals is not getattr(spawner, 'spawn_tree_locals', None):
            data.append('Spawn Tree Locals')
            data.extend(pprint.pformat(tree_locals).splitlines())
        if details.get('locals'):
            data.extend(self._local_lines())
        return data

    def _local_lines(self):
        # Values of verdigris.local objects set in this greenlet, if that module keeps them.
        try:
            from verdigris.local import all_local_dicts_for_greenlet
        except ImportError:
            return []
        found = all_local_dicts_for_greenlet(self.greenlet)
        lines = []
        for (kind, ident), values in found or ():
            if values:
                if not lines:
                    lines.append('Greenlet Locals:')
                lines.append('  Local %s at %s' % (kind, hex(ident)))
                lines.extend('    ' + l for l in pprint.pformat(values).splitlines())
        return lines

    def _render(self, details):
        lines = [self._label()]
        if details:
            lines.extend(' :   ' + line for line in self._data(details))
        children = sorted(self.child_trees, key=lambda c: (
            getattr(c.greenlet, 'minimal_ident', -1),
            bool(getattr(c.greenlet, 'ready', lambda: False)()),
            id(c.greenlet.parent)))
        for n, child in enumerate(children):
            last = n == len(children) - 1
            child_lines = child._render(details)
            lines.append(' %s--- %s' % ('+' if last else '|', child_lines[0]))
            margin = '      ' if last else ' |    '
            lines.extend(margin + line for line in child_lines[1:])
        return lines

    @staticmethod
    def _root_greenlet(glet):
        while glet.parent is not None and not getattr(glet, 'greenlet_tree_is_root', False):
            glet = glet.parent
        return glet

    @classmethod
    def _forest(cls):
        main = cls._root_greenlet(getcurrent())
        trees = {}   # greenlet -> its tree
        roots = {}   # root greenlet -> its tree
        current = roots[main] = trees[main] = cls(main)
        current.is_current_tree = True
        for glet in _reachable_greenlets():
            spawner = _spawning_parent(glet)
            if spawner is None:
                spawner = cls._root_greenlet(glet)
            if spawner not in trees:
                trees[spawner] = cls(spawner)
                if spawner is cls._root_greenlet(spawner):
                    roots[spawner] = trees[spawner]
            tree = trees.get(glet)
            if tree is None:
                tree = trees[glet] = cls(glet)
            trees[spawner].add_child(tree)
        return roots, current

    @classmethod
    def forest(cls):
        """One tree per thread (per root greenlet)."""
        return list(cls._forest()[0].values())

    @classmethod
    def current_tree(cls):
        """The tree of the calling thread."""
        return cls._forest()[1]


# -- did it switch? ----------------------------------------------------------------------------

class _FailedToSwitch(AssertionError):
    pass


class _SwitchTracer:
    """A ``greenlet.settrace`` function measuring, in one thread, the stretches during which
    greenlets other than the hub ran without switching (or without entering the hub)."""

    def __init__(self, hub, hub_only):
        self.hub = hub
        self.hub_only = hub_only
        self.switches = 0
        self.longest = 0.0
        self.longest_greenlet = None
        self.active = getcurrent()
        self.since = time.perf_counter()
        self.previous = settrace(self)

    def __call__(self, event, args):
        if event in ('switch', 'throw'):
            origin, target = args
            self.switches += 1
            now = time.perf_counter()
            leaving_hub = origin is self.hub
            if not leaving_hub and (not self.hub_only or target is self.hub):
                self._stretch_ended(now)
            if leaving_hub or not self.hub_only:
                self.since = now
            self.active = target
        if self.previous is not None:
            self.previous(event, args)

    def _stretch_ended(self, now):
        if now - self.since > self.longest:
            self.longest = now - self.since
            self.longest_greenlet = self.active

    def kill(self):
        """Stops tracing (restores the previous trace function); measures the last stretch."""
        settrace(self.previous)
        self.previous = None
        if self.active is not self.hub:
            self._stretch_ended(time.perf_counter())


class assert_switches:
    """Fails (AssertionError) if the body of the ``with`` block did not let other greenlets run.

    Without *max_blocking_time*, the body must switch greenlets at least once. With it, the body
    may not run for longer than that many seconds without switching to another greenlet, or,
    with *hub_only*, without going through the hub (which runs timers and I/O). A body that
    raises is not checked. Meant for tests::

        with assert_switches():
            sock.recv(10)     # must have waited cooperatively
    """

    hub = None
    tracer = None

    def __init__(self, max_blocking_time=None, hub_only=False):
        self.max_blocking_time = max_blocking_time
        self.hub_only = hub_only

    def __enter__(self):
        from verdigris.hub import get_hub

        self.hub = get_hub()
        self._entered = time.perf_counter()
        self.tracer = _SwitchTracer(self.hub, self.hub_only)
        return self

    def __exit__(self, t, v, tb):
        tracer, self.tracer = self.tracer, None
        self.hub = None
        tracer.kill()
        if t is not None:
            return
        if self.max_blocking_time:
            failed = tracer.longest > self.max_blocking_time
        else:
            failed = tracer.switches == 0
        if not failed:
            return
        elapsed = time.perf_counter() - self._entered
        message = 'To the hub' if self.hub_only else 'To any greenlet'
        message += ' in %.4f seconds' % (elapsed,)
        if self.max_blocking_time:
            message += ' (max allowed %.4f seconds; %r ran %.4f seconds without switching)' % (
                self.max_blocking_time, tracer.longest_greenlet, tracer.longest)
        raise _FailedToSwitch(message)
