"""Cooperative sockets: the stdlib's :mod:`socket` API, blocking only the calling greenlet.

Everything the stdlib module offers is here: the names it re-implements (``__implements__``: the
socket class, ``create_connection``, ``create_server``, ``socketpair``, ``fromfd`` and the DNS
functions, which go through the hub's resolver), the names it re-exports unchanged
(``__imports__``: exceptions, constants, helpers) and gevent's extensions (``wait_read``,
``wait_write``, ``wait_readwrite``, ``wait``, ``cancel_wait``).

How a socket blocks
    :class:`socket` subclasses the C ``_socket.socket`` (as the stdlib's class does), so it *is*
    the native socket: ``_ssl`` and other C code accept it as such. Its fd is always in
    non-blocking mode; the timeout the user sets lives in Python (the ``timeout`` slot). A read
    first asks the loop for the fd's cached readiness (``loop.fd_readiness``, no system call): if
    the fd may be readable it tries the system call, and only on ``EAGAIN`` parks the greenlet in
    the loop (``loop.wait_fd``) and tries again; if the fd is known not to be readable (or the
    last read emptied it) it parks straight away, so the frequent "no data yet" case costs
    neither a failing system call nor a Python exception. A write tries at once (there is room in
    the send buffer far more often than not) and waits only after ``EAGAIN``. The comments of
    :meth:`socket._wait` and of the "receiving" and "sending" sections give the details.
    A timeout raises ``socket.timeout('timed out')`` (``TimeoutError``),
    a timeout of 0.0 makes the socket non-blocking (``BlockingIOError``), None blocks (the
    greenlet) forever; new sockets start with ``socket.getdefaulttimeout()``.

Closing
    ``close()`` (and ``detach()``, and the garbage collection of a socket nobody closed) first
    tells the loop (``loop.close_fd``): a greenlet waiting on the socket wakes with
    ``OSError(EBADF, 'File descriptor was closed in another greenlet')``, and the poller forgets
    the fd before its number can be reused. Files from ``makefile()`` keep the fd open until they
    are closed too, as in the stdlib.

A socket belongs to the hub of the thread that created it, as in gevent: other threads may close
it, but not wait on it.

.. note:: Two greenlets may wait on the same socket in the same direction at once; both are woken
   and one of them gets the data. gevent raises ``ConcurrentObjectUseError`` for the second.
.. note:: ``shutdown()`` does not interrupt waiters with an error as gevent's does: the kernel
   reports the shut-down socket as readable/writable, so a ``recv`` waiting on it returns ``b''``
   (what a blocked thread sees with the stdlib).
.. note:: ``settimeout``/``setblocking`` on a closed socket raise ``OSError(EBADF)``, as the
   stdlib's do; gevent's accept them.
.. note:: ``create_server`` returns a cooperative socket; gevent re-exports the stdlib's, which
   returns a blocking one unless the socket module is monkey-patched.
"""
import _socket
import os as _os
import socket as __socket__
from errno import EAGAIN, EALREADY, EBADF, EINPROGRESS, EINTR, EISCONN, EWOULDBLOCK
from socket import (  # also in __imports__; named here for readers and linters
    AF_INET,
    AF_INET6,
    IPPROTO_IPV6,
    IPV6_V6ONLY,
    SO_ERROR,
    SO_REUSEADDR,
    SOCK_STREAM,
    SOL_SOCKET,
    AddressFamily,
    SocketKind,
    error,
    gaierror,
    has_dualstack_ipv6,
    has_ipv6,
)
from time import monotonic as _monotonic

from verdigris import _socketcommon
from verdigris._socketfile import _SocketFileMixin
from verdigris._socketcommon import (  # noqa: F401 - re-exported
    __dns__,
    __extensions__,
    __imports__,
    __implements__,
    _check_buffer,
    _check_size,
    _nbytes,
    _resolve_addr,
    _timeout_error,
    _timeout_value,
    cancel_wait,
    cancel_wait_ex,
    getaddrinfo,
    gethostbyaddr,
    gethostbyname,
    gethostbyname_ex,
    getfqdn,
    getnameinfo,
    timeout_default,
    wait,
    wait_read,
    wait_readwrite,
    wait_write,
)
from verdigris.hub import get_hub

