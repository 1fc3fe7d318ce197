"""The hub's DNS resolver: the system's own resolver functions, run in the hub's thread pool.

:class:`Resolver` is gevent's ``gevent.resolver.thread.Resolver``, the default one: each lookup
calls the C function of :mod:`_socket` (``getaddrinfo(3)`` and friends, so ``/etc/hosts``,
``nsswitch.conf`` and the rest of the platform's configuration apply exactly as without
verdigris) in a worker thread of ``hub.threadpool``, while the calling greenlet waits and the
others run. Results and errors are the stdlib's: :exc:`socket.gaierror`, :exc:`socket.herror`,
:exc:`TypeError` for arguments of the wrong type, raised in the calling greenlet.

The cooperative :mod:`verdigris.socket` calls ``get_hub().resolver.<function>(...)``.

.. note:: gevent's module is ``gevent.resolver.thread`` (a package); verdigris's is this flat
   module, and :mod:`verdigris.resolver_thread` is kept as gevent's older alias.
"""
import _socket

from verdigris.hub import get_hub

__all__ = ['Resolver']


class Resolver:
    """Resolver(hub=None) -> a resolver that runs the native lookup functions in threads.

    Every method takes the arguments of the :mod:`socket` function of the same name and returns
    what it returns. The functions are looked up on :mod:`_socket` at each call, so they are the
    originals even when :mod:`socket` is monkey-patched.

    Creating one adds :exc:`socket.gaierror` and :exc:`socket.herror` to the hub's
    ``NOT_ERROR``: a failed lookup is an ordinary outcome, not worth a traceback on stderr.
    """

    def __init__(self, hub=None):
        if hub is None:
            hub = get_hub()
        self.pool = hub.threadpool
        if _socket.gaierror not in hub.NOT_ERROR:
            hub.NOT_ERROR = tuple(hub.NOT_ERROR) + (_socket.gaierror, _socket.herror)

    def __repr__(self):
        return '<%s.%s at 0x%x pool=%r>' % (
            type(self).__module__, type(self).__name__, id(self), self.pool)

    def close(self):
        """Nothing to release: the threads belong to the hub's pool."""

    # socketmodule.c releases the GIL around each lookup and uses the reentrant C functions
    # (or a lock where there are none), so calling them from worker threads is safe.

    def gethostbyname(self, hostname):
        """``socket.gethostbyname(hostname)``: the IPv4 address of *hostname*, as a string."""
        return self.pool.apply(_socket.gethostbyname, (hostname,))

    def gethostbyname_ex(self, hostname):
        """``socket.gethostbyname_ex(hostname)``: ``(name, aliases, ipv4_addresses)``."""
        return self.pool.apply(_socket.gethostbyname_ex, (hostname,))

    def getaddrinfo(self, host, port, family=0, type=0, proto=0, flags=0):
        """``socket.getaddrinfo(...)``: a list of ``(family, type, proto, canonname, sockaddr)``.

        The address families and socket types are plain ints, as from ``_socket``; the
        cooperative :mod:`verdigris.socket` wraps them in the enums, as :mod:`socket` does.
        """
        return self.pool.apply(_socket.getaddrinfo, (host, port, family, type, proto, flags))

    def gethostbyaddr(self, ip_address):
        """``socket.gethostbyaddr(ip_address)``: ``(hostname, aliases, addresses)``."""
        return self.pool.apply(_socket.gethostbyaddr, (ip_address,))

    def getnameinfo(self, sockaddr, flags):
        """``socket.getnameinfo(sockaddr, flags)``: ``(host, port)`` as strings."""
        return self.pool.apply(_socket.getnameinfo, (sockaddr, flags))
