"""TCP (optionally TLS) and UDP servers: :class:`StreamServer` and :class:`DatagramServer`.

``StreamServer(('127.0.0.1', 8000), handle).serve_forever()`` calls ``handle(socket, address)``
in a new greenlet for every connection, with a cooperative :class:`verdigris.socket.socket`;
``DatagramServer(address, handle)`` calls ``handle(data, address)`` for every datagram and
answers with :meth:`DatagramServer.sendto`. Both build on :class:`~verdigris.baseserver.BaseServer`
(the accept watcher, the spawn strategies, start/stop).

TLS
    Any keyword argument beyond StreamServer's own turns TLS on; each connection is wrapped
    (and its handshake done) in its handler's greenlet before ``handle`` sees it. Either pass
    ``ssl_context=`` a :class:`verdigris.ssl.SSLContext` (the other keywords then go to its
    ``wrap_socket``, e.g. ``do_handshake_on_connect``), or the arguments of the old
    ``ssl.wrap_socket``: ``keyfile``, ``certfile``, ``cert_reqs``, ``ca_certs``, ``ciphers``,
    ``ssl_version``, ``do_handshake_on_connect``, ``suppress_ragged_eofs``.

    .. note:: From ``keyfile``/``certfile``-style arguments verdigris builds one
       :class:`verdigris.ssl.SSLContext` for the server; gevent's ``ssl.wrap_socket`` builds a
       new context (and reloads the certificate) for every connection.
    .. note:: A stdlib :class:`ssl.SSLContext` works too: connections are still wrapped in
       verdigris's cooperative ``SSLSocket``. gevent uses the context's own class, which blocks
       the whole process unless :mod:`ssl` is monkey-patched.
"""
import functools

import _socket
from _socket import (
    AF_INET,
    AF_INET6,
    IPPROTO_TCP,
    SO_REUSEADDR,
    SOCK_DGRAM,
    SOL_SOCKET,
    TCP_NODELAY,
)

from verdigris.baseserver import BaseServer
from verdigris.socket import socket as _CooperativeSocket

__all__ = ['StreamServer', 'DatagramServer']

DEFAULT_REUSE_ADDR = 1

_accept = _socket.socket._accept
_recvfrom = _socket.socket.recvfrom
_set_c_blocking = _socket.socket.setblocking


class StreamServer(BaseServer):
    """StreamServer(listener, handle=None, backlog=None, spawn='default', **ssl_args): a TCP server.

    :param listener: an address, or a bound and listening socket (see
        :mod:`verdigris.baseserver`).
    :param handle: ``handle(socket, address)``, or override the :meth:`handle` method.
    :param backlog: the ``listen()`` backlog when the server binds the socket itself
        (default :attr:`backlog`); must be None when *listener* is a socket.
    :param spawn: ``'default'``, a pool, a pool size, None or a callable (see
        :class:`~verdigris.baseserver.BaseServer`).
    :param ssl_args: turn TLS on (see the module's documentation).

    Errors raised by ``accept()`` or by *spawn* pause accepting for :attr:`min_delay` seconds,
    doubling up to :attr:`max_delay`; errors inside a handler concern its connection only.
    """

    #: The ``listen()`` backlog of sockets the server creates.
    backlog = 128
    #: ``SO_REUSEADDR`` for sockets the server creates (None leaves it alone).
    reuse_addr = DEFAULT_REUSE_ADDR
    #: Whether accepted TCP connections get ``TCP_NODELAY`` (Nagle's algorithm off).
    #: False here as in gevent; :class:`verdigris.pywsgi.WSGIServer` turns it on.
    nodelay = False

    def __init__(self, listener, handle=None, backlog=None, spawn='default', **ssl_args):
        BaseServer.__init__(self, listener, handle=handle, spawn=spawn)
        try:
            if ssl_args:
                self.wrap_socket, self.ssl_args = _tls_wrapper(dict(ssl_args))
            else:
                self.ssl_args = None
            if backlog is not None:
                if self.socket is not None:
                    raise TypeError('backlog must be None when a socket instance is passed')
                self.backlog = backlog
        except BaseException:
            self.close()
            raise

    @property
    def ssl_enabled(self):
        """True if connections are wrapped in TLS."""
        return self.ssl_args is not None

    def init_socket(self):
        """Binds and listens (for an address), then chooses the handler (TLS or plain)."""
        if self.socket is None:
            self.socket = self.get_listener(self.address, self.backlog, self.family)
            self.address = self.socket.getsockname()
        elif not isinstance(self.socket, _CooperativeSocket):
            # A stdlib socket: accept() runs when the watcher says a connection is waiting, but
            # another process sharing the socket may take it first; never block the hub then.
            _set_c_blocking(self.socket, False)
        sock = self.socket
        self._client_kind = (sock.family, sock.type, sock.proto)
        self._tcp = sock.family in (AF_INET, AF_INET6)
        self._handle = self.wrap_socket_and_handle if self.ssl_args is not None else self.handle

    @classmethod
    def get_listener(cls, address, backlog=None, family=None):
        """A new cooperative socket bound to *address* and listening."""
        if backlog is None:
            backlog = cls.backlog
        return _tcp_listener(address, backlog=backlog, reuse_addr=cls.reuse_addr, family=family)

    def do_read(self):
        try:
            fd, address = _accept(self.socket)
        except BlockingIOError:
            return None
        family, type_, proto = self._client_kind
        sock = _CooperativeSocket(family, type_, proto, fileno=fd)
        if self.nodelay and self._tcp:
            sock.setsockopt(IPPROTO_TCP, TCP_NODELAY, 1)
        return sock, address

    def do_close(self, sock, *args):
        sock.close()

    def wrap_socket_and_handle(self, client_socket, address):
        """The handler when TLS is on: wraps (and handshakes) in the connection's greenlet."""
        with self.wrap_socket(client_socket, **self.ssl_args) as ssl_socket:
            return self.handle(ssl_socket, address)