for _name in __imports__:
    globals()[_name] = getattr(__socket__, _name)
del _name

__all__ = __implements__ + __extensions__ + __imports__

_GLOBAL_DEFAULT_TIMEOUT = __socket__._GLOBAL_DEFAULT_TIMEOUT
SocketIO = __socket__.SocketIO

_READ = 1
_WRITE = 2

# The C methods, bound once: the hot paths call them as plain functions.
_base = _socket.socket
_fileno = _base.fileno
_recv = _base.recv
_recv_into = _base.recv_into
_send = _base.send
_set_c_timeout = _base.settimeout
_getdefaulttimeout = _socket.getdefaulttimeout
_CONNECTING = (EINPROGRESS, EALREADY, EWOULDBLOCK, EAGAIN, EINTR)


class socket(_SocketFileMixin, _socket.socket):
    """A cooperative ``socket.socket(family=-1, type=-1, proto=-1, fileno=None)``.

    Same API as the stdlib's class; blocking calls (``accept``, ``connect``, ``recv*``,
    ``send*``, ``sendall``, ``sendfile``) block only the calling greenlet. See the module's
    documentation for how waits, timeouts and ``close()`` work.
    """

    __slots__ = ("__weakref__", "_io_refs", "_closed", "timeout", "_loop", "_drained")

    def __init__(self, family=-1, type=-1, proto=-1, fileno=None):
        if fileno is None:
            if family == -1:
                family = AF_INET
            if type == -1:
                type = SOCK_STREAM
            if proto == -1:
                proto = 0
        _base.__init__(self, family, type, proto, fileno)
        self._io_refs = 0
        self._closed = False
        self._drained = False  # the last recv came back short (see "receiving" below)
        self._loop = get_hub().loop
        _set_c_timeout(self, 0.0)  # the fd stays non-blocking for its whole life
        self.timeout = _getdefaulttimeout()

    def __del__(self):
        # Collected without close(): the C finalizer closes the fd, so the loop must forget it
        # first, or a socket that gets the same fd number would inherit its stale registration.
        try:
            self._forget_fd()
        except Exception:  # noqa: BLE001 - half-built object, destroyed loop, interpreter exit
            pass
        _base.__del__(self)

    def _forget_fd(self):
        """Tells the loop the fd is going away: its waiters wake with EBADF, its registration is
        dropped. From another thread (the loop is its creator's), this is queued to the loop."""
        fd = _fileno(self)
        if fd >= 0:
            loop = self._loop
            if loop.owned_by_current_thread():
                loop.close_fd(fd)
            else:
                loop.run_callback_threadsafe(loop.close_fd, fd)

    # -- the object ----------------------------------------------------------------------------

    def __repr__(self):
        closed = getattr(self, "_closed", False)
        text = "<%s.%s%s fd=%i, family=%s, type=%s, proto=%i" % (
            type(self).__module__, type(self).__qualname__, " [closed]" if closed else "",
            _fileno(self), self.family, self.type, self.proto)
        if not closed:
            for label, method in ((", laddr=%s", self.getsockname), (", raddr=%s", self.getpeername)):
                try:
                    address = method()
                except OSError:
                    continue
                if address:
                    text += label % (address,)
        return text + ">"

    def __getstate__(self):
        raise TypeError("cannot pickle %r object" % type(self).__name__)

    def __enter__(self):
        return self

    def __exit__(self, *args):
        if not self._closed:
            self.close()

    @property
    def family(self):
        """The address family, as an ``AddressFamily`` member when it is one."""
        return _socketcommon._intenum(_base.family.__get__(self), AddressFamily)

    @property
    def type(self):
        """The socket type, as a ``SocketKind`` member when it is one."""
        return _socketcommon._intenum(_base.type.__get__(self), SocketKind)

    def get_inheritable(self):
        return _os.get_inheritable(self.fileno())

    def set_inheritable(self, inheritable):
        _os.set_inheritable(self.fileno(), inheritable)

    # -- timeouts ------------------------------------------------------------------------------

    def settimeout(self, value):
        """Sets the timeout of blocking operations: seconds, 0.0 (non-blocking) or None (block)."""
        value = _timeout_value(value)
        if _fileno(self) < 0:
            raise OSError(EBADF, "Bad file descriptor")
        self.timeout = value

    def gettimeout(self):
        """The timeout in seconds, or None."""
        return self.timeout

    def setblocking(self, flag):
        """``setblocking(True)`` is ``settimeout(None)``, ``setblocking(False)`` ``settimeout(0.0)``."""
        self.settimeout(None if flag else 0.0)

    def getblocking(self):
        """False for a non-blocking socket (timeout 0.0), True otherwise."""
        return self.timeout != 0.0

    # -- waiting -------------------------------------------------------------------------------

    def _wait(self, events, deadline, eagain=True, message="timed out"):
        """Parks until the fd is ready for *events*; raises ``socket.timeout(message)`` past
        *deadline* (a ``time.monotonic()`` value, or None).

        Which *eagain* to pass to ``loop.wait_fd`` depends on what the caller knows:

        * The system call just failed with EAGAIN: True, and it is required. The cached
          readiness bit is stale (the kernel said "not ready" after epoll said "ready"); kept, it
          would end the wait at once and the socket would spin.
        * The cached bit is 0 (``fd_readiness``): either value does the same, since there is
          nothing to drop and nothing to confirm. The poller's invariant (a 0 bit means the
          kernel will report the next readiness as a new edge, and a fresh registration reports
          the current one) makes parking at once safe: no wake-up can be lost.
        * The bit is set but probably stale (a ``recv`` came back short, a ``send`` sent only
          part; an SSL "want read", which is not proof that the socket itself said EAGAIN): False.
          ``wait_fd`` then asks the kernel with one poll(2) and returns at once if the fd is
          ready, parks otherwise; cheaper than a failing system call and its exception, and
          right even when the guess was wrong.
        """
        if deadline is None:
            self._loop.wait_fd(_fileno(self), events, None, eagain)
        elif not self._loop.wait_fd(_fileno(self), events, deadline - _monotonic(), eagain):
            raise _timeout_error(message)

    def _retry(self, op, events, args, timeout, eagain=True):
        """Waits for *events*, then calls ``op(self, *args)`` until it does not raise EAGAIN, all
        within *timeout* seconds (a total deadline, as the stdlib's). *eagain*: of the first
        wait (see :meth:`_wait`)."""
        fd = _fileno(self)
        if fd < 0:
            return op(self, *args)  # closed: the C method raises EBADF as the stdlib's
        wait_fd = self._loop.wait_fd
        if timeout is None:
            while True:
                wait_fd(fd, events, None, eagain)
                try:
                    return op(self, *args)
                except BlockingIOError:
                    eagain = True
        deadline = _monotonic() + timeout
        while True:
            if not wait_fd(fd, events, deadline - _monotonic(), eagain):
                raise _timeout_error("timed out")
            try:
                return op(self, *args)
            except BlockingIOError:
                eagain = True

    def _try_first(self, op, events, args):
        """``op(self, *args)``, cooperatively, trying the system call first: writes (there is
        room in the send buffer far more often than not) and the rarer calls."""
        try:
            return op(self, *args)
        except BlockingIOError:
            if self.timeout == 0.0:
                raise
        return self._retry(op, events, args, self.timeout)

    def _read(self, op, args):
        """``op(self, *args)`` for a read: tried at once if the fd may be readable, else after
        waiting (the arguments were checked by the caller: the C method checks them only once it
        runs, and a bad call must not wait for data first)."""
        if self._loop.fd_readiness(_fileno(self)) & _READ or self.timeout == 0.0:
            try:
                return op(self, *args)
            except BlockingIOError:
                if self.timeout == 0.0:
                    raise
            return self._retry(op, _READ, args, self.timeout)
        return self._retry(op, _READ, args, self.timeout, False)

    # -- receiving -----------------------------------------------------------------------------
    #
    # Reads wait first and try after when the fd is not known to be readable: when the cached
    # readiness bit is 0, and when the previous recv came back short (``_drained``). A short read
    # most likely emptied the kernel's buffer, so the next recv would most likely fail with EAGAIN:
    # a system call and an exception (about 2 us) for nothing. Instead the first wait passes
    # eagain=False (see _wait): one poll(2) (about 0.5 us) confirms or refutes the cached bit. A
    # short read does not always mean empty (TCP stops at the urgent mark, Unix sockets at a change
    # of credentials), which is why it is only a hint. recv and recv_into, the hottest calls, are
    # spelled out.

    def recv(self, bufsize, flags=0):
        """recv(bufsize[, flags]) -> data; ``b''`` at end of stream."""
        if (self._drained or not self._loop.fd_readiness(_fileno(self)) & _READ) \
                and self.timeout != 0.0:
            _check_size("recv", bufsize, flags)
            data = self._retry(_recv, _READ, (bufsize, flags), self.timeout, False)
        else:
            try:
                data = _recv(self, bufsize, flags)
            except BlockingIOError:
                if self.timeout == 0.0:
                    raise
                data = self._retry(_recv, _READ, (bufsize, flags), self.timeout)
        self._drained = len(data) < bufsize
        return data

    def recv_into(self, buffer, nbytes=0, flags=0):
        """recv_into(buffer[, nbytes[, flags]]) -> number of bytes received."""
        if (self._drained or not self._loop.fd_readiness(_fileno(self)) & _READ) \
                and self.timeout != 0.0:
            size = _check_buffer("recv_into", buffer, nbytes, flags)
            count = self._retry(_recv_into, _READ, (buffer, nbytes, flags), self.timeout, False)
        else:
            try:
                count = _recv_into(self, buffer, nbytes, flags)
            except BlockingIOError:
                if self.timeout == 0.0:
                    raise
                count = self._retry(_recv_into, _READ, (buffer, nbytes, flags), self.timeout)
            size = nbytes or _nbytes(buffer)
        self._drained = count < size
        return count

    def recvfrom(self, bufsize, flags=0):
        """recvfrom(bufsize[, flags]) -> (data, address)."""
        _check_size("recvfrom", bufsize, flags)
        return self._read(_base.recvfrom, (bufsize, flags))

    def recvfrom_into(self, buffer, nbytes=0, flags=0):
        """recvfrom_into(buffer[, nbytes[, flags]]) -> (nbytes, address)."""
        _check_buffer("recvfrom_into", buffer, nbytes, flags)
        return self._read(_base.recvfrom_into, (buffer, nbytes, flags))

    def recvmsg(self, *args):
        """recvmsg(bufsize[, ancbufsize[, flags]]) -> (data, ancdata, msg_flags, address)."""
        return self._try_first(_base.recvmsg, _READ, args)

    def recvmsg_into(self, *args):
        """recvmsg_into(buffers[, ancbufsize[, flags]]) -> (nbytes, ancdata, msg_flags, address)."""
        return self._try_first(_base.recvmsg_into, _READ, args)

    # -- sending -------------------------------------------------------------------------------
    #
    # Writes try first: a socket's send buffer has room far more often than not, so consulting
    # the cached readiness would only add a wait (a loop turn) for sockets whose bit is 0 merely
    # because nothing registered them yet. After EAGAIN they wait with eagain=True; after a
    # partial send (the buffer is most likely full now) with eagain=False, as reads do after a
    # short read.

    def send(self, data, flags=0, timeout=timeout_default):
        """send(data[, flags]) -> number of bytes sent (maybe fewer than ``len(data)``).

        *timeout* (gevent's extension) overrides the socket's timeout for this call.
        """
        try:
            return _send(self, data, flags)
        except BlockingIOError:
            if timeout is timeout_default:
                timeout = self.timeout
            if timeout == 0.0:
                raise
        return self._retry(_send, _WRITE, (data, flags), timeout)

    def sendall(self, data, flags=0):
        """Sends all of *data*; the timeout bounds the whole call (a total deadline, as the
        stdlib's since Python 3.5). Returns None; on error, how much was sent is unknown."""
        timeout = self.timeout
        if timeout == 0.0:
            return _base.sendall(self, data, flags)  # non-blocking: the C loop stops at EAGAIN
        try:
            sent = _send(self, data, flags)
        except BlockingIOError:
            sent, eagain = 0, True
        else:
            if data.__class__ is bytes and sent == len(data):
                return None  # the usual case: one system call
            eagain = False
        with memoryview(data) as whole, whole.cast("B") as view:
            total = len(view)
            if sent >= total:
                return None
            fd = _fileno(self)
            wait_fd = self._loop.wait_fd
            deadline = None if timeout is None else _monotonic() + timeout
            while True:
                if deadline is None:
                    wait_fd(fd, _WRITE, None, eagain)
                elif not wait_fd(fd, _WRITE, deadline - _monotonic(), eagain):
                    raise _timeout_error("timed out")
                try:
                    sent += _send(self, view[sent:], flags)
                except BlockingIOError:
                    eagain = True
                else:
                    if sent >= total:
                        return None
                    eagain = False

    def sendto(self, *args):
        """sendto(data[, flags], address) -> number of bytes sent."""
        return self._try_first(_base.sendto, _WRITE, args)

    def sendmsg(self, *args):
        """sendmsg(buffers[, ancdata[, flags[, address]]]) -> number of bytes sent."""
        return self._try_first(_base.sendmsg, _WRITE, args)

    # -- connections ---------------------------------------------------------------------------

    def accept(self):
        """accept() -> (socket, address): waits for a connection. The new socket is a plain
        cooperative :class:`socket` with the default timeout."""
        fd, address = self._read(_base._accept, ())
        sock = socket(self.family, self.type, self.proto, fileno=fd)
        return sock, address

    def connect(self, address):
        """Connects to *address*; a host name is resolved cooperatively first."""
        self._connect(address)

    def connect_ex(self, address):
        """Like :meth:`connect`, but returns an errno (0 on success) instead of raising OSError;
        ``EAGAIN`` when the timeout expired. DNS errors are still raised."""
        try:
            self._connect(address)
        except _timeout_error:
            return EAGAIN
        except gaierror:
            raise
        except OSError as ex:
            if ex.errno:
                return ex.errno
            raise
        return 0

    def _connect(self, address):
        # One function behind connect and connect_ex (like the C module's internal_connect), so
        # that overriding connect (SSLSocket does) does not change connect_ex.
        timeout = self.timeout
        if timeout == 0.0:
            return _base.connect(self, address)
        address = _resolve_addr(self, address)
        deadline = None if timeout is None else _monotonic() + timeout
        waited = False
        while True:
            err = _base.connect_ex(self, address)
            if not err or (err == EISCONN and waited):
                return None
            if err not in _CONNECTING:
                raise OSError(err, _os.strerror(err))
            # In progress: the fd becomes writable when it is connected or has failed.
            self._wait(_WRITE, deadline)
            waited = True
            err = self.getsockopt(SOL_SOCKET, SO_ERROR)
            if err:
                raise OSError(err, _os.strerror(err))

    # -- closing (makefile() is in _socketfile) ------------------------------------------------

    def _real_close(self):
        # Before the fd is closed (its number may be reused at once): wake the greenlets waiting
        # on it with EBADF and drop its registration.
        self._forget_fd()
        _base.close(self)

    def close(self):
        """Closes the socket (once every file from ``makefile()`` is closed too). Greenlets
        waiting on it raise ``OSError(EBADF, 'File descriptor was closed in another greenlet')``."""
        self._closed = True
        if self._io_refs <= 0:
            self._real_close()

    def detach(self):
        """Gives up the fd without closing it and returns it; waiters wake as for close()."""
        self._closed = True
        self._forget_fd()
        return _base.detach(self)

    def dup(self):
        """A new socket on a duplicate of the fd, with the same timeout."""
        fd = _os.dup(self.fileno())
        sock = self.__class__(self.family, self.type, self.proto, fileno=fd)
        sock.settimeout(self.gettimeout())
        return sock


