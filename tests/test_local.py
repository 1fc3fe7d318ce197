"""Behaviour of verdigris.local: greenlet-local attributes."""
import copy
import gc
import weakref

import pytest

import verdigris
from verdigris.local import local


class Payload:
    """Something weakly referenceable to watch for leaks."""


def _collected(ref, rounds=5):
    # Finished greenlets are cleaned up by their links, which run on a later loop turn.
    for _ in range(rounds):
        gc.collect()
        if ref() is None:
            return True
        verdigris.sleep(0)
    return False


def test_attribute_is_visible_only_in_the_greenlet_that_set_it():
    data = local()
    data.x = 'main'
    record = []

    def other():
        record.append(('before', hasattr(data, 'x')))
        data.x = 'other'
        record.append(('after', data.x))

    verdigris.spawn(other).join(timeout=5)
    assert record == [('before', False), ('after', 'other')]
    assert data.x == 'main'


def test_tutorial_example():
    data = local()
    record = []

    def f1():
        data.x = 1
        record.append(data.x)

    def f2():
        try:
            record.append(data.x)
        except AttributeError:
            record.append('x is not visible')

    verdigris.joinall([verdigris.spawn(f1), verdigris.spawn(f2)], timeout=5)
    assert record == [1, 'x is not visible']


def test_dict_is_per_greenlet_and_read_only():
    data = local()
    data.number = 42
    assert data.__dict__ == {'number': 42}
    data.__dict__.setdefault('widgets', [])
    assert data.widgets == []
    seen = []
    verdigris.spawn(lambda: seen.append(dict(data.__dict__))).join(timeout=5)
    assert seen == [{}]
    with pytest.raises(AttributeError):
        data.__dict__ = {}


def test_delattr():
    data = local()
    data.x = 1
    del data.x
    assert not hasattr(data, 'x')
    with pytest.raises(AttributeError):
        del data.x


def test_missing_attribute_raises_attribute_error():
    with pytest.raises(AttributeError):
        local().missing


def test_arguments_need_an_init():
    with pytest.raises(TypeError):
        local(1)
    with pytest.raises(TypeError):
        local(key='value')


class Counter(local):
    """A subclass with an __init__, a class default, a method and a property."""

    number = 2
    inits = []

    def __init__(self, start, **kwargs):
        self.inits.append(verdigris.getcurrent())
        self.start = start
        self.__dict__.update(kwargs)

    def squared(self):
        return self.number ** 2

    @property
    def doubled(self):
        return self.start * 2

    @doubled.setter
    def doubled(self, value):
        self.start = value // 2

    @staticmethod
    def plus_one(x):
        return x + 1

    @classmethod
    def kind(cls):
        return cls.__name__


def test_subclass_init_runs_once_per_greenlet_with_the_original_arguments():
    Counter.inits = []
    counter = Counter(10, color='red')
    assert (counter.start, counter.color) == (10, 'red')
    counter.start = 11
    record = []

    def other():
        record.append((counter.start, counter.color))
        counter.start = 99
        record.append(counter.start)

    g = verdigris.spawn(other)
    g.join(timeout=5)
    assert record == [(10, 'red'), 99]
    assert counter.start == 11
    assert Counter.inits == [verdigris.getcurrent(), g]


def test_subclass_defaults_methods_and_properties():
    counter = Counter(3)
    assert (counter.number, counter.squared(), counter.doubled) == (2, 4, 6)
    assert (counter.plus_one(1), counter.kind()) == (2, 'Counter')
    counter.number = 5
    assert (counter.number, counter.squared(), Counter.number) == (5, 25, 2)
    counter.doubled = 40
    assert (counter.start, counter.doubled) == (20, 40)
    assert 'doubled' not in counter.__dict__
    record = []
    verdigris.spawn(lambda: record.append((counter.number, counter.doubled))).join(timeout=5)
    assert record == [(2, 6)]


def test_subclass_getattr_is_called_for_missing_names():
    class Defaulting(local):
        def __getattr__(self, name):
            return 'default ' + name

    data = Defaulting()
    data.present = 'here'
    assert (data.present, data.absent) == ('here', 'default absent')


def test_subclass_slots_are_shared_between_greenlets():
    class Shared(local):
        __slots__ = ('number',)

    data = Shared()
    data.number = 42
    data.color = 'red'

    def other():
        data.number = 11
        data.color = 'blue'

    verdigris.spawn(other).join(timeout=5)
    assert (data.number, data.color) == (11, 'red')


def test_local_in_hub_callback_has_its_own_values():
    data = local()
    data.x = 'main'
    record = []

    def callback():
        record.append(hasattr(data, 'x'))
        data.x = 'hub'

    verdigris.get_hub().loop.run_callback(callback)
    verdigris.sleep(0)
    assert record == [False]
    assert data.x == 'main'


def test_values_are_freed_when_the_greenlet_finishes():
    data = local()

    def worker():
        payload = Payload()
        data.payload = payload
        return weakref.ref(payload)

    g = verdigris.spawn(worker)
    ref = g.get(timeout=5)
    assert _collected(ref)          # even though g itself is still referenced
    del g


def test_values_referring_to_their_greenlet_are_freed():
    data = local()
    refs = []

    def worker():
        payload = Payload()
        payload.owner = verdigris.getcurrent()
        data.payload = payload
        refs.append(weakref.ref(payload))

    verdigris.spawn(worker).join(timeout=5)
    assert _collected(refs[0])


def test_values_are_freed_when_the_local_is_collected():
    data = local()
    payload = Payload()
    data.payload = payload
    ref = weakref.ref(payload)
    del payload
    assert ref() is not None
    del data
    assert _collected(ref)


def test_copy_takes_the_current_greenlets_values():
    data = local()
    data.x = [1]
    duplicate = copy.copy(data)
    assert type(duplicate) is local
    assert duplicate.x == [1]
    duplicate.y = 2
    assert not hasattr(data, 'y')
