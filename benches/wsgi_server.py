"""The server half of the wsgi workload: ``python -m benches.wsgi_server LIB``.

Serves a hello-world WSGI app on 127.0.0.1 (an ephemeral port) with LIB's own WSGI server,
gevent.pywsgi or verdigris.pywsgi (same API) or eventlet.wsgi, with request logging off (a
log line per request would measure the terminal). Prints one JSON line, ``{"port": N}`` once
listening or ``{"error": "..."}``, then serves until the runner terminates it.

The listening socket has TCP_NODELAY, which Linux copies to every accepted socket. Without it,
gevent.pywsgi (which sends the headers and the body in two writes) meets Nagle's algorithm and
the client's delayed ACK, and every keep-alive request waits ~40 ms: wrk would measure that
stall, the same for any library that writes twice, instead of the server's work.
"""
from __future__ import annotations

import importlib
import json
import sys

BODY = b"Hello, World!\n"
HEADERS = [("Content-Type", "text/plain"), ("Content-Length", str(len(BODY)))]


def app(environ, start_response):
    start_response("200 OK", HEADERS)
    return [BODY]


def _listen(socket_module):
    listener = socket_module.socket(socket_module.AF_INET, socket_module.SOCK_STREAM)
    listener.setsockopt(socket_module.SOL_SOCKET, socket_module.SO_REUSEADDR, 1)
    listener.setsockopt(socket_module.IPPROTO_TCP, socket_module.TCP_NODELAY, 1)
    listener.bind(("127.0.0.1", 0))
    listener.listen(1024)
    return listener


def _gevent_like(name):
    pywsgi = importlib.import_module(f"{name}.pywsgi")
    listener = _listen(importlib.import_module(f"{name}.socket"))
    server = pywsgi.WSGIServer(listener, app, log=None)
    server.start()
    return listener.getsockname()[1], server.serve_forever


def _eventlet():
    import warnings

    warnings.simplefilter("ignore")
    import eventlet.green.socket
    import eventlet.wsgi

    listener = _listen(eventlet.green.socket)
    return listener.getsockname()[1], lambda: eventlet.wsgi.server(listener, app, log_output=False)


def _say(obj):
    sys.stdout.write(json.dumps(obj) + "\n")
    sys.stdout.flush()


def main(lib_name):
    try:
        port, serve = _eventlet() if lib_name == "eventlet" else _gevent_like(lib_name)
    except Exception as exc:
        _say({"error": f"{type(exc).__name__}: {exc}"})
        raise SystemExit(1) from None
    _say({"port": port})
    serve()


if __name__ == "__main__":
    main(sys.argv[1])
