"""verdigris.select and verdigris.selectors: the stdlib's results and errors, waiting cooperatively.

Real pipes and loopback sockets; every wait is bounded; cooperation is shown by a ticker
greenlet that keeps ticking while ``select``/``poll`` block.
"""
import errno
import os
import resource
import select as stdlib_select
import selectors as stdlib_selectors
import socket as stdlib_socket
import time

import pytest

import verdigris as gevent
from verdigris import select as vselect
from verdigris import selectors as vselectors
from verdigris import socket as vsocket

BOUND = 10


@pytest.fixture
def pipe():
    r, w = os.pipe()
    yield r, w
    for fd in (r, w):
        try:
            os.close(fd)
        except OSError:
            pass


class Ticker:
    def __init__(self, interval=0.005):
        self.ticks = 0
        self.greenlet = gevent.spawn(self._run, interval)

    def _run(self, interval):
        while True:
            gevent.sleep(interval)
            self.ticks += 1

    def stop(self):
        self.greenlet.kill(block=True, timeout=BOUND)


# -- select -------------------------------------------------------------------------------------


def test_select_ready_fd_returns_at_once_and_level_triggered(pipe):
    r, w = pipe
    os.write(w, b"data")
    for _ in range(2):  # unread data is reported by every call
        assert vselect.select([r], [], [], BOUND) == ([r], [], [])
    assert vselect.select([r], [w], [], 0) == ([r], [w], [])
    os.read(r, 4)
    assert vselect.select([r], [], [], 0) == ([], [], [])


def test_select_timeout_is_cooperative(pipe):
    r, _ = pipe
    ticker = Ticker()
    start = time.monotonic()
    assert vselect.select([r], [], [], 0.2) == ([], [], [])
    elapsed = time.monotonic() - start
    ticker.stop()
    assert 0.19 <= elapsed < BOUND
    assert ticker.ticks >= 5


def test_select_wakes_when_one_fd_becomes_ready(pipe):
    r, w = pipe
    r2, w2 = os.pipe()
    try:
        record = []
        for rlist in ([r], [r2, r]):  # one fd, then several
            g = gevent.spawn(vselect.select, rlist, [], [], BOUND)
            gevent.sleep(0.02)
            record.append(g.ready())
            os.write(w, b"x")
            record.append(g.get(timeout=BOUND))
            os.read(r, 1)
        assert record == [False, ([r], [], []), False, ([r], [], [])]
    finally:
        os.close(r2)
        os.close(w2)


def test_select_returns_the_objects_given():
    a, b = vsocket.socketpair()
    b.sendall(b"x")
    readable, writable, _ = vselect.select([a, b], [a], [], BOUND)
    assert readable == [a] and writable == [a]
    a.close()
    b.close()


@pytest.mark.verdigris_only  # gevent's select ignores xlist once it waits
def test_select_reports_oob_data_in_xlist():
    srv = vsocket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(1)
    c = vsocket.create_connection(srv.getsockname(), timeout=BOUND)
    srv.settimeout(BOUND)
    conn, _ = srv.accept()
    g = gevent.spawn(vselect.select, [], [], [conn], BOUND)
    gevent.sleep(0.02)
    assert not g.ready()
    c.send(b"!", vsocket.MSG_OOB)
    assert g.get(timeout=BOUND) == ([], [], [conn])
    for s in (c, conn, srv):
        s.close()


def test_select_errors_are_the_stdlibs(pipe):
    r, w = pipe
    with pytest.raises(ValueError):
        vselect.select([-1], [], [], 0)
    with pytest.raises(TypeError):
        vselect.select([object()], [], [], 0)
    with pytest.raises(TypeError):
        vselect.select([], [], [], "1")
    with pytest.raises(ValueError):
        vselect.select([], [], [], -1)
    os.close(w)
    os.close(r)
    with pytest.raises(OSError) as info:
        vselect.select([r], [], [], 0)
    assert info.value.errno == errno.EBADF


@pytest.mark.verdigris_only  # gevent's select is the stdlib's select(2): fds below 1024 only
def test_select_accepts_fds_above_fd_setsize(pipe):
    r, w = pipe
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft <= 1100:
        if hard != resource.RLIM_INFINITY and hard <= 1100:
            pytest.skip("RLIMIT_NOFILE hard limit %d does not allow fd 1100" % hard)
        resource.setrlimit(resource.RLIMIT_NOFILE, (1200, hard))
    high = os.dup2(r, 1100)
    try:
        os.write(w, b"x")
        assert vselect.select([high], [], [], BOUND) == ([high], [], [])
    finally:
        os.close(high)
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


@pytest.mark.verdigris_only  # gevent's select is not woken by a close in another greenlet
def test_select_on_socket_closed_by_another_greenlet_raises_ebadf():
    a, b = vsocket.socketpair()
    g = gevent.spawn(vselect.select, [a], [], [], BOUND)
    gevent.sleep(0.02)
    a.close()
    with pytest.raises(OSError) as info:
        g.get(timeout=BOUND)
    assert info.value.errno == errno.EBADF
    b.close()


# -- poll ---------------------------------------------------------------------------------------


