"""Shared fixtures for verdigris's tests.

Every test runs under a watchdog thread: a test that hangs dumps every thread's stack and kills the
run after ``VERDIGRIS_TEST_DEADLINE`` seconds, so a hang fails CI loudly instead of eating its budget.

``VERDIGRIS_TEST_AGAINST=gevent`` runs the same tests against real gevent (the ``verdigris``
modules are aliased to gevent's). A behaviour test that fails there encodes something gevent does
not do; tests of verdigris-only behaviour are marked ``verdigris_only`` and skipped in that mode.
"""
import faulthandler
import importlib
import os
import sys

import pytest

AGAINST = os.environ.get("VERDIGRIS_TEST_AGAINST", "verdigris")
DEADLINE = float(os.environ.get("VERDIGRIS_TEST_DEADLINE", "120"))

if AGAINST == "gevent":
    import gevent

    sys.modules["verdigris"] = gevent
    for _name in ("hub", "greenlet", "timeout", "event", "queue", "lock", "coros", "local", "pool",
                  "socket", "select", "selectors", "ssl", "subprocess", "os", "signal", "threadpool",
                  "monkey", "server", "baseserver", "pywsgi", "exceptions", "events", "util",
                  "backdoor", "fileobject", "time", "thread", "threading", "builtins", "resolver"):
        try:
            sys.modules["verdigris." + _name] = importlib.import_module("gevent." + _name)
        except ImportError:
            pass


def pytest_configure(config):
    config.addinivalue_line("markers", "verdigris_only: behaviour gevent does not have")


def pytest_collection_modifyitems(config, items):
    if AGAINST != "gevent":
        return
    skip = pytest.mark.skip(reason="verdigris-only behaviour; running against gevent")
    for item in items:
        if "verdigris_only" in item.keywords:
            item.add_marker(skip)


@pytest.fixture(autouse=True)
def _watchdog():
    faulthandler.dump_traceback_later(DEADLINE, exit=True)
    yield
    faulthandler.cancel_dump_traceback_later()


@pytest.fixture
def hub():
    import verdigris

    return verdigris.get_hub()
