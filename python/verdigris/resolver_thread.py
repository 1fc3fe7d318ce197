"""gevent's old name for the thread resolver: an alias of :mod:`verdigris.resolver`.

.. deprecated:: Importing it warns, as ``gevent.resolver_thread`` does; use
   :mod:`verdigris.resolver` (gevent: ``gevent.resolver.thread``).
"""
import warnings

from verdigris.resolver import Resolver

warnings.warn("verdigris.resolver_thread is deprecated; use verdigris.resolver instead.",
              DeprecationWarning, stacklevel=2)

__all__ = ['Resolver']
