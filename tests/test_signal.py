"""verdigris.signal: handlers that run in greenlets, and the mirror of the stdlib's signal module.

Signals go to this process (``os.kill(os.getpid(), ...)``, from a thread or a child) with
SIGUSR1/SIGUSR2, whose dispositions each test restores. Every wait is bounded.
"""
import os
import signal as stdlib_signal
import threading
import time

import pytest

import verdigris
import verdigris.signal as vsignal  # not "from verdigris import signal": see the report
from verdigris.event import Event

BOUND = 10


@pytest.fixture(autouse=True)
def restore_dispositions():
    # Not SIGCHLD: under gevent, setting it with the stdlib's signal() would take it away from
    # libev's child watchers. The SIGCHLD test restores it through verdigris.signal.signal.
    saved = {n: stdlib_signal.getsignal(n) for n in (stdlib_signal.SIGUSR1, stdlib_signal.SIGUSR2)}
    yield
    for n, handler in saved.items():
        stdlib_signal.signal(n, handler if handler is not None else stdlib_signal.SIG_DFL)


def test_handler_runs_in_a_new_greenlet_while_main_sleeps():
    record = []
    main = verdigris.getcurrent()

    def handler(*args, **kwargs):
        current = verdigris.getcurrent()
        record.append(("handler", args, kwargs, current is not main,
                       current is not verdigris.get_hub()))
        verdigris.sleep(0.01)  # a handler may block: it has a greenlet of its own
        record.append("handler done")

    h = verdigris.signal_handler(stdlib_signal.SIGUSR1, handler, "a", k=1)
    try:
        record.append("kill")
        os.kill(os.getpid(), stdlib_signal.SIGUSR1)
        record.append("sleep")
        verdigris.sleep(0.2)
        record.append("woke")
    finally:
        h.cancel()
    assert record == ["kill", "sleep", ("handler", ("a",), {"k": 1}, True, True),
                      "handler done", "woke"]


def test_signal_arriving_while_the_hub_polls_runs_the_handler_promptly():
    fired = Event()
    h = verdigris.signal_handler(stdlib_signal.SIGUSR1, fired.set)
    try:
        # Nothing else is scheduled: the hub is blocked in poll when the signal comes.
        sender = threading.Timer(0.2, os.kill, (os.getpid(), stdlib_signal.SIGUSR1))
        start = time.monotonic()
        sender.start()
        assert fired.wait(timeout=BOUND)
        elapsed = time.monotonic() - start
        sender.join(BOUND)
    finally:
        h.cancel()
    assert elapsed < BOUND / 2, elapsed


def test_each_delivery_runs_every_registered_handler_until_cancelled():
    record = []
    first = verdigris.signal_handler(stdlib_signal.SIGUSR2, record.append, "first")
    second = verdigris.signal_handler(stdlib_signal.SIGUSR2, record.append, "second")
    try:
        os.kill(os.getpid(), stdlib_signal.SIGUSR2)
        verdigris.sleep(0.1)
        first.cancel()
        first.cancel()  # idempotent
        os.kill(os.getpid(), stdlib_signal.SIGUSR2)
        verdigris.sleep(0.1)
    finally:
        second.cancel()
    assert record == ["first", "second", "second"]


# gevent's libev resets the signal to SIG_DFL on cancel (a later SIGUSR1 would kill the process)
@pytest.mark.verdigris_only
def test_cancel_restores_the_previous_handler():
    record = []
    stdlib_signal.signal(stdlib_signal.SIGUSR1, lambda signum, frame: record.append("previous"))
    h = verdigris.signal_handler(stdlib_signal.SIGUSR1, record.append, "ours")
    os.kill(os.getpid(), stdlib_signal.SIGUSR1)
    verdigris.sleep(0.1)
    h.cancel()
    os.kill(os.getpid(), stdlib_signal.SIGUSR1)
    verdigris.sleep(0.1)
    assert record == ["ours", "previous"]


def test_signal_handler_needs_a_callable():
    with pytest.raises(TypeError):
        verdigris.signal_handler(stdlib_signal.SIGUSR1, "not callable")


@pytest.mark.verdigris_only  # the stdlib's errors; gevent's libev watcher accepts these silently
def test_signal_handler_rejects_signals_the_stdlib_rejects():
    with pytest.raises(OSError):
        verdigris.signal_handler(stdlib_signal.SIGKILL, lambda: None)
    with pytest.raises(ValueError):
        verdigris.signal_handler(100000, lambda: None)


def test_an_exception_in_a_handler_is_raised_in_the_main_greenlet():
    hub = verdigris.get_hub()
    hub.exception_stream = None  # the traceback is expected; do not print it

    def handler():
        raise ZeroDivisionError("from the handler")

    h = verdigris.signal_handler(stdlib_signal.SIGUSR1, handler)
    try:
        os.kill(os.getpid(), stdlib_signal.SIGUSR1)
        with pytest.raises(ZeroDivisionError):
            verdigris.sleep(1)
    finally:
        h.cancel()
        del hub.exception_stream


def test_hub_signal_is_signal_handler():
    fired = Event()
    h = verdigris.hub.signal(stdlib_signal.SIGUSR2, fired.set)
    try:
        os.kill(os.getpid(), stdlib_signal.SIGUSR2)
        assert fired.wait(timeout=BOUND)
    finally:
        h.cancel()


# -- the module that mirrors the stdlib's signal ------------------------------------------------

def test_signal_and_getsignal_pass_through_for_ordinary_signals():
    def mine(signum, frame):
        pass

    old = vsignal.signal(stdlib_signal.SIGUSR2, mine)
    assert old == stdlib_signal.SIG_DFL or callable(old) or old == stdlib_signal.SIG_IGN
    assert vsignal.getsignal(stdlib_signal.SIGUSR2) is mine
    assert stdlib_signal.getsignal(stdlib_signal.SIGUSR2) is mine
    assert vsignal.signal(stdlib_signal.SIGUSR2, stdlib_signal.SIG_DFL) is mine


def test_sigchld_handler_runs_in_a_greenlet_and_children_still_report_their_status():
    calls = []
    main = verdigris.getcurrent()

    def on_child(signum, frame):
        calls.append((signum, frame, verdigris.getcurrent() not in (main, verdigris.get_hub())))

    old = vsignal.signal(stdlib_signal.SIGCHLD, on_child)
    try:
        assert vsignal.getsignal(stdlib_signal.SIGCHLD) is on_child
        pid = verdigris.fork()
        if pid == 0:
            os._exit(4)
        with verdigris.Timeout(BOUND):
            _, status = verdigris.os.waitpid(pid, 0)
            while not calls:
                verdigris.sleep(0.01)
        assert os.WEXITSTATUS(status) == 4
        assert calls[0] == (stdlib_signal.SIGCHLD, None, True)
        from verdigris import subprocess

        assert subprocess.call(["sh", "-c", "exit 3"], timeout=BOUND) == 3
    finally:
        assert vsignal.signal(stdlib_signal.SIGCHLD, old) is on_child


def test_bad_sigchld_handler_raises_type_error():
    with pytest.raises(TypeError):
        vsignal.signal(stdlib_signal.SIGCHLD, "nonsense")


def test_module_mirrors_signal():
    for name in ("SIGUSR1", "SIG_DFL", "SIG_IGN", "Signals", "alarm", "pthread_kill",
                 "valid_signals"):
        assert getattr(vsignal, name) is getattr(stdlib_signal, name), name
    assert set(vsignal.__implements__) >= {"signal", "getsignal"}
