"""verdigris.server and verdigris.baseserver: StreamServer, DatagramServer (gevent's semantics).

Servers run in this process's hub; clients are cooperative sockets in greenlets, or stdlib
sockets in real threads (the main greenlet keeps the loop running while it waits for them).
"""
import errno
import io
import os
import socket as stdlib_socket
import ssl as stdlib_ssl
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

import verdigris
from verdigris import socket
from verdigris.event import Event
from verdigris.pool import Pool
from verdigris.server import DatagramServer, StreamServer

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


# -- helpers -------------------------------------------------------------------------------------

def in_thread(func, *args, timeout=20):
    """Runs ``func(*args)`` in a real thread; the loop runs meanwhile. Returns its result."""
    outcome = {}

    def target():
        try:
            outcome["value"] = func(*args)
        except BaseException as ex:  # noqa: BLE001 - re-raised in the test
            outcome["error"] = ex

    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    deadline = time.monotonic() + timeout
    while thread.is_alive():
        assert time.monotonic() < deadline, "client thread still running after %ss" % timeout
        verdigris.sleep(0.005)
    if "error" in outcome:
        raise outcome["error"]
    return outcome["value"]


def recv_until_eof(sock, limit=1 << 20):
    data = b""
    while len(data) < limit:
        chunk = sock.recv(65536)
        if not chunk:
            break
        data += chunk
    return data


def echo(sock, address):
    while True:
        data = sock.recv(1024)
        if not data:
            break
        sock.sendall(data)


@pytest.fixture
def quiet_hub():
    """Collects what the hub would print about failed greenlets and callbacks."""
    hub = verdigris.get_hub()
    stream = io.StringIO()
    hub.exception_stream = stream
    yield stream
    del hub.exception_stream


@pytest.fixture
def servers():
    """Stops every server a test started, even if it fails."""
    started = []
    yield started
    for server in started:
        server.stop(timeout=0.5)


def start(servers, server):
    server.start()
    servers.append(server)
    return server


def echo_roundtrip(address, payload):
    with socket.create_connection(address, timeout=5) as client:
        client.sendall(payload)
        client.shutdown(stdlib_socket.SHUT_WR)
        return recv_until_eof(client)


# -- StreamServer --------------------------------------------------------------------------------

def test_echo_with_concurrent_clients(servers):
    server = start(servers, StreamServer(("127.0.0.1", 0), echo))
    jobs = [verdigris.spawn(echo_roundtrip, server.address, b"client %d" % i) for i in range(20)]
    assert sorted(verdigris.joinall(jobs, timeout=10, raise_error=True), key=jobs.index) == jobs
    assert [job.value for job in jobs] == [b"client %d" % i for i in range(20)]


def test_address_and_flags_through_the_life_cycle():
    server = StreamServer(("127.0.0.1", 0), echo)
    assert (server.started, server.closed) == (False, True)
    server.start()
    try:
        assert (server.started, server.closed) == (True, False)
        host, port = server.address
        assert (server.server_host, server.server_port) == ("127.0.0.1", port) and port > 0
        assert echo_roundtrip(server.address, b"up") == b"up"
    finally:
        server.stop()
    assert (server.started, server.closed) == (False, True)
    with pytest.raises(ConnectionRefusedError):
        in_thread(stdlib_socket.create_connection, ("127.0.0.1", port), 5)


def test_address_given_as_a_string(servers):
    server = start(servers, StreamServer("127.0.0.1:0", echo))
    assert server.server_host == "127.0.0.1" and server.server_port > 0
    assert echo_roundtrip(server.address, b"str") == b"str"


def make_listener():
    listener = socket.socket()
    listener.setsockopt(stdlib_socket.SOL_SOCKET, stdlib_socket.SO_REUSEADDR, 1)
    listener.bind(("127.0.0.1", 0))
    listener.listen(16)
    return listener


def test_listener_socket_and_backlog_rules(servers):
    refused = make_listener()
    with pytest.raises(TypeError):
        StreamServer(refused, echo, backlog=5)
    assert refused.fileno() == -1  # a server that fails to initialise closes its socket
    listener = make_listener()
    server = start(servers, StreamServer(listener, echo))
    assert server.address == listener.getsockname()
    assert echo_roundtrip(server.address, b"given socket") == b"given socket"


def test_ipv6_address(servers):
    if not stdlib_socket.has_ipv6:
        pytest.skip("no IPv6 on this system")
    try:
        server = start(servers, StreamServer("[::1]:0", echo))
    except OSError as ex:
        pytest.skip("cannot bind ::1: %s" % (ex,))
    assert server.address[0] == "::1"
    assert echo_roundtrip(server.address[:2], b"six") == b"six"


