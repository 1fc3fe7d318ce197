"""verdigris exports gevent's public names, with the same kind (class or function).

The lists are written out here so that they can be read and argued with; when gevent is importable,
a test checks them against gevent's own ``__all__`` so that they cannot drift.
"""
import importlib
import inspect

import greenlet
import pytest

import verdigris

CLASS, FUNCTION = "class", "function"

# gevent's top-level ``__all__``, split in two. CORE is what the core issue provides.
CORE = {
    "Greenlet": CLASS,
    "GreenletExit": CLASS,
    "Timeout": CLASS,
    "get_hub": FUNCTION,
    "getcurrent": FUNCTION,
    "idle": FUNCTION,
    "iwait": FUNCTION,
    "joinall": FUNCTION,
    "kill": FUNCTION,
    "killall": FUNCTION,
    "reinit": FUNCTION,
    "sleep": FUNCTION,
    "spawn": FUNCTION,
    "spawn_later": FUNCTION,
    "spawn_raw": FUNCTION,
    "wait": FUNCTION,
    "with_timeout": FUNCTION,
}

# The rest of gevent's top-level ``__all__``, and the later issue each belongs to. Not checked here.
LATER = {
    "config": "configuration (gevent.config / GEVENT_* environment variables)",
    "fork": "os and subprocess: gevent.os.fork and fork watchers",
    "signal_handler": "signals: gevent.signal_handler is gevent.hub.signal",
    "getswitchinterval": "threads and the monitoring thread (sys switch interval aliases)",
    "setswitchinterval": "threads and the monitoring thread (sys switch interval aliases)",
}

# Public names of gevent's submodules that verdigris has now: ``__all__`` and, for
# ``exceptions`` (whose ``__all__`` lists only LoopExit), every public exception class.
SUBMODULES = {
    "event": {"Event": CLASS, "AsyncResult": CLASS},
    "queue": {name: CLASS for name in ("Queue", "PriorityQueue", "LifoQueue", "SimpleQueue",
                                       "JoinableQueue", "Channel", "ShutDown", "Empty", "Full")},
    "lock": {name: CLASS for name in ("Semaphore", "BoundedSemaphore", "DummySemaphore", "RLock")},
    "local": {"local": CLASS},
    "pool": {"Group": CLASS, "Pool": CLASS, "PoolFull": CLASS},
    "timeout": {"Timeout": CLASS, "with_timeout": FUNCTION},
    "greenlet": {"Greenlet": CLASS, "joinall": FUNCTION, "killall": FUNCTION},
    "hub": {"getcurrent": FUNCTION, "GreenletExit": CLASS, "spawn_raw": FUNCTION,
            "sleep": FUNCTION, "kill": FUNCTION, "reinit": FUNCTION, "get_hub": FUNCTION,
            "Hub": CLASS, "Waiter": CLASS},
    "exceptions": {name: CLASS for name in ("LoopExit", "BlockingSwitchOutError",
                                            "InvalidSwitchError", "ConcurrentObjectUseError",
                                            "InvalidThreadUseError", "HubDestroyed")},
}

# Names in a submodule's ``__all__`` that belong to a later issue. Not checked here.
SUBMODULE_LATER = {
    "hub": {"signal": "signals: the signal watcher class (gevent.signal_handler)"},
}


def _kind(obj):
    if inspect.isclass(obj):
        return CLASS
    if callable(obj):
        return FUNCTION
    return type(obj).__name__


def _real_gevent():
    """Import the real gevent, or skip: the lists are checked against it when it is installed."""
    return pytest.importorskip("gevent", reason="gevent is not installed in this environment")


# --- the top-level package -------------------------------------------------------------------

@pytest.mark.parametrize("name", sorted(CORE))
def test_core_name_exists_with_the_same_kind(name):
    assert hasattr(verdigris, name), "verdigris has no %s" % name
    assert _kind(getattr(verdigris, name)) == CORE[name]


def test_core_names_are_in_dunder_all():
    missing = sorted(set(CORE) - set(verdigris.__all__))
    assert missing == []


def test_dunder_all_names_exist():
    assert [name for name in verdigris.__all__ if not hasattr(verdigris, name)] == []


