"""gunicorn workers that serve each connection in a greenlet: ``gunicorn -k verdigris.gunicorn.Worker``.

:class:`Worker` is gunicorn's own gevent worker (``gunicorn.workers.ggevent.GeventWorker``) on
verdigris: a :class:`~verdigris.server.StreamServer` per listening socket, a
:class:`~verdigris.pool.Pool` of ``--worker-connections`` greenlets, and gunicorn's HTTP parser
and response code, so every gunicorn setting applies (limits, ``--max-requests``, access log
format, proxy headers, ...). :class:`PyWSGIWorker` serves requests with
:mod:`verdigris.pywsgi` instead, which parses and answers faster; gunicorn's access log and
``--keep-alive``/``--max-requests`` still apply, its request limits and HTTP/2 do not.

    gunicorn -k verdigris.gunicorn.Worker --worker-connections 1000 app:application
    gunicorn -k verdigris.gunicorn.PyWSGIWorker app:application

Each worker process, as it starts:

* monkey-patches the standard library (:func:`verdigris.monkey.patch_all`) so that the
  application's blocking calls (sockets, ``time.sleep``, DNS, locks...) yield to other
  greenlets; if :mod:`verdigris.monkey` cannot be imported, it logs a warning and goes on (the
  server stays cooperative, but an application that blocks then blocks the whole worker);
* turns the listening sockets it inherited into cooperative ones, and re-initialises the hub
  after the fork.

Signals, as gunicorn defines them: ``SIGTERM`` is the graceful stop (the arbiter also sends it
to old workers on ``SIGHUP``, a graceful reload): the worker stops accepting, lets the requests
in flight finish for up to ``--graceful-timeout`` seconds (keep-alive connections are closed
after their current response), then kills what is left and exits. ``SIGQUIT`` and ``SIGINT``
stop at once. While running, the worker tells the arbiter it is alive (``notify()``) every
second, and exits if the arbiter that started it is gone.

gunicorn is an optional dependency of verdigris: importing this module without it raises
:exc:`ImportError`.
"""
import os
import signal
import sys
import time
from datetime import datetime
from functools import partial

try:
    import gunicorn
    from gunicorn.http.wsgi import base_environ
    from gunicorn.sock import ssl_context
    from gunicorn.workers.base_async import AsyncWorker
except ImportError as ex:  # pragma: no cover - depends on the installation
    raise ImportError('verdigris.gunicorn needs gunicorn: pip install gunicorn (%s)' % (ex,)) from ex

import verdigris
from verdigris import pywsgi
from verdigris import socket as _socket
from verdigris.event import Event
from verdigris.hub import get_hub
from verdigris.pool import Pool
from verdigris.server import StreamServer
from verdigris.timeout import Timeout

__all__ = ['Worker', 'PyWSGIWorker', 'PyWSGIHandler', 'PyWSGIServer']

VERSION = 'verdigris/%s gunicorn/%s' % (verdigris.__version__, gunicorn.__version__)

#: Seconds between two heartbeats (``notify()``) of a running worker.
HEARTBEAT = 1.0


