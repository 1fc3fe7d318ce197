"""The monitor thread: blocked-loop reports and events, periodic functions, memory, shutdown.

Each test runs a child interpreter with the monitor enabled (gevent's is off by default), since
the monitor is per hub and prints on stderr. The blocking greenlet uses the original
``time.sleep`` (nothing is monkey patched).
"""
import os
import subprocess
import sys
import textwrap

import pytest

AGAINST_GEVENT = os.environ.get("VERDIGRIS_TEST_AGAINST") == "gevent"

CHILD_PREAMBLE = """\
import importlib, os, sys, time, threading
if os.environ.get("VERDIGRIS_TEST_AGAINST") == "gevent":
    import gevent
    sys.modules["verdigris"] = gevent
    for _n in ("hub", "events", "event", "util"):
        sys.modules["verdigris." + _n] = importlib.import_module("gevent." + _n)
import verdigris
from verdigris import events

blocked_events = []
events.subscribers.append(
    lambda e: blocked_events.append(e) if events.IEventLoopBlocked.providedBy(e) else None)
"""


def run_child(body, **env):
    environ = dict(os.environ, PYTHONPATH=os.pathsep.join(p for p in sys.path if p))
    environ.setdefault("GEVENT_MONITOR_THREAD_ENABLE", "1")
    environ.update(env)
    return subprocess.run([sys.executable, "-c", CHILD_PREAMBLE + textwrap.dedent(body)],
                          env=environ, capture_output=True, text=True, timeout=60)


def test_a_greenlet_blocking_the_loop_is_reported_by_name():
    proc = run_child("""
        def blocking_function_name():
            time.sleep(0.5)
        glet = verdigris.spawn(blocking_function_name)
        glet.join(5)
        verdigris.sleep(0.05)
        event = blocked_events[0]
        print(event.greenlet is glet,
              event.hub is verdigris.get_hub(),
              0.05 <= event.blocking_time <= 1.0,
              any("blocking_function_name" in line for line in event.info))
        """)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split() == ["True", "True", "True", "True"]
    assert "appears to be blocked" in proc.stderr
    assert "in blocking_function_name" in proc.stderr


@pytest.mark.verdigris_only  # gevent reports again every max_blocking_time while blocked
def test_one_report_per_blocking_episode():
    proc = run_child("""
        verdigris.spawn(time.sleep, 0.5).join(5)
        verdigris.sleep(0.05)
        verdigris.spawn(time.sleep, 0.3).join(5)
        verdigris.sleep(0.05)
        print(len(blocked_events))
        """)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "2"
    assert proc.stderr.count("appears to be blocked") == 2


def test_cooperative_waiting_is_not_reported():
    proc = run_child("""
        from verdigris.event import Event
        glets = [verdigris.spawn(verdigris.sleep, 0.3) for _ in range(3)]
        Event().wait(0.3)
        verdigris.joinall(glets, timeout=5)
        print(len(blocked_events))
        """)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "0"
    assert "appears to be blocked" not in proc.stderr


def test_reports_can_be_silenced_while_events_are_still_sent():
    proc = run_child("""
        verdigris.spawn(time.sleep, 0.4).join(5)
        verdigris.sleep(0.05)
        print(len(blocked_events) > 0)
        """, GEVENT_MONITOR_PRINT_BLOCKING_REPORTS="false")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "True"
    assert "appears to be blocked" not in proc.stderr


def test_a_greenlet_may_ask_not_to_be_reported():
    proc = run_child("""
        def known_to_block():
            verdigris.get_hub().periodic_monitoring_thread.ignore_current_greenlet_blocking()
            time.sleep(0.4)
        verdigris.sleep(0.01)
        verdigris.spawn(known_to_block).join(5)
        verdigris.sleep(0.05)
        print(len(blocked_events))
        """)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "0"


@pytest.mark.verdigris_only  # gevent's tracer attributes time spent in the hub to the hub: silent
def test_a_callback_blocking_inside_the_hub_is_reported():
    proc = run_child("""
        hub = verdigris.get_hub()
        verdigris.sleep(0.01)
        hub.loop.run_callback(time.sleep, 0.4)
        verdigris.sleep(0.5)
        print(len(blocked_events), blocked_events[0].greenlet is hub)
        """)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split() == ["1", "True"]


def test_a_hub_in_another_thread_is_monitored():
    proc = run_child("""
        result = []
        def thread_main():
            hub = verdigris.get_hub()
            def blocking_in_thread():
                time.sleep(0.4)
            verdigris.spawn(blocking_in_thread).join(5)
            verdigris.sleep(0.05)
            result.append([e.hub is hub for e in blocked_events])
            hub.destroy()
        thread = threading.Thread(target=thread_main)
        thread.start()
        thread.join(10)
        print(result[0][:1])
        """)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "[True]"
    assert "blocking_in_thread" in proc.stderr