def test_core_and_later_split_gevents_all_exactly():
    gevent = _real_gevent()
    assert sorted(set(CORE) | set(LATER)) == sorted(gevent.__all__)
    assert set(CORE).isdisjoint(LATER)
    for name, kind in CORE.items():
        assert _kind(getattr(gevent, name)) == kind, name


def test_top_level_names_are_the_submodules_objects():
    # As in gevent, the package re-exports the objects of its modules; it does not wrap them.
    import verdigris.greenlet
    import verdigris.hub
    import verdigris.timeout

    for name in ("sleep", "spawn_raw", "kill", "reinit", "get_hub", "getcurrent", "GreenletExit"):
        assert getattr(verdigris, name) is getattr(verdigris.hub, name), name
    for name in ("Greenlet", "joinall", "killall"):
        assert getattr(verdigris, name) is getattr(verdigris.greenlet, name), name
    for name in ("Timeout", "with_timeout"):
        assert getattr(verdigris, name) is getattr(verdigris.timeout, name), name


def test_greenlet_exit_and_getcurrent_are_the_greenlet_packages():
    # Code written for gevent catches greenlet.GreenletExit and compares with greenlet.getcurrent().
    assert verdigris.GreenletExit is greenlet.GreenletExit
    assert verdigris.getcurrent() is greenlet.getcurrent()


def test_spawn_and_spawn_later_are_class_constructors():
    class Sub(verdigris.Greenlet):
        pass

    for g in (verdigris.spawn(lambda: None), verdigris.spawn_later(0, lambda: None)):
        assert type(g) is verdigris.Greenlet
    for g in (Sub.spawn(lambda: None), Sub.spawn_later(0, lambda: None)):
        assert type(g) is Sub
    verdigris.sleep(0.01)


# --- submodules ------------------------------------------------------------------------------

SUBMODULE_NAMES = [(module, name) for module in sorted(SUBMODULES)
                   for name in sorted(SUBMODULES[module])]


@pytest.mark.parametrize("module,name", SUBMODULE_NAMES,
                         ids=["%s.%s" % pair for pair in SUBMODULE_NAMES])
def test_submodule_name_exists_with_the_same_kind(module, name):
    mod = importlib.import_module("verdigris." + module)
    assert hasattr(mod, name), "verdigris.%s has no %s" % (module, name)
    assert _kind(getattr(mod, name)) == SUBMODULES[module][name]


@pytest.mark.parametrize("module", sorted(SUBMODULES))
def test_submodule_lists_match_gevents_all(module):
    _real_gevent()
    gevent_mod = importlib.import_module("gevent." + module)
    later = set(SUBMODULE_LATER.get(module, ()))
    assert set(gevent_mod.__all__) - later <= set(SUBMODULES[module])
    for name, kind in SUBMODULES[module].items():
        assert _kind(getattr(gevent_mod, name)) == kind, name


@pytest.mark.parametrize("module", sorted(SUBMODULES))
def test_submodule_dunder_all_has_gevents_names(module):
    mod = importlib.import_module("verdigris." + module)
    expected = set(SUBMODULES[module])
    if module == "exceptions":
        expected = {"LoopExit"}  # gevent lists only LoopExit; the rest are public but unlisted
    assert sorted(expected - set(getattr(mod, "__all__", ()))) == []


def test_exception_hierarchy_matches_gevent():
    from verdigris import exceptions

    assert issubclass(exceptions.LoopExit, Exception)
    for name in ("BlockingSwitchOutError", "InvalidSwitchError", "ConcurrentObjectUseError"):
        assert issubclass(getattr(exceptions, name), AssertionError), name
    assert issubclass(exceptions.InvalidThreadUseError, RuntimeError)
    assert issubclass(exceptions.HubDestroyed, greenlet.GreenletExit)


def test_hub_module_reexports_loop_exit():
    import verdigris.hub
    from verdigris.exceptions import LoopExit

    assert verdigris.hub.LoopExit is LoopExit


# gevent 26 has no ``coros`` module (it was renamed ``lock`` long ago); the seed tutorial still
# imports ``verdigris.coros``, so verdigris keeps the old name as an alias of ``lock``.
@pytest.mark.verdigris_only
def test_coros_is_the_old_name_of_lock():
    import verdigris.coros
    import verdigris.lock

    for name in SUBMODULES["lock"]:
        assert getattr(verdigris.coros, name) is getattr(verdigris.lock, name), name
