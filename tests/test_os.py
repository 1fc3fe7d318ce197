"""verdigris.os: fork, cooperative waitpid, and cooperative reads and writes on fds.

Forked children always leave through ``os._exit`` (never back into pytest), and the parent kills
any child it did not see exit. Every wait is bounded.
"""
import errno
import os
import signal
import sys
import tempfile
import time

import pytest

import verdigris
from verdigris import os as vos

BOUND = 20
_raw_fork = os.fork
_raw_waitpid = os.waitpid


@pytest.fixture
def pids():
    """Child pids to kill and reap if a test left them behind."""
    started = []
    yield started
    for pid in started:
        try:
            os.kill(pid, signal.SIGKILL)
            _raw_waitpid(pid, 0)
        except (ProcessLookupError, ChildProcessError):
            pass


@pytest.fixture
def ticker():
    ticks = []

    def tick():
        while True:
            ticks.append(1)
            verdigris.sleep(0.01)

    g = verdigris.spawn(tick)
    yield ticks
    g.kill(block=True, timeout=BOUND)


def in_child(body):
    """Runs *body()* in the forked child and leaves with its return value as the exit code."""
    code = 99
    try:
        code = body()
    except BaseException:
        import traceback

        traceback.print_exc()
    finally:
        os._exit(code)


@pytest.fixture
def pipe():
    r, w = os.pipe()
    yield r, w
    for fd in (r, w):
        try:
            os.close(fd)
        except OSError:
            pass


# -- fork and waitpid --------------------------------------------------------------------------

def test_forked_child_uses_greenlets_and_the_parent_gets_its_code(pids, ticker):
    def child():
        # The hub was re-initialised in the child: sleeping and spawning work there.
        jobs = [verdigris.spawn(lambda n: (verdigris.sleep(0.05 * n), n)[1], n) for n in (3, 1, 2)]
        verdigris.joinall(jobs, timeout=5)
        verdigris.sleep(0.3)
        return sum(j.value for j in jobs) + 10  # 16

    pid = vos.fork()
    if pid == 0:
        in_child(child)
    pids.append(pid)
    with verdigris.Timeout(BOUND):
        rpid, status = vos.waitpid(pid, 0)
    assert rpid == pid
    assert os.WIFEXITED(status) and os.WEXITSTATUS(status) == 16
    assert len(ticker) >= 10  # the parent's loop kept turning meanwhile


def test_fork_and_watch_calls_back_with_the_status(pids):
    seen = []

    def callback(watcher):
        in_hub = verdigris.getcurrent() is verdigris.get_hub()
        seen.append((watcher.pid, os.WEXITSTATUS(watcher.rstatus), in_hub))

    pid = vos.fork_and_watch(callback=callback)
    if pid == 0:
        in_child(lambda: 7)
    pids.append(pid)
    with verdigris.Timeout(BOUND):
        assert vos.waitpid(pid, 0) == (pid, 7 << 8)
        while not seen:
            verdigris.sleep(0.01)
    assert seen == [(pid, 7, True)]


def test_a_watched_child_is_reaped_without_waitpid(pids):
    pid = vos.fork()
    if pid == 0:
        in_child(lambda: 3)
    pids.append(pid)
    with verdigris.Timeout(BOUND):
        while os.path.exists("/proc/%d" % pid):
            verdigris.sleep(0.01)
    # The zombie is gone, yet waitpid still reports the status.
    assert vos.waitpid(pid, 0) == (pid, 3 << 8)
    with pytest.raises(ChildProcessError):
        vos.waitpid(pid, 0)


def test_waitpid_wnohang(pids):
    pid = vos.fork()
    if pid == 0:
        in_child(lambda: (time.sleep(0.3), 5)[1])
    pids.append(pid)
    assert vos.waitpid(pid, os.WNOHANG) == (0, 0)
    with verdigris.Timeout(BOUND):
        while True:
            rpid, status = vos.waitpid(pid, os.WNOHANG)
            if rpid:
                break
            verdigris.sleep(0.02)
    assert (rpid, os.WEXITSTATUS(status)) == (pid, 5)


@pytest.mark.verdigris_only  # gevent's waitpid blocks the loop for children it did not fork
def test_waitpid_is_cooperative_for_any_child(pids, ticker):
    pid = _raw_fork()
    if pid == 0:
        in_child(lambda: (time.sleep(0.5), 4)[1])
    pids.append(pid)
    with verdigris.Timeout(BOUND):
        rpid, status = vos.waitpid(pid, 0)
    assert (rpid, os.WEXITSTATUS(status)) == (pid, 4)
    assert len(ticker) >= 10


@pytest.mark.verdigris_only  # exercises verdigris's fallback for kernels without pidfd_open
def test_waitpid_and_watchers_poll_without_pidfds(pids, ticker, monkeypatch):
    monkeypatch.setattr(vos, "_pidfd_open", None)
    raw = _raw_fork()
    if raw == 0:
        in_child(lambda: (time.sleep(0.3), 8)[1])
    pids.append(raw)
    watched = vos.fork()
    if watched == 0:
        in_child(lambda: (time.sleep(0.3), 9)[1])
    pids.append(watched)
    with verdigris.Timeout(BOUND):
        assert vos.waitpid(raw, 0) == (raw, 8 << 8)
        assert vos.waitpid(watched, 0) == (watched, 9 << 8)
    assert len(ticker) >= 10


