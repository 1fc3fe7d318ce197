"""verdigris: gevent's programming model on a Rust event loop.

Green threads (greenlets) that switch implicitly whenever they would block, with gevent's API:
``spawn``, ``joinall``, ``sleep``, ``Timeout``, events, queues, locks, pools, cooperative sockets
and monkey patching. The event loop (polling, timers, the ready queue) is written in Rust
(:mod:`verdigris._core`); the hub and the API on top are Python.
"""
from greenlet import GreenletExit, getcurrent

from verdigris._core import __version__
from verdigris.exceptions import LoopExit
from verdigris.greenlet import Greenlet, joinall, killall
from verdigris.hub import (
    get_hub,
    idle,
    kill,
    reinit,
    sleep,
    spawn_raw,
)
from verdigris._hub_primitives import iwait_on_objects as iwait
from verdigris._hub_primitives import wait_on_objects as wait
from verdigris.timeout import Timeout, with_timeout
from verdigris._gevent_alias import install_as_gevent

spawn = Greenlet.spawn
spawn_later = Greenlet.spawn_later

__all__ = [
    "Greenlet",
    "GreenletExit",
    "LoopExit",
    "Timeout",
    "get_hub",
    "getcurrent",
    "getswitchinterval",
    "idle",
    "install_as_gevent",
    "iwait",
    "joinall",
    "kill",
    "killall",
    "reinit",
    "setswitchinterval",
    "fork",
    "signal_handler",
    "sleep",
    "spawn",
    "spawn_later",
    "spawn_raw",
    "wait",
    "with_timeout",
]


def getswitchinterval():
    """The interpreter's thread switch interval (``sys.getswitchinterval``)."""
    import sys

    return sys.getswitchinterval()


def setswitchinterval(interval):
    """Sets the interpreter's thread switch interval (``sys.setswitchinterval``)."""
    import sys

    sys.setswitchinterval(interval)


_LAZY = {"fork": "verdigris.os", "signal_handler": "verdigris.signal", "config": "verdigris._config"}


def __getattr__(name):
    # Parts that need the OS-level modules are imported on first use, keeping `import verdigris`
    # cheap and free of import cycles.
    module = _LAZY.get(name)
    if module is not None:
        import importlib

        try:
            return getattr(importlib.import_module(module), name)
        except ImportError:
            pass
    raise AttributeError("module 'verdigris' has no attribute %r" % (name,))
