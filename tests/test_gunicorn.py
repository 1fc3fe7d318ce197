"""verdigris.gunicorn: gunicorn serving an application with verdigris's workers.

Each test runs a real gunicorn arbiter (one worker) in a subprocess on 127.0.0.1, talks HTTP to
it from threads, and stops it by its pid. Against gevent (``VERDIGRIS_TEST_AGAINST=gevent``)
the same tests run gunicorn's own gevent workers, which are what verdigris's imitate.
"""
import concurrent.futures
import http.client
import os
import re
import signal
import ssl
import subprocess
import sys
import textwrap
import time

import pytest

pytest.importorskip("gunicorn", reason="gunicorn is an optional dependency (pip install gunicorn)")

AGAINST_GEVENT = os.environ.get("VERDIGRIS_TEST_AGAINST") == "gevent"
WORKERS = {
    "Worker": "gevent" if AGAINST_GEVENT else "verdigris.gunicorn.Worker",
    "PyWSGIWorker": ("gunicorn.workers.ggevent.GeventPyWSGIWorker" if AGAINST_GEVENT
                     else "verdigris.gunicorn.PyWSGIWorker"),
}
STARTUP_TIMEOUT = 60

APP = '''
import os
import time

def application(environ, start_response):
    path = environ["PATH_INFO"]
    if path == "/slow":
        time.sleep(float(environ["QUERY_STRING"] or "1"))  # monkey-patched: yields
    body = ("%s %s" % (path, os.getpid())).encode()
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", str(len(body)))])
    return [body]
'''


class Gunicorn:
    """A gunicorn arbiter in a subprocess, with its log collected."""

    def __init__(self, tmp_path, worker, *options, launcher=("-m", "gunicorn")):
        (tmp_path / "app.py").write_text(textwrap.dedent(APP))
        self.log_path = tmp_path / "gunicorn.log"
        self.log_file = open(self.log_path, "w+")
        command = [sys.executable, *launcher, "-k", WORKERS[worker], "-w", "1",
                   "-b", "127.0.0.1:0", "--chdir", str(tmp_path), "--log-level", "info",
                   "--graceful-timeout", "10", "--keep-alive", "2"] + list(options) + ["app:application"]
        self.process = subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=self.log_file,
                                        stderr=subprocess.STDOUT, cwd=str(tmp_path))
        self.port = self._wait_for_port()

    def log(self):
        self.log_file.flush()
        return self.log_path.read_text()

    def _wait_for_port(self):
        deadline = time.monotonic() + STARTUP_TIMEOUT
        while time.monotonic() < deadline:
            match = re.search(r"Listening at: https?://127\.0\.0\.1:(\d+)", self.log())
            if match and "Booting worker" in self.log():
                return int(match.group(1))
            if self.process.poll() is not None:
                break
            time.sleep(0.05)
        log = self.log()
        self.stop()
        raise AssertionError("gunicorn did not start:\n" + log)

    def wait_until_served(self, tls=None):
        """Waits until the worker answers (it may still be importing after "Booting")."""
        deadline = time.monotonic() + STARTUP_TIMEOUT
        while True:
            try:
                return get(self.port, "/", tls=tls)
            except OSError:
                assert time.monotonic() < deadline, "no answer from gunicorn:\n" + self.log()
                time.sleep(0.05)

    def signal(self, signum):
        self.process.send_signal(signum)

    def wait(self, timeout=60):
        return self.process.wait(timeout=timeout)

    def stop(self):
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=60)
        self.log_file.close()


@pytest.fixture
def gunicorn(tmp_path):
    started = []

    def start(worker="Worker", *options, launcher=("-m", "gunicorn"), tls=None):
        server = Gunicorn(tmp_path, worker, *options, launcher=launcher)
        started.append(server)
        server.wait_until_served(tls)
        return server

    yield start
    for server in started:
        server.stop()


def get(port, path, timeout=10, tls=None):
    if tls is None:
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    else:
        connection = http.client.HTTPSConnection("localhost", port, timeout=timeout,
                                                 context=ssl.create_default_context(cafile=tls))
    try:
        connection.request("GET", path)
        response = connection.getresponse()
        return response.status, response.read().decode()
    finally:
        connection.close()


@pytest.mark.parametrize("worker", ["Worker", "PyWSGIWorker"])
def test_serves_requests(gunicorn, worker):
    server = gunicorn(worker)
    status, body = get(server.port, "/hello")
    assert status == 200 and re.match(r"/hello \d+$", body)
    assert "Booting worker" in server.log()


@pytest.mark.parametrize("worker", ["Worker", "PyWSGIWorker"])
def test_one_worker_serves_slow_requests_concurrently(gunicorn, worker):
    server = gunicorn(worker)
    with concurrent.futures.ThreadPoolExecutor(5) as executor:
        started = time.monotonic()
        results = list(executor.map(lambda _: get(server.port, "/slow?0.5")[0], range(5)))
        elapsed = time.monotonic() - started
    assert results == [200] * 5
    assert elapsed < 5 * 0.5 / 2  # one after the other would take 2.5 s


