"""Hello world over WSGI with ``verdigris.pywsgi``.

    python examples/wsgi_hello.py [PORT]       # then: curl http://127.0.0.1:PORT/
    gunicorn -k verdigris.gunicorn.Worker --chdir examples wsgi_hello:application

Every connection is served by its own greenlet; keep-alive connections are reused.
"""
import sys

from verdigris.pywsgi import WSGIServer

BODY = b"Hello, World!\n"


def application(environ, start_response):
    """The WSGI application: the same greeting for every path."""
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", str(len(BODY)))])
    return [BODY]


def main(argv):
    port = int(argv[1]) if len(argv) > 1 else 0
    server = WSGIServer(("127.0.0.1", port), application)
    server.start()
    print("serving on http://%s:%s/" % (server.server_host, server.server_port), flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main(sys.argv)
