"""gevent.util (wrap_errors, run info, GreenletTree, assert_switches) and the backdoor console."""
import io
import socket
import threading
import time

import pytest

import verdigris as gevent
from verdigris import util
from verdigris.backdoor import BackdoorServer

BOUND = 5


# --- wrap_errors ---------------------------------------------------------------------------------

def test_wrap_errors_returns_the_chosen_exceptions():
    def divide(a, b):
        """Divides."""
        return a / b

    wrapped = util.wrap_errors(ZeroDivisionError, divide)
    assert wrapped(6, 3) == 2
    assert isinstance(wrapped(1, 0), ZeroDivisionError)
    with pytest.raises(TypeError):
        wrapped(1, "x")
    assert (str(wrapped), repr(wrapped)) == (str(divide), repr(divide))
    assert wrapped.__doc__ == "Divides." and wrapped.__name__ == "divide"
    both = util.wrap_errors((ZeroDivisionError, TypeError), divide)
    assert isinstance(both(1, "x"), TypeError)


# --- run info ------------------------------------------------------------------------------------

def test_format_run_info_lists_threads_and_greenlets():
    def parked_greenlet_function():
        gevent.sleep(BOUND)

    release = threading.Event()
    thread = threading.Thread(target=release.wait, name="info-test-thread", args=(BOUND,))
    thread.start()
    glet = gevent.spawn(parked_greenlet_function)
    gevent.sleep(0)
    label = "at %s" % hex(id(glet))   # the repr may gain a name while being formatted
    try:
        text = "\n".join(util.format_run_info())
    finally:
        glet.kill()
        release.set()
        thread.join(BOUND)
    assert "* Threads" in text and "* Greenlets" in text
    assert "info-test-thread" in text
    assert "(CURRENT)" in text
    assert label in text
    assert "in parked_greenlet_function" in text


def test_format_run_info_without_stacks():
    glet = gevent.spawn(gevent.sleep, BOUND)
    gevent.sleep(0)
    label = "at %s" % hex(id(glet))
    try:
        lines = util.format_run_info(thread_stacks=False, greenlet_stacks=False)
    finally:
        glet.kill()
    text = "\n".join(lines)
    assert "stack elided" in text
    assert "Running:" not in text
    assert label in text


def test_print_run_info_to_a_file():
    out = io.StringIO()
    util.print_run_info(file=out)
    assert "* Greenlets" in out.getvalue()


def test_greenlet_tree_follows_the_spawning_greenlet():
    children = []

    def parent():
        children.append(gevent.spawn(gevent.sleep, BOUND))
        gevent.sleep(BOUND)

    top = gevent.spawn(parent)
    gevent.sleep(0.01)
    try:
        tree = util.GreenletTree.current_tree()
        assert tree.is_current_tree and tree.root
        assert tree.greenlet is gevent.getcurrent()

        def find(node, glet):
            if node.greenlet is glet:
                return node
            for child in node.child_trees:
                found = find(child, glet)
                if found is not None:
                    return found
            return None

        top_tree = find(tree, top)
        assert top_tree is not None
        assert [c.greenlet for c in top_tree.child_trees] == children
        assert [t.greenlet for t in util.GreenletTree.forest() if t.is_current_tree] == \
            [tree.greenlet]
        assert "at %s" % hex(id(children[0])) in str(tree)
        assert "Parent:" not in str(tree)          # str: the bare tree
        assert "Parent:" in tree.format()
    finally:
        gevent.killall([top] + children)


# --- assert_switches -----------------------------------------------------------------------------

def test_assert_switches_fails_without_a_switch():
    with pytest.raises(AssertionError):
        with util.assert_switches():
            pass
    with util.assert_switches():
        gevent.sleep(0)


def test_assert_switches_with_a_time_budget():
    with util.assert_switches(max_blocking_time=1.0):
        pass                              # nothing switched, but quickly
    with pytest.raises(AssertionError):
        with util.assert_switches(max_blocking_time=0.05):
            time.sleep(0.2)
    with pytest.raises(AssertionError):
        with util.assert_switches(max_blocking_time=0.05):
            gevent.sleep(0)
            time.sleep(0.2)
            gevent.sleep(0)
    with util.assert_switches(max_blocking_time=0.05):
        gevent.sleep(0.2)                 # waiting cooperatively is not blocking


def test_assert_switches_ignores_a_body_that_raised():
    with pytest.raises(KeyError):
        with util.assert_switches():
            raise KeyError("not hidden")