SocketType = socket


def fromfd(fd, family, type, proto=0):
    """A cooperative socket on a duplicate of *fd*."""
    return socket(family, type, proto, _os.dup(fd))


def socketpair(family=None, type=SOCK_STREAM, proto=0):
    """A pair of connected cooperative sockets (AF_UNIX by default)."""
    if family is None:
        family = getattr(_socket, "AF_UNIX", AF_INET)
    a, b = _socket.socketpair(family, type, proto)
    return (socket(family, type, proto, a.detach()), socket(family, type, proto, b.detach()))


def create_connection(address, timeout=_GLOBAL_DEFAULT_TIMEOUT, source_address=None, *,
                      all_errors=False):
    """Connects to *address* (``(host, port)``) and returns the cooperative socket.

    Tries each address ``getaddrinfo`` (the hub's resolver) returns, in order. *timeout* is set on
    the socket before connecting (default: ``getdefaulttimeout()``); *source_address* is bound
    first if given. On failure raises the last error, or an ``ExceptionGroup`` of all of them with
    *all_errors*.
    """
    host, port = address
    errors = []
    for af, kind, proto, _canonname, sa in getaddrinfo(host, port, 0, SOCK_STREAM):
        sock = None
        try:
            sock = socket(af, kind, proto)
            if timeout is not _GLOBAL_DEFAULT_TIMEOUT:
                sock.settimeout(timeout)
            if source_address:
                sock.bind(source_address)
            sock.connect(sa)
            errors.clear()
            return sock
        except error as exc:
            if not all_errors:
                errors.clear()
            errors.append(exc)
            if sock is not None:
                sock.close()
        except BaseException:
            if sock is not None:
                sock.close()
            raise
    if not errors:
        raise error("getaddrinfo returns an empty list")
    try:
        if not all_errors:
            raise errors[0]
        raise ExceptionGroup("create_connection failed", errors)
    finally:
        errors.clear()


