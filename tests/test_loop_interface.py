"""gevent's ILoop/IWatcher surface of ``get_hub().loop``: raw watchers started and stopped.

io on a socketpair, timers (one-shot and repeating), async from a real thread, child with a real
process, signal with ``os.kill``, prepare/check/idle, fork (in a child interpreter) and stat on a
temporary file. Every wait is bounded: callbacks set an Event, and the test waits for it with a
timeout.
"""
import os
import signal
import socket
import subprocess
import sys
import textwrap
import threading
import time

import pytest

import verdigris as gevent
from verdigris.event import Event

BOUND = 5
AGAINST_GEVENT = os.environ.get("VERDIGRIS_TEST_AGAINST") == "gevent"


@pytest.fixture
def loop():
    return gevent.get_hub().loop


def wait_for(predicate, timeout=BOUND):
    """Cooperatively waits until *predicate()* is true; returns its last value."""
    deadline = time.monotonic() + timeout
    while not predicate() and time.monotonic() < deadline:
        gevent.sleep(0.005)
    return predicate()


def run_child(body):
    preamble = textwrap.dedent("""\
        import os, sys
        if os.environ.get("VERDIGRIS_TEST_AGAINST") == "gevent":
            import gevent
            sys.modules["verdigris"] = gevent
        import verdigris
        """)
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(p for p in sys.path if p))
    return subprocess.run([sys.executable, "-c", preamble + textwrap.dedent(body)], env=env,
                          capture_output=True, text=True, timeout=60)


# --- io ------------------------------------------------------------------------------------------

def test_io_read_watcher_fires_while_data_is_unread_and_stops_when_stopped(loop):
    a, b = socket.socketpair()
    with a, b:
        record = []
        watcher = loop.io(a.fileno(), 1)
        watcher.start(record.append, "readable")
        gevent.sleep(0.02)
        assert record == []          # nothing to read yet
        b.send(b"x")
        assert wait_for(lambda: len(record) >= 2)   # level-triggered: fires again, unread
        a.recv(1)
        watcher.stop()
        count = len(record)
        b.send(b"y")
        gevent.sleep(0.02)
        assert len(record) == count
        assert not watcher.active
        watcher.close()


def test_io_write_watcher_fires_on_a_writable_socket_and_passes_args(loop):
    a, b = socket.socketpair()
    with a, b:
        done = Event()
        record = []
        watcher = loop.io(a.fileno(), 2)
        assert watcher.fd == a.fileno() and watcher.events & 3 == 2   # libev adds a flag bit
        watcher.start(lambda *args: (record.append(args), done.set()), "w", 1)
        assert watcher.active
        assert watcher.callback is not None and watcher.args == ("w", 1)
        assert done.wait(BOUND)
        watcher.stop()
        watcher.close()
        assert record[0] == ("w", 1)


def test_io_rejects_a_bad_event_mask(loop):
    with pytest.raises(ValueError):
        loop.io(0, 4)


# --- timers --------------------------------------------------------------------------------------

def test_one_shot_timer_fires_once(loop):
    record = []
    timer = loop.timer(0.01)
    timer.start(record.append, "fired")
    assert wait_for(lambda: record)
    gevent.sleep(0.03)
    assert record == ["fired"]
    assert not timer.active
    timer.close()


def test_repeating_timer_fires_until_stopped(loop):
    record = []
    timer = loop.timer(0.005, 0.005)
    timer.start(lambda: record.append(len(record)))
    assert wait_for(lambda: len(record) >= 3)
    assert timer.active
    timer.stop()
    count = len(record)
    gevent.sleep(0.03)
    assert record == list(range(count))


def test_timer_as_context_manager_is_closed_on_exit(loop):
    record = []
    with loop.timer(0.01) as timer:
        timer.start(record.append, 1)
        assert timer.active
    assert not timer.active
    gevent.sleep(0.03)
    assert record == []