@pytest.mark.verdigris_only  # gevent's default is off
def test_the_monitor_is_on_by_default_and_can_be_turned_off():
    body = """
        verdigris.sleep(0.01)
        print(verdigris.get_hub().periodic_monitoring_thread is not None)
        """
    environ = {k: v for k, v in os.environ.items() if not k.endswith("MONITOR_THREAD_ENABLE")}
    on = subprocess.run([sys.executable, "-c", CHILD_PREAMBLE + textwrap.dedent(body)],
                        env=dict(environ, PYTHONPATH=os.pathsep.join(p for p in sys.path if p)),
                        capture_output=True, text=True, timeout=60)
    off = run_child(body, GEVENT_MONITOR_THREAD_ENABLE="0", VERDIGRIS_MONITOR_THREAD_ENABLE="0")
    assert (on.returncode, off.returncode) == (0, 0), on.stderr + off.stderr
    assert (on.stdout.strip(), off.stdout.strip()) == ("True", "False")


def test_monitoring_functions_run_in_the_monitor_thread():
    proc = run_child("""
        verdigris.sleep(0.01)
        hub = verdigris.get_hub()
        monitor = hub.periodic_monitoring_thread
        calls = []
        def watch(h):
            calls.append((h is hub, threading.get_ident() != hub.thread_ident))
        monitor.add_monitoring_function(watch, 0.01)
        deadline = time.monotonic() + 5
        while len(calls) < 2 and time.monotonic() < deadline:
            verdigris.sleep(0.01)
        monitor.add_monitoring_function(watch, None)
        verdigris.sleep(0.05)
        settled = len(calls)
        verdigris.sleep(0.1)
        errors = []
        for bad in ((watch, 0), (watch, -1), (42, 1)):
            try:
                monitor.add_monitoring_function(*bad)
            except ValueError:
                errors.append("ValueError")
        print(calls[0], len(calls) == settled, errors)
        """)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "(True, True) True ['ValueError', 'ValueError', 'ValueError']"


@pytest.mark.verdigris_only  # gevent reads memory with psutil, which is not installed here
def test_memory_events_on_crossing_the_limit_both_ways():
    proc = run_child("""
        verdigris.sleep(0.01)
        hub = verdigris.get_hub()
        monitor = hub.periodic_monitoring_thread
        memory = []
        events.subscribers.append(lambda e: memory.append(type(e).__name__)
                                  if hasattr(e, "mem_usage") else None)
        first = monitor.monitor_memory_usage(hub)
        verdigris.config.max_memory_usage = 1024
        exceeded = monitor.monitor_memory_usage(hub)
        verdigris.config.max_memory_usage = 1 << 50
        under = monitor.monitor_memory_usage(hub)
        again = monitor.monitor_memory_usage(hub)
        print(first, exceeded.mem_usage > 1024, under.max_memory_usage == exceeded.mem_usage,
              again, memory)
        """)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == (
        "-1 True True None ['MemoryUsageThresholdExceeded', 'MemoryUsageUnderThreshold']")


def test_destroying_the_hub_stops_its_monitor():
    proc = run_child("""
        out = []
        def thread_main():
            hub = verdigris.get_hub()
            verdigris.sleep(0.01)
            monitor = hub.periodic_monitoring_thread
            hub.destroy()
            out.append((monitor is not None, monitor.should_run, hub.periodic_monitoring_thread))
        thread = threading.Thread(target=thread_main)
        thread.start()
        thread.join(10)
        print(out)
        """)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "[(True, False, None)]"


def test_exiting_while_a_report_is_due_is_clean():
    # The native thread must never call into a finalizing interpreter: exit right when a report
    # is being made, from the main thread and with an abandoned hub in another thread.
    body = """
        def block_in_thread():
            verdigris.sleep(0.01)
            time.sleep(0.3)
        threading.Thread(target=block_in_thread, daemon=True).start()
        verdigris.spawn(time.sleep, 0.15)
        verdigris.sleep(0)
        print("exiting")
        """
    for _ in range(3):
        proc = run_child(body)
        assert proc.returncode == 0, proc.stderr
        assert proc.stdout.strip() == "exiting"
        assert "Fatal Python error" not in proc.stderr


def test_a_forked_child_gets_its_own_monitor_and_exits_cleanly():
    proc = run_child("""
        verdigris.sleep(0.01)
        pid = os.fork()
        if pid == 0:
            def in_child():
                time.sleep(0.4)
            verdigris.spawn(in_child).join(5)
            verdigris.sleep(0.05)
            sys.stdout.write("child saw %d\\n" % len(blocked_events))
            sys.stdout.flush()
            sys.exit(0)    # through atexit: must not wait for the parent's monitor thread
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            done, status = os.waitpid(pid, os.WNOHANG)
            if done:
                break
            verdigris.sleep(0.01)
        else:
            os.kill(pid, 9)
            raise SystemExit("child hung")
        print("status", os.WEXITSTATUS(status))
        """)
    assert proc.returncode == 0, proc.stderr
    # gevent does not monitor a child forked with a plain os.fork(); verdigris restarts the
    # monitor there through the hub's reinit.
    reports = "0" if AGAINST_GEVENT else "1"
    assert proc.stdout.split() == ["child", "saw", reports, "status", "0"]
    assert ("in_child" in proc.stderr) == (not AGAINST_GEVENT)
