"""verdigris.resolver: the system's resolver functions, run in the hub's thread pool.

There is no network: every name used here resolves (or fails) locally, through ``/etc/hosts``,
numeric addresses or ``/etc/services``. Each result is compared with what the stdlib's own
C function (``_socket``) returns for the same arguments, called directly in this thread, so the
tests do not depend on how this machine's files are written.
"""
import _socket
import importlib
import io
import socket
import sys
import time

import pytest

import verdigris
from verdigris.hub import get_hub

BOUND = 10


def resolver():
    return get_hub().resolver


def stdlib(func, *args):
    """What the stdlib's C function returns or raises: ('ok', value) or (type, errno)."""
    try:
        return ("ok", getattr(_socket, func)(*args))
    except Exception as error:
        return (type(error), getattr(error, "errno", None))


def ours(func, *args):
    """The same through the hub's resolver, bounded in time."""
    try:
        with verdigris.Timeout(BOUND):
            return ("ok", getattr(resolver(), func)(*args))
    except Exception as error:
        return (type(error), getattr(error, "errno", None))


@pytest.fixture
def quiet_errors():
    """Keep the tracebacks the hub prints for failed thread tasks out of the test output."""
    hub = get_hub()
    hub.exception_stream = None
    yield
    del hub.exception_stream


class Ticker:
    """A greenlet that counts while the loop runs; used to show the hub was never blocked."""

    def __init__(self, interval=0.01):
        self.ticks = 0
        self.interval = interval
        self.greenlet = verdigris.spawn(self._run)

    def _run(self):
        while True:
            verdigris.sleep(self.interval)
            self.ticks += 1

    def stop(self):
        self.greenlet.kill(block=True, timeout=BOUND)
        return self.ticks


# -- names that resolve --------------------------------------------------------------------------

def test_localhost():
    assert ours("gethostbyname", "localhost") == stdlib("gethostbyname", "localhost")
    assert ours("gethostbyname", "localhost")[1] == "127.0.0.1"
    assert ours("gethostbyname_ex", "localhost") == stdlib("gethostbyname_ex", "localhost")
    infos = ours("getaddrinfo", "localhost", 80, socket.AF_INET, socket.SOCK_STREAM)
    assert infos == stdlib("getaddrinfo", "localhost", 80, socket.AF_INET, socket.SOCK_STREAM)
    assert infos[0] == "ok" and infos[1][0][4] == ("127.0.0.1", 80)


def test_the_machines_hostname():
    name = socket.gethostname()
    expected = stdlib("gethostbyname_ex", name)
    if expected[0] != "ok":
        pytest.skip("this machine's hostname %r does not resolve without the network" % name)
    assert ours("gethostbyname_ex", name) == expected
    assert ours("gethostbyname", name) == stdlib("gethostbyname", name)
    assert ours("getaddrinfo", name, None) == stdlib("getaddrinfo", name, None)


def test_numeric_ipv4():
    expected = stdlib("getaddrinfo", "127.0.0.1", 8080)
    assert ours("getaddrinfo", "127.0.0.1", 8080) == expected
    assert {info[4] for info in expected[1]} == {("127.0.0.1", 8080)}
    assert ours("gethostbyname", "127.0.0.1") == ("ok", "127.0.0.1")


def test_numeric_ipv6():
    expected = stdlib("getaddrinfo", "::1", 8080, socket.AF_INET6)
    if not socket.has_ipv6 or expected[0] != "ok":
        pytest.skip("IPv6 is not available here: getaddrinfo('::1') gave %r" % (expected,))
    assert ours("getaddrinfo", "::1", 8080, socket.AF_INET6) == expected
    assert {info[4][:2] for info in expected[1]} == {("::1", 8080)}


def test_keyword_arguments_as_in_socket_getaddrinfo():
    got = resolver().getaddrinfo("127.0.0.1", 80, family=socket.AF_INET, type=socket.SOCK_DGRAM,
                                 proto=0, flags=socket.AI_NUMERICHOST)
    assert got == _socket.getaddrinfo("127.0.0.1", 80, socket.AF_INET, socket.SOCK_DGRAM, 0,
                                      socket.AI_NUMERICHOST)