def test_watchers_refuse_non_callables(loop):
    for watcher in (loop.timer(1), loop.async_(), loop.prepare(), loop.signal(signal.SIGUSR2)):
        with pytest.raises(TypeError):
            watcher.start(1)
        watcher.close()


# --- async ---------------------------------------------------------------------------------------

def test_async_sent_from_a_real_thread_runs_the_callback_in_the_hub(loop):
    done = Event()
    record = []
    watcher = loop.async_()
    watcher.start(lambda: (record.append(gevent.getcurrent() is gevent.get_hub()), done.set()))
    thread = threading.Thread(target=lambda: (time.sleep(0.02), watcher.send()))
    thread.start()
    try:
        assert done.wait(BOUND)
    finally:
        thread.join(BOUND)
        watcher.close()
    assert record == [True]


def test_run_callback_threadsafe_from_a_thread(loop):
    done = Event()
    thread = threading.Thread(target=lambda: loop.run_callback_threadsafe(done.set))
    thread.start()
    assert done.wait(BOUND)
    thread.join(BOUND)


# --- children ------------------------------------------------------------------------------------

def _spawn_exiting(code):
    return os.posix_spawn(sys.executable,
                          [sys.executable, "-c", "import sys; sys.exit(%d)" % code], os.environ)


def test_child_watcher_reaps_the_child_and_reports_its_status(loop):
    pid = _spawn_exiting(7)
    done = Event()
    watcher = loop.child(pid)
    assert watcher.pid == pid
    watcher.start(done.set)
    try:
        assert done.wait(BOUND)
    finally:
        watcher.stop()
        watcher.close()
    assert watcher.rpid == pid
    assert os.WIFEXITED(watcher.rstatus) and os.WEXITSTATUS(watcher.rstatus) == 7
    with pytest.raises(ChildProcessError):
        os.waitpid(pid, os.WNOHANG)   # already reaped by the watcher


def test_every_watcher_of_a_child_gets_its_status(loop):
    pid = _spawn_exiting(3)
    record = []
    first, second = loop.child(pid), loop.child(pid)
    first.start(lambda: record.append(("first", os.WEXITSTATUS(first.rstatus))))
    second.start(lambda: record.append(("second", os.WEXITSTATUS(second.rstatus))))
    try:
        assert wait_for(lambda: len(record) == 2)
    finally:
        first.close()
        second.close()
    assert sorted(record) == [("first", 3), ("second", 3)]


@pytest.mark.verdigris_only  # libev keeps a fired child watcher active until stopped
def test_child_watcher_holds_a_pidfd_only_while_waiting(loop):
    def open_fds():
        return len(os.listdir("/proc/self/fd"))

    before = open_fds()
    pid = _spawn_exiting(0)
    done = Event()
    watcher = loop.child(pid)
    assert open_fds() == before          # nothing held before start()
    watcher.start(done.set)
    assert watcher.active
    assert done.wait(BOUND)
    assert not watcher.active            # reaped: nothing more can happen
    assert open_fds() == before
    watcher.close()


def test_sigchld_hooks_exist(loop):
    assert loop.install_sigchld() is None
    assert loop.reset_sigchld() is None


# --- signals -------------------------------------------------------------------------------------

def test_signal_watchers_fire_in_the_hub(loop):
    record = []
    first = loop.signal(signal.SIGUSR1)
    second = loop.signal(signal.SIGUSR1)
    first.start(lambda: record.append(("first", gevent.getcurrent() is gevent.get_hub())))
    second.start(record.append, "second")
    try:
        os.kill(os.getpid(), signal.SIGUSR1)
        assert wait_for(lambda: len(record) == 2)
    finally:
        first.close()
        second.close()
    assert sorted(record, key=str) == [("first", True), "second"]


