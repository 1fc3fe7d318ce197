"""verdigris.subprocess: children run and are reaped while other greenlets keep running.

Real child processes (``sleep``, ``cat``, ``sh`` and this interpreter), each bounded: every wait
has a timeout, and a test that started a child kills it by pid if it is still there at the end.
Concurrency is asserted against the sequential time with a wide margin, never an absolute one.
"""
import os
import signal
import subprocess as stdlib_subprocess
import sys
import time

import pytest

import verdigris
from verdigris import subprocess
from verdigris.fileobject import FileObjectPosix

BOUND = 20  # seconds: no wait in this file may take longer
_raw_waitpid = os.waitpid


@pytest.fixture
def children():
    """Popen objects to kill (by pid) and reap if a test left them running."""
    started = []
    yield started
    for p in started:
        if p.returncode is None:
            try:
                os.kill(p.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            p.wait(timeout=BOUND)


@pytest.fixture
def ticker():
    """A greenlet appending to a list every 10 ms: proof that the loop keeps turning."""
    ticks = []

    def tick():
        while True:
            ticks.append(time.monotonic())
            verdigris.sleep(0.01)

    g = verdigris.spawn(tick)
    yield ticks
    g.kill(block=True, timeout=BOUND)


def python(code):
    return [sys.executable, "-c", code]


def assert_reaped(pid):
    """The kernel has no zombie left for *pid*: waitpid says it is not our child any more."""
    with pytest.raises(ChildProcessError):
        _raw_waitpid(pid, os.WNOHANG)


# -- concurrency ---------------------------------------------------------------------------------

def test_waiting_for_a_child_lets_other_greenlets_run(children, ticker):
    p = subprocess.Popen(["sleep", "0.5"])
    children.append(p)
    assert p.wait(timeout=BOUND) == 0
    # 0.5 s at one tick per 10 ms is ~50 ticks; a blocked loop would allow one or two.
    assert len(ticker) >= 10


def test_children_in_parallel_take_about_the_time_of_one(children):
    n, each = 4, 0.5

    def run_one():
        p = subprocess.Popen(["sleep", str(each)])
        children.append(p)
        return p.wait(timeout=BOUND)

    start = time.monotonic()
    jobs = [verdigris.spawn(run_one) for _ in range(n)]
    verdigris.joinall(jobs, timeout=BOUND, raise_error=True)
    elapsed = time.monotonic() - start
    assert [j.value for j in jobs] == [0] * n
    sequential = n * each
    assert elapsed < sequential / 2, (elapsed, sequential)


def test_several_greenlets_can_wait_for_one_child(children):
    p = subprocess.Popen(["sleep", "0.2"])
    children.append(p)
    waiters = [verdigris.spawn(p.wait, timeout=BOUND) for _ in range(3)]
    verdigris.joinall(waiters, timeout=BOUND, raise_error=True)
    assert [w.value for w in waiters] == [0, 0, 0]


def test_reading_a_pipe_lets_other_greenlets_run(children, ticker):
    p = subprocess.Popen(python("import time; time.sleep(0.4); print('late', flush=True)"),
                         stdout=subprocess.PIPE)
    children.append(p)
    assert isinstance(p.stdout, FileObjectPosix)
    with verdigris.Timeout(BOUND):
        line = p.stdout.readline()
    assert line == b"late\n"
    assert len(ticker) >= 10
    p.stdout.close()
    assert p.wait(timeout=BOUND) == 0


@pytest.mark.verdigris_only  # gevent raises InvalidThreadUseError (the stdlib allows it)
def test_wait_and_poll_from_another_thread(children):
    import threading

    p = subprocess.Popen(["sleep", "0.3"])
    q = subprocess.Popen(["true"])
    children.extend([p, q])
    results = []
    thread = threading.Thread(target=lambda: results.append(p.wait(timeout=BOUND)))
    thread.start()
    with verdigris.Timeout(BOUND):
        while thread.is_alive():
            verdigris.sleep(0.01)
    thread.join()
    assert results == [0]
    thread = threading.Thread(target=lambda: results.append(q.wait(timeout=BOUND)))
    thread.start()
    thread.join(BOUND)  # the main loop is not running meanwhile
    assert results == [0, 0]
    assert q.wait(timeout=BOUND) == 0


@pytest.mark.verdigris_only  # verdigris's fallback for kernels without pidfd_open
def test_children_are_watched_by_polling_without_pidfds(children, ticker, monkeypatch):
    import verdigris.os

    monkeypatch.setattr(verdigris.os, "_pidfd_open", None)
    p = subprocess.Popen(["sh", "-c", "sleep 0.3; exit 2"])
    children.append(p)
    assert p._child_watcher is not None
    assert p.wait(timeout=BOUND) == 2
    assert len(ticker) >= 10
    assert_reaped(p.pid)


def test_popen_can_be_waited_on_with_wait(children):
    quick = subprocess.Popen(["true"])
    slow = subprocess.Popen(["sleep", "0.3"])
    children.extend([quick, slow])
    done = verdigris.wait([quick, slow], timeout=BOUND)
    assert sorted(p.pid for p in done) == sorted([quick.pid, slow.pid])
    assert (quick.returncode, slow.returncode) == (0, 0)


# -- communicate -----------------------------------------------------------------------------------

def test_communicate_sends_input_and_reads_output(children):
    p = subprocess.Popen(["cat"], stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    children.append(p)
    out, err = p.communicate(b"hello\nworld\n", timeout=BOUND)
    assert (out, err, p.returncode) == (b"hello\nworld\n", None, 0)


def test_communicate_moves_megabytes_both_ways_without_deadlock(children):
    # The child echoes every chunk to stdout and stderr as it reads: with sequential writing and
    # reading, both output pipes would fill up while our input is still being written.
    code = ("import sys\n"
            "r = sys.stdin.buffer\n"
            "for chunk in iter(lambda: r.read1(65536), b''):\n"
            "    sys.stdout.buffer.write(chunk); sys.stderr.buffer.write(chunk[::-1])\n")
    data = os.urandom(1 << 20) * 6  # 6 MiB
    p = subprocess.Popen(python(code), stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE)
    children.append(p)
    out, err = p.communicate(data, timeout=BOUND)
    assert p.returncode == 0
    assert len(out) == len(err) == len(data)
    assert out == data


def test_communicate_in_text_mode_decodes_with_universal_newlines(children):
    code = "import sys; sys.stdout.buffer.write(b'a\\r\\nb\\rc\\n\\xc3\\xa9')"
    p = subprocess.Popen(python(code), stdout=subprocess.PIPE, text=True, encoding="utf-8")
    children.append(p)
    out, _ = p.communicate(timeout=BOUND)
    assert out == "a\nb\nc\n\u00e9"


def test_communicate_timeout_loses_nothing_and_the_child_stays_killable(children):
    p = subprocess.Popen(python("import time; print('partial', flush=True); time.sleep(30)"),
                         stdout=subprocess.PIPE)
    children.append(p)
    start = time.monotonic()
    with pytest.raises(subprocess.TimeoutExpired) as info:
        p.communicate(timeout=1.0)
    assert time.monotonic() - start < BOUND / 2
    assert info.value.timeout == 1.0
    assert p.poll() is None  # the timeout did not touch the child
    p.kill()
    out, err = p.communicate(timeout=BOUND)
    assert (out, err) == (b"partial\n", None)
    assert p.returncode == -signal.SIGKILL


@pytest.mark.verdigris_only  # the stdlib's TimeoutExpired carries the output so far; gevent's not
def test_communicate_timeout_carries_the_output_so_far(children):
    p = subprocess.Popen(python("import time; print('partial', flush=True); time.sleep(30)"),
                         stdout=subprocess.PIPE)
    children.append(p)
    with pytest.raises(subprocess.TimeoutExpired) as info:
        p.communicate(timeout=1.0)
    assert info.value.output == b"partial\n"
    p.kill()
    p.communicate(timeout=BOUND)


def test_communicate_without_pipes_honours_the_timeout(children):
    p = subprocess.Popen(["sleep", "30"])
    children.append(p)
    with pytest.raises(subprocess.TimeoutExpired):
        p.communicate(timeout=0.2)
    p.kill()
    assert p.wait(timeout=BOUND) == -signal.SIGKILL


@pytest.mark.verdigris_only  # the stdlib raises ValueError here; gevent ignores the input
def test_input_after_communication_started_raises_value_error(children):
    p = subprocess.Popen(["cat"], stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    children.append(p)
    p.communicate(b"x", timeout=BOUND)
    with pytest.raises(ValueError):
        p.communicate(b"more")


def test_a_child_that_does_not_read_its_input_is_no_error(children):
    p = subprocess.Popen(["true"], stdin=subprocess.PIPE)
    children.append(p)
    # Far more than a pipe holds: the writer meets EPIPE once the child is gone, as the stdlib.
    assert p.communicate(b"x" * (4 << 20), timeout=BOUND) == (None, None)
    assert p.returncode == 0


# -- wait, poll, signals, return codes -------------------------------------------------------------

def test_wait_timeout_raises_and_the_child_can_still_be_killed(children):
    p = subprocess.Popen(["sleep", "30"])
    children.append(p)
    with pytest.raises(subprocess.TimeoutExpired) as info:
        p.wait(timeout=0.2)
    assert info.value.timeout == 0.2
    assert p.poll() is None
    p.kill()
    assert p.wait(timeout=BOUND) == -signal.SIGKILL


def test_return_codes(children):
    codes = []
    for argv in (["true"], ["sh", "-c", "exit 3"], ["sh", "-c", "kill -TERM $$"]):
        p = subprocess.Popen(argv)
        children.append(p)
        codes.append(p.wait(timeout=BOUND))
    assert codes == [0, 3, -signal.SIGTERM]


def test_terminate_and_send_signal(children):
    p = subprocess.Popen(["sleep", "30"])
    q = subprocess.Popen(["sleep", "30"])
    children.extend([p, q])
    p.terminate()
    q.send_signal(signal.SIGINT)
    assert (p.wait(timeout=BOUND), q.wait(timeout=BOUND)) == (-signal.SIGTERM, -signal.SIGINT)
    q.send_signal(signal.SIGKILL)  # a reaped child: no signal sent, no error


def test_poll_returns_none_then_the_code(children):
    p = subprocess.Popen(["sh", "-c", "sleep 0.2; exit 7"])
    children.append(p)
    assert p.poll() is None
    with verdigris.Timeout(BOUND):
        while p.poll() is None:
            verdigris.sleep(0.01)
    assert p.returncode == 7


def test_children_are_reaped_without_anybody_waiting(children):
    p = subprocess.Popen(["true"])
    children.append(p)
    pid = p.pid
    # Nobody calls wait() or poll(): the loop reaps the child once it exits.
    with verdigris.Timeout(BOUND):
        while p.returncode is None:
            verdigris.sleep(0.01)
    assert p.returncode == 0
    assert not os.path.exists("/proc/%d" % pid)
    assert_reaped(pid)


def test_context_manager_closes_pipes_and_reaps(children):
    with subprocess.Popen(["sh", "-c", "echo hi"], stdout=subprocess.PIPE) as p:
        children.append(p)
        assert p.stdout.read() == b"hi\n"
    assert p.stdout.closed
    assert p.returncode == 0
    assert_reaped(p.pid)


def test_context_manager_after_an_interrupted_communicate(children):
    p = subprocess.Popen(python("import time; time.sleep(0.5)"), stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE)
    children.append(p)
    with p:
        with pytest.raises(subprocess.TimeoutExpired):
            p.communicate(timeout=0.1)
    assert p.returncode == 0
    assert p.stdout.closed and p.stderr.closed


# -- the convenience functions ------------------------------------------------------------------

def test_run_capture_output():
    result = subprocess.run(["sh", "-c", "echo out; echo err >&2; exit 4"],
                            capture_output=True, timeout=BOUND)
    assert (result.args, result.returncode, result.stdout, result.stderr) == (
        ["sh", "-c", "echo out; echo err >&2; exit 4"], 4, b"out\n", b"err\n")
    with pytest.raises(subprocess.CalledProcessError):
        result.check_returncode()


def test_run_with_input_and_text():
    result = subprocess.run(["cat"], input="caf\u00e9\n", capture_output=True, text=True,
                            encoding="utf-8", timeout=BOUND)
    assert (result.returncode, result.stdout) == (0, "caf\u00e9\n")


def test_run_timeout_kills_and_reaps_the_child():
    start = time.monotonic()
    with pytest.raises(subprocess.TimeoutExpired):
        subprocess.run(["sleep", "30"], timeout=0.3)
    assert time.monotonic() - start < BOUND / 2
    with pytest.raises(ChildProcessError):
        _raw_waitpid(-1, os.WNOHANG)  # no child left behind, dead or alive


def test_run_check_raises_called_process_error():
    with pytest.raises(subprocess.CalledProcessError) as info:
        subprocess.run(["sh", "-c", "echo nope; exit 2"], stdout=subprocess.PIPE, check=True,
                       timeout=BOUND)
    assert (info.value.returncode, info.value.output) == (2, b"nope\n")


def test_check_output():
    assert subprocess.check_output(["echo", "hi"], timeout=BOUND) == b"hi\n"
    assert subprocess.check_output(["cat"], input=b"in", timeout=BOUND) == b"in"
    with pytest.raises(subprocess.CalledProcessError) as info:
        subprocess.check_output(["sh", "-c", "echo out; exit 5"], timeout=BOUND)
    assert (info.value.returncode, info.value.output, info.value.cmd) == (
        5, b"out\n", ["sh", "-c", "echo out; exit 5"])


def test_call_and_check_call():
    assert subprocess.call(["sh", "-c", "exit 6"], timeout=BOUND) == 6
    assert subprocess.check_call(["true"], timeout=BOUND) == 0
    with pytest.raises(subprocess.CalledProcessError) as info:
        subprocess.check_call(["false"], timeout=BOUND)
    assert info.value.returncode == 1
    with pytest.raises(subprocess.TimeoutExpired):
        subprocess.call(["sleep", "30"], timeout=0.2)


def test_getoutput_and_getstatusoutput():
    assert subprocess.getoutput("echo hello") == "hello"
    assert subprocess.getstatusoutput("echo err >&2; exit 3") == (3, "err")


# -- bad input raises what the stdlib raises ------------------------------------------------

def test_bad_arguments_raise_like_the_stdlib():
    with pytest.raises(FileNotFoundError):
        subprocess.Popen(["/nonexistent/verdigris-test-binary"])
    with pytest.raises(TypeError):
        subprocess.Popen(["true"], bufsize="big")
    with pytest.raises(ValueError):
        subprocess.check_output(["true"], stdout=subprocess.PIPE)
    with pytest.raises(ValueError):
        subprocess.run(["cat"], input=b"x", stdin=subprocess.PIPE)
    with pytest.raises(ValueError):
        subprocess.run(["true"], capture_output=True, stdout=subprocess.PIPE)


def test_stdlib_names_are_reexported_unchanged():
    for name in ("PIPE", "STDOUT", "DEVNULL", "CalledProcessError", "TimeoutExpired",
                 "SubprocessError", "list2cmdline"):
        assert getattr(subprocess, name) is getattr(stdlib_subprocess, name), name
    for name in ("Popen", "call", "check_call", "check_output", "run"):
        assert name in subprocess.__implements__


@pytest.mark.verdigris_only  # gevent has its own CompletedProcess, and a Popen of its own making
def test_popen_and_completed_process_are_the_stdlibs():
    result = subprocess.run(["true"], timeout=BOUND)
    assert type(result) is stdlib_subprocess.CompletedProcess
    assert issubclass(subprocess.Popen, stdlib_subprocess.Popen)


def test_patched_subprocess_is_cooperative_in_a_child_interpreter():
    # Monkey patching changes the process for good: do it in a fresh interpreter.
    code = """
import os, sys, importlib
if os.environ.get("VERDIGRIS_TEST_AGAINST") == "gevent":
    import gevent, gevent.monkey
    sys.modules["verdigris"] = gevent
    sys.modules["verdigris.monkey"] = gevent.monkey
import verdigris.monkey
verdigris.monkey.patch_all()
import subprocess, time, verdigris
ticks = []
def tick():
    while True:
        ticks.append(1)
        verdigris.sleep(0.01)
g = verdigris.spawn(tick)
out = subprocess.check_output([sys.executable, "-c", "import time; time.sleep(0.5); print('ok')"])
print(out.decode().strip(), len(ticks) >= 10)
"""
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(p for p in sys.path if p))
    result = stdlib_subprocess.run([sys.executable, "-c", code], env=env, capture_output=True,
                                   text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["ok", "True"]