def test_numeric_ports_and_service_names():
    if stdlib("getservbyname", "http", "tcp") != ("ok", 80):
        pytest.skip("no 'http' service in this machine's services database")
    args = ("127.0.0.1", "http", socket.AF_INET, socket.SOCK_STREAM)
    assert ours("getaddrinfo", *args) == stdlib("getaddrinfo", *args)
    assert ours("getaddrinfo", *args)[1][0][4] == ("127.0.0.1", 80)
    for port in (0, 443, "8080", None):
        args = ("localhost", port, socket.AF_INET, socket.SOCK_STREAM)
        assert ours("getaddrinfo", *args) == stdlib("getaddrinfo", *args)


# -- names that do not -----------------------------------------------------------------------------

def test_numeric_host_flag():
    flags = socket.AI_NUMERICHOST
    assert ours("getaddrinfo", "127.0.0.1", 80, 0, 0, 0, flags) == \
        stdlib("getaddrinfo", "127.0.0.1", 80, 0, 0, 0, flags)
    # A name is not a number: refused without any lookup, with the stdlib's errno.
    refused = ours("getaddrinfo", "localhost", 80, 0, 0, 0, flags)
    assert refused == stdlib("getaddrinfo", "localhost", 80, 0, 0, 0, flags)
    assert refused == (socket.gaierror, socket.EAI_NONAME)


def test_unknown_names_raise_gaierror_with_the_stdlib_errno():
    # '.invalid' is reserved (RFC 6761): it never resolves. Without a network the lookup fails
    # fast; whatever errno this machine gives, ours must be the same.
    for func, args in [("getaddrinfo", ("nonexistent.invalid", 80)),
                       ("gethostbyname", ("nonexistent.invalid",)),
                       ("gethostbyname_ex", ("nonexistent.invalid",))]:
        expected = stdlib(func, *args)
        assert expected[0] is socket.gaierror
        assert ours(func, *args) == expected, func
    with pytest.raises(socket.gaierror) as info:
        with verdigris.Timeout(BOUND):
            resolver().getaddrinfo("nonexistent.invalid", 80)
    assert info.value.errno == stdlib("getaddrinfo", "nonexistent.invalid", 80)[1]


def test_unknown_service_raises_gaierror():
    args = ("127.0.0.1", "no-such-service-here", socket.AF_INET, socket.SOCK_STREAM)
    expected = stdlib("getaddrinfo", *args)
    assert expected == (socket.gaierror, socket.EAI_SERVICE)
    assert ours("getaddrinfo", *args) == expected


def test_lookup_failures_are_not_printed_by_the_hub():
    hub = get_hub()
    resolver()  # creating the resolver adds gaierror/herror to the hub's NOT_ERROR
    assert socket.gaierror in hub.NOT_ERROR and socket.herror in hub.NOT_ERROR
    hub.exception_stream = stream = io.StringIO()
    try:
        with pytest.raises(socket.gaierror):
            with verdigris.Timeout(BOUND):
                resolver().getaddrinfo("localhost", 80, 0, 0, 0, socket.AI_NUMERICHOST)
        verdigris.sleep(0.01)
    finally:
        del hub.exception_stream
    assert stream.getvalue() == ""


def test_bad_argument_types_raise_what_the_stdlib_raises(quiet_errors):
    cases = [
        ("getaddrinfo", (123, 80)),
        ("getaddrinfo", ("localhost", 80, "not a family")),
        ("getaddrinfo", ("localhost", 1.5)),
        ("gethostbyname", (None,)),
        ("gethostbyname_ex", (b"\xff" * 3 + b"\x00",)),
        ("gethostbyaddr", (42,)),
        ("getnameinfo", ("127.0.0.1", 0)),
        ("getnameinfo", (("127.0.0.1", 80), "flags")),
        # An empty label cannot be IDNA-encoded: UnicodeError, from inside the C function.
        ("getaddrinfo", ("bad..name", 80)),
    ]
    for func, args in cases:
        expected = stdlib(func, *args)
        assert expected[0] != "ok", (func, args)
        assert ours(func, *args) == expected, (func, args)
    with pytest.raises(TypeError):
        with verdigris.Timeout(BOUND):
            resolver().getaddrinfo(123, 80)
    # The hub survives bad input: the next lookup works.
    assert ours("gethostbyname", "localhost") == ("ok", "127.0.0.1")