@pytest.mark.verdigris_only  # gevent misses the last stretch and counts a long sleep as blocking
def test_assert_switches_measures_every_stretch():
    with pytest.raises(AssertionError):
        with util.assert_switches(max_blocking_time=0.05):
            gevent.sleep(0)
            time.sleep(0.2)               # the final stretch counts too
    with util.assert_switches(max_blocking_time=0.05, hub_only=True):
        gevent.sleep(0.2)                 # the hub ran all along
    with pytest.raises(AssertionError):
        with util.assert_switches(max_blocking_time=0.05, hub_only=True):
            gevent.sleep(0)
            time.sleep(0.2)
            gevent.sleep(0)


# --- backdoor ------------------------------------------------------------------------------------

class Client:
    """A console user on a plain blocking socket, in a real thread (so the hub keeps running)."""

    def __init__(self, port):
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=BOUND)

    def read_until(self, token=b">>> "):
        data = b""
        while not data.endswith(token):
            chunk = self.sock.recv(1)
            if not chunk:
                break
            data += chunk
        return data.decode()

    def ask(self, line, prompt=b">>> "):
        self.sock.sendall(line.encode() + b"\r\n")
        return self.read_until(prompt)

    def close(self):
        self.sock.close()


def in_thread(func, *args):
    result = {}

    def target():
        try:
            result["value"] = func(*args)
        except BaseException as ex:  # noqa: BLE001
            result["error"] = ex

    thread = threading.Thread(target=target)
    thread.start()
    while thread.is_alive():
        gevent.sleep(0.01)   # keep the hub (and the server) running
        thread.join(0.001)
    if "error" in result:
        raise result["error"]
    return result["value"]


@pytest.fixture
def server():
    srv = BackdoorServer(("127.0.0.1", 0), locals={"shared": 42}, banner="welcome to the test")
    srv.start()
    yield srv
    srv.stop()


def test_backdoor_session(server):
    def session():
        client = Client(server.server_port)
        try:
            return [client.read_until(), client.ask("print(shared + 1)"), client.ask("shared"),
                    client.ask("1/0"), client.ask("x = 5"), client.ask("for i in range(2):", b"... "),
                    client.ask("    print(i)", b"... "), client.ask("")]
        finally:
            client.close()

    banner, printed, shown, error, assigned, block, block2, block_done = in_thread(session)
    assert banner == "welcome to the test\n>>> "
    assert printed == "43\n>>> "
    assert shown == "42\n>>> "
    assert "ZeroDivisionError" in error and error.endswith(">>> ")
    assert assigned == ">>> "
    assert (block, block2) == ("... ", "... ")
    assert block_done == "0\n1\n>>> "


def test_backdoor_sessions_have_their_own_locals_and_quit_ends_one(server):
    def two_sessions():
        first, second = Client(server.server_port), Client(server.server_port)
        try:
            first.read_until()
            second.read_until()
            first.ask("mine = 'first'")
            seen = second.ask("mine")
            first.sock.sendall(b"quit()\r\n")
            rest = first.read_until(b"never")
            return seen, rest
        finally:
            first.close()
            second.close()

    seen, rest = in_thread(two_sessions)
    assert "NameError" in seen
    assert rest == ""      # the server closed the connection


def test_backdoor_stop_closes_open_sessions(server):
    client = in_thread(lambda: Client(server.server_port))
    try:
        assert in_thread(client.read_until).endswith(">>> ")
        server.stop()
        assert in_thread(client.read_until, b"never") == ""
    finally:
        client.close()


def test_backdoor_leaves_the_process_streams_alone_after_sessions(server):
    import sys

    before = (sys.stdin, sys.stdout, sys.stderr)

    def session():
        client = Client(server.server_port)
        try:
            client.read_until()
            return client.ask("import sys; n = sys.stdout.write('direct\\n'); sys.stdout.flush()")
        finally:
            client.close()

    assert in_thread(session) == "direct\n>>> "
    deadline = time.monotonic() + BOUND
    while (sys.stdin, sys.stdout, sys.stderr) != before and time.monotonic() < deadline:
        gevent.sleep(0.01)
    assert (sys.stdin, sys.stdout, sys.stderr) == before


def test_backdoor_binds_where_told():
    srv = BackdoorServer(("127.0.0.1", 0))
    srv.start()
    try:
        assert srv.server_host == "127.0.0.1"
        assert srv.server_port > 0
    finally:
        srv.stop()
