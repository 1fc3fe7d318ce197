"""Cooperative TLS: the stdlib's :mod:`ssl` API, blocking only the calling greenlet.

:class:`SSLContext` is the stdlib's class whose ``wrap_socket`` returns a cooperative
:class:`SSLSocket`. An :class:`SSLSocket` is a :class:`verdigris.socket.socket` (so its fd stays
non-blocking) driving the C ``_ssl`` object: every OpenSSL call that needs the peer
(``do_handshake``, ``read``, ``write``, ``unwrap``) is retried after parking the greenlet in the
loop whenever OpenSSL reports ``SSLWantReadError``/``SSLWantWriteError``. Timeouts raise the
stdlib's ``socket.timeout`` with the stdlib's messages ("The read operation timed out", ...); a
timeout of 0.0 lets the ``SSLWant*Error`` through, as with the stdlib.

Everything else of :mod:`ssl` (constants, exceptions, ``SSLObject``/``MemoryBIO``, certificate
helpers) is re-exported unchanged (``__imports__``).

.. note:: As with the stdlib since 3.7, ``SSLSocket`` has no public constructor (gevent's still
   accepts the old ``SSLSocket(sock, keyfile, ...)`` arguments); use
   ``SSLContext.wrap_socket`` or :func:`wrap_socket`.
.. note:: :func:`wrap_socket` (removed from the stdlib in 3.12, kept by gevent) defaults to a
   client or server context matching *server_side*, without hostname checking, instead of the
   deprecated ``PROTOCOL_TLS``.
"""
import errno as _errno
import ssl as __ssl__
import types as _types
import warnings as _warnings
from time import monotonic as _monotonic

from verdigris.socket import _GLOBAL_DEFAULT_TIMEOUT, create_connection, socket
from verdigris.socket import timeout_default as _timeout_default

_ssl = __ssl__._ssl
_StdlibSSLContext = __ssl__.SSLContext
_CSSLContext = _ssl._SSLContext
# The stdlib's functions, kept before monkey-patching replaces them with the ones below.
_stdlib_create_default_context = __ssl__.create_default_context
_stdlib_create_unverified_context = __ssl__._create_unverified_context

__implements__ = [
    "SSLContext",
    "SSLSocket",
    "get_server_certificate",
    "create_default_context",
    "_create_unverified_context",
    "_create_default_https_context",
    "_create_stdlib_context",
]
__extensions__ = []
if hasattr(__ssl__, "wrap_socket"):
    __implements__.append("wrap_socket")
else:
    __extensions__.append("wrap_socket")

# Everything public, except the modules and the socket names the stdlib module merely imports
# (``socket`` is the stdlib's class, ``create_connection`` its blocking function).
__imports__ = [name for name in dir(__ssl__)
               if not name.startswith("_") and name not in __implements__
               and name not in ("socket", "create_connection", "namedtuple")
               and not isinstance(getattr(__ssl__, name), _types.ModuleType)]

for _name in __imports__:
    globals()[_name] = getattr(__ssl__, _name)
del _name

__all__ = __implements__ + __extensions__ + __imports__

from ssl import (  # noqa: E402 - also in __imports__; named for readers and linters
    CERT_NONE,
    CERT_REQUIRED,
    CHANNEL_BINDING_TYPES,
    DER_cert_to_PEM_cert,
    OP_NO_SSLv3,
    PROTOCOL_TLS_CLIENT,
    PROTOCOL_TLS_SERVER,
    SSL_ERROR_EOF,
    SOCK_STREAM,
    SOL_SOCKET,
    SO_TYPE,
    SSLError,
    SSLWantReadError,
    SSLWantWriteError,
    TLSVersion,
)

_READ = 1
_WRITE = 2
_READ_TIMED_OUT = "The read operation timed out"
_WRITE_TIMED_OUT = "The write operation timed out"
_HANDSHAKE_TIMED_OUT = "The handshake operation timed out"