def test_handle_method_of_a_subclass(servers):
    class Upper(StreamServer):
        def handle(self, sock, address):
            sock.sendall(sock.recv(100).upper())

    server = start(servers, Upper(("127.0.0.1", 0)))
    with socket.create_connection(server.address, timeout=5) as client:
        client.sendall(b"shout")
        assert recv_until_eof(client) == b"SHOUT"


def test_handle_is_required_and_max_accept_checked():
    with pytest.raises(TypeError):
        StreamServer(("127.0.0.1", 0))

    class NoAccept(StreamServer):
        max_accept = 0

    with pytest.raises(ValueError):
        NoAccept(("127.0.0.1", 0), echo)


def test_set_handle_replaces_the_handler(servers):
    server = StreamServer(("127.0.0.1", 0), echo)
    server.set_handle(lambda sock, address: sock.sendall(b"replaced"))
    start(servers, server)
    with socket.create_connection(server.address, timeout=5) as client:
        assert recv_until_eof(client) == b"replaced"


def test_connection_is_closed_when_the_handler_returns(servers):
    server = start(servers, StreamServer(("127.0.0.1", 0), lambda sock, address: sock.sendall(b"bye")))
    with socket.create_connection(server.address, timeout=5) as client:
        assert recv_until_eof(client) == b"bye"  # EOF without the client closing first


def test_failing_handler_closes_its_connection_only(servers, quiet_hub):
    def handle(sock, address):
        if sock.recv(10) == b"fail":
            raise ValueError("handler failed on purpose")
        sock.sendall(b"fine")

    server = start(servers, StreamServer(("127.0.0.1", 0), handle))
    assert echo_roundtrip(server.address, b"fail") == b""
    assert echo_roundtrip(server.address, b"ok") == b"fine"
    assert "handler failed on purpose" in quiet_hub.getvalue()


def test_pool_bounds_the_running_handlers(servers):
    running, most, release = [0], [0], Event()

    def handle(sock, address):
        running[0] += 1
        most[0] = max(most[0], running[0])
        release.wait(5)
        running[0] -= 1
        sock.sendall(b"done")

    pool = Pool(2)
    server = start(servers, StreamServer(("127.0.0.1", 0), handle, spawn=pool))
    assert server.pool is pool
    jobs = [verdigris.spawn(echo_roundtrip, server.address, b"") for _ in range(5)]
    verdigris.sleep(0.2)
    assert (running[0], len(pool)) == (2, 2)  # the other three wait in the backlog
    release.set()
    verdigris.joinall(jobs, timeout=10, raise_error=True)
    assert [job.value for job in jobs] == [b"done"] * 5
    assert most[0] == 2


def test_spawn_given_as_a_pool_size(servers):
    server = start(servers, StreamServer(("127.0.0.1", 0), echo, spawn=3))
    assert isinstance(server.pool, Pool) and server.pool.size == 3
    assert echo_roundtrip(server.address, b"sized") == b"sized"


def test_spawn_none_runs_the_handler_in_the_hub(servers):
    seen = []

    def handle(sock, address):
        seen.append(verdigris.getcurrent() is verdigris.get_hub())
        sock.sendall(b"from the hub")  # small, non-blocking

    server = start(servers, StreamServer(("127.0.0.1", 0), handle, spawn=None))
    with socket.create_connection(server.address, timeout=5) as client:
        assert recv_until_eof(client) == b"from the hub"
    assert seen == [True]


def test_spawn_callable(servers):
    server = start(servers, StreamServer(("127.0.0.1", 0), echo, spawn=verdigris.spawn_raw))
    assert echo_roundtrip(server.address, b"raw") == b"raw"


def test_stop_waits_for_pooled_handlers(servers):
    record = []

    def handle(sock, address):
        record.append("handling")
        verdigris.sleep(0.3)
        sock.sendall(b"finished")
        record.append("handled")

    server = start(servers, StreamServer(("127.0.0.1", 0), handle, spawn=Pool(10)))
    client = verdigris.spawn(echo_roundtrip, server.address, b"")
    verdigris.sleep(0.1)
    server.stop(timeout=5)
    record.append("stopped")
    assert record == ["handling", "handled", "stopped"]
    assert client.get(timeout=5) == b"finished"


def test_stop_kills_pooled_handlers_after_the_timeout(servers):
    record = []

    def handle(sock, address):
        try:
            verdigris.sleep(30)
        except verdigris.GreenletExit:
            record.append("killed")
            raise

    server = start(servers, StreamServer(("127.0.0.1", 0), handle, spawn=Pool(10)))
    client = verdigris.spawn(echo_roundtrip, server.address, b"")
    verdigris.sleep(0.1)
    started = time.monotonic()
    server.stop(timeout=0.2)
    record.append("stopped")
    assert record == ["killed", "stopped"]
    assert time.monotonic() - started < 5
    assert client.get(timeout=5) == b""  # the connection was closed


