"""What :mod:`verdigris.socket` shares with the rest of verdigris: the stdlib names it re-exports,
waiting on arbitrary file descriptors, and DNS through the hub's resolver.

The cooperative socket class itself lives in :mod:`verdigris.socket`; this module holds the parts
that do not depend on it, so that :mod:`verdigris.select` and :mod:`verdigris.ssl` can use them
without importing each other.

Waiting on an fd
    :func:`wait_read`, :func:`wait_write` and :func:`wait_readwrite` park the current greenlet in
    the loop itself (``loop.wait_fd(..., keep=False)``): no watcher object, and the fd is registered
    with the poller only for the duration of the wait (it may belong to anybody, and nobody would
    tell the loop when it is closed). :func:`wait` and :func:`cancel_wait` are gevent's
    watcher-based pair, kept for code that builds its own ``loop.io`` watchers.

DNS
    :func:`getaddrinfo` and friends call ``get_hub().resolver`` (by default
    :class:`verdigris.resolver.Resolver`, which runs the C functions in the hub's thread pool), so
    a lookup blocks only the calling greenlet.

Arguments
    The checks the C module makes of timeouts and read sizes, made before a socket parks (the C
    method makes them only once it runs, and a bad call must fail at once, not after data
    arrives), with the C module's exceptions and messages.
"""
import _socket
import operator as _operator
import socket as __socket__
from errno import EBADF, EPERM

from verdigris.hub import get_hub

__all__ = ["wait", "wait_read", "wait_write", "wait_readwrite", "cancel_wait", "cancel_wait_ex"]

#: Standard functions and classes that :mod:`verdigris.socket` re-implements cooperatively.
__implements__ = [
    "create_connection",
    "create_server",
    "socket",
    "SocketType",
    "fromfd",
    "socketpair",
]

#: The DNS functions, which go through the hub's resolver (also part of ``__implements__``).
__dns__ = [
    "getaddrinfo",
    "gethostbyname",
    "gethostbyname_ex",
    "gethostbyaddr",
    "getnameinfo",
    "getfqdn",
]
__implements__ += __dns__

#: Non-standard functions (gevent's names).
__extensions__ = [
    "cancel_wait",
    "wait_read",
    "wait_write",
    "wait_readwrite",
    "wait",
]

#: Everything else the stdlib module offers, re-exported unchanged: exceptions, constants, enums,
#: byte-order and address helpers, ``getdefaulttimeout``/``setdefaulttimeout`` (the C module's:
#: the default timeout is shared with the stdlib), ``send_fds``/``recv_fds`` (which call methods of
#: the socket they are given, so they are cooperative on ours).
__imports__ = [name for name in __socket__.__all__
               if name not in __implements__ and name not in __extensions__]

_READ = 1
_WRITE = 2
_NONE = object()

#: The marker for "no timeout given, use the socket's" (gevent's ``timeout_default``).
timeout_default = object()

_timeout_error = __socket__.timeout


class cancel_wait_ex(__socket__.error):
    """What a greenlet waiting on a socket gets when :func:`cancel_wait` (or a close of the socket by
    another greenlet) ends its wait: ``OSError(EBADF, 'File descriptor was closed in another
    greenlet')``."""

    def __init__(self):
        __socket__.error.__init__(self, EBADF, "File descriptor was closed in another greenlet")


def cancel_wait(watcher, error=cancel_wait_ex):
    """Makes the greenlet waiting on *watcher* (an ``loop.io`` watcher, in :func:`wait`) raise
    *error*. See :meth:`verdigris.hub.Hub.cancel_wait`.

    .. note:: verdigris's own sockets wait without watchers; closing them (``close()``) is what
       wakes their waiters with ``cancel_wait_ex``'s error.
    """
    if watcher is not None:
        get_hub().cancel_wait(watcher, error)