class SSLContext(_StdlibSSLContext):
    """The stdlib's ``SSLContext``, whose ``wrap_socket`` returns a cooperative
    :class:`SSLSocket` (``sslsocket_class``)."""

    __slots__ = ()

    # The stdlib's property setters below reach the C base with ``super(SSLContext, SSLContext)``,
    # naming the *module global*. Once monkey-patching rebinds ``ssl.SSLContext`` to this class,
    # that would find these very setters again, forever; so they go to the C base directly.

    @_StdlibSSLContext.options.setter
    def options(self, value):
        _CSSLContext.options.__set__(self, value)

    @_StdlibSSLContext.verify_flags.setter
    def verify_flags(self, value):
        _CSSLContext.verify_flags.__set__(self, value)

    @_StdlibSSLContext.verify_mode.setter
    def verify_mode(self, value):
        _CSSLContext.verify_mode.__set__(self, value)

    @_StdlibSSLContext.minimum_version.setter
    def minimum_version(self, value):
        if value == TLSVersion.SSLv3:
            self.options &= ~OP_NO_SSLv3
        _CSSLContext.minimum_version.__set__(self, value)

    @_StdlibSSLContext.maximum_version.setter
    def maximum_version(self, value):
        _CSSLContext.maximum_version.__set__(self, value)

    @_StdlibSSLContext._msg_callback.setter
    def _msg_callback(self, callback):
        # This setter does real work (it wraps the callback), so it must run; it names the module
        # global too, which is therefore pointed back at the stdlib's class for the duration of
        # the call (no greenlet switch can happen in it).
        patched = __ssl__.SSLContext
        __ssl__.SSLContext = _StdlibSSLContext
        try:
            _StdlibSSLContext._msg_callback.fset(self, callback)
        finally:
            __ssl__.SSLContext = patched


def _ours(context):
    # The stdlib builds contexts with its module's SSLContext; their class is switched to ours
    # (same layout: this class adds no slots), so the stdlib's defaults, which change between
    # Python versions, are followed without being copied.
    if type(context) is _StdlibSSLContext:
        context.__class__ = SSLContext
    return context


def create_default_context(purpose=__ssl__.Purpose.SERVER_AUTH, *, cafile=None, capath=None,
                           cadata=None):
    """``ssl.create_default_context``, returning a cooperative :class:`SSLContext`."""
    return _ours(_stdlib_create_default_context(purpose, cafile=cafile, capath=capath,
                                                cadata=cadata))


def _create_unverified_context(*args, **kwargs):
    """``ssl._create_unverified_context``, returning a cooperative :class:`SSLContext`."""
    return _ours(_stdlib_create_unverified_context(*args, **kwargs))


_create_default_https_context = create_default_context
_create_stdlib_context = _create_unverified_context


