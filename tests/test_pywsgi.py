"""verdigris.pywsgi: the WSGI server, driven by real HTTP clients on loopback.

The server runs in this process's hub; clients (http.client, requests, raw sockets) run in real
threads while the main greenlet keeps the loop turning (``in_thread``).
"""
import concurrent.futures
import http.client
import io
import logging
import os
import re
import socket as stdlib_socket
import sys
import time
from pathlib import Path

import pytest

import verdigris
from verdigris import pywsgi
from verdigris.pool import Pool

sys.path.insert(0, str(Path(__file__).resolve().parent))
# Helpers and fixtures (quiet_hub, tls_files) shared with test_server.
from test_server import in_thread, quiet_hub, start_example, stop_example, tls_files  # noqa: E402,F401,F811

requests = pytest.importorskip("requests")
AGAINST_GEVENT = os.environ.get("VERDIGRIS_TEST_AGAINST") == "gevent"


# -- fixtures and helpers ------------------------------------------------------------------------

@pytest.fixture
def serve():
    """``serve(app, **kwargs)`` starts a WSGIServer on 127.0.0.1 (no access log by default)."""
    started = []

    def start(app, **kwargs):
        kwargs.setdefault("log", None)
        server = pywsgi.WSGIServer(("127.0.0.1", 0), app, **kwargs)
        server.start()
        started.append(server)
        return server

    yield start
    for server in started:
        server.stop(timeout=0.5)


def hello(environ, start_response):
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", "5")])
    return [b"hello"]


def echo_body(environ, start_response):
    body = environ["wsgi.input"].read()
    start_response("200 OK", [("Content-Type", "application/octet-stream")])
    return [body]


def raw_exchange(port, data, shutdown=False, timeout=10):
    """Sends *data* on a new connection, then reads until the server closes it."""
    with stdlib_socket.create_connection(("127.0.0.1", port), timeout=timeout) as client:
        client.sendall(data)
        if shutdown:
            client.shutdown(stdlib_socket.SHUT_WR)
        received = b""
        while True:
            chunk = client.recv(65536)
            if not chunk:
                return received
            received += chunk


def status_of(response):
    return int(response.split(b" ", 2)[1]) if response else None


def get(port, path="/", method="GET", body=None, headers=None):
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        headers = headers or {}
        chunked = headers.get("Transfer-Encoding") == "chunked"
        connection.request(method, path, body=body, headers=headers, encode_chunked=chunked)
        response = connection.getresponse()
        return response.status, dict(response.getheaders()), response.read()
    finally:
        connection.close()


# -- requests and responses ----------------------------------------------------------------------

def test_hello(serve):
    server = serve(hello)
    status, headers, body = in_thread(get, server.server_port)
    assert (status, body) == (200, b"hello")
    assert headers["Content-Length"] == "5" and headers["Content-Type"] == "text/plain"
    assert re.match(r"\w{3}, \d\d \w{3} \d{4} \d\d:\d\d:\d\d GMT$", headers["Date"])