class Worker(AsyncWorker):
    """The gunicorn worker class (``-k verdigris.gunicorn.Worker``); see the module's doc."""

    #: None: gunicorn parses requests (``AsyncWorker.handle``). Otherwise a
    #: :class:`~verdigris.pywsgi.WSGIServer` subclass serving the application itself.
    server_class = None
    #: The handler class given to :attr:`server_class`.
    wsgi_handler = None

    def __init__(self, *args, **kwargs):
        AsyncWorker.__init__(self, *args, **kwargs)
        self._wakeup = None

    # -- process start -----------------------------------------------------------------------

    def init_process(self):
        self.patch()
        verdigris.reinit()
        AsyncWorker.init_process(self)  # ends by calling run()

    def patch(self):
        """Monkey-patches the process and makes the inherited listeners cooperative."""
        try:
            from verdigris import monkey
        except ImportError as ex:
            self.log.warning('verdigris.monkey is unavailable (%s): the standard library is not '
                             'patched, and an application that blocks blocks this worker', ex)
        else:
            monkey.patch_all()
        self.sockets = [
            _socket.socket(listener.FAMILY, _socket.SOCK_STREAM, fileno=listener.sock.detach())
            for listener in self.sockets
        ]

    def init_signals(self):
        AsyncWorker.init_signals(self)
        # gunicorn points Python's signal wake-up fd at its own pipe, which nobody watches here:
        # point it at the loop's, so that a signal caught by another thread wakes the loop too.
        signal.set_wakeup_fd(get_hub().loop.signal_wakeup_fd())

    # -- the life of the worker --------------------------------------------------------------

    def notify(self):
        """The heartbeat; exits if the arbiter that forked this worker is gone."""
        AsyncWorker.notify(self)
        if self.ppid != os.getppid():
            self.log.info('Parent changed, shutting down: %s', self)
            sys.exit(0)

    def timeout_ctx(self):
        """How long a keep-alive connection may wait for its next request."""
        return Timeout(self.cfg.keepalive, False)

    def _make_servers(self):
        ssl_args = {'ssl_context': ssl_context(self.cfg)} if self.cfg.is_ssl else {}
        servers = []
        for listener in self.sockets:
            listener.setblocking(True)
            pool = Pool(self.worker_connections)
            if self.server_class is not None:
                environ = base_environ(self.cfg)
                environ.update({'wsgi.multithread': True, 'SERVER_SOFTWARE': VERSION})
                server = self.server_class(
                    listener, application=self.wsgi, spawn=pool, log=self.log,
                    handler_class=self.wsgi_handler, environ=environ,
                    keepalive=self.cfg.keepalive or None, **ssl_args)
                server.worker = self
            else:
                server = StreamServer(listener, handle=partial(self.handle, listener), spawn=pool,
                                      **ssl_args)
            if self.cfg.workers > 1:
                server.max_accept = 1  # leave connections to the other workers
            servers.append(server)
        return servers

    def run(self):
        self._wakeup = Event()
        servers = self._make_servers()
        for server in servers:
            server.start()
        while self.alive:
            self.notify()
            self._wakeup.wait(HEARTBEAT)
        self._stop_gracefully(servers)

    def _stop_gracefully(self, servers):
        # Stop accepting; give the handlers in flight graceful_timeout seconds; then kill them.
        try:
            for server in servers:
                server.close()
            deadline = time.monotonic() + self.cfg.graceful_timeout
            while any(len(server.pool) for server in servers):
                if time.monotonic() >= deadline:
                    self.log.warning('Worker graceful timeout (pid:%s)', self.pid)
                    for server in servers:
                        server.stop(timeout=1)
                    break
                self.notify()
                verdigris.joinall(
                    [greenlet for server in servers for greenlet in list(server.pool)],
                    timeout=min(HEARTBEAT, max(0.0, deadline - time.monotonic())))
        except Exception:  # noqa: BLE001 - the worker exits anyway; say why it was not clean
            self.log.exception('Error while stopping the worker')

    # -- signals (run in greenlets: the handlers may block) -----------------------------------

    def handle_exit(self, sig, frame):
        AsyncWorker.handle_exit(self, sig, frame)
        if self._wakeup is not None:
            self._wakeup.set()

    def handle_quit(self, sig, frame):
        verdigris.spawn(AsyncWorker.handle_quit, self, sig, frame)

    def handle_usr1(self, sig, frame):
        verdigris.spawn(AsyncWorker.handle_usr1, self, sig, frame)

    # -- connections (the StreamServer flavour) ----------------------------------------------

    def handle(self, listener, client, addr):
        client.setblocking(True)  # a timeout of the default could have come with the socket
        AsyncWorker.handle(self, listener, client, addr)

    def handle_request(self, listener_name, req, sock, addr):
        try:
            return AsyncWorker.handle_request(self, listener_name, req, sock, addr)
        except (verdigris.GreenletExit, SystemExit):
            return False


class _Response:
    """What gunicorn's access log reads of a response."""

    def __init__(self, status, headers, sent):
        self.status = status
        self.headers = headers
        self.sent = sent


class PyWSGIHandler(pywsgi.WSGIHandler):
    """A :class:`~verdigris.pywsgi.WSGIHandler` logging through gunicorn and counting requests
    for ``--max-requests``."""

    def read_request(self, raw_requestline):
        pywsgi.WSGIHandler.read_request(self, raw_requestline)
        worker = self.server.worker
        worker.nr += 1
        if worker.nr >= worker.max_requests and worker.alive:
            worker.log.info('Autorestarting worker after current request.')
            worker.alive = False
            if worker._wakeup is not None:
                worker._wakeup.set()
        if not worker.alive or not worker.cfg.keepalive:
            self.close_connection = True
        return True

    def log_request(self):
        log = self.server.log
        if not getattr(log, 'access_log_enabled', True):
            return  # gunicorn's access log is off: build nothing
        started = datetime.fromtimestamp(self.time_start)
        finished = datetime.fromtimestamp(self.time_finish or time.time())
        status = self.status.decode('latin-1') if isinstance(self.status, bytes) else self.status
        response = _Response(status or '-', self.response_headers or [], self.response_length)
        environ = self.environ
        if environ is None:
            # A request refused before it had an environ: what gunicorn's log format reads.
            method, _, rest = (self.requestline or '').partition(' ')
            uri, _, protocol = rest.rpartition(' ')
            environ = {'REQUEST_METHOD': method or '-', 'RAW_URI': uri or rest or '-',
                       'SERVER_PROTOCOL': protocol or '-'}
            if isinstance(self.client_address, tuple):
                environ['REMOTE_ADDR'] = str(self.client_address[0])
        try:
            log.access(response, self.headers.items(), environ, finished - started)
        except Exception:  # noqa: BLE001 - a failing log line must not fail the connection
            log.exception('Error writing the access log')

    def get_environ(self):
        environ = pywsgi.WSGIHandler.get_environ(self)
        environ['gunicorn.sock'] = self.socket
        environ['RAW_URI'] = self.path
        return environ


class PyWSGIServer(pywsgi.WSGIServer):
    """The :class:`~verdigris.pywsgi.WSGIServer` of a :class:`PyWSGIWorker` (``worker`` is set
    by the worker)."""

    worker = None


class PyWSGIWorker(Worker):
    """The gunicorn worker class serving with :mod:`verdigris.pywsgi`
    (``-k verdigris.gunicorn.PyWSGIWorker``)."""

    server_class = PyWSGIServer
    wsgi_handler = PyWSGIHandler