class SSLSocket(socket):
    """A cooperative ``ssl.SSLSocket``; instances come from :meth:`SSLContext.wrap_socket`.

    Same API as the stdlib's: ``do_handshake``, ``read``/``write``, ``recv``/``recv_into``/
    ``send``/``sendall``, ``unwrap``, ``getpeercert``, ``cipher``, ``version``, ``pending``,
    ``makefile``, ... Waits block only the calling greenlet; ``sendall``'s timeout bounds the
    whole call.
    """

    def __init__(self, *args, **kwargs):
        raise TypeError(
            "%s does not have a public constructor. Instances are returned by "
            "SSLContext.wrap_socket()." % type(self).__name__)

    @classmethod
    def _create(cls, sock, server_side=False, do_handshake_on_connect=True,
                suppress_ragged_eofs=True, server_hostname=None, context=None, session=None):
        if sock.getsockopt(SOL_SOCKET, SO_TYPE) != SOCK_STREAM:
            raise NotImplementedError("only stream sockets are supported")
        if server_side:
            if server_hostname:
                raise ValueError("server_hostname can only be specified in client mode")
            if session is not None:
                raise ValueError("session can only be specified in client mode")
        if context.check_hostname and not server_hostname:
            raise ValueError("check_hostname requires server_hostname")
        kwargs = dict(family=sock.family, type=sock.type, proto=sock.proto,
                      fileno=sock.fileno())
        self = cls.__new__(cls, **kwargs)
        socket.__init__(self, **kwargs)
        sock_timeout = sock.gettimeout()
        sock.detach()  # this object owns the fd from now on
        self._context = context
        self._session = session
        self._closed = False
        self._sslobj = None
        self.server_side = server_side
        self.server_hostname = context._encode_hostname(server_hostname)
        self.do_handshake_on_connect = do_handshake_on_connect
        self.suppress_ragged_eofs = suppress_ragged_eofs
        try:
            self.getpeername()
        except OSError as e:
            if e.errno != _errno.ENOTCONN:
                raise
            connected = False
            self._refuse_early_data()
        else:
            connected = True
        self.settimeout(sock_timeout)
        self._connected = connected
        if connected:
            try:
                self._sslobj = context._wrap_socket(self, server_side, self.server_hostname,
                                                    owner=self, session=self._session)
                if do_handshake_on_connect:
                    if self.timeout == 0.0:
                        raise ValueError("do_handshake_on_connect should not be specified for "
                                         "non-blocking sockets")
                    self.do_handshake()
            except (OSError, ValueError):
                self.close()
                raise
        return self

    def _refuse_early_data(self):
        # An unconnected socket with data already received (CVE-2023-40217): that data did not
        # come through TLS, so the stdlib refuses it rather than let it pass as if it had.
        blocking = self.timeout
        self.timeout = 0.0
        try:
            data = socket.recv(self, 1)
        except OSError as e:
            if e.errno not in (_errno.ENOTCONN, _errno.EINVAL):
                raise
            data = b""
        finally:
            self.timeout = blocking
        if data:
            reason = "Closed before TLS handshake with data in recv buffer."
            error = SSLError(_errno.ENOTCONN, reason)
            error.reason = reason
            error.library = None
            try:
                self.close()
            except OSError:
                pass
            raise error

    # -- the OpenSSL retry loop ----------------------------------------------------------------

    def _ssl_io(self, func, args, message, timeout=_timeout_default):
        """``func(*args)``, retried until OpenSSL stops wanting the peer, within *timeout*
        seconds (default: the socket's). *message* None: by direction, as for unwrap."""
        if timeout is _timeout_default:
            timeout = self.timeout
        deadline = None
        while True:
            try:
                return func(*args)
            except SSLWantReadError:
                if timeout == 0.0:
                    raise
                events = _READ
            except SSLWantWriteError:
                if timeout == 0.0:
                    raise
                events = _WRITE
            if deadline is None and timeout is not None:
                deadline = _monotonic() + timeout
            self._wait(events, deadline, False,
                       message or (_READ_TIMED_OUT if events == _READ else _WRITE_TIMED_OUT))

    def do_handshake(self, block=False):
        """Performs the TLS handshake (done by ``wrap_socket``/``connect`` unless
        ``do_handshake_on_connect=False``). *block*: wait even on a non-blocking socket."""
        self._check_connected()
        timeout = self.timeout
        try:
            if timeout == 0.0 and block:
                self.timeout = None
            self._ssl_io(self._sslobj.do_handshake, (), _HANDSHAKE_TIMED_OUT)
        finally:
            self.timeout = timeout

    def read(self, len=1024, buffer=None):
        """Reads up to *len* bytes (into *buffer* if given: returns the count); ``b''`` at the
        end of the stream (also on a ragged EOF with ``suppress_ragged_eofs``)."""
        self._checkClosed()
        sslobj = self._sslobj
        if sslobj is None:
            raise ValueError("Read on closed or unwrapped SSL socket.")
        try:
            if buffer is not None:
                return self._ssl_io(sslobj.read, (len, buffer), _READ_TIMED_OUT)
            return self._ssl_io(sslobj.read, (len,), _READ_TIMED_OUT)
        except SSLError as x:
            if x.args[0] == SSL_ERROR_EOF and self.suppress_ragged_eofs:
                return 0 if buffer is not None else b""
            raise

    def write(self, data):
        """Writes *data*; returns the number of bytes written."""
        self._checkClosed()
        if self._sslobj is None:
            raise ValueError("Write on closed or unwrapped SSL socket.")
        return self._ssl_io(self._sslobj.write, (data,), _WRITE_TIMED_OUT)

    def unwrap(self):
        """Ends TLS (close_notify both ways) and returns the socket for plain use."""
        if not self._sslobj:
            raise ValueError("No SSL wrapper around " + str(self))
        sock = self._ssl_io(self._sslobj.shutdown, (), None)
        self._sslobj = None
        return sock

    # -- the socket API over TLS ---------------------------------------------------------------

    def recv(self, buflen=1024, flags=0):
        if self._sslobj is None:
            return socket.recv(self, buflen, flags)
        if flags != 0:
            raise ValueError("non-zero flags not allowed in calls to recv() on %s" % self.__class__)
        return self.read(buflen)

    def recv_into(self, buffer, nbytes=None, flags=0):
        if buffer is not None and nbytes is None:
            nbytes = len(buffer)
        elif nbytes is None:
            nbytes = 1024
        if self._sslobj is None:
            return socket.recv_into(self, buffer, nbytes, flags)
        if flags != 0:
            raise ValueError(
                "non-zero flags not allowed in calls to recv_into() on %s" % self.__class__)
        return self.read(nbytes, buffer)

    def send(self, data, flags=0, timeout=_timeout_default):
        self._checkClosed()
        if self._sslobj is None:
            return socket.send(self, data, flags, timeout)
        if flags != 0:
            raise ValueError("non-zero flags not allowed in calls to send() on %s" % self.__class__)
        return self._ssl_io(self._sslobj.write, (data,), _WRITE_TIMED_OUT, timeout)

    def sendall(self, data, flags=0):
        self._checkClosed()
        if self._sslobj is None:
            return socket.sendall(self, data, flags)
        if flags != 0:
            raise ValueError(
                "non-zero flags not allowed in calls to sendall() on %s" % self.__class__)
        deadline = None if self.timeout is None else _monotonic() + self.timeout
        with memoryview(data) as whole, whole.cast("B") as view:
            count, amount = 0, len(view)
            while count < amount:
                # Never 0.0, which would mean "non-blocking" rather than "expired".
                timeout = None if deadline is None else max(deadline - _monotonic(), 1e-6)
                count += self._ssl_io(self._sslobj.write, (view[count:],), _WRITE_TIMED_OUT,
                                      timeout)
        return None

    def sendfile(self, file, offset=0, count=None):
        if self._sslobj is None:
            return socket.sendfile(self, file, offset, count)
        return self._sendfile_use_send(file, offset, count)  # os.sendfile would bypass TLS

    def recvfrom(self, buflen=1024, flags=0):
        if self._sslobj is not None:
            raise ValueError("recvfrom not allowed on instances of %s" % self.__class__)
        return socket.recvfrom(self, buflen, flags)

    def recvfrom_into(self, buffer, nbytes=None, flags=0):
        if self._sslobj is not None:
            raise ValueError("recvfrom_into not allowed on instances of %s" % self.__class__)
        return socket.recvfrom_into(self, buffer, nbytes or 0, flags)

    def sendto(self, data, flags_or_addr, addr=None):
        if self._sslobj is not None:
            raise ValueError("sendto not allowed on instances of %s" % self.__class__)
        if addr is None:
            return socket.sendto(self, data, flags_or_addr)
        return socket.sendto(self, data, flags_or_addr, addr)

    def recvmsg(self, *args, **kwargs):
        raise NotImplementedError("recvmsg not allowed on instances of %s" % self.__class__)

    def recvmsg_into(self, *args, **kwargs):
        raise NotImplementedError("recvmsg_into not allowed on instances of %s" % self.__class__)

    def sendmsg(self, *args, **kwargs):
        raise NotImplementedError("sendmsg not allowed on instances of %s" % self.__class__)

    def pending(self):
        """Decrypted bytes buffered by OpenSSL, readable without waiting."""
        self._checkClosed()
        return self._sslobj.pending() if self._sslobj is not None else 0

    def shutdown(self, how):
        self._checkClosed()
        self._sslobj = None
        socket.shutdown(self, how)

    def _real_close(self):
        self._sslobj = None
        socket._real_close(self)

    def dup(self):
        raise NotImplementedError("Can't dup() %s instances" % self.__class__.__name__)

    # -- connections ---------------------------------------------------------------------------

    def _real_connect(self, addr, connect_ex):
        if self.server_side:
            raise ValueError("can't connect in server-side mode")
        if self._connected or self._sslobj is not None:
            raise ValueError("attempt to connect already-connected SSLSocket!")
        self._sslobj = self.context._wrap_socket(self, False, self.server_hostname, owner=self,
                                                 session=self._session)
        try:
            if connect_ex:
                rc = socket.connect_ex(self, addr)
            else:
                rc = None
                socket.connect(self, addr)
            if not rc:
                self._connected = True
                if self.do_handshake_on_connect:
                    self.do_handshake()
            return rc
        except (OSError, ValueError):
            self._sslobj = None
            raise

    def connect(self, addr):
        """Connects, then performs the handshake (unless ``do_handshake_on_connect=False``)."""
        self._real_connect(addr, False)

    def connect_ex(self, addr):
        return self._real_connect(addr, True)

    def accept(self):
        """Accepts a connection and wraps it server-side (handshake included, by default)."""
        newsock, addr = socket.accept(self)
        newsock = self.context.wrap_socket(
            newsock, do_handshake_on_connect=self.do_handshake_on_connect,
            suppress_ragged_eofs=self.suppress_ragged_eofs, server_side=True)
        return newsock, addr

    # -- what the stdlib's SSLSocket delegates to the C object ----------------------------------

    @property
    def context(self):
        return self._context

    @context.setter
    def context(self, ctx):
        self._context = ctx
        self._sslobj.context = ctx

    @property
    def session(self):
        if self._sslobj is not None:
            return self._sslobj.session
        return None

    @session.setter
    def session(self, session):
        self._session = session
        if self._sslobj is not None:
            self._sslobj.session = session

    @property
    def session_reused(self):
        if self._sslobj is not None:
            return self._sslobj.session_reused
        return None

    def _checkClosed(self, msg=None):
        pass

    def _check_connected(self):
        if not self._connected:
            # Raises ENOTCONN if it really is not connected; it may be without _connected set,
            # e.g. after a connect_ex that first returned EAGAIN.
            self.getpeername()

    def getpeercert(self, binary_form=False):
        self._checkClosed()
        self._check_connected()
        return self._sslobj.getpeercert(binary_form)

    def selected_npn_protocol(self):
        self._checkClosed()
        _warnings.warn("ssl NPN is deprecated, use ALPN instead", DeprecationWarning,
                       stacklevel=2)
        return None

    def selected_alpn_protocol(self):
        self._checkClosed()
        if self._sslobj is None or not _ssl.HAS_ALPN:
            return None
        return self._sslobj.selected_alpn_protocol()

    def cipher(self):
        self._checkClosed()
        return None if self._sslobj is None else self._sslobj.cipher()

    def shared_ciphers(self):
        self._checkClosed()
        return None if self._sslobj is None else self._sslobj.shared_ciphers()

    def compression(self):
        self._checkClosed()
        return None if self._sslobj is None else self._sslobj.compression()

    def version(self):
        self._checkClosed()
        return None if self._sslobj is None else self._sslobj.version()

    def get_channel_binding(self, cb_type="tls-unique"):
        if self._sslobj is not None:
            return self._sslobj.get_channel_binding(cb_type)
        if cb_type not in CHANNEL_BINDING_TYPES:
            raise ValueError("{0} channel binding type not implemented".format(cb_type))
        return None

    def verify_client_post_handshake(self):
        if self._sslobj:
            return self._sslobj.verify_client_post_handshake()
        raise ValueError("No SSL wrapper around " + str(self))

    if hasattr(_StdlibSSLContext.sslsocket_class, "get_verified_chain"):  # Python 3.13+
        def get_verified_chain(self):
            chain = self._sslobj.get_verified_chain()
            return [] if chain is None else [c.public_bytes(_ssl.ENCODING_DER) for c in chain]

        def get_unverified_chain(self):
            chain = self._sslobj.get_unverified_chain()
            return [] if chain is None else [c.public_bytes(_ssl.ENCODING_DER) for c in chain]


