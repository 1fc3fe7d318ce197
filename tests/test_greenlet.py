"""Greenlet: its life cycle, results, killing, links and introspection.

Real greenlets on the real hub; order is asserted as ``record == [...]`` and every wait is bounded.
"""
import time

import pytest

import verdigris as gevent
from verdigris import Greenlet, GreenletExit, Timeout

BOUND = 5


@pytest.fixture
def errors():
    """Record ``(context, type)`` for each call of the hub's error handler, which still runs.

    gevent documents assigning ``handle_error`` on the hub instance as the way to override it.
    """
    hub = gevent.get_hub()
    original = hub.handle_error
    record = []

    def handle_error(context, type, value, tb):
        record.append((context, type))
        original(context, type, value, tb)

    hub.handle_error = handle_error
    yield record
    del hub.handle_error


def _sleeper(record, seconds=10):
    try:
        gevent.sleep(seconds)
    except BaseException as e:
        record.append(type(e).__name__)
        raise
    return "slept"


def _stubborn(record):
    """Ignore the first kill: sleep a little more and return."""
    try:
        gevent.sleep(10)
    except GreenletExit:
        record.append("ignored kill")
        gevent.sleep(1)
    record.append("finished")
    return "outlived"


# --- start / start_later / subclassing -------------------------------------------------------

def test_greenlet_does_not_run_until_started():
    record = []
    g = Greenlet(record.append, "ran")
    assert not g.started
    gevent.sleep(0.01)
    assert record == []
    g.start()
    assert g.started
    assert record == []  # start() only schedules
    g.join(timeout=BOUND)
    assert record == ["ran"]


def test_start_twice_runs_once():
    record = []
    g = Greenlet(record.append, 1)
    g.start()
    g.start()
    g.join(timeout=BOUND)
    gevent.sleep(0.01)
    assert record == [1]


def test_start_later():
    record = []
    g = Greenlet(record.append, "later")
    t0 = time.perf_counter()
    g.start_later(0.1)
    assert g.started
    gevent.sleep(0)
    assert record == []
    g.join(timeout=BOUND)
    assert record == ["later"]
    assert time.perf_counter() - t0 >= 0.1 * 0.9


def test_classmethod_spawn_and_spawn_later():
    g = Greenlet.spawn(lambda a, b: a + b, 1, b=2)
    assert isinstance(g, Greenlet)
    assert g.get(timeout=BOUND) == 3
    record = []
    later = Greenlet.spawn_later(0.05, record.append, "x")
    gevent.sleep(0)
    assert record == []
    later.join(timeout=BOUND)
    assert record == ["x"]


def test_subclass_overriding_run():
    class Doubler(Greenlet):
        def __init__(self, x):
            Greenlet.__init__(self)
            self.x = x

        def _run(self):
            gevent.sleep(0)
            return self.x * 2

    g = Doubler(21)
    g.start()
    assert g.get(timeout=BOUND) == 42
    assert isinstance(g, Greenlet)


def test_subclass_run_receives_args():
    class Adder(Greenlet):
        def _run(self, a, b=0):
            return a + b

    # The first argument is *run*; None means "use self._run".
    g = Adder.spawn(None, 1, b=2)
    assert g.get(timeout=BOUND) == 3


# --- join / get ------------------------------------------------------------------------------

def test_join_returns_none_and_does_not_raise_on_failure(capfd):
    g = gevent.spawn(lambda: 1 / 0)
    assert g.join(timeout=BOUND) is None
    assert g.dead
    capfd.readouterr()


def test_join_timeout_returns_while_still_running():
    record = []
    g = gevent.spawn(_sleeper, record)
    t0 = time.perf_counter()
    g.join(timeout=0.05)
    assert time.perf_counter() - t0 < BOUND
    assert not g.dead
    assert not g.ready()
    g.kill(timeout=BOUND)
    assert record == ["GreenletExit"]


def test_get_returns_value():
    g = gevent.spawn(lambda: (gevent.sleep(0.01), "v")[1])
    assert g.get(timeout=BOUND) == "v"
    assert g.get() == "v"  # again, now ready


def test_get_reraises_the_exception(capfd):
    g = gevent.spawn(lambda: {}["missing"])
    with pytest.raises(KeyError):
        g.get(timeout=BOUND)
    with pytest.raises(KeyError):
        g.get()
    capfd.readouterr()


