"""Greenlet-local objects: :class:`local`, whose attributes each greenlet sees separately.

``threading.local`` for greenlets: an attribute set on a :class:`local` from one greenlet is
invisible from every other greenlet, the main greenlet and the hub included::

    data = local()
    data.x = 1          # only this greenlet sees data.x

A subclass may define methods, properties, class-level defaults and ``__init__``; ``__init__``
runs again, with the arguments given at construction, the first time each other greenlet touches
the object, so each greenlet starts from the same initial state. Names a subclass lists in
``__slots__`` are ordinary slots: shared by all greenlets, not local.

Discussion: where the values live.
    Each greenlet's values for a local are kept in a dict stored in that greenlet's own
    ``__dict__``, keyed by the local's private state object. The values therefore die with the
    greenlet, reference cycles through it included. For a :class:`~verdigris.greenlet.Greenlet`
    they are dropped as soon as it finishes (through ``rawlink``), so a finished greenlet that is
    still referenced (say, for its ``value``) does not pin them. When the local itself is
    collected, its dict is removed from every greenlet still alive.

Discussion: attribute lookup.
    Lookups follow Python's rules with the greenlet's dict standing in for the instance dict:
    data descriptors of the class (properties with a setter, slots) come first, then the
    greenlet's dict, then the other class attributes (methods, plain defaults) and finally
    ``__getattr__``. The class's data descriptor names are computed once, when the class is
    created.

.. note::
   gevent finds a class's descriptors when each instance is created; verdigris when the class is
   created, so descriptors added to a class later are treated as plain class attributes by
   locals. The object's own ``__dict__`` is never used; ``local.__dict__`` is the greenlet's dict.
"""
import weakref

from greenlet import getcurrent

__all__ = ['local']


class _LocalState:
    """One local's constructor arguments, and the greenlets that hold a dict for it.

    It is also the key of the local's dict in each greenlet's ``__dict__``: a private object,
    so it cannot clash with a greenlet's own attributes.
    """

    __slots__ = ('args', 'kwargs', 'greenlets', '__weakref__')

    def __init__(self, args, kwargs):
        self.args = args
        self.kwargs = kwargs
        self.greenlets = weakref.WeakSet()


class _ForgetOnDeath:
    """Greenlet link that drops a finished greenlet's dict of one local."""

    __slots__ = ('state_ref',)

    def __init__(self, state):
        # Weak: a link must not keep a collected local's arguments alive.
        self.state_ref = weakref.ref(state)

    def __call__(self, greenlet):
        state = self.state_ref()
        if state is not None:
            greenlet.__dict__.pop(state, None)
            state.greenlets.discard(greenlet)


def _forget_local(state):
    # The local was collected: drop its dict from every greenlet still alive.
    for greenlet in list(state.greenlets):
        greenlet.__dict__.pop(state, None)


def _new_dict(state, greenlet):
    values = {}
    greenlet.__dict__[state] = values
    state.greenlets.add(greenlet)
    rawlink = getattr(greenlet, 'rawlink', None)
    if rawlink is not None:
        rawlink(_ForgetOnDeath(state))
    return values


def _first_use(self, state):
    """Create the current greenlet's dict for *self* and run the class's __init__ for it."""
    values = _new_dict(state, getcurrent())
    cls = type(self)
    if cls.__init__ is not local.__init__:
        cls.__init__(self, *state.args, **state.kwargs)
    return values


def _current_dict(self):
    """Return the current greenlet's dict for *self*, creating it on first use."""
    state = _get_state(self)
    values = getcurrent().__dict__.get(state)
    if values is None:
        values = _first_use(self, state)
    return values


def _data_descriptor_names(cls):
    # Names whose class attribute (the one found first along the MRO) is a data descriptor,
    # and ``__dict__``, which __setattr__ must refuse whether or not the class has that slot.
    names = set()
    for base in reversed(cls.__mro__):
        for name, attr in vars(base).items():
            kind = type(attr)
            if hasattr(kind, '__set__') or hasattr(kind, '__delete__'):
                names.add(name)
            else:
                names.discard(name)
    names.add('__dict__')
    return frozenset(names)


# Answered from the object itself, without creating (or initialising) the greenlet's dict.
_OWN_ATTRIBUTES = frozenset(['__class__', '_local__state'])


class local:
    """An object whose attributes are local to the greenlet that sets them.

    ``local(*args, **kwargs)``: arguments are allowed only if a subclass defines ``__init__``,
    which is then called with them once per greenlet.

    :raises TypeError: if arguments are given and the class has no ``__init__``.
    """

    __slots__ = ('_local__state', '__weakref__')

    def __new__(cls, *args, **kwargs):
        if (args or kwargs) and cls.__init__ is local.__init__:
            raise TypeError('Initialization arguments are not supported', args, kwargs)
        self = object.__new__(cls)
        state = _LocalState(args, kwargs)
        object.__setattr__(self, '_local__state', state)
        # The creating greenlet gets its dict now; Python then calls __init__ for it, once.
        _new_dict(state, getcurrent())
        weakref.finalize(self, _forget_local, state).atexit = False
        return self

    def __init__(self, *args, **kwargs):
        # Arguments were checked in __new__; a subclass's __init__ replaces this one.
        pass

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        cls._local_data_descriptors = _data_descriptor_names(cls)

    def __getattribute__(self, name):
        # _current_dict() inlined: this runs for every attribute read.
        state = _get_state(self)
        values = getcurrent().__dict__.get(state)
        if values is None:
            if name in _OWN_ATTRIBUTES:
                return object.__getattribute__(self, name)
            values = _first_use(self, state)
        if name in values and name not in type(self)._local_data_descriptors:
            return values[name]
        if name == '__dict__':
            return values
        # Class attributes: methods, properties, defaults; then __getattr__ via Python.
        return object.__getattribute__(self, name)

    def __setattr__(self, name, value):
        if name in type(self)._local_data_descriptors:
            if name == '__dict__':
                raise AttributeError("%r object attribute '__dict__' is read-only"
                                     % type(self).__name__)
            _current_dict(self)  # per-greenlet __init__ first, as for any access
            object.__setattr__(self, name, value)
            return
        state = _get_state(self)
        values = getcurrent().__dict__.get(state)
        if values is None:
            values = _first_use(self, state)
        values[name] = value

    def __delattr__(self, name):
        if name == '__dict__':
            raise AttributeError("%r object attribute '__dict__' is read-only"
                                 % type(self).__name__)
        if name in type(self)._local_data_descriptors:
            _current_dict(self)
            object.__delattr__(self, name)
            return
        values = _current_dict(self)
        try:
            del values[name]
        except KeyError:
            raise AttributeError(name) from None

    def __copy__(self):
        """Return a new local of the same class holding a copy of this greenlet's values."""
        state = _get_state(self)
        cls = type(self)
        duplicate = cls(*state.args, **state.kwargs)
        getcurrent().__dict__[_get_state(duplicate)] = dict(_current_dict(self))
        return duplicate


_get_state = local._local__state.__get__
local._local_data_descriptors = _data_descriptor_names(local)