def test_poll_register_poll_unregister(pipe):
    r, w = pipe
    p = vselect.poll()
    p.register(r, vselect.POLLIN)
    start = time.monotonic()
    assert p.poll(100) == []
    assert time.monotonic() - start >= 0.09
    g = gevent.spawn(p.poll, BOUND * 1000)
    gevent.sleep(0.02)
    assert not g.ready()
    os.write(w, b"x")
    assert g.get(timeout=BOUND) == [(r, vselect.POLLIN)]
    assert p.poll() == [(r, vselect.POLLIN)]  # level-triggered: still unread
    p.register(w, vselect.POLLOUT)
    assert sorted(p.poll(0)) == sorted([(r, vselect.POLLIN), (w, vselect.POLLOUT)])
    p.unregister(r)
    assert p.poll(0) == [(w, vselect.POLLOUT)]
    with pytest.raises(KeyError):
        p.unregister(r)


@pytest.mark.verdigris_only  # gevent's poll reports only POLLIN/POLLOUT/POLLNVAL, not POLLHUP
def test_poll_reports_hangup_and_accepts_objects():
    a, b = vsocket.socketpair()
    p = vselect.poll()
    p.register(a, vselect.POLLIN)
    g = gevent.spawn(p.poll, BOUND * 1000)
    gevent.sleep(0.02)
    b.close()
    [(fd, revents)] = g.get(timeout=BOUND)
    assert fd == a.fileno() and revents & vselect.POLLHUP
    a.close()


@pytest.mark.verdigris_only  # gevent's poll: modify() registers, errors differ from the stdlib
def test_poll_errors_are_the_stdlibs(pipe):
    r, w = pipe
    p = vselect.poll()
    with pytest.raises(FileNotFoundError):
        p.modify(r, vselect.POLLIN)
    with pytest.raises(ValueError):
        p.register(-1)
    with pytest.raises(TypeError):
        p.register("x")
    with pytest.raises(TypeError):
        p.poll("x")
    p.register(r)
    os.close(r)
    assert p.poll(0) == [(r, vselect.POLLNVAL)]
    assert stdlib_select.POLLNVAL == vselect.POLLNVAL


def test_poll_modify_changes_the_mask(pipe):
    r, w = pipe
    p = vselect.poll()
    p.register(w, vselect.POLLIN)
    assert p.poll(0) == []
    p.modify(w, vselect.POLLOUT)
    assert p.poll(0) == [(w, vselect.POLLOUT)]


def test_poll_wait_is_cooperative(pipe):
    r, _ = pipe
    p = vselect.poll()
    p.register(r)
    ticker = Ticker()
    assert p.poll(150) == []
    ticker.stop()
    assert ticker.ticks >= 5


def test_select_module_reexports_the_stdlib():
    assert vselect.error is stdlib_select.error
    assert vselect.POLLIN == stdlib_select.POLLIN


# -- selectors ----------------------------------------------------------------------------------


def test_default_selector_register_select_modify_unregister():
    a, b = vsocket.socketpair()
    sel = vselectors.DefaultSelector()
    key = sel.register(a, vselectors.EVENT_READ, data="a")
    assert key.fd == a.fileno() and sel.get_key(a).data == "a"
    start = time.monotonic()
    assert sel.select(0.1) == []
    assert time.monotonic() - start >= 0.09
    g = gevent.spawn(sel.select, BOUND)
    gevent.sleep(0.02)
    assert not g.ready()
    b.sendall(b"x")
    assert g.get(timeout=BOUND) == [(key, vselectors.EVENT_READ)]
    key = sel.modify(a, vselectors.EVENT_READ | vselectors.EVENT_WRITE, data="rw")
    assert sel.select(0) == [(key, vselectors.EVENT_READ | vselectors.EVENT_WRITE)]
    sel.unregister(a)
    assert sel.select(0) == [] and len(sel.get_map()) == 0
    with pytest.raises(KeyError):
        sel.unregister(a)
    with pytest.raises(ValueError):
        sel.register(-1, vselectors.EVENT_READ)
    sel.close()
    a.close()
    b.close()


def test_selector_select_is_cooperative():
    a, b = vsocket.socketpair()
    c, d = vsocket.socketpair()
    with vselectors.DefaultSelector() as sel:
        sel.register(a, vselectors.EVENT_READ)
        sel.register(c, vselectors.EVENT_READ)
        ticker = Ticker()
        assert sel.select(0.15) == []
        ticker.stop()
        assert ticker.ticks >= 5
        d.sendall(b"y")
        [(key, events)] = sel.select(BOUND)
        assert key.fileobj is c and events == vselectors.EVENT_READ
    for s in (a, b, c, d):
        s.close()


def test_selectors_module_reexports_the_stdlib():
    assert vselectors.SelectorKey is stdlib_selectors.SelectorKey
    assert vselectors.EVENT_READ == stdlib_selectors.EVENT_READ
    assert issubclass(vselectors.DefaultSelector, stdlib_selectors.BaseSelector)
    assert vselectors.DefaultSelector is vselectors.GeventSelector


def test_select_with_plain_stdlib_socket():
    a, b = stdlib_socket.socketpair()
    b.sendall(b"z")
    assert vselect.select([a], [], [], BOUND) == ([a], [], [])
    a.close()
    b.close()