def test_environ(serve):
    seen = {}

    def app(environ, start_response):
        seen.update(environ)
        seen["body"] = environ["wsgi.input"].read()
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [b"ok"]

    server = serve(app)
    headers = {"Content-Type": "text/x-test", "X-Custom": "one", "X_Sneaky": "dropped",
               "Cookie": "a=1"}
    status, _, _ = in_thread(get, server.server_port, "/caf%C3%A9/x%2Fy?q=1&r=%20", "POST",
                             b"payload", headers)
    assert status == 200
    expected = {
        "REQUEST_METHOD": "POST",
        "SCRIPT_NAME": "",
        "PATH_INFO": "/caf\xc3\xa9/x/y",  # unquoted, then decoded as latin-1 (PEP 3333)
        "QUERY_STRING": "q=1&r=%20",
        "CONTENT_TYPE": "text/x-test",
        "CONTENT_LENGTH": "7",
        "SERVER_PORT": str(server.server_port),
        "SERVER_PROTOCOL": "HTTP/1.1",
        "REMOTE_ADDR": "127.0.0.1",
        "HTTP_X_CUSTOM": "one",
        "HTTP_COOKIE": "a=1",
        "HTTP_HOST": "127.0.0.1:%d" % server.server_port,
        "wsgi.version": (1, 0),
        "wsgi.url_scheme": "http",
        "wsgi.multithread": False,
        "wsgi.multiprocess": False,
        "wsgi.run_once": False,
        "wsgi.input_terminated": True,
        "body": b"payload",
    }
    assert {key: seen.get(key) for key in expected} == expected
    assert seen["SERVER_NAME"] and int(seen["REMOTE_PORT"]) > 0
    assert "HTTP_X_SNEAKY" not in seen and "HTTP_X-SNEAKY" not in seen
    assert "HTTP_CONTENT_TYPE" not in seen and "HTTP_CONTENT_LENGTH" not in seen
    assert hasattr(seen["wsgi.errors"], "write") and type(seen["wsgi.input"]).__name__ == "Input"


def test_repeated_headers_are_joined(serve):
    seen = {}

    def app(environ, start_response):
        seen.update(environ)
        start_response("204 No Content", [])
        return []

    server = serve(app)
    request = (b"GET / HTTP/1.1\r\nHost: x\r\nX-Multi: a\r\nX-Multi: b\r\nCookie: c=1\r\n"
               b"Cookie: d=2\r\nConnection: close\r\n\r\n")
    response = in_thread(raw_exchange, server.server_port, request)
    assert status_of(response) == 204
    assert (seen["HTTP_X_MULTI"], seen["HTTP_COOKIE"]) == ("a,b", "c=1; d=2")


def test_keep_alive_reuses_the_connection(serve):
    ports = []

    def app(environ, start_response):
        ports.append(environ["REMOTE_PORT"])
        return hello(environ, start_response)

    server = serve(app)

    def three_requests():
        connection = http.client.HTTPConnection("127.0.0.1", server.server_port, timeout=10)
        statuses = []
        for _ in range(3):
            connection.request("GET", "/")
            response = connection.getresponse()
            statuses.append((response.status, response.read()))
        connection.close()
        return statuses

    assert in_thread(three_requests) == [(200, b"hello")] * 3
    assert len(ports) == 3 and len(set(ports)) == 1


def test_requests_session_keep_alive_and_post(serve):
    server = serve(echo_body)
    url = "http://127.0.0.1:%d/" % server.server_port

    def session_calls():
        with requests.Session() as session:
            first = session.post(url, data=b"x" * 100000, timeout=10)
            second = session.post(url, json={"a": 1}, timeout=10)
            return first.status_code, len(first.content), second.status_code, second.json()

    assert in_thread(session_calls) == (200, 100000, 200, {"a": 1})


def test_http_1_0_closes_unless_keep_alive(serve):
    server = serve(hello)
    response = in_thread(raw_exchange, server.server_port, b"GET / HTTP/1.0\r\n\r\n")
    assert response.startswith(b"HTTP/1.1 200 OK\r\n") and b"Connection: close\r\n" in response
    assert response.endswith(b"\r\n\r\nhello")

    def keep_alive():
        with stdlib_socket.create_connection(("127.0.0.1", server.server_port), timeout=10) as client:
            client.sendall(b"GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n")
            data = b""
            while not data.endswith(b"hello"):
                data += client.recv(4096)
            client.sendall(b"GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n")  # still open
            more = b""
            while not more.endswith(b"hello"):
                more += client.recv(4096)
            return data, more

    first, second = in_thread(keep_alive)
    assert b"Connection: keep-alive\r\n" in first and second.startswith(b"HTTP/1.1 200 OK")


