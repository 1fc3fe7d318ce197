"""The machinery every verdigris server shares: :class:`BaseServer`.

A server owns a listening socket and an *accept watcher*: a level-triggered ``loop.io`` watcher on
the listener's fd whose callback runs in the hub, takes up to :attr:`BaseServer.max_accept`
connections (or datagrams) with non-blocking system calls, and hands each one to the handler
through the *spawn* strategy:

``'default'``
    a new :class:`~verdigris.greenlet.Greenlet` per connection;
a :class:`~verdigris.pool.Pool` (or anything with ``spawn``), or an int (the size of a new pool)
    the pool's ``spawn``; while the pool is full the server stops accepting, so the backlog (and
    not the process) absorbs the excess;
``None``
    the handler runs right in the hub's callback and must not block;
any other callable
    called as ``spawn(function, *args)``, e.g. :func:`verdigris.spawn_raw`.

When a handler returns (or raises), the server closes the client socket (:meth:`do_close`).
An error from ``accept()`` is reported to the hub and stops accepting for :attr:`min_delay`
seconds, doubling up to :attr:`max_delay` while the errors persist (a process out of file
descriptors then gets time to recover instead of spinning); EBADF, EINVAL and ENOTSOCK are fatal
and close the server.

Addresses are ``(host, port)`` tuples, ``'host:port'`` strings (``'[::1]:8000'``, ``'*:8000'``),
or a bare port (``8000`` or ``'8000'``: every IPv6 address, and every IPv4 one unless the system
makes IPv6 sockets IPv6-only; ``':8000'`` is every IPv4 address).
"""
import errno
import sys

import _socket

from verdigris.event import Event
from verdigris.greenlet import Greenlet
from verdigris.hub import get_hub

__all__ = ["BaseServer"]

_READ = 1


def _handle_and_close_when_done(handle, close, args):
    """The body of a connection's greenlet: the handler, then the socket's close, always."""
    try:
        return handle(*args)
    finally:
        close(*args)