def test_get_not_blocking_raises_timeout_when_not_ready():
    g = gevent.spawn(gevent.sleep, 10)
    try:
        with pytest.raises(Timeout):
            g.get(block=False)
    finally:
        g.kill(timeout=BOUND)


def test_get_timeout_raises_timeout():
    g = gevent.spawn(gevent.sleep, 10)
    try:
        t0 = time.perf_counter()
        with pytest.raises(Timeout):
            g.get(timeout=0.05)
        assert time.perf_counter() - t0 < BOUND
        assert not g.dead
    finally:
        g.kill(timeout=BOUND)


def test_get_not_blocking_on_finished_greenlet():
    g = gevent.spawn(lambda: 7)
    g.join(timeout=BOUND)
    assert g.get(block=False) == 7


# --- kill ------------------------------------------------------------------------------------

def test_kill_blocks_until_dead_and_runs_finally_blocks():
    record = []

    def worker():
        try:
            gevent.sleep(10)
        finally:
            record.append("finally")

    g = gevent.spawn(worker)
    gevent.sleep(0)
    assert g.kill(timeout=BOUND) is None
    assert record == ["finally"]
    assert g.dead
    assert g.successful()
    assert isinstance(g.value, GreenletExit)
    assert g.exception is None


def test_kill_with_exception_class(capfd, errors):
    record = []
    g = gevent.spawn(_sleeper, record)
    gevent.sleep(0)
    g.kill(ValueError, timeout=BOUND)
    assert record == ["ValueError"]
    assert not g.successful()
    assert isinstance(g.exception, ValueError)
    assert errors == [(g, ValueError)]
    assert "ValueError" in capfd.readouterr().err


def test_kill_with_exception_instance(capfd):
    record = []
    g = gevent.spawn(_sleeper, record)
    gevent.sleep(0)
    exc = ValueError("chosen")
    g.kill(exc, timeout=BOUND)
    assert g.exception is exc
    capfd.readouterr()


def test_kill_not_blocking_returns_at_once():
    record = []
    g = gevent.spawn(_sleeper, record)
    gevent.sleep(0)
    g.kill(block=False)
    assert record == []
    assert not g.dead
    g.join(timeout=BOUND)
    assert record == ["GreenletExit"]
    assert g.dead


def test_kill_timeout_gives_up_waiting_without_raising():
    record = []
    g = gevent.spawn(_stubborn, record)
    gevent.sleep(0)
    t0 = time.perf_counter()
    g.kill(timeout=0.05)
    assert time.perf_counter() - t0 < 0.8  # well before the greenlet's 1 s
    assert record == ["ignored kill"]
    assert not g.dead
    assert g.get(timeout=BOUND) == "outlived"
    assert record == ["ignored kill", "finished"]


def test_kill_a_greenlet_that_was_never_started():
    record = []
    g = Greenlet(record.append, "ran")
    g.kill()
    assert g.dead
    assert g.ready()
    assert g.successful()
    assert isinstance(g.value, GreenletExit)
    assert not g.started
    g.start()  # too late: it is dead and never runs
    gevent.sleep(0.01)
    assert record == []


def test_kill_a_spawned_greenlet_before_it_runs():
    record = []
    g = gevent.spawn(record.append, "ran")
    g.kill()
    assert g.dead
    gevent.sleep(0.01)
    assert record == []
    assert g.successful()
    assert isinstance(g.value, GreenletExit)


def test_kill_a_finished_greenlet_changes_nothing():
    g = gevent.spawn(lambda: "done")
    g.join(timeout=BOUND)
    g.kill()
    assert g.value == "done"
    assert g.successful()


def test_links_run_for_a_greenlet_killed_before_it_started():
    record = []
    g = Greenlet(record.append, "ran")
    g.link(lambda source: record.append(("link", source is g)))
    g.kill()
    gevent.sleep(0.01)
    assert record == [("link", True)]


# --- GreenletExit and failures ---------------------------------------------------------------