@pytest.mark.verdigris_only  # gevent's stop() leaves 'default'-spawned handlers running
def test_stop_waits_then_kills_default_spawned_handlers(servers):
    record = []

    def handle(sock, address):
        if sock.recv(10) == b"slow":
            verdigris.sleep(0.2)
            record.append("slow done")
            return
        try:
            verdigris.sleep(30)
        except verdigris.GreenletExit:
            record.append("stuck killed")
            raise

    server = start(servers, StreamServer(("127.0.0.1", 0), handle))
    clients = [verdigris.spawn(echo_roundtrip, server.address, payload) for payload in (b"slow", b"stuck")]
    verdigris.sleep(0.1)
    server.stop(timeout=0.5)
    record.append("stopped")
    assert record == ["slow done", "stuck killed", "stopped"]
    verdigris.joinall(clients, timeout=5)


def test_serve_forever_returns_when_stopped(servers):
    server = StreamServer(("127.0.0.1", 0), echo)
    record = []

    def stopper():
        verdigris.sleep(0.1)
        record.append(echo_roundtrip(server.address, b"serving"))
        server.stop()

    helper = verdigris.spawn(stopper)
    server.serve_forever()
    record.append("returned")
    helper.join(timeout=5)
    assert record == [b"serving", "returned"]
    assert server.closed


def test_context_manager_stops(servers):
    with StreamServer(("127.0.0.1", 0), echo) as server:
        server.start()
        assert echo_roundtrip(server.address, b"ctx") == b"ctx"
    assert server.closed and not server.started


def test_accept_errors_pause_then_resume(servers, quiet_hub):
    class Flaky(StreamServer):
        failures = 2

        def do_read(self):
            if self.failures:
                self.failures -= 1
                raise OSError(errno.EMFILE, "Too many open files (simulated)")
            return StreamServer.do_read(self)

    server = start(servers, Flaky(("127.0.0.1", 0), echo))
    assert echo_roundtrip(server.address, b"after errors") == b"after errors"
    assert server.failures == 0 and server.started
    assert quiet_hub.getvalue().count("OSError: [Errno 24]") == 2


def test_fatal_accept_error_closes_the_server(servers, quiet_hub, capfd):
    class Broken(StreamServer):
        def do_read(self):
            raise OSError(errno.EBADF, "Bad file descriptor (simulated)")

    server = start(servers, Broken(("127.0.0.1", 0), echo))
    port = server.server_port
    with stdlib_socket.create_connection(("127.0.0.1", port), timeout=5):
        deadline = time.monotonic() + 5
        while not server.closed and time.monotonic() < deadline:
            verdigris.sleep(0.01)
    assert server.closed and not server.started
    assert "Bad file descriptor (simulated)" in quiet_hub.getvalue()


def test_ssl_socket_is_refused_as_listener(tls_files):
    sock = stdlib_socket.socket()
    context = stdlib_ssl.SSLContext(stdlib_ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(*tls_files)
    wrapped = context.wrap_socket(sock, server_side=True)
    try:
        with pytest.raises(TypeError):
            StreamServer(wrapped, echo)
    finally:
        wrapped.close()


# -- TLS -----------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def tls_files(tmp_path_factory):
    """A self-signed certificate for localhost, made now: (certfile, keyfile)."""
    folder = tmp_path_factory.mktemp("tls")
    cert, key = folder / "cert.pem", folder / "key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=localhost",
                    "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1",
                    "-keyout", str(key), "-out", str(cert), "-days", "1"],
                   check=True, capture_output=True, timeout=60)
    return str(cert), str(key)


def tls_client(port, cert, payload):
    context = stdlib_ssl.create_default_context(cafile=cert)
    with stdlib_socket.create_connection(("127.0.0.1", port), timeout=10) as raw:
        with context.wrap_socket(raw, server_hostname="localhost") as client:
            client.sendall(payload)
            return client.recv(1024), client.version()


def test_tls_with_certificate_files(servers, tls_files):
    pytest.importorskip("verdigris.ssl", reason="verdigris.ssl is not written yet")
    cert, key = tls_files

    def handle(sock, address):
        sock.sendall(b"secure " + sock.recv(100))

    server = start(servers, StreamServer(("127.0.0.1", 0), handle, certfile=cert, keyfile=key))
    assert server.ssl_enabled
    data, version = in_thread(tls_client, server.server_port, cert, b"hello")
    assert data == b"secure hello" and version.startswith("TLS")


def test_tls_with_a_context(servers, tls_files):
    ssl = pytest.importorskip("verdigris.ssl", reason="verdigris.ssl is not written yet")
    cert, key = tls_files
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    server = start(servers, StreamServer(("127.0.0.1", 0), echo, ssl_context=context))
    data, _ = in_thread(tls_client, server.server_port, cert, b"ctx")
    assert data == b"ctx"