def _raise_timeout(timeout, timeout_exc):
    """The end of a timed-out wait: *timeout_exc* interpreted as gevent's ``Timeout`` does."""
    if timeout_exc is _NONE:
        raise _timeout_error("timed out")
    if timeout_exc is False:
        return  # a silent timeout: the wait just returns
    if timeout_exc is None or isinstance(timeout_exc, str):
        from verdigris.timeout import Timeout

        raise Timeout(timeout, timeout_exc)
    raise timeout_exc


def _wait_fd(fileno, events, timeout, timeout_exc):
    loop = get_hub().loop
    try:
        # Not eagain: the caller did not just see EAGAIN, so a cached "ready" is confirmed with one
        # poll(2) and returned at once (gevent's watchers are level-triggered).
        ready = loop.wait_fd(fileno, events, timeout, False, False)
    except OSError as ex:
        if ex.errno == EPERM:
            # epoll refuses regular files and directories, which are always ready (as libev
            # treats them, and as select(2) reports them).
            return
        raise
    if not ready:
        _raise_timeout(timeout, timeout_exc)


def _fileno(fileobj):
    if isinstance(fileobj, int):
        return fileobj
    return fileobj.fileno()


def wait_read(fileno, timeout=None, timeout_exc=_NONE, event=_NONE):
    """Blocks the current greenlet until *fileno* (an int or an object with ``fileno()``) is
    readable (gevent's ``wait_read``).

    After *timeout* seconds raises *timeout_exc*: by default ``socket.timeout('timed out')``; an
    exception class or instance is raised as is, a string or None raises a
    :class:`~verdigris.timeout.Timeout`, False returns silently. A greenlet waiting here when the
    fd's socket is closed by another greenlet gets ``OSError(EBADF, 'File descriptor was closed in
    another greenlet')``. *event* is ignored (gevent deprecated it).
    """
    _wait_fd(_fileno(fileno), _READ, timeout, timeout_exc)


def wait_write(fileno, timeout=None, timeout_exc=_NONE, event=_NONE):
    """Blocks the current greenlet until *fileno* is writable; see :func:`wait_read`.

    *event* is ignored (gevent deprecated it too).
    """
    _wait_fd(_fileno(fileno), _WRITE, timeout, timeout_exc)


def wait_readwrite(fileno, timeout=None, timeout_exc=_NONE, event=_NONE):
    """Blocks the current greenlet until *fileno* is readable or writable; see
    :func:`wait_read`."""
    _wait_fd(_fileno(fileno), _READ | _WRITE, timeout, timeout_exc)


def wait(io, timeout=None, timeout_exc=_NONE, hub=None):
    """Blocks the current greenlet until the (not started) ``loop.io`` watcher *io* fires
    (gevent's ``wait``, ``wait_on_watcher``).

    *timeout* and *timeout_exc* are as for :func:`wait_read`; :func:`cancel_wait` on *io* raises
    its error here.
    """
    from verdigris.exceptions import ConcurrentObjectUseError
    from verdigris.timeout import Timeout

    if io.callback is not None:
        raise ConcurrentObjectUseError(
            "This socket is already used by another greenlet: %r" % (io.callback,))
    if hub is None:
        hub = get_hub()
    if timeout is None:
        hub.wait(io)
        return
    exc = _timeout_error("timed out") if timeout_exc is _NONE else timeout_exc
    with Timeout._start_new_or_dummy(timeout, exc):
        hub.wait(io)


# -- DNS: the hub's resolver ------------------------------------------------------------------


def _intenum(value, enum_class):
    try:
        return enum_class(value)
    except ValueError:
        return value


def getaddrinfo(host, port, family=0, type=0, proto=0, flags=0):
    """``socket.getaddrinfo``, resolved by the hub's resolver: a list of ``(family, type, proto,
    canonname, sockaddr)`` with the stdlib's enums for family and type."""
    addrs = get_hub().resolver.getaddrinfo(host, port, family, type, proto, flags)
    return [(_intenum(af, __socket__.AddressFamily), _intenum(kind, __socket__.SocketKind),
             pr, canonname, sa)
            for af, kind, pr, canonname, sa in addrs]


