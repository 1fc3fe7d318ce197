"""verdigris.ssl: TLS between greenlets over loopback, with a self-signed certificate made at
test time by the ``openssl`` command.

Every wait is bounded; cooperation is shown by both ends of a handshake running in one thread,
and by a ticker greenlet that keeps ticking while a TLS call waits.
"""
import errno
import shutil
import subprocess
import time

import pytest

import verdigris as gevent
from verdigris import socket as vsocket
from verdigris import ssl as vssl

BOUND = 10


@pytest.fixture(scope="module")
def cert(tmp_path_factory):
    """(certfile, keyfile): a self-signed certificate for localhost / 127.0.0.1."""
    openssl = shutil.which("openssl")
    if openssl is None:
        pytest.skip("the openssl command is needed to make a test certificate")
    path = tmp_path_factory.mktemp("cert")
    certfile, keyfile = str(path / "cert.pem"), str(path / "key.pem")
    proc = subprocess.Popen(
        [openssl, "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
         "-keyout", keyfile, "-out", certfile, "-subj", "/CN=localhost",
         "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        _out, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0, err
    return certfile, keyfile


@pytest.fixture
def contexts(cert):
    certfile, keyfile = cert
    server = vssl.SSLContext(vssl.PROTOCOL_TLS_SERVER)
    server.load_cert_chain(certfile, keyfile)
    # Built by hand: gevent's create_default_context is the stdlib's (its contexts block).
    client = vssl.SSLContext(vssl.PROTOCOL_TLS_CLIENT)
    client.load_verify_locations(certfile)
    return server, client


def tls_pair(contexts, server_timeout=BOUND, client_timeout=BOUND):
    """(client, server-side) TLS sockets, handshaken, over 127.0.0.1."""
    server_ctx, client_ctx = contexts
    srv = vsocket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(1)
    srv.settimeout(BOUND)
    tls_srv = server_ctx.wrap_socket(srv, server_side=True)
    g = gevent.spawn(tls_srv.accept)
    raw = vsocket.create_connection(tls_srv.getsockname(), timeout=client_timeout)
    client = client_ctx.wrap_socket(raw, server_hostname="localhost")
    conn, _ = g.get(timeout=BOUND)
    conn.settimeout(server_timeout)
    tls_srv.close()
    return client, conn


class Ticker:
    def __init__(self, interval=0.002):
        self.ticks = 0
        self.greenlet = gevent.spawn(self._run, interval)

    def _run(self, interval):
        while True:
            gevent.sleep(interval)
            self.ticks += 1

    def stop(self):
        self.greenlet.kill(block=True, timeout=BOUND)


def test_echo_with_handshake(contexts):
    client, conn = tls_pair(contexts)
    assert isinstance(client, vssl.SSLSocket) and isinstance(conn, vssl.SSLSocket)
    assert client.version() in ("TLSv1.2", "TLSv1.3") and conn.server_side
    assert client.getpeercert()["subject"] == ((("commonName", "localhost"),),)
    record = []

    def server():
        while True:
            data = conn.recv(1024)
            if not data:
                break
            record.append(("server got", data))
            conn.sendall(data.upper())
        conn.close()

    g = gevent.spawn(server)
    for word in (b"hello", b"world"):
        client.sendall(word)
        record.append(("client got", client.recv(1024)))
    client.close()
    g.join(timeout=BOUND)
    assert record == [("server got", b"hello"), ("client got", b"HELLO"),
                      ("server got", b"world"), ("client got", b"WORLD")]


def test_large_sendall_is_cooperative(contexts):
    client, conn = tls_pair(contexts)
    payload = bytes(range(256)) * (16 * 1024)  # 4 MiB
    received = bytearray()

    def slow_reader():
        while len(received) < len(payload):
            chunk = conn.recv(64 * 1024)
            if not chunk:
                break
            received.extend(chunk)
            gevent.sleep(0.001)

    ticker = Ticker()
    reader = gevent.spawn(slow_reader)
    client.sendall(payload)
    reader.join(timeout=BOUND)
    ticker.stop()
    assert bytes(received) == payload
    assert ticker.ticks >= 10
    client.close()
    conn.close()


def test_read_timeout(contexts):
    client, conn = tls_pair(contexts, client_timeout=0.1)
    client.settimeout(0.1)
    start = time.monotonic()
    with pytest.raises(vsocket.timeout) as info:
        client.recv(10)
    assert time.monotonic() - start >= 0.09
    assert str(info.value) == "The read operation timed out"
    conn.sendall(b"later")
    client.settimeout(BOUND)
    assert client.recv(10) == b"later"
    client.close()
    conn.close()


def test_handshake_timeout_against_a_silent_server(contexts):
    _server_ctx, client_ctx = contexts
    srv = vsocket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(1)  # accepts at the TCP level, never speaks TLS
    raw = vsocket.create_connection(srv.getsockname(), timeout=0.2)
    start = time.monotonic()
    with pytest.raises(vsocket.timeout) as info:
        client_ctx.wrap_socket(raw, server_hostname="localhost")
    assert time.monotonic() - start >= 0.19
    assert str(info.value) == "The handshake operation timed out"
    srv.close()


def test_non_blocking_tls_raises_want_read(contexts):
    client, conn = tls_pair(contexts)
    client.setblocking(False)
    with pytest.raises(vssl.SSLWantReadError):
        client.recv(10)
    client.close()
    conn.close()


def test_unwrap_both_sides_then_plain_text(contexts):
    client, conn = tls_pair(contexts)
    client.sendall(b"secret")
    assert conn.recv(10) == b"secret"
    server_side = gevent.spawn(conn.unwrap)
    plain_client = client.unwrap()
    plain_conn = server_side.get(timeout=BOUND)
    assert plain_client.version() is None
    plain_client.sendall(b"in clear")
    assert plain_conn.recv(20) == b"in clear"
    plain_client.close()
    plain_conn.close()


def test_makefile_over_tls(contexts):
    client, conn = tls_pair(contexts)
    wfile = client.makefile("wb")
    rfile = conn.makefile("rb")
    g = gevent.spawn(lambda: [rfile.readline() for _ in range(2)])
    wfile.write(b"line one\nline two\n")
    wfile.flush()
    assert g.get(timeout=BOUND) == [b"line one\n", b"line two\n"]
    for f in (wfile, rfile, client, conn):
        f.close()


def test_close_wakes_greenlet_waiting_in_tls_recv(contexts):
    client, conn = tls_pair(contexts)
    record = []

    def reader():
        try:
            conn.recv(10)
        except OSError as ex:
            record.append(ex.errno)

    g = gevent.spawn(reader)
    gevent.sleep(0.02)
    conn.close()
    g.join(timeout=BOUND)
    assert record == [errno.EBADF]
    client.close()


def test_untrusted_certificate_fails_the_handshake(cert):
    certfile, keyfile = cert
    server_ctx = vssl.SSLContext(vssl.PROTOCOL_TLS_SERVER)
    server_ctx.load_cert_chain(certfile, keyfile)
    client_ctx = vssl.SSLContext(vssl.PROTOCOL_TLS_CLIENT)
    client_ctx.load_default_certs()  # the system's CAs: not our self-signed one
    srv = vsocket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(1)
    srv.settimeout(BOUND)
    tls_srv = server_ctx.wrap_socket(srv, server_side=True)

    def server():
        try:
            tls_srv.accept()
        except (vssl.SSLError, OSError):
            pass

    g = gevent.spawn(server)
    raw = vsocket.create_connection(tls_srv.getsockname(), timeout=BOUND)
    with pytest.raises(vssl.SSLCertVerificationError):
        client_ctx.wrap_socket(raw, server_hostname="localhost")
    g.join(timeout=BOUND)
    tls_srv.close()


def test_wrap_socket_function(cert):
    certfile, keyfile = cert
    srv = vsocket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(1)
    srv.settimeout(BOUND)

    def server():
        conn, _ = srv.accept()
        tls = vssl.wrap_socket(conn, keyfile=keyfile, certfile=certfile, server_side=True)
        tls.sendall(tls.recv(10) * 2)
        tls.close()

    g = gevent.spawn(server)
    raw = vsocket.create_connection(srv.getsockname(), timeout=BOUND)
    client = vssl.wrap_socket(raw, cert_reqs=vssl.CERT_REQUIRED, ca_certs=certfile)
    client.sendall(b"ab")
    assert client.recv(10) == b"abab"
    client.close()
    g.join(timeout=BOUND)
    srv.close()


def test_get_server_certificate(contexts, cert):
    certfile, _ = cert
    server_ctx, _client_ctx = contexts
    srv = vsocket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(1)
    srv.settimeout(BOUND)
    tls_srv = server_ctx.wrap_socket(srv, server_side=True)

    def server():
        conn, _ = tls_srv.accept()
        conn.recv(1)  # until the client hangs up
        conn.close()

    g = gevent.spawn(server)
    pem = vssl.get_server_certificate(tls_srv.getsockname())
    g.join(timeout=BOUND)
    tls_srv.close()
    with open(certfile) as f:
        assert vssl.PEM_cert_to_DER_cert(pem) == vssl.PEM_cert_to_DER_cert(f.read())


@pytest.mark.verdigris_only  # gevent's create_default_context returns the stdlib's context
def test_default_context_is_cooperative(cert, contexts):
    certfile, _ = cert
    ctx = vssl.create_default_context(cafile=certfile)
    assert isinstance(ctx, vssl.SSLContext) and ctx.sslsocket_class is vssl.SSLSocket
    assert ctx.verify_mode == vssl.CERT_REQUIRED and ctx.check_hostname
    assert isinstance(vssl._create_unverified_context(), vssl.SSLContext)
    # A blocking context would hang the handshake: the server is a greenlet of this thread.
    client, conn = tls_pair((contexts[0], ctx), client_timeout=2)
    conn.sendall(b"ok")
    assert client.recv(2) == b"ok"
    client.close()
    conn.close()


def test_context_setters_survive_monkey_patching():
    # The stdlib's setters name the module global SSLContext; patched, it is the cooperative
    # class, and a naive subclass would recurse forever.
    import ssl

    saved = {name: getattr(ssl, name)
             for name in ("SSLContext", "create_default_context", "_create_unverified_context")}
    for name in saved:
        setattr(ssl, name, getattr(vssl, name))
    try:
        for make in (ssl.create_default_context, ssl._create_unverified_context):
            assert isinstance(make(), vssl.SSLContext)
        ctx = vssl.SSLContext(vssl.PROTOCOL_TLS_CLIENT)
        ctx.minimum_version = vssl.TLSVersion.TLSv1_2
        ctx.maximum_version = vssl.TLSVersion.TLSv1_3
        ctx.options |= vssl.OP_NO_COMPRESSION
        ctx.verify_flags |= vssl.VERIFY_X509_STRICT
        ctx.check_hostname = False
        ctx.verify_mode = vssl.CERT_NONE
        ctx._msg_callback = lambda *args: None
    finally:
        for name, value in saved.items():
            setattr(ssl, name, value)
    assert ctx.minimum_version == vssl.TLSVersion.TLSv1_2
    assert ctx.maximum_version == vssl.TLSVersion.TLSv1_3
    assert ctx.options & vssl.OP_NO_COMPRESSION
    assert ctx.verify_flags & vssl.VERIFY_X509_STRICT
    assert ctx.verify_mode == vssl.CERT_NONE
    assert ctx._msg_callback is not None
    assert vssl.SSLError is ssl.SSLError


@pytest.mark.verdigris_only  # gevent keeps the pre-3.7 public SSLSocket(sock, keyfile, ...)
def test_sslsocket_has_no_public_constructor_as_the_stdlib():
    with pytest.raises(TypeError):
        vssl.SSLSocket()


def test_wrap_unconnected_socket_then_connect(contexts):
    server_ctx, client_ctx = contexts
    srv = vsocket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(1)
    srv.settimeout(BOUND)
    tls_srv = server_ctx.wrap_socket(srv, server_side=True, do_handshake_on_connect=False)

    def server():
        conn, _ = tls_srv.accept()
        conn.settimeout(BOUND)
        conn.do_handshake()  # explicitly, as asked
        conn.sendall(conn.recv(10)[::-1])
        conn.close()

    g = gevent.spawn(server)
    raw = vsocket.socket()
    raw.settimeout(BOUND)
    client = client_ctx.wrap_socket(raw, server_hostname="localhost")
    assert client.version() is None  # not connected yet: no TLS session
    client.connect(tls_srv.getsockname())  # connects, then handshakes
    assert client.version() is not None
    client.sendall(b"abc")
    assert client.recv(10) == b"cba"
    client.close()
    g.join(timeout=BOUND)
    assert g.successful()
    tls_srv.close()