@pytest.mark.verdigris_only  # gevent's server uses the stdlib context's own, blocking SSLSocket
def test_tls_with_a_stdlib_context_stays_cooperative(servers, tls_files):
    pytest.importorskip("verdigris.ssl", reason="verdigris.ssl is not written yet")
    cert, key = tls_files
    context = stdlib_ssl.SSLContext(stdlib_ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    server = start(servers, StreamServer(("127.0.0.1", 0), echo, ssl_context=context))
    ticks = []

    def ticker():
        while True:
            ticks.append(time.monotonic())
            verdigris.sleep(0.01)

    def slow_handshake():
        # Connect, then wait before the handshake: the server's handshake must not block the hub.
        with stdlib_socket.create_connection(("127.0.0.1", server.server_port), timeout=10) as raw:
            time.sleep(1.0)
            client_context = stdlib_ssl.create_default_context(cafile=cert)
            with client_context.wrap_socket(raw, server_hostname="localhost") as client:
                client.sendall(b"late")
                return client.recv(100)

    ticking = verdigris.spawn(ticker)
    try:
        assert in_thread(slow_handshake) == b"late"
    finally:
        ticking.kill()
    gaps = [later - earlier for earlier, later in zip(ticks, ticks[1:])]
    assert len(ticks) > 10 and max(gaps) < 0.5  # a blocked hub would show a 1 s gap


# -- DatagramServer ------------------------------------------------------------------------------

def test_datagram_server_echoes(servers):
    class UpperEcho(DatagramServer):
        def handle(self, data, address):
            self.sendto(data.upper(), address)

    server = start(servers, UpperEcho(("127.0.0.1", 0)))
    client = socket.socket(type=stdlib_socket.SOCK_DGRAM)
    client.settimeout(5)
    try:
        answers = []
        for word in (b"one", b"two", b"three"):
            client.sendto(word, server.address)
            data, source = client.recvfrom(100)
            answers.append(data)
            assert source == server.address
    finally:
        client.close()
    assert answers == [b"ONE", b"TWO", b"THREE"]


def test_datagram_server_with_handle_function(servers):
    received = []
    server = start(servers, DatagramServer("127.0.0.1:0", lambda data, address: received.append(data)))
    client = socket.socket(type=stdlib_socket.SOCK_DGRAM)
    try:
        for i in range(3):
            client.sendto(b"d%d" % i, server.address)
        deadline = time.monotonic() + 5
        while len(received) < 3 and time.monotonic() < deadline:
            verdigris.sleep(0.01)
    finally:
        client.close()
    assert received == [b"d0", b"d1", b"d2"]


# -- the examples --------------------------------------------------------------------------------

def start_example(name, *args):
    """Starts examples/NAME with ARGS; returns (process, first line it printed)."""
    process = subprocess.Popen([sys.executable, str(EXAMPLES / name)] + list(args),
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                               env=dict(os.environ, PYTHONUNBUFFERED="1"))
    line = in_thread(process.stdout.readline, timeout=60)
    assert line, "%s printed nothing: %s" % (name, process.stderr.read() if process.poll() is not None else "")
    return process, line


def stop_example(process):
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=60)
    process.stdout.close()
    process.stderr.close()


def example_port(line):
    return int(line.strip().rsplit(":", 1)[1].split()[0].rstrip("/"))


def line_client(port, lines):
    with stdlib_socket.create_connection(("127.0.0.1", port), timeout=10) as client:
        reader = client.makefile("rb")
        got = [reader.readline()]  # the welcome line
        for line in lines:
            client.sendall(line)
            got.append(reader.readline())
        client.sendall(b"quit\r\n")
        got.append(reader.read())
        reader.close()
        return got


def test_echo_server_example():
    process, line = start_example("echo_server.py", "0")
    try:
        assert line.startswith("echo server on 127.0.0.1:")
        got = in_thread(line_client, example_port(line), [b"hello\r\n", b"world\r\n"])
        assert got[1:] == [b"hello\r\n", b"world\r\n", b""] and got[0].startswith(b"Welcome")
    finally:
        stop_example(process)


def test_portforwarder_example():
    echo_process, echo_line = start_example("echo_server.py")
    try:
        forward_process, forward_line = start_example(
            "portforwarder.py", "127.0.0.1:%d" % example_port(echo_line), "0")
        try:
            assert forward_line.startswith("forwarding 127.0.0.1:")
            port = example_port(forward_line.split(" to ")[0])
            got = in_thread(line_client, port, [b"through\r\n", b"the forwarder\r\n"])
            assert got[1:] == [b"through\r\n", b"the forwarder\r\n", b""]
        finally:
            stop_example(forward_process)
    finally:
        stop_example(echo_process)