# -- reverse lookups -----------------------------------------------------------------------------

def test_gethostbyaddr_loopback():
    expected = stdlib("gethostbyaddr", "127.0.0.1")
    assert expected[0] == "ok" and "127.0.0.1" in expected[1][2]
    assert ours("gethostbyaddr", "127.0.0.1") == expected


def test_getnameinfo():
    for flags in (0, socket.NI_NUMERICHOST | socket.NI_NUMERICSERV, socket.NI_NAMEREQD):
        args = (("127.0.0.1", 80), flags)
        assert ours("getnameinfo", *args) == stdlib("getnameinfo", *args), flags
    assert ours("getnameinfo", ("127.0.0.1", 80), socket.NI_NUMERICHOST | socket.NI_NUMERICSERV) \
        == ("ok", ("127.0.0.1", "80"))


# -- cooperation ---------------------------------------------------------------------------------

def test_many_greenlets_resolve_at_once():
    greenlets = [verdigris.spawn(resolver().gethostbyname, "localhost") for _ in range(20)]
    verdigris.joinall(greenlets, timeout=BOUND, raise_error=True)
    assert [g.value for g in greenlets] == ["127.0.0.1"] * 20


def test_a_slow_lookup_does_not_stop_other_greenlets(monkeypatch):
    """A lookup that takes 0.4 s in its thread leaves the hub free.

    Without a network there is no honest way to make the system resolver itself slow and
    deterministic (a DNS timeout would depend on this machine's resolv.conf), so the test makes
    the C function slow: the resolver calls ``_socket.getaddrinfo`` looked up at call time (in
    gevent too), and the test replaces it with a wrapper that blocks its worker thread for
    0.4 s in the real ``time.sleep`` before doing the real lookup. Three such lookups from three
    greenlets must overlap, and a ticker greenlet must keep ticking meanwhile.
    """
    real_getaddrinfo = _socket.getaddrinfo
    called_in = []

    def slow_getaddrinfo(*args):
        called_in.append(_thread_ident())
        time.sleep(0.4)
        return real_getaddrinfo(*args)

    monkeypatch.setattr(_socket, "getaddrinfo", slow_getaddrinfo)
    ticker = Ticker()
    started = time.perf_counter()
    lookups = [verdigris.spawn(resolver().getaddrinfo, "localhost", 80, socket.AF_INET,
                               socket.SOCK_STREAM) for _ in range(3)]
    verdigris.joinall(lookups, timeout=BOUND, raise_error=True)
    elapsed = time.perf_counter() - started
    ticks = ticker.stop()
    assert [g.value[0][4] for g in lookups] == [("127.0.0.1", 80)] * 3
    assert len(called_in) == 3 and _thread_ident() not in called_in
    assert elapsed < 1.2 / 2, "3 x 0.4 s lookups took %.2f s: they did not overlap" % elapsed
    assert ticks >= 10, "the ticker ticked only %d times: the hub was blocked" % ticks


def _thread_ident():
    import _thread

    return _thread.get_ident()


# -- the resolver object -----------------------------------------------------------------------

def test_resolver_belongs_to_the_hub_and_uses_its_threadpool():
    hub = get_hub()
    r = hub.resolver
    assert r is hub.resolver
    assert r.pool is hub.threadpool
    other = type(r)()  # hub=None: the current hub
    assert other.pool is hub.threadpool
    other.close()
    assert other.gethostbyname("localhost") == "127.0.0.1"


def test_resolver_thread_is_a_deprecated_alias():
    sys.modules.pop("verdigris.resolver_thread", None)
    with pytest.warns(DeprecationWarning):
        module = importlib.import_module("verdigris.resolver_thread")
    assert module.Resolver is type(resolver())