def gethostbyname(hostname):
    """``socket.gethostbyname``, resolved by the hub's resolver."""
    return get_hub().resolver.gethostbyname(hostname)


def gethostbyname_ex(hostname):
    """``socket.gethostbyname_ex``, resolved by the hub's resolver."""
    return get_hub().resolver.gethostbyname_ex(hostname)


def gethostbyaddr(ip_address):
    """``socket.gethostbyaddr``, resolved by the hub's resolver."""
    return get_hub().resolver.gethostbyaddr(ip_address)


def getnameinfo(sockaddr, flags):
    """``socket.getnameinfo``, resolved by the hub's resolver."""
    return get_hub().resolver.getnameinfo(sockaddr, flags)


def getfqdn(name=""):
    """``socket.getfqdn``: the fully qualified name of *name* (default: this host), looked up with
    the cooperative :func:`gethostbyaddr`."""
    name = name.strip()
    if not name or name in ("0.0.0.0", "::"):
        name = _socket.gethostname()
    try:
        hostname, aliases, _ = gethostbyaddr(name)
    except __socket__.error:
        return name
    aliases.insert(0, hostname)
    for candidate in aliases:
        if "." in candidate:
            return candidate
    return hostname


_RESOLVABLE = (__socket__.AF_INET, __socket__.AF_INET6)


def _resolve_addr(sock, address):
    """*address* with a host name replaced by its address, looked up cooperatively.

    The C ``connect`` would otherwise resolve it with a blocking ``getaddrinfo``. Numeric
    addresses (and the C module's special names) are returned unchanged, keeping an IPv6 scope.
    """
    family = sock.family
    if family not in _RESOLVABLE or not isinstance(address, tuple) or len(address) < 2:
        return address
    host = address[0]
    if not isinstance(host, str) or host in ("", "<broadcast>"):
        return address
    try:
        _socket.inet_pton(family, host)
        return address
    except (OSError, ValueError):
        pass
    port = address[1]
    resolved = getaddrinfo(host, None, family)[0][4]
    if len(resolved) == 2:
        return (resolved[0], port)
    # IPv6: flowinfo and scope id given by the caller win over the resolver's.
    return (resolved[0], port) + tuple(address[2:4]) + tuple(resolved[len(address):4])


# -- arguments, checked as the C module checks them ---------------------------------------------


def _timeout_value(value):
    """*value* checked and converted as the stdlib's ``settimeout`` does."""
    if value is None:
        return None
    if isinstance(value, float):
        value = float(value)
        if value != value:
            raise ValueError("Invalid value NaN (not a number)")
    else:
        value = float(_operator.index(value))  # TypeError: "'str' object cannot be interpreted..."
    if value < 0.0:
        raise ValueError("Timeout value out of range")
    return value


def _check_size(what, size, flags):
    """Raises what the C method *what* would for a bad size or flags. Reads that wait before
    calling it check first: a bad call must fail at once, not after data arrives."""
    if _operator.index(size) < 0:
        raise ValueError("negative buffersize in " + what)
    _operator.index(flags)


def _nbytes(buffer):
    try:
        with memoryview(buffer) as view:
            return view.nbytes
    except TypeError:
        return 0


def _check_buffer(what, buffer, nbytes, flags):
    """:func:`_check_size` for the ``*_into`` reads; returns the number of bytes asked for."""
    try:
        view = memoryview(buffer)
    except TypeError:
        view = None
    if view is not None and view.readonly:
        view.release()
        view = None
    if view is None:
        raise TypeError("%s() argument 1 must be read-write bytes-like object, not %s"
                        % (what, type(buffer).__name__))
    with view:
        size = view.nbytes
    nbytes = _operator.index(nbytes)
    if nbytes < 0:
        raise ValueError("negative buffersize in " + what)
    if nbytes > size:
        raise ValueError("buffer too small for requested bytes" if what == "recv_into"
                         else "nbytes is greater than the length of the buffer")
    _operator.index(flags)
    return nbytes or size
