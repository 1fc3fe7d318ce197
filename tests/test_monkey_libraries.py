"""Unmodified blocking libraries under ``patch_all()``: requests, urllib, http.client, redis-py.

Each client runs in a patched child interpreter (timeout 60 s) against a real server on
127.0.0.1 that this module starts in its own process and stops by pid: an HTTP server whose
handler sleeps before answering, and a ``redis-server``. Concurrent calls must take about the time
of one call: the assertions allow half the sequential time, a wide margin on a noisy machine.
"""
import json
import os
import select
import shutil
import socket
import subprocess
import sys
import textwrap
import time

import pytest

DELAY = 0.5  # seconds the HTTP server sleeps before each answer
CALLS = 10  # concurrent calls per client library
SEQUENTIAL = CALLS * DELAY

PRELUDE = """\
import importlib, os, sys
if os.environ.get("VERDIGRIS_TEST_AGAINST") == "gevent":
    import gevent
    sys.modules["verdigris"] = gevent
    sys.modules["verdigris.monkey"] = importlib.import_module("gevent.monkey")
from verdigris import monkey
monkey.patch_all()
import json, time
import verdigris
"""

HTTP_SERVER = """\
import http.server, sys, time

class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_GET(self):
        time.sleep(%(delay)r)
        body = ("answer to " + self.path).encode()
        self.send_response(200)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass

class Server(http.server.ThreadingHTTPServer):
    request_queue_size = 128  # all the concurrent connects must be accepted at once
    daemon_threads = True

server = Server(("127.0.0.1", 0), Handler)
print(server.server_address[1], flush=True)
server.serve_forever()
""" % {"delay": DELAY}


def _env():
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(p for p in sys.path if p))
    env.pop("PYTHONWARNINGS", None)
    return env


def _stop(proc):
    proc.kill()
    proc.wait(timeout=10)
    if proc.stdout is not None:
        proc.stdout.close()


@pytest.fixture(scope="module")
def http_port():
    """Port of a threading HTTP server (plain CPython threads) answering after DELAY seconds."""
    proc = subprocess.Popen([sys.executable, "-c", HTTP_SERVER], stdout=subprocess.PIPE,
                            text=True, env=_env())
    try:
        ready, _, _ = select.select([proc.stdout], [], [], 30)
        assert ready, "the HTTP server did not report its port within 30 s"
        yield int(proc.stdout.readline())
    finally:
        _stop(proc)


def run_client(body, **values):
    """Run *body* (after the patching PRELUDE, with ``%(name)s`` filled from *values*) and
    return the JSON of its ``RESULT`` line."""
    source = PRELUDE + textwrap.dedent(body) % values
    proc = subprocess.run([sys.executable, "-c", source], capture_output=True, text=True,
                          timeout=60, env=_env())
    assert proc.returncode == 0, (proc.stdout, proc.stderr)
    assert "Traceback" not in proc.stderr, proc.stderr
    lines = [line for line in proc.stdout.splitlines() if line.startswith("RESULT ")]
    assert lines, proc.stdout
    return json.loads(lines[-1][len("RESULT "):])


CONCURRENT_CALLS = """
def call(n):
    %(call)s

start = time.monotonic()
greenlets = [verdigris.spawn(call, n) for n in range(%(calls)d)]
verdigris.joinall(greenlets, timeout=30, raise_error=True)
print("RESULT", json.dumps({"elapsed": time.monotonic() - start,
                            "bodies": [g.value for g in greenlets]}))
"""


def _check_concurrent(result):
    assert result["bodies"] == ["answer to /%d" % n for n in range(CALLS)]
    assert result["elapsed"] < 0.5 * SEQUENTIAL, result["elapsed"]


def test_requests(http_port):
    pytest.importorskip("requests", reason="requests is not installed (pip install requests)")
    result = run_client(CONCURRENT_CALLS, calls=CALLS, call="""\
import requests
    return requests.get("http://127.0.0.1:%d/%%d" %% n, timeout=10).text""" % http_port)
    _check_concurrent(result)