SSLContext.sslsocket_class = SSLSocket


def wrap_socket(sock, keyfile=None, certfile=None, server_side=False, cert_reqs=CERT_NONE,
                ssl_version=None, ca_certs=None, do_handshake_on_connect=True,
                suppress_ragged_eofs=True, ciphers=None):
    """Wraps *sock* in a cooperative :class:`SSLSocket` with a new context (the old
    ``ssl.wrap_socket``; gevent keeps it). Prefer ``SSLContext.wrap_socket``.

    *ssl_version* None picks ``PROTOCOL_TLS_SERVER`` or ``PROTOCOL_TLS_CLIENT`` by
    *server_side*; the context never checks host names (there is no *server_hostname* here).
    """
    if server_side and not certfile:
        raise ValueError("certfile must be specified for server-side operations")
    if keyfile and not certfile:
        raise ValueError("certfile must be specified")
    if ssl_version is None:
        ssl_version = PROTOCOL_TLS_SERVER if server_side else PROTOCOL_TLS_CLIENT
    context = SSLContext(ssl_version)
    context.check_hostname = False
    context.verify_mode = cert_reqs
    if ca_certs:
        context.load_verify_locations(ca_certs)
    if certfile:
        context.load_cert_chain(certfile, keyfile)
    if ciphers:
        context.set_ciphers(ciphers)
    return context.wrap_socket(sock=sock, server_side=server_side,
                               do_handshake_on_connect=do_handshake_on_connect,
                               suppress_ragged_eofs=suppress_ragged_eofs)


def get_server_certificate(addr, ssl_version=PROTOCOL_TLS_CLIENT, ca_certs=None,
                           timeout=_GLOBAL_DEFAULT_TIMEOUT):
    """The PEM certificate of the server at *addr* (``(host, port)``), fetched cooperatively;
    verified against *ca_certs* if given."""
    host, _port = addr
    cert_reqs = CERT_NONE if ca_certs is None else CERT_REQUIRED
    context = _create_stdlib_context(ssl_version, cert_reqs=cert_reqs, cafile=ca_certs)
    with create_connection(addr, timeout=timeout) as sock:
        with context.wrap_socket(sock, server_hostname=host) as sslsock:
            dercert = sslsock.getpeercert(True)
    return DER_cert_to_PEM_cert(dercert)