def test_waitpid_any_child(pids, ticker):
    pid = vos.fork()
    if pid == 0:
        in_child(lambda: (time.sleep(0.3), 6)[1])
    pids.append(pid)
    statuses = {}
    with verdigris.Timeout(BOUND):
        # "Any child": a status an earlier test left unclaimed may come first.
        while pid not in statuses:
            rpid, status = vos.waitpid(-1, 0)
            statuses[rpid] = status
    assert os.WEXITSTATUS(statuses[pid]) == 6
    assert len(ticker) >= 10


def test_waitpid_without_such_child_raises_at_once():
    start = time.monotonic()
    with pytest.raises(ChildProcessError):
        vos.waitpid(1, 0)  # init exists but is nobody's child here
    with pytest.raises(TypeError):
        vos.waitpid("1", 0)
    assert time.monotonic() - start < BOUND / 2


@pytest.mark.verdigris_only  # the stdlib raises; gevent waits on a child watcher for ever
def test_waitpid_any_child_without_children_raises_at_once():
    with pytest.raises(ChildProcessError):
        while True:  # collect the statuses earlier tests left unclaimed, one per turn
            rpid, _ = vos.waitpid(-1, os.WNOHANG)
            assert rpid, "a child of an earlier test is still running"
    with pytest.raises(ChildProcessError):
        vos.waitpid(-1, 0)


@pytest.mark.skipif(not hasattr(os, "forkpty"), reason="os.forkpty is not available")
def test_forkpty_child_writes_to_the_terminal(pids):
    pid, master = vos.forkpty()
    if pid == 0:
        in_child(lambda: (os.write(1, b"from the pty\n"), 0)[1])
    pids.append(pid)
    try:
        vos.make_nonblocking(master)
        data = b""
        with verdigris.Timeout(BOUND):
            while b"pty" not in data:
                try:
                    chunk = vos.nb_read(master, 100)
                except OSError as ex:  # EIO: the child side closed
                    assert ex.errno == errno.EIO
                    break
                if not chunk:
                    break
                data += chunk
            assert vos.waitpid(pid, 0)[1] == 0
        assert b"from the pty" in data
    finally:
        os.close(master)


# -- cooperative I/O ---------------------------------------------------------------------------

def test_make_nonblocking(pipe):
    r, _ = pipe
    assert vos.make_nonblocking(r) is True
    assert not os.get_blocking(r)
    assert not vos.make_nonblocking(r)  # already non-blocking


def test_nb_read_and_nb_write_between_greenlets(pipe):
    r, w = pipe
    vos.make_nonblocking(r)
    vos.make_nonblocking(w)
    record = []

    def reader():
        while True:
            data = vos.nb_read(r, 100)
            record.append(("read", data))
            if not data:
                return

    def writer():
        for chunk in (b"one", b"two"):
            verdigris.sleep(0.05)
            record.append(("write", vos.nb_write(w, chunk)))
        os.close(w)

    jobs = [verdigris.spawn(reader), verdigris.spawn(writer)]
    verdigris.joinall(jobs, timeout=BOUND, raise_error=True)
    assert record == [("write", 3), ("read", b"one"), ("write", 3), ("read", b"two"),
                      ("read", b"")]


def test_nb_write_waits_while_the_pipe_is_full(pipe):
    r, w = pipe
    vos.make_nonblocking(r)
    vos.make_nonblocking(w)
    payload = b"x" * (1 << 20)  # far more than a pipe holds
    received = []

    def drain():
        while sum(map(len, received)) < len(payload):
            received.append(vos.nb_read(r, 65536))

    g = verdigris.spawn(drain)
    view = memoryview(payload)
    with verdigris.Timeout(BOUND):
        while view:
            view = view[vos.nb_write(w, view):]
    g.join(timeout=BOUND)
    assert b"".join(received) == payload


def test_tp_read_and_tp_write_on_a_regular_file():
    with tempfile.TemporaryFile() as f:
        fd = f.fileno()
        assert vos.tp_write(fd, b"threadpool") == 10
        os.lseek(fd, 0, os.SEEK_SET)
        assert vos.tp_read(fd, 100) == b"threadpool"


def test_nb_read_on_a_bad_fd_raises_ebadf():
    fd = os.open(os.devnull, os.O_RDONLY)
    os.close(fd)
    with pytest.raises(OSError) as info:
        vos.nb_read(fd, 1)
    assert info.value.errno == errno.EBADF


@pytest.mark.verdigris_only  # gevent's close leaves the reader parked
def test_close_wakes_a_greenlet_waiting_on_the_fd(pipe):
    r, w = pipe
    vos.make_nonblocking(r)
    outcome = []

    def reader():
        try:
            vos.nb_read(r, 1)
        except OSError as ex:
            outcome.append(ex.errno)

    g = verdigris.spawn(reader)
    verdigris.sleep(0.05)
    vos.close(r)
    g.join(timeout=BOUND)
    assert outcome == [errno.EBADF]
    with pytest.raises(OSError):
        os.fstat(r)


def test_module_mirrors_os():
    assert vos.path is os.path
    assert vos.getpid is os.getpid
    for name in ("fork", "waitpid", "close"):
        assert name in vos.__implements__
    for name in ("nb_read", "nb_write", "tp_read", "tp_write", "make_nonblocking",
                 "fork_and_watch", "fork_gevent"):
        assert name in vos.__extensions__
    assert sys.modules["os"].fork is not vos.fork