def test_greenlet_exit_raised_inside_is_a_successful_exit(capfd, errors):
    def leave():
        raise GreenletExit("bye")

    record = []
    g = gevent.spawn(leave)
    g.link_value(lambda s: record.append("value"))
    g.link_exception(lambda s: record.append("exception"))
    g.join(timeout=BOUND)
    gevent.sleep(0.01)
    assert g.successful()
    assert isinstance(g.value, GreenletExit)
    assert g.exception is None
    assert g.get() is g.value
    assert record == ["value"]
    assert errors == []  # handled like success: the error handler is not called
    assert "GreenletExit" not in capfd.readouterr().err


def test_failing_greenlet_reports_to_hub_error_handler_and_not_to_joinall(capfd, errors):
    def fail_loudly():
        raise RuntimeError("you failed")

    bad = gevent.spawn(fail_loudly)
    good = gevent.spawn(lambda: "fine")
    done = gevent.joinall([bad, good], timeout=BOUND)  # does not raise
    assert set(done) == {bad, good}
    assert errors == [(bad, RuntimeError)]
    err = capfd.readouterr().err
    assert "Traceback" in err
    assert "fail_loudly" in err
    assert "RuntimeError: you failed" in err


def test_failed_greenlet_state(capfd):
    g = gevent.spawn(lambda: [][1])
    g.join(timeout=BOUND)
    assert g.ready()
    assert g.dead
    assert not g.successful()
    assert g.value is None
    assert isinstance(g.exception, IndexError)
    typ, value, tb = g.exc_info
    assert typ is IndexError
    assert value is g.exception
    assert tb is not None
    capfd.readouterr()


# --- state properties ------------------------------------------------------------------------

def test_state_through_the_life_cycle():
    evt_record = []
    g = Greenlet(lambda: (gevent.sleep(0.05), evt_record.append("done"), 5)[2])

    def state():
        return (g.started, bool(g), g.ready(), g.dead, g.successful())

    assert state() == (False, False, False, False, False)
    assert g.value is None
    assert g.exception is None
    assert not g.exc_info
    g.start()
    assert state() == (True, True, False, False, False)
    gevent.sleep(0.01)  # now it is running (parked in sleep)
    assert state() == (True, True, False, False, False)
    g.join(timeout=BOUND)
    assert state() == (False, False, True, True, True)
    assert g.value == 5
    assert g.exception is None
    assert not g.exc_info
    assert evt_record == ["done"]


def test_bool_is_false_for_a_killed_greenlet():
    g = gevent.spawn(gevent.sleep, 10)
    gevent.sleep(0)
    assert bool(g)
    g.kill(timeout=BOUND)
    assert not bool(g)


# --- links -----------------------------------------------------------------------------------

def test_link_is_called_with_the_greenlet_in_its_own_greenlet():
    hub = gevent.get_hub()
    record = []

    def callback(source):
        current = gevent.getcurrent()
        record.append((source is g, current is not hub, current is not g))
        gevent.sleep(0.01)  # a link callback may block: it does not run in the hub
        record.append("slept")

    g = gevent.spawn(lambda: 1)
    g.link(callback)
    g.join(timeout=BOUND)
    gevent.sleep(0.1)
    assert record == [(True, True, True), "slept"]


def test_rawlink_is_called_in_the_hub():
    hub = gevent.get_hub()
    record = []
    g = gevent.spawn(lambda: 1)
    g.rawlink(lambda source: record.append((source is g, gevent.getcurrent() is hub)))
    g.join(timeout=BOUND)
    gevent.sleep(0.01)
    assert record == [(True, True)]


def test_rawlinks_run_in_the_order_they_were_added():
    record = []
    g = gevent.spawn(gevent.sleep, 0.01)
    for i in range(5):
        g.rawlink(lambda source, i=i: record.append(i))
    g.join(timeout=BOUND)
    gevent.sleep(0.01)
    assert record == [0, 1, 2, 3, 4]


def test_link_value_and_link_exception_on_success():
    record = []
    g = gevent.spawn(lambda: "ok")
    g.link_value(lambda s: record.append(("value", s.value)))
    g.link_exception(lambda s: record.append(("exception", s.exception)))
    g.join(timeout=BOUND)
    gevent.sleep(0.01)
    assert record == [("value", "ok")]


def test_link_value_and_link_exception_on_failure(capfd):
    record = []
    g = gevent.spawn(lambda: 1 / 0)
    g.link_value(lambda s: record.append("value"))
    g.link_exception(lambda s: record.append(("exception", type(s.exception))))
    g.join(timeout=BOUND)
    gevent.sleep(0.01)
    assert record == [("exception", ZeroDivisionError)]
    capfd.readouterr()