def test_connection_close_is_honoured(serve):
    server = serve(hello)
    response = in_thread(raw_exchange, server.server_port,
                         b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    assert status_of(response) == 200 and response.endswith(b"hello")


def test_pipelined_requests_and_input_stops_at_the_body(serve):
    server = serve(echo_body)
    request = (b"POST /1 HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nfirst"
               b"POST /2 HTTP/1.1\r\nHost: x\r\nContent-Length: 6\r\nConnection: close\r\n\r\nsecond")
    response = in_thread(raw_exchange, server.server_port, request)
    assert response.count(b"HTTP/1.1 200 OK") == 2
    assert response.index(b"first") < response.index(b"second")


def test_chunked_request_body(serve):
    server = serve(echo_body)

    def send_chunked():
        parts = iter([b"abc", b"defgh", b"", b"ij"])
        return get(server.server_port, "/", "POST", parts, {"Transfer-Encoding": "chunked"})

    status, _, body = in_thread(send_chunked)
    assert (status, body) == (200, b"abcdefghij")


def test_input_read_sizes_readline_and_iteration(serve):
    seen = []

    def app(environ, start_response):
        stream = environ["wsgi.input"]
        seen.append(stream.read(3))
        seen.append(stream.readline())
        seen.append(stream.readline(2))
        seen.append(list(stream))
        seen.append(stream.read())
        start_response("200 OK", [])
        return []

    server = serve(app)
    body = b"abcdef\nghijkl\nmn\nlast"
    for extra in ({"Content-Length": str(len(body))}, {"Transfer-Encoding": "chunked"}):
        del seen[:]
        payload = body if "Content-Length" in extra else iter([body[:5], body[5:12], body[12:]])
        status, _, _ = in_thread(get, server.server_port, "/", "POST", payload, extra)
        assert status == 200
        assert seen == [b"abc", b"def\n", b"gh", [b"ijkl\n", b"mn\n", b"last"], b""]


def test_readlines(serve):
    seen = []

    def app(environ, start_response):
        seen.append(environ["wsgi.input"].readlines())
        start_response("200 OK", [])
        return []

    server = serve(app)
    in_thread(get, server.server_port, "/", "POST", b"a\nb\nc")
    assert seen == [[b"a\n", b"b\n", b"c"]]


def test_request_without_body_reads_empty(serve):
    seen = []

    def app(environ, start_response):
        seen.append(environ["wsgi.input"].read())
        seen.append(environ["wsgi.input"].readline())
        start_response("200 OK", [])
        return []

    server = serve(app)
    in_thread(get, server.server_port)
    assert seen == [b"", b""]


def test_chunked_response_from_a_generator(serve):
    def app(environ, start_response):
        start_response("200 OK", [("Content-Type", "text/plain")])
        yield b"one "
        yield b""
        yield b"two"

    server = serve(app)
    status, headers, body = in_thread(get, server.server_port)
    assert (status, body, headers.get("Transfer-Encoding")) == (200, b"one two", "chunked")
    raw = in_thread(raw_exchange, server.server_port, b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    assert raw.endswith(b"\r\n\r\n4\r\none \r\n3\r\ntwo\r\n0\r\n\r\n")


def test_generator_response_to_http_1_0_is_delimited_by_close(serve):
    def app(environ, start_response):
        start_response("200 OK", [])
        yield b"streamed"

    server = serve(app)
    raw = in_thread(raw_exchange, server.server_port, b"GET / HTTP/1.0\r\n\r\n")
    assert b"Transfer-Encoding" not in raw and raw.endswith(b"\r\n\r\nstreamed")


def test_content_length_computed_for_lists(serve):
    def app(environ, start_response):
        start_response("200 OK", [])
        return [b"ab", b"", b"cde"]

    server = serve(app)
    status, headers, body = in_thread(get, server.server_port)
    assert (status, headers.get("Content-Length"), body) == (200, "5", b"abcde")


def test_write_callable(serve):
    def app(environ, start_response):
        write = start_response("200 OK", [("Content-Type", "text/plain")])
        write(b"written ")
        return [b"returned"]

    server = serve(app)
    status, _, body = in_thread(get, server.server_port)
    assert (status, body) == (200, b"written returned")


def test_result_close_is_always_called(serve, quiet_hub):
    closed = []

    class Result:
        def __init__(self, fail):
            self.fail = fail

        def __iter__(self):
            yield b"part"
            if self.fail:
                raise RuntimeError("iteration failed")

        def close(self):
            closed.append(self.fail)

    def app(environ, start_response):
        start_response("200 OK", [])
        return Result(environ["PATH_INFO"] == "/fail")

    server = serve(app)
    assert in_thread(get, server.server_port)[2] == b"part"
    in_thread(raw_exchange, server.server_port, b"GET /fail HTTP/1.1\r\nHost: x\r\n\r\n")
    assert closed == [False, True]


def test_expect_100_continue(serve):
    server = serve(echo_body)

    def client():
        with stdlib_socket.create_connection(("127.0.0.1", server.server_port), timeout=10) as sock:
            sock.sendall(b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\nExpect: 100-continue\r\n\r\n")
            interim = sock.recv(100)
            sock.sendall(b"body")
            final = b""
            while not final.endswith(b"body"):
                final += sock.recv(4096)
            return interim, final

    interim, final = in_thread(client)
    assert interim == b"HTTP/1.1 100 Continue\r\n\r\n"
    assert final.startswith(b"HTTP/1.1 200 OK\r\n")


@pytest.mark.verdigris_only  # gevent waits for a body the client was never asked to send
def test_expect_100_continue_unread_body_closes_without_100(serve):
    server = serve(hello)
    response = in_thread(raw_exchange, server.server_port,
                         b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\nExpect: 100-continue\r\n\r\n")
    assert b"100 Continue" not in response and status_of(response) == 200
    assert b"Connection: close\r\n" in response and response.endswith(b"hello")


@pytest.mark.verdigris_only  # gevent sends the application's body in answer to HEAD
def test_head_response_has_no_body(serve):
    server = serve(hello)

    def head_then_get():
        connection = http.client.HTTPConnection("127.0.0.1", server.server_port, timeout=10)
        connection.request("HEAD", "/")
        head = connection.getresponse()
        head_result = (head.status, head.getheader("Content-Length"), head.read())
        connection.request("GET", "/")  # the same connection: no stray body in between
        response = connection.getresponse()
        return head_result, (response.status, response.read())

    assert in_thread(head_then_get) == ((200, "5", b""), (200, b"hello"))


def test_204_and_304_have_no_body(serve):
    def app(environ, start_response):
        start_response(environ["PATH_INFO"][1:] + " Nothing", [])
        return []

    server = serve(app)
    for code in (204, 304):
        raw = in_thread(raw_exchange, server.server_port,
                        b"GET /%d HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n" % code)
        assert status_of(raw) == code and raw.endswith(b"\r\n\r\n")
        assert b"Content-Length" not in raw and b"Transfer-Encoding" not in raw


# -- start_response ------------------------------------------------------------------------------

def test_exc_info_before_headers_replaces_the_response(serve):
    def app(environ, start_response):
        start_response("200 OK", [("Content-Type", "text/plain")])
        try:
            raise KeyError("missing")
        except KeyError:
            start_response("404 Not Found", [("Content-Length", "4")], sys.exc_info())
        return [b"nope"]

    server = serve(app)
    status, _, body = in_thread(get, server.server_port)
    assert (status, body) == (404, b"nope")


def test_exc_info_after_headers_reraises(serve, quiet_hub):
    raised = []

    def app(environ, start_response):
        write = start_response("200 OK", [("Content-Type", "text/plain")])
        write(b"begun")
        try:
            raise KeyError("late")
        except KeyError:
            try:
                start_response("500 Oops", [], sys.exc_info())
            except KeyError as ex:
                raised.append(ex)
                raise

    server = serve(app)
    response = in_thread(raw_exchange, server.server_port, b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
    assert status_of(response) == 200 and b"begun" in response  # then the connection closed
    assert len(raised) == 1 and "late" in quiet_hub.getvalue()


@pytest.mark.parametrize("headers", [
    [("X-Bad", "a\r\nInjected: yes")],
    [("X-Bad\n", "value")],
    [(b"X-Bytes", "value")],
    [("X-Snowman", "\u2603")],
])
def test_invalid_response_headers_become_500(serve, quiet_hub, headers):
    def app(environ, start_response):
        start_response("200 OK", headers)
        return [b"never sent"]

    server = serve(app)
    status, _, body = in_thread(get, server.server_port)
    assert status == 500 and body == b"Internal Server Error"


@pytest.mark.verdigris_only  # gevent sends nothing and keeps the connection: the client hangs
def test_no_start_response_and_empty_body_gets_500(serve, quiet_hub):
    server = serve(lambda environ, start_response: [])
    status, _, _ = in_thread(get, server.server_port)
    assert status == 500 and "did not call start_response" in quiet_hub.getvalue()


@pytest.mark.verdigris_only  # gevent keeps the connection: the client waits for the missing bytes
def test_body_shorter_than_its_content_length_closes_the_connection(serve):
    def app(environ, start_response):
        start_response("200 OK", [("Content-Length", "10")])
        return [b"short"]

    server = serve(app)
    response = in_thread(raw_exchange, server.server_port, b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
    assert status_of(response) == 200 and response.endswith(b"short")  # then closed


# -- errors --------------------------------------------------------------------------------------

def test_failing_application_gets_500_and_is_logged(serve, quiet_hub):
    def app(environ, start_response):
        if environ["PATH_INFO"] == "/boom":
            raise ZeroDivisionError("application failed on purpose")
        return hello(environ, start_response)

    server = serve(app)
    status, headers, body = in_thread(get, server.server_port, "/boom")
    assert (status, body, headers.get("Connection")) == (500, b"Internal Server Error", "close")
    assert "application failed on purpose" in quiet_hub.getvalue()
    assert in_thread(get, server.server_port)[0] == 200  # still serving


def test_failure_after_the_headers_closes_the_connection(serve, quiet_hub):
    def app(environ, start_response):
        start_response("200 OK", [("Content-Length", "100")])
        yield b"partial"
        raise ValueError("mid-body failure")

    server = serve(app)
    response = in_thread(raw_exchange, server.server_port, b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
    assert status_of(response) == 200 and response.endswith(b"partial")
    assert "mid-body failure" in quiet_hub.getvalue()


@pytest.mark.parametrize("request_bytes", [
    b"GARBAGE\r\n\r\n",
    b"GET / HTTP/1.1 extra words\r\n\r\n",
    b"GET / HTTP/3.0\r\nHost: x\r\n\r\n",
    b"GET / FOO/1.1\r\nHost: x\r\n\r\n",
    b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: -5\r\n\r\n",
    b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: abc\r\n\r\n",
])
def test_malformed_requests_get_400_and_close(serve, request_bytes):
    errors = io.StringIO()
    server = serve(hello, error_log=errors)
    response = in_thread(raw_exchange, server.server_port, request_bytes)
    assert status_of(response) == 400  # and raw_exchange saw the connection closed
    assert errors.getvalue().count("\n") == 1
    assert in_thread(get, server.server_port)[0] == 200


@pytest.mark.verdigris_only  # gevent accepts these (and passes them to the application)
@pytest.mark.parametrize("request_bytes", [
    b"GET / HTTP/1.1\r\nHost: x\rX-Smuggled: 1\r\n\r\n",          # a bare CR
    b"GET / HTTP/1.1\r\nHost : x\r\n\r\n",                         # blank before the colon
    b"GET / HTTP/1.1\r\nNo colon here\r\n\r\n",
    b"POST / HTTP/1.1\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\nhello!",
    b"POST / HTTP/1.1\r\nTransfer-Encoding: gzip\r\n\r\n",
    b"POST / HTTP/1.1\r\nContent-Length: 1_0\r\n\r\n",
])
def test_ambiguous_requests_get_400(serve, request_bytes):
    server = serve(echo_body, error_log=io.StringIO())
    response = in_thread(raw_exchange, server.server_port, request_bytes)
    assert status_of(response) == 400


def test_lf_line_ends_and_folded_headers_are_accepted(serve):
    seen = {}

    def app(environ, start_response):
        seen.update(environ)
        return hello(environ, start_response)

    server = serve(app)
    response = in_thread(raw_exchange, server.server_port,
                         b"GET /lf HTTP/1.1\nHost: x\nX-Folded: one\r\n  two\nConnection: close\n\n")
    assert status_of(response) == 200 and response.endswith(b"hello")
    assert (seen["PATH_INFO"], seen["HTTP_X_FOLDED"].split()) == ("/lf", ["one", "two"])


def test_overlong_request_line_gets_414(serve):
    server = serve(hello)
    response = in_thread(raw_exchange, server.server_port,
                         b"GET /" + b"a" * 9000 + b" HTTP/1.1\r\nHost: x\r\n\r\n")
    assert status_of(response) == 414
    assert in_thread(get, server.server_port)[0] == 200


@pytest.mark.parametrize("head", [
    b"".join(b"X-H%d: v\r\n" % i for i in range(200)),
    b"X-Huge: " + b"h" * 70000 + b"\r\n",
])
def test_too_many_or_too_large_headers_are_refused(serve, head):
    server = serve(hello)
    response = in_thread(raw_exchange, server.server_port, b"GET / HTTP/1.1\r\nHost: x\r\n" + head + b"\r\n")
    assert status_of(response) in (400, 431)  # gevent answers 400, verdigris 431
    if not AGAINST_GEVENT:
        assert status_of(response) == 431
    assert in_thread(get, server.server_port)[0] == 200


@pytest.mark.parametrize("body", [
    b"zz\r\nhello\r\n0\r\n\r\n",            # not hex
    b"5\r\nhelloXX0\r\n\r\n",                # no CRLF after the data
    b"fffffffffffffffff\r\n",                # more than 16 hex digits
    b"5;" + b"e" * 9000 + b"\r\nhello\r\n0\r\n\r\n",  # endless extension
    b"5\r\nhello\r\n0\r\nBad Trailer\r\n\r\n",  # trailer without a name
])
def test_bad_chunked_bodies_get_400_and_close(serve, body):
    server = serve(echo_body, error_log=io.StringIO())
    response = in_thread(raw_exchange, server.server_port,
                         b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n" + body)
    assert status_of(response) == 400
    assert in_thread(get, server.server_port)[0] == 200


def test_premature_close_of_the_body(serve, quiet_hub):
    failures = []

    def app(environ, start_response):
        try:
            environ["wsgi.input"].read()
        except IOError as ex:
            failures.append(str(ex))
            raise
        return hello(environ, start_response)

    server = serve(app)
    response = in_thread(raw_exchange, server.server_port,
                         b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\nonly ten..", True)
    assert response == b"" or status_of(response) == 500
    assert len(failures) == 1 and "unexpected end of file" in failures[0]
    assert in_thread(get, server.server_port)[0] == 200


def test_client_vanishing_mid_request_does_not_disturb_the_server(serve):
    server = serve(hello)
    response = in_thread(raw_exchange, server.server_port, b"GET / HTTP/1.1\r\nHo", True)
    assert status_of(response) in (None, 200)  # gevent answers the truncated head, verdigris drops it
    assert in_thread(get, server.server_port)[0] == 200


def test_unix_socket_listener(tmp_path):
    from verdigris import socket as cooperative

    path = str(tmp_path / "wsgi.sock")
    listener = cooperative.socket(stdlib_socket.AF_UNIX, stdlib_socket.SOCK_STREAM)
    listener.bind(path)
    listener.listen(16)
    seen = {}

    def app(environ, start_response):
        seen.update(environ)
        return hello(environ, start_response)

    server = pywsgi.WSGIServer(listener, app, log=None)
    server.start()
    try:
        def over_unix():
            with stdlib_socket.socket(stdlib_socket.AF_UNIX) as client:
                client.settimeout(10)
                client.connect(path)
                client.sendall(b"GET /unix HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
                data = b""
                while True:
                    chunk = client.recv(4096)
                    if not chunk:
                        return data
                    data += chunk

        response = in_thread(over_unix)
    finally:
        server.stop()
    assert status_of(response) == 200 and response.endswith(b"hello")
    assert seen["PATH_INFO"] == "/unix" and "REMOTE_PORT" not in seen


# -- concurrency ---------------------------------------------------------------------------------

def test_slow_requests_do_not_serialize(serve):
    def slow(environ, start_response):
        verdigris.sleep(0.5)
        return hello(environ, start_response)

    server = serve(slow)

    def ten_at_once():
        with concurrent.futures.ThreadPoolExecutor(10) as executor:
            started = time.monotonic()
            results = list(executor.map(lambda _: get(server.server_port)[0], range(10)))
            return results, time.monotonic() - started

    results, elapsed = in_thread(ten_at_once, timeout=30)
    assert results == [200] * 10
    assert elapsed < 10 * 0.5 / 2  # sequential would take 5 s


def test_two_hundred_concurrent_clients(serve):
    server = serve(echo_body, spawn=Pool(1000))

    def client(i):
        return get(server.server_port, "/", "POST", b"client %d" % i)[2]

    def all_clients():
        with concurrent.futures.ThreadPoolExecutor(200) as executor:
            return list(executor.map(client, range(200)))

    assert in_thread(all_clients, timeout=60) == [b"client %d" % i for i in range(200)]


# -- logging -------------------------------------------------------------------------------------

def test_access_log_line(serve):
    log = io.StringIO()
    server = serve(hello, log=log)
    in_thread(get, server.server_port, "/path?x=1")
    line = log.getvalue()
    assert re.match(r'127\.0\.0\.1 - - \[\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\] "GET /path\?x=1 HTTP/1\.1" '
                    r'200 \d+ \d+\.\d{6}\n$', line), line


def test_access_log_to_a_logger(serve):
    records = []

    class Collect(logging.Handler):
        def emit(self, record):
            records.append((record.levelno, record.getMessage()))

    logger = logging.getLogger("verdigris.test.access")
    logger.propagate = False
    logger.setLevel(logging.DEBUG)
    collector = Collect()
    logger.addHandler(collector)
    try:
        server = serve(hello, log=logger)
        assert isinstance(server.log, pywsgi.LoggingLogAdapter)
        in_thread(get, server.server_port)
    finally:
        logger.removeHandler(collector)
    assert len(records) == 1 and records[0][0] == logging.INFO
    assert '"GET / HTTP/1.1" 200' in records[0][1] and not records[0][1].endswith("\n")


def test_secure_environ_masks_values():
    environ = pywsgi.WSGISecureEnviron(REMOTE_ADDR="::1", HTTP_AUTHORIZATION="secret")
    assert repr(environ) == "{'REMOTE_ADDR': '::1', (hidden keys: 1)}"
    assert "secret" not in str(pywsgi.SecureEnviron(HTTP_AUTHORIZATION="secret"))


# -- server life cycle ---------------------------------------------------------------------------

def test_stop_lets_a_request_in_flight_finish(serve):
    record = []

    def slow(environ, start_response):
        record.append("request")
        verdigris.sleep(0.3)
        record.append("response")
        return hello(environ, start_response)

    server = serve(slow, spawn=Pool(10))
    client = verdigris.spawn(in_thread, get, server.server_port)
    verdigris.sleep(0.15)
    server.stop(timeout=5)
    record.append("stopped")
    status, _, body = client.get(timeout=10)
    assert (status, body) == (200, b"hello")
    assert record == ["request", "response", "stopped"]


@pytest.mark.verdigris_only  # gevent has no idle timeout and leaves idle connections open on stop
def test_idle_keep_alive_connections_close_on_stop_and_timeout(serve):
    server = serve(hello, keepalive=0.3)

    def idle_until_closed():
        with stdlib_socket.create_connection(("127.0.0.1", server.server_port), timeout=10) as client:
            client.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
            data = b""
            while not data.endswith(b"hello"):
                data += client.recv(4096)
            started = time.monotonic()
            assert client.recv(4096) == b""  # closed by the server: idle too long
            return time.monotonic() - started

    assert in_thread(idle_until_closed) < 5

    other = serve(hello)  # the default keepalive: closed by stop() instead
    idle = verdigris.spawn(in_thread, lambda: raw_exchange(other.server_port, b"GET / HTTP/1.1\r\nHost: x\r\n\r\n"))
    verdigris.sleep(0.2)
    started = time.monotonic()
    other.stop(timeout=5)
    assert time.monotonic() - started < 2  # did not wait for the idle connection
    assert idle.get(timeout=10).endswith(b"hello")


@pytest.mark.verdigris_only  # gevent stalls ~40 ms per request here (Nagle + delayed ACK)
def test_no_delayed_ack_stall_on_keep_alive(serve):
    server = serve(echo_body)

    def twenty_requests():
        with stdlib_socket.create_connection(("127.0.0.1", server.server_port), timeout=10) as client:
            started = time.monotonic()
            for _ in range(20):
                client.sendall(b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\n")
                client.sendall(b"hello")  # a second write, held by the client's Nagle
                data = b""
                while not data.endswith(b"hello"):
                    data += client.recv(4096)
            return time.monotonic() - started

    # A 40 ms stall per request would take 0.8 s at least.
    assert in_thread(twenty_requests) < 0.4


def test_handler_class_and_environ_arguments(serve):
    class Handler(pywsgi.WSGIHandler):
        def get_environ(self):
            environ = pywsgi.WSGIHandler.get_environ(self)
            environ["custom.handler"] = True
            return environ

    seen = {}

    def app(environ, start_response):
        seen.update(environ)
        return hello(environ, start_response)

    server = serve(app, handler_class=Handler, environ={"custom.server": "yes"})
    in_thread(get, server.server_port)
    assert (seen["custom.handler"], seen["custom.server"]) == (True, "yes")


# -- TLS -----------------------------------------------------------------------------------------

def test_https(serve, tls_files):
    pytest.importorskip("verdigris.ssl", reason="verdigris.ssl is not written yet")
    cert, key = tls_files
    schemes = []

    def app(environ, start_response):
        schemes.append(environ["wsgi.url_scheme"])
        return hello(environ, start_response)

    server = serve(app, certfile=cert, keyfile=key)

    def fetch():
        with requests.Session() as session:
            first = session.get("https://localhost:%d/" % server.server_port, verify=cert, timeout=10)
            second = session.get("https://localhost:%d/" % server.server_port, verify=cert, timeout=10)
            return first.status_code, first.content, second.status_code

    assert in_thread(fetch) == (200, b"hello", 200)
    assert schemes == ["https", "https"]


# -- the example ---------------------------------------------------------------------------------

def test_wsgi_hello_example():
    process, line = start_example("wsgi_hello.py", "0")
    try:
        assert line.startswith("serving on http://127.0.0.1:")
        port = int(line.strip().rstrip("/").rsplit(":", 1)[1])
        assert in_thread(get, port)[::2] == (200, b"Hello, World!\n")
    finally:
        stop_example(process)
