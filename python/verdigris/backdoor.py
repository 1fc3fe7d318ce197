"""An interactive Python console over TCP, inside a running program (gevent's backdoor).

:class:`BackdoorServer` is a :class:`~verdigris.server.StreamServer` whose handler runs a
:class:`code.InteractiveConsole` on each connection, in a greenlet of its own, so a program can
be inspected (``verdigris.util.print_run_info()``, its objects, ...) while it goes on serving::

    from verdigris.backdoor import BackdoorServer
    BackdoorServer(('127.0.0.1', 5001), locals={'app': app}).start()

then ``nc 127.0.0.1 5001`` (or telnet). Each connection gets its own copy of *locals* (plus
``__builtins__``). ``exit()``, ``quit()`` or end-of-file ends the session; stopping the server
kills the sessions.

.. warning::
   There is no authentication: whoever can connect can do anything the process can. Bind it to
   the loopback interface only.

What a session's code prints goes to its connection: while sessions exist, ``sys.stdout``,
``sys.stderr`` and ``sys.stdin`` are proxies that send each call to the session of the calling
greenlet, and to the original stream for every other greenlet.

.. note::
   gevent swaps ``sys.std*`` whenever a session's greenlet is switched in or out; verdigris
   resumes greenlets from its Rust loop without a Python-level ``switch``, so it dispatches in
   the proxies instead. Greenlets spawned by a session's code print to the program's streams,
   as in gevent.
"""
import sys
from code import InteractiveConsole

from greenlet import getcurrent

from verdigris.pool import Pool
from verdigris.server import StreamServer

__all__ = ['BackdoorServer']


class _SessionStreams:
    """The connection as the session's stdin, stdout and stderr."""

    encoding = 'utf-8'
    softspace = None

    def __init__(self, conn):
        self.conn = conn
        self.reader = conn.makefile('r', encoding=self.encoding, errors='replace', newline='')

    def write(self, data):
        if not isinstance(data, bytes):
            data = data.encode(self.encoding, 'replace')
        self.conn.sendall(data)
        return len(data)

    def readline(self, *args):
        # Telnet sends CRLF; the console wants plain newlines.
        return self.reader.readline(*args).replace('\r\n', '\n')

    def flush(self):
        """Writes are not buffered: nothing to do."""

    def close(self):
        """``exit()`` closes ``sys.stdin``: the session's must survive that."""

    def fileno(self):
        return self.conn.fileno()

    def isatty(self):
        return False


class _Dispatcher:
    """Stands in for one of ``sys.stdin/stdout/stderr`` while sessions exist."""

    def __init__(self, name, original):
        self._name = name
        self._original = original

    def _target(self):
        return _sessions.get(getcurrent(), self._original)

    def __getattr__(self, attr):
        return getattr(self._target(), attr)

    def write(self, data):
        return self._target().write(data)

    def flush(self):
        return self._target().flush()

    def readline(self, *args):
        return self._target().readline(*args)


_STREAMS = ('stdin', 'stdout', 'stderr')
# greenlet -> _SessionStreams of the sessions running now.
_sessions = {}
_installed = {}


def _enter_session(glet, streams):
    if not _sessions:
        for name in _STREAMS:
            proxy = _Dispatcher(name, getattr(sys, name))
            _installed[name] = proxy
            setattr(sys, name, proxy)
    _sessions[glet] = streams


def _leave_session(glet):
    _sessions.pop(glet, None)
    if _sessions:
        return
    for name in _STREAMS:
        proxy = _installed.pop(name, None)
        # Replaced by somebody else meanwhile: leave theirs in place.
        if proxy is not None and getattr(sys, name) is proxy:
            setattr(sys, name, proxy._original)


class _Console(InteractiveConsole):
    """An InteractiveConsole that talks to one connection."""

    def __init__(self, streams, locals):
        InteractiveConsole.__init__(self, locals)
        self.streams = streams

    def raw_input(self, prompt=''):
        self.streams.write(prompt)
        line = self.streams.readline()
        if not line:
            raise EOFError
        return line.rstrip('\n')

    def write(self, data):
        self.streams.write(data)


class BackdoorServer(StreamServer):
    """BackdoorServer(listener, locals=None, banner=None, **server_args): a Python console
    server.

    :param listener: an address (or listening socket) as for
        :class:`~verdigris.server.StreamServer`; keep it on the loopback interface.
    :param locals: names every session starts with (each session gets its own copy).
    :param banner: text shown to each connecting user (default: the interpreter's banner).
    :param server_args: passed on to :class:`~verdigris.server.StreamServer`.
    """

    def __init__(self, listener, locals=None, banner=None, **server_args):
        # A pool of unlimited size: stop() kills the sessions still open.
        StreamServer.__init__(self, listener, spawn=Pool(), **server_args)
        base = {'__doc__': None, '__name__': '__console__'}
        if locals:
            base.update(locals)
        self.locals = base
        self.banner = banner
        self.stderr = sys.stderr

    def _create_interactive_locals(self):
        import builtins

        namespace = dict(self.locals)
        namespace['builtins'] = builtins
        namespace['__builtins__'] = builtins
        return namespace

    def handle(self, conn, _address):
        """Runs one console session on *conn* until the user leaves."""
        import socket

        try:
            conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, True)
        except OSError:
            pass
        streams = _SessionStreams(conn)
        glet = getcurrent()
        _enter_session(glet, streams)
        try:
            console = _Console(streams, self._create_interactive_locals())
            console.interact(banner=self.banner, exitmsg='')
        except SystemExit:
            pass
        finally:
            _leave_session(glet)
            streams.reader.close()
            conn.close()


def main(argv=None):
    """``python -m verdigris.backdoor PORT [banner]``: serve a console on 127.0.0.1:PORT."""
    argv = sys.argv[1:] if argv is None else argv
    if not argv:
        print('USAGE: python -m verdigris.backdoor PORT [banner]')
        return 2
    BackdoorServer(('127.0.0.1', int(argv[0])), banner=argv[1] if len(argv) > 1 else None,
                   locals={'hello': 'world'}).serve_forever()
    return 0


if __name__ == '__main__':
    sys.exit(main())