class BaseServer:
    """BaseServer(listener, handle=None, spawn='default'): the base of every server.

    :param listener: a bound (and, for TCP, listening) socket, or an address to bind in
        :meth:`start` (see the module's documentation for the forms an address may take).
    :param handle: called for each connection (for a :class:`~verdigris.server.StreamServer`:
        ``handle(socket, address)``); by default the subclass's :meth:`handle` method. The
        connection is closed when it returns, so it must not return while something else still
        uses the socket.
    :param spawn: how the handler is run: ``'default'``, a pool, an int, None or a callable
        (see the module's documentation).

    A server is a context manager: ``with server:`` calls :meth:`stop` on exit.

    .. note:: With ``spawn='default'`` verdigris keeps track of the handler greenlets, so that
       :meth:`stop` waits for them (up to its timeout) and then kills them, as it does for a
       pool. gevent tracks only pool-spawned handlers and leaves the others running after
       ``stop()``.
    """

    #: Seconds the accept watcher pauses after an ``accept()`` error (doubling while they persist).
    min_delay = 0.01
    #: The longest such pause.
    max_delay = 1
    #: The most connections taken per wake-up of the accept watcher. Lower values favour the
    #: connections already established over new ones (1 suits several processes sharing a socket).
    max_accept = 100
    #: Seconds :meth:`stop` waits for running handlers when called without a timeout.
    stop_timeout = 1
    #: errnos of ``accept()`` after which the server closes instead of retrying.
    fatal_errors = (errno.EBADF, errno.EINVAL, errno.ENOTSOCK)

    #: The listening socket: None until :meth:`start` binds one, and again after :meth:`close`.
    socket = None

    def __init__(self, listener, handle=None, spawn='default'):
        self._stop_event = Event()
        self._stop_event.set()
        self._watcher = None
        self._timer = None
        self._room_waiter = None
        self._handle = None
        self._handlers = None   # the Group of 'default'-spawned handlers
        self.pool = None
        self.delay = self.min_delay
        try:
            self.set_listener(listener)
            self.set_spawn(spawn)
            self.set_handle(handle)
            self.loop = get_hub().loop
            if self.max_accept < 1:
                raise ValueError('max_accept must be a positive int: %r' % (self.max_accept,))
        except BaseException:
            self.close()
            raise

    def __enter__(self):
        return self

    def __exit__(self, *args):
        self.stop()

    # -- configuration -----------------------------------------------------------------------

    def set_listener(self, listener):
        """Uses *listener*: a socket (which must not be an SSL socket) or an address."""
        if hasattr(listener, 'accept'):
            if hasattr(listener, 'do_handshake'):
                raise TypeError('Expected a regular socket, not SSLSocket: %r' % (listener,))
            self.family = listener.family
            self.address = listener.getsockname()
            self.socket = listener
        else:
            self.family, self.address = parse_address(listener)

    def set_spawn(self, spawn):
        """Chooses how handlers are run (see the module's documentation)."""
        self._handlers = None
        if spawn == 'default':
            from verdigris.pool import Group

            self.pool = None
            self._handlers = Group()
            self._spawn = self._handlers.spawn
        elif hasattr(spawn, 'spawn'):
            self.pool = spawn
            self._spawn = spawn.spawn
        elif isinstance(spawn, int) and not isinstance(spawn, bool):
            from verdigris.pool import Pool

            self.pool = Pool(spawn)
            self._spawn = self.pool.spawn
        else:
            self.pool = None
            self._spawn = spawn
        full = getattr(self.pool, 'full', None)
        if full is not None:
            self.full = full

    def set_handle(self, handle):
        """Makes *handle* the connection handler (None keeps the :meth:`handle` method)."""
        if handle is not None:
            self.handle = handle
        if not hasattr(self, 'handle'):
            raise TypeError("'handle' must be provided")
        self._handle = self.handle

    def full(self):  # replaced by the pool's ``full`` in set_spawn
        """Whether the pool (if any) has no room for another handler."""
        return False

    # -- accepting -----------------------------------------------------------------------------

    def start_accepting(self):
        """Starts the accept watcher (no-op if it runs)."""
        if self._watcher is None:
            self._watcher = self.loop.io(self.socket.fileno(), _READ)
            self._watcher.start(self._do_read)

    def stop_accepting(self):
        """Stops the accept watcher, and the pause timer of an accept error."""
        if self._watcher is not None:
            self._watcher.stop()
            self._watcher.close()
            self._watcher = None
        if self._timer is not None:
            self._timer.stop()
            self._timer.close()
            self._timer = None

    def _start_accepting_if_started(self, _ignored=None):
        if self.started:
            self.start_accepting()

    def _do_read(self):
        # The accept watcher's callback, in the hub: take what is waiting, up to max_accept.
        for _ in range(self.max_accept):
            if self.full():
                self.stop_accepting()
                self._wait_for_room()
                return
            try:
                args = self.do_read()
                self.delay = self.min_delay
                if not args:
                    return
            except Exception:
                error = sys.exc_info()[1]
                get_hub().handle_error(self, *sys.exc_info())
                if self.is_fatal_error(error):
                    self.close()
                    sys.stderr.write('ERROR: %s failed with %s\n' % (self, str(error) or repr(error)))
                    return
                self._pause_accepting()
                return
            try:
                self.do_handle(*args)
            except Exception:
                get_hub().handle_error((args[1:], self), *sys.exc_info())
                self._pause_accepting()
                return

    def _pause_accepting(self):
        # After an error: stop for `delay` seconds (doubling each time), then try again.
        if self.delay >= 0:
            self.stop_accepting()
            self._timer = self.loop.timer(self.delay)
            self._timer.start(self._start_accepting_if_started)
            self.delay = min(self.max_delay, self.delay * 2)

    def _wait_for_room(self):
        # The pool is full: a greenlet waits for a free slot, then the watcher starts again.
        if self._room_waiter is None or self._room_waiter.dead:
            self._room_waiter = Greenlet.spawn(self._resume_when_room)

    def _resume_when_room(self):
        try:
            self.pool.wait_available()
        finally:
            self._room_waiter = None
        self._start_accepting_if_started()

    def do_read(self):
        """Takes one connection without blocking: returns the handler's arguments, or None if
        nothing is waiting. Subclasses implement it."""
        raise NotImplementedError()

    def do_handle(self, *args):
        """Runs the handler for one connection with the spawn strategy."""
        spawn = self._spawn
        try:
            if spawn is None:
                _handle_and_close_when_done(self._handle, self.do_close, args)
            else:
                spawn(_handle_and_close_when_done, self._handle, self.do_close, args)
        except BaseException:
            self.do_close(*args)
            raise

    def do_close(self, *args):
        """Releases a connection once its handler is done (StreamServer closes the socket)."""

    def is_fatal_error(self, ex):
        """Whether *ex*, raised by ``accept()``, should close the server."""
        return isinstance(ex, OSError) and bool(ex.args) and ex.args[0] in self.fatal_errors

    # -- life cycle ----------------------------------------------------------------------------

    def init_socket(self):
        """Creates, binds and listens on the socket if the server was given an address; called
        by :meth:`start`. Subclasses implement it."""

    @property
    def started(self):
        """True between :meth:`start` and :meth:`close`."""
        return not self._stop_event.is_set()

    @property
    def closed(self):
        """True when the server has no listening socket (before :meth:`start` with an address,
        and after :meth:`close`)."""
        return self.socket is None

    def start(self):
        """Binds the socket (if given an address) and starts accepting; returns at once."""
        self.init_socket()
        self._stop_event.clear()
        try:
            self.start_accepting()
        except BaseException:
            self.close()
            raise

    def close(self):
        """Stops accepting and closes the listening socket. Running handlers go on."""
        self._stop_event.set()
        try:
            self.stop_accepting()
            waiter, self._room_waiter = self._room_waiter, None
            if waiter is not None:
                waiter.kill(block=False)
        finally:
            sock, self.socket = self.socket, None
            if sock is not None:
                try:
                    sock.close()
                except Exception:  # noqa: BLE001 - closing must not fail the caller
                    pass

    def stop(self, timeout=None):
        """Closes the server, then waits up to *timeout* seconds (default :attr:`stop_timeout`)
        for the running handlers to finish, then kills those still running."""
        self.close()
        if timeout is None:
            timeout = self.stop_timeout
        group = self.pool if self.pool is not None else self._handlers
        if group is not None:
            group.join(timeout=timeout)
            group.kill(block=True, timeout=1)

    def serve_forever(self, stop_timeout=None):
        """Starts the server (if needed) and blocks until it is stopped or this greenlet is
        killed; then stops it, waiting up to *stop_timeout* seconds for the handlers."""
        if not self.started:
            self.start()
        try:
            self._stop_event.wait()
        finally:
            # In a greenlet of its own: stop() must complete even if this one is killed again.
            Greenlet.spawn(self.stop, timeout=stop_timeout).join()

    # -- description ---------------------------------------------------------------------------

    @property
    def server_host(self):
        """The host the server is bound to (a string), for IP servers."""
        if isinstance(self.address, tuple):
            return self.address[0]
        return None

    @property
    def server_port(self):
        """The port the server is bound to (an int), for IP servers."""
        if isinstance(self.address, tuple):
            return self.address[1]
        return None

    def __repr__(self):
        return '<%s at %s %s>' % (type(self).__name__, hex(id(self)), self._formatinfo())

    def __str__(self):
        return '<%s %s>' % (type(self).__name__, self._formatinfo())

    def _formatinfo(self):
        info = ''
        if self.socket is not None:
            try:
                info = 'fileno=%s ' % (self.socket.fileno(),)
            except Exception as ex:  # noqa: BLE001 - repr must not fail
                info = '%s ' % (ex,)
        address = getattr(self, 'address', None)
        if isinstance(address, tuple) and len(address) == 2:
            info += 'address=%s:%s' % address
        else:
            info += 'address=%s' % (address,)
        handle = self.__dict__.get('handle')
        if handle is not None:
            if getattr(handle, '__self__', None) is self:
                info += ' handle=<bound method %s.%s of self>' % (type(self).__name__, handle.__name__)
            else:
                info += ' handle=%r' % (handle,)
        return info


def _split_host(host):
    if host.startswith('[') and host.endswith(']'):
        return _socket.AF_INET6, host[1:-1]
    return _socket.AF_INET, host


def parse_address(address):
    """``(family, (host, port))`` for an address given in any form servers accept.

    :raises ValueError: for a string that is not ``[host:]port``.
    :raises TypeError: for anything that is not a tuple, string or int.
    """
    if isinstance(address, tuple):
        if not address[0] or ':' in address[0]:
            return _socket.AF_INET6, address
        return _socket.AF_INET, address
    if isinstance(address, int) and not isinstance(address, bool):
        return _socket.AF_INET6, ('', address)
    if not isinstance(address, str):
        raise TypeError('Expected tuple or string, got %s' % (type(address),))
    try:
        if ':' not in address:
            return _socket.AF_INET6, ('', int(address))
        host, port = address.rsplit(':', 1)
        family, host = _split_host(host)
        if host == '*':
            host = ''
        return family, (host, int(port))
    except ValueError as ex:
        raise ValueError('Failed to parse address %r: %s' % (address, ex)) from None