@pytest.mark.parametrize("worker", ["Worker", "PyWSGIWorker"])
def test_sigterm_finishes_the_request_in_flight_then_exits(gunicorn, worker):
    server = gunicorn(worker)
    with concurrent.futures.ThreadPoolExecutor(1) as executor:
        in_flight = executor.submit(get, server.port, "/slow?1")
        time.sleep(0.4)  # the request is being handled
        server.signal(signal.SIGTERM)
        status, body = in_flight.result(timeout=30)
    assert status == 200 and body.startswith("/slow ")
    assert server.wait(timeout=60) == 0
    log = server.log()
    assert "Handling signal: term" in log and "Shutting down: Master" in log
    assert "Worker graceful timeout" not in log


@pytest.mark.parametrize("worker", ["Worker", "PyWSGIWorker"])
def test_access_log_and_a_malformed_request(gunicorn, worker):
    import socket

    server = gunicorn(worker, "--access-logfile", "-")
    assert get(server.port, "/logged?x=1")[0] == 200
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as client:
        client.sendall(b"NONSENSE\r\n\r\n")
        assert client.recv(100).startswith(b"HTTP/1.1 400 ")
    assert get(server.port, "/after")[0] == 200  # the worker lives on
    deadline = time.monotonic() + 10
    while '"GET /after HTTP/1.1" 200' not in server.log():
        assert time.monotonic() < deadline, server.log()
        time.sleep(0.05)
    assert '"GET /logged?x=1 HTTP/1.1" 200' in server.log()


def test_sighup_reloads_gracefully(gunicorn):
    server = gunicorn("Worker")
    old_pid = get(server.port, "/pid")[1].split()[1]
    with concurrent.futures.ThreadPoolExecutor(1) as executor:
        in_flight = executor.submit(get, server.port, "/slow?1")
        time.sleep(0.4)
        server.signal(signal.SIGHUP)
        status, body = in_flight.result(timeout=30)
    assert status == 200 and body.split()[1] == old_pid  # finished by the old worker
    deadline = time.monotonic() + 60
    while True:  # then a new worker serves
        try:
            new_pid = get(server.port, "/pid")[1].split()[1]
        except OSError:
            new_pid = None
        if new_pid not in (None, old_pid):
            break
        assert time.monotonic() < deadline, "no new worker:\n" + server.log()
        time.sleep(0.05)
    assert "Hang up: Master" in server.log()


def test_heartbeat_keeps_a_busy_worker_alive(gunicorn):
    server = gunicorn("Worker", "--timeout", "2")
    status, _ = get(server.port, "/slow?3.5", timeout=30)  # longer than the timeout
    assert status == 200
    assert "WORKER TIMEOUT" not in server.log()


def test_sigquit_stops_at_once(gunicorn):
    server = gunicorn("Worker")
    with concurrent.futures.ThreadPoolExecutor(1) as executor:
        in_flight = executor.submit(get, server.port, "/slow?30")
        time.sleep(0.4)
        started = time.monotonic()
        server.signal(signal.SIGQUIT)
        assert server.wait(timeout=60) == 0
        assert time.monotonic() - started < 10  # not the 30 s of the request
        with pytest.raises((OSError, http.client.HTTPException)):
            in_flight.result(timeout=30)


def test_max_requests_restarts_the_worker(gunicorn):
    server = gunicorn("Worker", "--max-requests", "3")
    pids = []
    deadline = time.monotonic() + 60
    while len(set(pids)) < 2:
        assert time.monotonic() < deadline, "the worker was not replaced:\n" + server.log()
        try:
            pids.append(get(server.port, "/pid")[1].split()[1])
        except OSError:
            time.sleep(0.05)  # between the old worker and the new one
    assert len(pids) >= 3 and pids[:3] == [pids[0]] * 3
    assert "Autorestarting worker after current request." in server.log()


def test_tls(gunicorn, tmp_path):
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=localhost",
                    "-addext", "subjectAltName=DNS:localhost", "-keyout", str(key), "-out", str(cert),
                    "-days", "1"], check=True, capture_output=True, timeout=60)
    server = gunicorn("Worker", "--certfile", str(cert), "--keyfile", str(key), tls=str(cert))
    with concurrent.futures.ThreadPoolExecutor(3) as executor:
        results = list(executor.map(lambda _: get(server.port, "/slow?0.3", tls=str(cert))[0], range(3)))
    assert results == [200] * 3


# gunicorn's command line, run with verdigris.monkey made unimportable.
WITHOUT_MONKEY = (
    "-c",
    "import sys; sys.modules['verdigris.monkey'] = None; "
    "from gunicorn.app.wsgiapp import run; sys.argv[0] = 'gunicorn'; run()",
)


@pytest.mark.verdigris_only  # how verdigris's worker degrades without verdigris.monkey
def test_worker_runs_without_monkey_patching(gunicorn):
    server = gunicorn("Worker", launcher=WITHOUT_MONKEY)
    assert get(server.port, "/hello")[0] == 200
    assert "verdigris.monkey is unavailable" in server.log()