@pytest.mark.verdigris_only  # libev leaves SIG_DFL behind; verdigris restores the old handler
def test_the_previous_handler_is_restored_when_the_last_signal_watcher_stops(loop):
    record = []

    def previous(signum, frame):
        record.append("previous")

    old = signal.signal(signal.SIGUSR1, previous)
    try:
        watcher = loop.signal(signal.SIGUSR1)
        watcher.start(record.append, "watcher")
        os.kill(os.getpid(), signal.SIGUSR1)
        assert wait_for(lambda: record)
        watcher.stop()
        assert signal.getsignal(signal.SIGUSR1) is previous
        os.kill(os.getpid(), signal.SIGUSR1)
        assert wait_for(lambda: len(record) == 2)
        watcher.close()
    finally:
        signal.signal(signal.SIGUSR1, old)
    assert record == ["watcher", "previous"]


def test_signal_rejects_bad_numbers(loop):
    for bad in (0, -1, signal.NSIG + 10):
        with pytest.raises(ValueError):
            loop.signal(bad)


# --- prepare / check / idle ----------------------------------------------------------------------

def test_prepare_runs_before_the_poll_and_check_after_it(loop):
    record = []
    prepare, check = loop.prepare(), loop.check()
    prepare.start(record.append, "prepare")
    check.start(record.append, "check")
    gevent.sleep(0.02)
    prepare.close()
    check.close()
    assert record[:2] == ["prepare", "check"]
    assert all(a != b for a, b in zip(record, record[1:]))   # strictly alternating


def test_idle_watcher_runs_when_the_loop_has_nothing_to_do(loop):
    record = []
    idle = loop.idle()
    idle.start(lambda: record.append(len(record)))
    try:
        assert wait_for(lambda: len(record) >= 2)
    finally:
        idle.stop()
    count = len(record)
    gevent.sleep(0.02)
    assert len(record) == count
    idle.close()


def test_fork_watcher_runs_in_the_child_only():
    proc = run_child("""
        import os
        loop = verdigris.get_hub().loop
        record = []
        watcher = loop.fork()
        watcher.start(record.append, "forked")
        verdigris.sleep(0.001)
        pid = os.fork()
        if pid == 0:
            verdigris.sleep(0.01)   # libev runs fork watchers on the child's next loop turn
            os._exit(0 if record == ["forked"] else 1)
        _, status = os.waitpid(pid, 0)
        print(os.WEXITSTATUS(status), record)
        """)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split() == ["0", "[]"]


# --- stat ----------------------------------------------------------------------------------------

def test_stat_watcher_sees_a_file_change_then_its_removal(loop, tmp_path):
    path = tmp_path / "watched"
    path.write_bytes(b"")
    changes = []
    watcher = loop.stat(str(path), 0.01)
    assert watcher.path == str(path) and watcher.interval == pytest.approx(0.01)
    watcher.start(lambda: changes.append((watcher.attr, watcher.prev)))
    try:
        gevent.sleep(0.05)   # let the first poll/notification settle
        assert watcher.attr is not None and watcher.attr.st_size == 0
        path.write_bytes(b"12345")
        assert wait_for(lambda: any(a is not None and a.st_size == 5 for a, _ in changes))
        attr, prev = next((a, p) for a, p in changes if a is not None and a.st_size == 5)
        assert prev is not None and prev.st_size == 0
        path.unlink()
        assert wait_for(lambda: changes[-1][0] is None)
    finally:
        watcher.close()
    assert changes[-1][1] is not None and changes[-1][1].st_size == 5


# --- the loop itself -----------------------------------------------------------------------------

def test_loop_basics(loop):
    assert loop.default is True       # the main thread's loop
    assert 0 < loop.approx_timer_resolution <= 0.01
    before = loop.now()
    time.sleep(0.01)
    loop.update_now()
    assert loop.now() > before
    callback = loop.run_callback(lambda: None)
    assert callback.pending
    callback.stop()
    assert not callback.pending


@pytest.mark.verdigris_only  # the Python part of verdigris's loop class
def test_loop_class_is_the_configured_one():
    from verdigris._loop import Loop

    assert type(gevent.get_hub().loop) is gevent.config.loop is Loop