def test_link_after_the_greenlet_is_ready_still_calls_back():
    record = []
    g = gevent.spawn(lambda: 1)
    g.join(timeout=BOUND)
    g.link(lambda s: record.append("link"))
    g.rawlink(lambda s: record.append("rawlink"))
    assert record == []  # not synchronously
    gevent.sleep(0.01)
    assert sorted(record) == ["link", "rawlink"]


def test_unlink_removes_link_and_rawlink():
    record = []

    def a(source):
        record.append("a")

    def b(source):
        record.append("b")

    def c(source):
        record.append("c")

    g = gevent.spawn(gevent.sleep, 0.01)
    g.link(a)
    g.rawlink(b)
    g.rawlink(c)
    g.unlink(a)
    g.unlink(b)
    g.unlink(lambda s: None)  # unknown callbacks are ignored
    g.join(timeout=BOUND)
    gevent.sleep(0.01)
    assert record == ["c"]


def test_link_rejects_non_callable():
    g = gevent.spawn(lambda: 1)
    with pytest.raises(TypeError):
        g.link(42)
    g.join(timeout=BOUND)


def test_exception_in_a_link_callback_goes_to_the_error_handler(capfd, errors):
    record = []

    def bad(source):
        raise LookupError("in link")

    g = gevent.spawn(lambda: 1)
    g.rawlink(bad)
    g.rawlink(lambda s: record.append("next link still runs"))
    g.join(timeout=BOUND)
    gevent.sleep(0.01)
    assert record == ["next link still runs"]
    assert [t for _, t in errors] == [LookupError]
    assert "LookupError" in capfd.readouterr().err


# --- throw -----------------------------------------------------------------------------------

def test_throw_raises_in_the_greenlet_where_it_is_parked():
    def catcher():
        try:
            gevent.sleep(10)
        except ValueError as e:
            return "handled " + str(e)

    g = gevent.spawn(catcher)
    gevent.sleep(0)
    # throw() switches into the greenlet at once; do it from the hub so that whoever called it
    # is not left unscheduled when the greenlet finishes.
    gevent.get_hub().loop.run_callback(g.throw, ValueError("x"))
    assert g.get(timeout=BOUND) == "handled x"


def test_throw_uncaught_fails_the_greenlet(capfd):
    g = gevent.spawn(gevent.sleep, 10)
    gevent.sleep(0)
    exc = ValueError("thrown")
    gevent.get_hub().loop.run_callback(g.throw, exc)
    g.join(timeout=BOUND)
    assert g.exception is exc
    capfd.readouterr()


# --- introspection ---------------------------------------------------------------------------

def test_name_defaults_from_minimal_ident_and_is_assignable():
    g = Greenlet(lambda: None)
    assert isinstance(g.minimal_ident, int)
    assert g.minimal_ident >= 0
    assert g.minimal_ident == g.minimal_ident
    assert g.name == "Greenlet-%d" % g.minimal_ident
    g.name = "worker"
    assert g.name == "worker"


def test_minimal_ident_is_unique_among_live_greenlets_and_small():
    gs = [Greenlet(lambda: None) for _ in range(20)]
    idents = [g.minimal_ident for g in gs]
    assert len(set(idents)) == 20
    # small: sequential values, not addresses
    assert max(idents) < 10_000


def test_args_and_kwargs():
    def f(*args, **kwargs):
        return args, kwargs

    g = Greenlet(f, 1, 2, x=3)
    assert g.args == (1, 2)
    assert g.kwargs == {"x": 3}
    g.start()
    assert g.get(timeout=BOUND) == ((1, 2), {"x": 3})


def test_repr_shows_the_function_its_arguments_and_an_assigned_name():
    def work(a, b=None):
        pass

    g = Greenlet(work, 5, b=6)
    text = repr(g)
    assert text.startswith("<Greenlet")
    assert "work" in text
    assert "5" in text and "b=6" in text
    g.name = "my-name"
    assert "my-name" in repr(g)


def test_repr_of_subclass_names_the_subclass():
    class Worker(Greenlet):
        def _run(self):
            pass

    assert repr(Worker()).startswith("<Worker")
