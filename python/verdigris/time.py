"""The :mod:`time` module with a cooperative :func:`sleep`.

:func:`sleep` is :func:`verdigris.sleep`: it suspends only the calling greenlet. Every other
name is the standard library's (clocks, formatting, ...), which never block.
"""
import time as _stdlib_time

from verdigris.hub import sleep  # noqa: F401 - the name this module exists for

__implements__ = ['sleep']
__imports__ = [name for name in dir(_stdlib_time)
               if not name.startswith('__') and name not in __implements__]
__extensions__ = []
__all__ = list(__implements__)

for _name in __imports__:
    globals()[_name] = getattr(_stdlib_time, _name)
del _name
