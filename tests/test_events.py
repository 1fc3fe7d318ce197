"""gevent's events: subscribers, the event classes, and the events monkey patching and the hub send.

Monkey patching and hub start-up run in child interpreters (both change the whole process).
"""
import os
import subprocess
import sys
import textwrap

import pytest

from verdigris import events

CHILD_PREAMBLE = """\
import importlib, os, sys
if os.environ.get("VERDIGRIS_TEST_AGAINST") == "gevent":
    import gevent
    sys.modules["verdigris"] = gevent
    for _n in ("hub", "events", "monkey"):
        sys.modules["verdigris." + _n] = importlib.import_module("gevent." + _n)
import verdigris
"""


def run_child(body, **env):
    environ = dict(os.environ, PYTHONPATH=os.pathsep.join(p for p in sys.path if p), **env)
    return subprocess.run([sys.executable, "-c", CHILD_PREAMBLE + textwrap.dedent(body)],
                          env=environ, capture_output=True, text=True, timeout=60)


@pytest.fixture
def subscribed():
    """Records every event notified while the test runs."""
    record = []
    events.subscribers.append(record.append)
    yield record
    events.subscribers.remove(record.append)


def test_notify_calls_subscribers_in_order(subscribed):
    order = []
    first = lambda event: order.append(("first", event))  # noqa: E731
    second = lambda event: order.append(("second", event))  # noqa: E731
    events.subscribers.extend([first, second])
    try:
        events.notify("ev")
    finally:
        events.subscribers.remove(first)
        events.subscribers.remove(second)
    assert subscribed == ["ev"]
    assert order == [("first", "ev"), ("second", "ev")]


def test_a_failing_subscriber_stops_the_notification(subscribed):
    after = []

    def failing(event):
        raise RuntimeError("subscriber failed")

    events.subscribers.insert(0, failing)
    events.subscribers.append(after.append)
    try:
        with pytest.raises(RuntimeError):
            events.notify("ev")
    finally:
        events.subscribers.remove(failing)
        events.subscribers.remove(after.append)
    assert (subscribed, after) == ([], [])


def test_event_classes_carry_gevents_attributes():
    blocked = events.EventLoopBlocked("glet", 0.5, ["line"], hub="hub")
    assert (blocked.greenlet, blocked.blocking_time, blocked.info, blocked.hub) == \
        ("glet", 0.5, ["line"], "hub")
    assert events.IEventLoopBlocked.providedBy(blocked)

    exceeded = events.MemoryUsageThresholdExceeded(10, 5, "info")
    assert (exceeded.mem_usage, exceeded.max_allowed, exceeded.memory_info) == (10, 5, "info")
    assert events.IMemoryUsageThresholdExceeded.providedBy(exceeded)
    under = events.MemoryUsageUnderThreshold(4, 5, "info", 10)
    assert (under.mem_usage, under.max_memory_usage) == (4, 10)
    assert events.IMemoryUsageUnderThreshold.providedBy(under)
    assert not events.IMemoryUsageUnderThreshold.providedBy(exceeded)

    started = events.PeriodicMonitorThreadStartedEvent("monitor")
    assert started.monitor == "monitor"
    assert events.IPeriodicMonitorThreadStartedEvent.providedBy(started)
    assert started.ENTRY_POINT_NAME.endswith(".plugins.hub.periodic_monitor_thread_started")


def test_patch_event_classes():
    will = events.GeventWillPatchModuleEvent("time", "source", "target", ["sleep"])
    assert (will.module_name, will.source, will.target, will.target_item_names) == \
        ("time", "source", "target", ["sleep"])
    assert events.IGeventWillPatchEvent.providedBy(will)
    did = events.GeventDidPatchModuleEvent("time", "source", "target")
    assert events.IGeventDidPatchModuleEvent.providedBy(did)
    assert not events.IGeventWillPatchEvent.providedBy(did)

    arguments = {"time": True, "socket": False}
    will_all = events.GeventWillPatchAllEvent(arguments, {"extra": 1})
    assert will_all.will_patch_module("time") is True
    assert will_all.will_patch_module("socket") is False
    copy = will_all.patch_all_arguments
    copy["time"] = False
    assert will_all.patch_all_arguments == arguments   # handed out as copies
    assert will_all.patch_all_kwargs == {"extra": 1}
    assert events.IGeventWillPatchAllEvent.providedBy(will_all)
    for cls in (events.GeventDidPatchBuiltinModulesEvent, events.GeventDidPatchAllEvent):
        event = cls(arguments, {})
        assert event.patch_all_arguments == arguments
        assert events.IGeventDidPatchEvent.providedBy(event)
    assert issubclass(events.DoNotPatch, BaseException)
    assert not issubclass(events.DoNotPatch, Exception)


def test_patch_all_sends_its_events_in_order():
    proc = run_child("""
        from verdigris import events, monkey
        seen = []
        events.subscribers.append(lambda e: seen.append(
            type(e).__name__ + ("(%s)" % e.module_name if hasattr(e, "module_name") else "")))
        monkey.patch_all(thread=False, socket=False, dns=False, ssl=False, subprocess=False,
                         select=False, os=False, signal=False, queue=False, contextvars=False,
                         sys=False, builtins=False)
        print("\\n".join(seen))
        """)
    assert proc.returncode == 0, proc.stderr
    seen = proc.stdout.split()
    assert seen[0] == "GeventWillPatchAllEvent"
    assert seen[-2:] == ["GeventDidPatchBuiltinModulesEvent", "GeventDidPatchAllEvent"]
    assert seen.index("GeventWillPatchModuleEvent(time)") + 1 == \
        seen.index("GeventDidPatchModuleEvent(time)")


def test_a_subscriber_raising_do_not_patch_vetoes_a_module():
    proc = run_child("""
        import time
        original = time.sleep
        from verdigris import events, monkey
        def veto(event):
            if getattr(event, "module_name", None) == "time" and \\
                    events.IGeventWillPatchModuleEvent.providedBy(event):
                raise events.DoNotPatch()
        events.subscribers.append(veto)
        monkey.patch_time()
        print(time.sleep is original)
        """)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "True"


def test_the_hub_announces_its_monitor_thread():
    proc = run_child("""
        from verdigris import events
        seen = []
        events.subscribers.append(seen.append)
        verdigris.sleep(0.01)
        started = [e for e in seen if events.IPeriodicMonitorThreadStartedEvent.providedBy(e)]
        hub = verdigris.get_hub()
        print(len(started), started[0].monitor is hub.periodic_monitoring_thread)
        """, GEVENT_MONITOR_THREAD_ENABLE="1")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split() == ["1", "True"]


def test_entry_point_plugins_are_called(tmp_path):
    dist = tmp_path / "veriplug-1.0.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: veriplug\nVersion: 1.0\n")
    group = events.PeriodicMonitorThreadStartedEvent.ENTRY_POINT_NAME   # gevent's or ours
    (dist / "entry_points.txt").write_text("[%s]\nmine = veriplug_mod:plugin\n" % group)
    (tmp_path / "veriplug_mod.py").write_text(
        "calls = []\ndef plugin(event):\n    calls.append(type(event).__name__)\n")
    proc = run_child("""
        sys.path.insert(0, os.environ["PLUGIN_DIR"])
        from verdigris import events
        events.notify_and_call_entry_points(events.PeriodicMonitorThreadStartedEvent(None))
        import veriplug_mod
        print(veriplug_mod.calls)
        """, PLUGIN_DIR=str(tmp_path))
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "['PeriodicMonitorThreadStartedEvent']"