def test_urllib_request(http_port):
    result = run_client(CONCURRENT_CALLS, calls=CALLS, call="""\
import urllib.request
    with urllib.request.urlopen("http://127.0.0.1:%d/%%d" %% n, timeout=10) as reply:
        return reply.read().decode()""" % http_port)
    _check_concurrent(result)


def test_http_client(http_port):
    result = run_client(CONCURRENT_CALLS, calls=CALLS, call="""\
import http.client
    conn = http.client.HTTPConnection("127.0.0.1", %d, timeout=10)
    try:
        conn.request("GET", "/%%d" %% n)
        return conn.getresponse().read().decode()
    finally:
        conn.close()""" % http_port)
    _check_concurrent(result)


# -- redis ---------------------------------------------------------------------------------------

def _free_port():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture(scope="module")
def redis_port():
    """Port of a private redis-server (no persistence), stopped by pid afterwards."""
    server = shutil.which("redis-server")
    if server is None:
        pytest.skip("redis-server is not installed (Debian: apt-get install redis-server)")
    pytest.importorskip("redis", reason="redis-py is not installed (pip install redis)")
    port = _free_port()
    proc = subprocess.Popen([server, "--port", str(port), "--bind", "127.0.0.1", "--save", "",
                             "--appendonly", "no", "--daemonize", "no"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 30
        while True:
            assert proc.poll() is None, "redis-server exited with %s" % proc.returncode
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=1) as conn:
                    conn.sendall(b"PING\r\n")
                    if conn.recv(64).startswith(b"+PONG"):
                        break
            except OSError:
                pass
            assert time.monotonic() < deadline, "redis-server did not answer within 30 s"
            time.sleep(0.05)
        yield port
    finally:
        _stop(proc)


def test_redis_many_greenlets(redis_port):
    result = run_client("""
        import redis
        # At most 50 connections: the other greenlets wait for one in the pool's (patched) queue.
        pool = redis.BlockingConnectionPool(host="127.0.0.1", port=%(port)d, max_connections=50,
                                            timeout=20, socket_timeout=10)
        client = redis.Redis(connection_pool=pool)

        def set_get(n):
            key = "key:%%d" %% n
            client.set(key, n)
            verdigris.sleep(0.001)  # let the others interleave between the two commands
            return int(client.get(key))

        greenlets = [verdigris.spawn(set_get, n) for n in range(300)]
        verdigris.joinall(greenlets, timeout=30, raise_error=True)
        print("RESULT", json.dumps({"values": [g.value for g in greenlets],
                                    "connections": len(pool._connections)}))
    """, port=redis_port)
    assert result["values"] == list(range(300))
    assert result["connections"] == 50  # the commands really overlapped, up to the pool's size


def test_redis_blocking_pops_while_others_push(redis_port):
    result = run_client("""
        import redis
        client = redis.Redis(host="127.0.0.1", port=%(port)d, socket_timeout=20)
        client.delete(*["list:%%d" %% n for n in range(5)])
        record = []
        ticks = []

        def ticker():
            while len(record) < 5:
                ticks.append(1)
                verdigris.sleep(0.01)

        def pop(n):
            key, value = client.blpop(["list:%%d" %% n], timeout=10)
            record.append([n, value.decode()])

        def push(n):
            time.sleep(0.3)
            client.lpush("list:%%d" %% n, "value %%d" %% n)

        start = time.monotonic()
        verdigris.spawn(ticker)
        poppers = [verdigris.spawn(pop, n) for n in range(5)]
        verdigris.sleep(0.1)
        blocked = [not g.ready() for g in poppers]
        pushers = [verdigris.spawn(push, n) for n in reversed(range(5))]
        verdigris.joinall(poppers + pushers, timeout=30, raise_error=True)
        print("RESULT", json.dumps({"blocked": blocked, "record": sorted(record),
                                    "elapsed": time.monotonic() - start,
                                    "ticked": len(ticks) > 5}))
    """, port=redis_port)
    # Sequentially (a BLPOP blocking the process) the first pop would wait its whole 10 s.
    assert result.pop("elapsed") < 0.5 * (5 * 0.3 + 0.1)
    assert result == {"blocked": [True] * 5, "record": [[n, "value %d" % n] for n in range(5)],
                      "ticked": True}