def create_server(address, *, family=AF_INET, backlog=None, reuse_port=False,
                  dualstack_ipv6=False):
    """A cooperative listening TCP socket bound to *address*, as the stdlib's ``create_server``
    (SO_REUSEADDR set; *reuse_port*; IPv6-only unless *dualstack_ipv6*)."""
    if reuse_port and not hasattr(_socket, "SO_REUSEPORT"):
        raise ValueError("SO_REUSEPORT not supported on this platform")
    if dualstack_ipv6:
        if not has_dualstack_ipv6():
            raise ValueError("dualstack_ipv6 not supported on this platform")
        if family != AF_INET6:
            raise ValueError("dualstack_ipv6 requires AF_INET6 family")
    sock = socket(family, SOCK_STREAM)
    try:
        try:
            sock.setsockopt(SOL_SOCKET, SO_REUSEADDR, 1)
        except error:  # let bind() fail instead
            pass
        if reuse_port:
            sock.setsockopt(SOL_SOCKET, _socket.SO_REUSEPORT, 1)
        if has_ipv6 and family == AF_INET6:
            sock.setsockopt(IPPROTO_IPV6, IPV6_V6ONLY, 0 if dualstack_ipv6 else 1)
        try:
            sock.bind(address)
        except error as err:
            raise error(err.errno, "%s (while attempting to bind on address %r)"
                        % (err.strerror, address)) from None
        if backlog is None:
            sock.listen()
        else:
            sock.listen(backlog)
        return sock
    except error:
        sock.close()
        raise