class DatagramServer(BaseServer):
    """DatagramServer(listener, handle=None, spawn='default'): a UDP server.

    ``handle(data, address)`` runs for every datagram (at most 8192 bytes are read of each);
    answer with :meth:`sendto`.
    """

    reuse_addr = DEFAULT_REUSE_ADDR

    def __init__(self, *args, **kwargs):
        BaseServer.__init__(self, *args, **kwargs)
        from verdigris.lock import Semaphore

        self._writelock = Semaphore()

    def init_socket(self):
        if self.socket is None:
            self.socket = self.get_listener(self.address, self.family)
            self.address = self.socket.getsockname()
        elif not isinstance(self.socket, _CooperativeSocket):
            _set_c_blocking(self.socket, False)

    @classmethod
    def get_listener(cls, address, family=None):
        """A new cooperative UDP socket bound to *address*."""
        return _udp_socket(address, reuse_addr=cls.reuse_addr, family=family)

    def do_read(self):
        try:
            return _recvfrom(self.socket, 8192)
        except BlockingIOError:
            return None

    def sendto(self, *args):
        """``socket.sendto(data[, flags], address)`` on the server's socket, one sender at a time."""
        with self._writelock:
            return self.socket.sendto(*args)


def _bind(sock, address):
    try:
        sock.bind(address)
    except OSError as ex:
        if getattr(ex, 'strerror', None) is not None:
            ex.strerror = '%s: %r' % (ex.strerror, address)
        sock.close()
        raise


def _tcp_listener(address, backlog=50, reuse_addr=None, family=AF_INET):
    """A cooperative TCP socket bound to *address* and listening."""
    sock = _CooperativeSocket(family=family)
    if reuse_addr is not None:
        sock.setsockopt(SOL_SOCKET, SO_REUSEADDR, reuse_addr)
    _bind(sock, address)
    sock.listen(backlog)
    sock.setblocking(False)
    return sock


def _udp_socket(address, backlog=50, reuse_addr=None, family=AF_INET):
    """A cooperative UDP socket bound to *address* (*backlog* is ignored)."""
    sock = _CooperativeSocket(family=family, type=SOCK_DGRAM)
    if reuse_addr is not None:
        sock.setsockopt(SOL_SOCKET, SO_REUSEADDR, reuse_addr)
    _bind(sock, address)
    return sock


# The arguments of the old ssl.wrap_socket that configure a context rather than a connection.
_CONTEXT_ARGS = ('keyfile', 'certfile', 'cert_reqs', 'ca_certs', 'ciphers', 'ssl_version')


def _tls_wrapper(ssl_args):
    """``(wrap_socket, per-connection keyword arguments)`` for a server's *ssl_args*."""
    try:
        from verdigris import ssl as _ssl
    except ImportError as ex:
        raise ImportError('TLS servers need verdigris.ssl, which failed to import: %s' % (ex,)) from ex
    ssl_args.setdefault('server_side', True)
    context = ssl_args.pop('ssl_context', None)
    if context is None:
        protocol = ssl_args.pop('ssl_version', None)
        if protocol is None or protocol == _ssl.PROTOCOL_SSLv23:
            protocol = _ssl.PROTOCOL_TLS_SERVER
        context = _ssl.SSLContext(protocol)
        certfile = ssl_args.pop('certfile', None)
        keyfile = ssl_args.pop('keyfile', None)
        if certfile or keyfile:
            context.load_cert_chain(certfile or keyfile, keyfile)
        cert_reqs = ssl_args.pop('cert_reqs', None)
        if cert_reqs is not None:
            context.verify_mode = cert_reqs
        ca_certs = ssl_args.pop('ca_certs', None)
        if ca_certs:
            context.load_verify_locations(ca_certs)
        ciphers = ssl_args.pop('ciphers', None)
        if ciphers:
            context.set_ciphers(ciphers)
    else:
        unexpected = [name for name in _CONTEXT_ARGS if name in ssl_args]
        if unexpected:
            raise TypeError('%s cannot be combined with ssl_context' % (', '.join(unexpected),))
    if not issubclass(getattr(context, 'sslsocket_class', object), _ssl.SSLSocket):
        # A stdlib context: its own wrap_socket would make a blocking SSLSocket, which would
        # freeze every greenlet. Make a cooperative one with the same context instead.
        return functools.partial(_wrap_cooperatively, context), ssl_args
    return context.wrap_socket, ssl_args


def _wrap_cooperatively(context, sock, server_side=False, do_handshake_on_connect=True,
                        suppress_ragged_eofs=True, server_hostname=None, session=None):
    # What SSLContext.wrap_socket does, with verdigris's SSLSocket class.
    from verdigris.ssl import SSLSocket

    return SSLSocket._create(sock=sock, server_side=server_side,
                             do_handshake_on_connect=do_handshake_on_connect,
                             suppress_ragged_eofs=suppress_ragged_eofs,
                             server_hostname=server_hostname, context=context, session=session)
