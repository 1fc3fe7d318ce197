"""verdigris.monkey: patching the standard library, threads as greenlets, ``-m verdigris.monkey``.

Patching changes the whole process, so every test runs a script in a child interpreter (timeout
60 s) and asserts on what it prints: a last line ``RESULT <json>``, its exit code and stderr.
Concurrency is checked against the sequential time with a wide margin.
"""
import json
import os
import subprocess
import sys
import textwrap

import pytest

AGAINST = os.environ.get("VERDIGRIS_TEST_AGAINST", "verdigris")
PACKAGE = "gevent" if AGAINST == "gevent" else "verdigris"

# The first lines of every script: under VERDIGRIS_TEST_AGAINST=gevent, the verdigris modules the
# scripts use are gevent's (the same aliasing as conftest.py does in this process).
PRELUDE = """\
import importlib, os, sys
if os.environ.get("VERDIGRIS_TEST_AGAINST") == "gevent":
    import gevent
    sys.modules["verdigris"] = gevent
    for _n in ("monkey", "event", "local", "queue", "lock", "greenlet", "hub", "thread",
               "threading", "events"):
        sys.modules["verdigris." + _n] = importlib.import_module("gevent." + _n)
"""


def run_script(tmp_path, body, *args, runner=None, name="script.py", files=None):
    """Write *body* (after `PRELUDE`) to *name* in *tmp_path* and run it.

    :param runner: options for ``python -m verdigris.monkey`` (a list), or None to run the
        script directly.
    :param files: more files to write first: ``{relative path: source}``.
    :return: ``(returncode, stdout lines, stderr, result)`` where *result* is the JSON of the last
        ``RESULT`` line (None if there is none).
    """
    for relative, source in (files or {}).items():
        path = tmp_path / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(PRELUDE + textwrap.dedent(source))
    script = tmp_path / name
    script.write_text(PRELUDE + textwrap.dedent(body))
    argv = [sys.executable]
    if runner is not None:
        argv += ["-m", PACKAGE + ".monkey"] + list(runner)
    if "--module" not in (runner or ()):
        argv.append(name)
    argv += list(args)
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(p for p in sys.path if p))
    env.pop("PYTHONWARNINGS", None)
    proc = subprocess.run(argv, cwd=str(tmp_path), env=env, capture_output=True, text=True,
                          timeout=60)
    lines = proc.stdout.splitlines()
    result = None
    for line in lines:
        if line.startswith("RESULT "):
            result = json.loads(line[len("RESULT "):])
    return proc.returncode, lines, proc.stderr, result


def run_ok(tmp_path, body, *args, **kwargs):
    """`run_script`, asserting a clean exit (code 0, no traceback); returns the result."""
    code, lines, err, result = run_script(tmp_path, body, *args, **kwargs)
    assert code == 0, (lines, err)
    assert "Traceback" not in err, err
    return result


# -- threads are greenlets -------------------------------------------------------------------------

def test_threads_run_as_greenlets(tmp_path):
    result = run_ok(tmp_path, """
        from verdigris import monkey
        monkey.patch_all()
        import json, threading, time
        from greenlet import getcurrent
        import verdigris

        main = threading.main_thread()
        out = {"main_is_current": threading.current_thread() is main,
               "main_ident": main.ident == threading.get_ident(), "main_name": main.name}
        local = threading.local()
        local.value = "main"
        idents, seen, kinds = [], [], []

        def work(n):
            local.value = n
            idents.append(threading.get_ident())
            kinds.append(isinstance(getcurrent(), verdigris.Greenlet))
            time.sleep(0.2)
            seen.append([n, local.value, threading.current_thread().name])

        threads = [threading.Thread(target=work, args=(n,), name="T%d" % n) for n in range(5)]
        start = time.monotonic()
        for t in threads:
            t.start()
        out["alive"] = [t.is_alive() for t in threads]
        for t in threads:
            t.join(timeout=10)
        out["elapsed"] = time.monotonic() - start
        out["alive_after"] = [t.is_alive() for t in threads]
        out["kinds"] = kinds
        out["distinct_idents"] = len(set(idents + [main.ident]))
        out["thread_idents"] = sorted(idents) == sorted(t.ident for t in threads)
        out["seen"] = sorted(seen)
        out["main_local"] = local.value
        out["enumerate"] = sorted(t.name for t in threading.enumerate())
        out["daemon"] = [threading.Thread().daemon, threading.Thread(daemon=True).daemon]
        print("RESULT", json.dumps(out))
    """)
    assert result.pop("elapsed") < 0.5  # five 0.2 s sleeps: 1.0 s one after the other
    assert result == {
        "main_is_current": True, "main_ident": True, "main_name": "MainThread",
        "alive": [True] * 5, "alive_after": [False] * 5, "kinds": [True] * 5,
        "distinct_idents": 6, "thread_idents": True,
        "seen": [[n, n, "T%d" % n] for n in range(5)],
        "main_local": "main", "enumerate": ["MainThread"], "daemon": [False, True],
    }


def test_main_thread_seen_from_a_greenlet(tmp_path):
    result = run_ok(tmp_path, """
        from verdigris import monkey
        monkey.patch_all()
        import json, threading
        import verdigris
        from verdigris.thread import get_ident
        from greenlet import getcurrent

        main_greenlet = getcurrent()

        def look():
            current = threading.current_thread()
            return {"main_ident": threading.main_thread().ident == get_ident(main_greenlet),
                    "current_is_main": current is threading.main_thread(),
                    "dummy_alive": current.is_alive(), "dummy_daemon": current.daemon,
                    "registered": threading.get_ident() in threading._active}

        out = verdigris.spawn(look).get(timeout=10)
        verdigris.sleep(0.01)  # let the dummy thread's cleanup link run
        out["registry_after"] = len(threading._active)
        print("RESULT", json.dumps(out))
    """)
    assert result == {"main_ident": True, "current_is_main": False, "dummy_alive": True,
                      "dummy_daemon": True, "registered": True, "registry_after": 1}


def test_threading_primitives_are_cooperative(tmp_path):
    result = run_ok(tmp_path, """
        from verdigris import monkey
        monkey.patch_all()
        import json, threading, time
        import verdigris.event

        out = {"event_class": threading.Event is verdigris.event.Event}
        record = out["lock"] = []
        lock = threading.Lock()

        def holder():
            with lock:
                record.append("holder acquired")
                time.sleep(0.1)
                record.append("holder releasing")

        def waiter():
            record.append("waiter trying")
            with lock:
                record.append("waiter acquired")

        a, b = threading.Thread(target=holder), threading.Thread(target=waiter)
        a.start(); b.start(); a.join(10); b.join(10)

        record = out["rlock"] = []
        rlock = threading.RLock()

        def reenter():
            with rlock:
                with rlock:
                    record.append("owner in twice")
                    time.sleep(0.05)
                record.append("owner out once")
            record.append("owner out")

        def contend():
            with rlock:
                record.append("other in")

        a, b = threading.Thread(target=reenter), threading.Thread(target=contend)
        a.start(); b.start(); a.join(10); b.join(10)

        record = out["condition"] = []
        cond = threading.Condition()
        items = []

        def consumer(name):
            with cond:
                while not items:
                    cond.wait(timeout=5)
                record.append([name, items.pop(0)])

        consumers = [threading.Thread(target=consumer, args=(n,)) for n in ("c1", "c2")]
        for t in consumers:
            t.start()
        time.sleep(0.05)
        record.append("producing")
        with cond:
            items.extend([1, 2])
            cond.notify_all()
        for t in consumers:
            t.join(10)

        record = out["event"] = []
        event = threading.Event()
        t = threading.Thread(target=lambda: record.append(["woke", event.wait(5)]))
        t.start()
        record.append("setting")
        event.set()
        t.join(10)

        sem = threading.Semaphore(2)
        active = [0, 0]

        def limited():
            with sem:
                active[0] += 1
                active[1] = max(active)
                time.sleep(0.05)
                active[0] -= 1

        start = time.monotonic()
        threads = [threading.Thread(target=limited) for _ in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(10)
        out["semaphore"] = {"max_active": active[1], "elapsed": time.monotonic() - start}
        bounded = threading.BoundedSemaphore(1)
        try:
            bounded.release()
        except ValueError:
            out["bounded"] = "ValueError"

        fired = []
        timer = threading.Timer(0.05, fired.append, args=("timer fired",))
        timer.start()
        timer.join(10)
        out["timer"] = fired
        print("RESULT", json.dumps(out))
    """)
    assert result.pop("semaphore")["max_active"] == 2
    assert result == {
        "event_class": True,
        "lock": ["holder acquired", "waiter trying", "holder releasing", "waiter acquired"],
        "rlock": ["owner in twice", "owner out once", "owner out", "other in"],
        "condition": ["producing", ["c1", 1], ["c2", 2]],
        "event": ["setting", ["woke", True]],
        "bounded": "ValueError",
        "timer": ["timer fired"],
    }


def test_low_level_thread_module(tmp_path):
    result = run_ok(tmp_path, """
        from verdigris import monkey
        monkey.patch_all()
        import json, time, _thread
        from greenlet import getcurrent
        import verdigris

        done = []

        def work(a, b=0):
            done.append([a, b, _thread.get_ident(), isinstance(getcurrent(), verdigris.Greenlet)])

        ident = _thread.start_new_thread(work, (1,), {"b": 2})
        time.sleep(0.01)
        out = {"done": done, "ident": [ident == done[0][2], ident != _thread.get_ident()]}
        lock = _thread.allocate_lock()
        errors = []
        for call in (lambda: lock.acquire(False, 1), lock.release,
                     lambda: _thread.start_new_thread(1, ())):
            try:
                call()
            except Exception as exc:
                errors.append(type(exc).__name__)
        out["errors"] = errors
        with lock:
            out["entered"] = [lock.locked(), lock.acquire(False)]
        out["unlocked"] = lock.locked()
        print("RESULT", json.dumps(out))
    """)
    assert result == {"done": [[1, 2, result["done"][0][2], True]], "ident": [True, True],
                      "errors": ["ValueError", "RuntimeError", "TypeError"],
                      "entered": [True, False], "unlocked": False}


def test_patched_lock_shared_with_native_threads(tmp_path):
    # Once patched, every lock the stdlib allocates is cooperative, the import system's included,
    # and native threads (a thread pool's workers) use them too.
    result = run_ok(tmp_path, """
        from verdigris import monkey
        monkey.patch_all()
        import json, threading, time
        import verdigris

        real_sleep = monkey.get_original("time", "sleep")
        pool = verdigris.get_hub().threadpool
        lock = threading.Lock()
        record = []

        def in_native_thread():
            record.append(["worker got it", lock.acquire(timeout=5)])
            real_sleep(0.2)  # holds it, natively, while the greenlets go on
            lock.release()

        lock.acquire()
        task = pool.spawn(in_native_thread)
        verdigris.sleep(0.05)
        record.append("main releases")
        lock.release()
        deadline = time.monotonic() + 10
        while len(record) < 2 and time.monotonic() < deadline:
            verdigris.sleep(0.005)
        ticks = []

        def ticker():
            while len(record) < 3:
                ticks.append(1)
                verdigris.sleep(0.01)

        verdigris.spawn(ticker)
        with lock:
            record.append("main got it back")
        task.get(timeout=10)
        record.append(len(ticks) > 3)
        print("RESULT", json.dumps(record))
    """)
    assert result == ["main releases", ["worker got it", True], "main got it back", True]


@pytest.mark.verdigris_only  # gevent raises LoopExit: its loop does not know the thread exists
def test_waiting_for_a_lock_held_by_a_native_thread_keeps_the_loop_alive(tmp_path):
    result = run_ok(tmp_path, """
        from verdigris import monkey
        monkey.patch_all()
        import json, threading, time

        real_sleep = monkey.get_original("time", "sleep")
        start_native_thread = monkey.get_original("_thread", "start_new_thread")
        holding = monkey.get_original("threading", "Event")()
        lock = threading.Lock()

        def native():
            lock.acquire()
            holding.set()
            real_sleep(0.2)
            lock.release()

        start_native_thread(native, ())
        holding.wait(10)
        with lock:  # nothing else for the loop to do until the native thread releases
            print("RESULT", json.dumps("acquired"))
    """)
    assert result == "acquired"


def test_thread_pool_executor_is_cooperative(tmp_path):
    result = run_ok(tmp_path, """
        from verdigris import monkey
        monkey.patch_all()
        import json, time
        from concurrent.futures import ThreadPoolExecutor
        from greenlet import getcurrent
        import verdigris

        def task(n, delay):
            time.sleep(delay)
            return [n, isinstance(getcurrent(), verdigris.Greenlet)]

        out = {}
        start = time.monotonic()
        with ThreadPoolExecutor(max_workers=10) as pool:
            out["results"] = [f.result(timeout=10)
                              for f in [pool.submit(task, n, 0.2) for n in range(10)]]
        out["elapsed"] = time.monotonic() - start

        finished = []
        with ThreadPoolExecutor(max_workers=4) as pool:
            slow = pool.submit(lambda: (time.sleep(0.3), finished.append("slow")))
            quick = [pool.submit(lambda n=n: (time.sleep(0.01 * n), finished.append(n)))
                     for n in range(3)]
            for f in quick + [slow]:
                f.result(timeout=10)
        out["order"] = finished

        # Left running at exit: threading's shutdown must wait for it, cooperatively.
        leftover = ThreadPoolExecutor(max_workers=1)
        leftover.submit(lambda: (time.sleep(0.1), print("leftover done", flush=True)))
        print("RESULT", json.dumps(out), flush=True)
    """)
    assert result.pop("elapsed") < 1.0  # ten 0.2 s sleeps: 2.0 s one after the other
    assert result == {"results": [[n, True] for n in range(10)], "order": [0, 1, 2, "slow"]}


def test_thread_pool_executor_finishes_its_work_at_exit(tmp_path):
    code, lines, err, _ = run_script(tmp_path, """
        from verdigris import monkey
        monkey.patch_all()
        import time
        from concurrent.futures import ThreadPoolExecutor

        pool = ThreadPoolExecutor(max_workers=1)
        pool.submit(lambda: (time.sleep(0.1), print("leftover done", flush=True)))
        print("main done", flush=True)
    """)
    assert (code, lines, err) == (0, ["main done", "leftover done"], "")


def test_patch_queue_makes_blocking_get_cooperative(tmp_path):
    result = run_ok(tmp_path, """
        from verdigris import monkey
        monkey.patch_queue()
        import json, queue
        import verdigris, verdigris.queue

        out = {"classes": [getattr(queue, n) is getattr(verdigris.queue, n)
                           for n in ("Queue", "LifoQueue", "PriorityQueue", "SimpleQueue")]}
        record = out["record"] = []
        q = queue.Queue()

        def getter():
            record.append("get blocks")
            record.append(["got", q.get(timeout=5)])

        g = verdigris.spawn(getter)
        verdigris.sleep(0.05)
        record.append("main still runs")
        q.put("item")
        g.join(timeout=5)
        lifo = queue.LifoQueue()
        for n in (1, 2, 3):
            lifo.put(n)
        out["lifo"] = [lifo.get(), lifo.get(), lifo.get()]
        try:
            queue.Queue().get(timeout=0.01)
        except queue.Empty:
            out["empty"] = True
        print("RESULT", json.dumps(out))
    """)
    assert result == {"classes": [True] * 4, "record": ["get blocks", "main still runs",
                                                        ["got", "item"]],
                      "lifo": [3, 2, 1], "empty": True}


# -- exit ------------------------------------------------------------------------------------------

def test_exit_waits_for_threads_and_wakes_main_thread_joiners(tmp_path):
    code, lines, err, _ = run_script(tmp_path, """
        from verdigris import monkey
        monkey.patch_all()
        import threading, time
        import verdigris

        def late():
            time.sleep(0.2)
            print("late thread done", flush=True)

        def joiner():
            threading.main_thread().join()
            print("main thread joined", flush=True)

        threading.Thread(target=late).start()
        verdigris.spawn(joiner)
        threading.Thread(target=time.sleep, args=(30,), daemon=True).start()
        print("main done", flush=True)
    """)
    assert (code, lines, err) == (0, ["main done", "main thread joined", "late thread done"], "")


def test_exit_with_a_thread_blocked_forever_does_not_hang(tmp_path):
    code, lines, err, _ = run_script(tmp_path, """
        from verdigris import monkey
        monkey.patch_all()
        import threading
        threading.Thread(target=threading.Event().wait).start()
        print("main done", flush=True)
    """)
    assert (code, lines, err) == (0, ["main done"], "")


def test_native_thread_started_before_patching_can_be_joined(tmp_path):
    code, lines, err, result = run_script(tmp_path, """
        import json, threading, time
        native = threading.Thread(target=time.sleep, args=(0.3,))
        native.start()
        from verdigris import monkey
        monkey.patch_all()
        import verdigris

        ticks = []

        def ticker():
            for _ in range(3):
                ticks.append(1)
                time.sleep(0.02)

        verdigris.spawn(ticker)
        native.join(timeout=10)
        print("RESULT", json.dumps({"alive": native.is_alive(), "ticks": len(ticks)}))
    """)
    assert (code, result) == (0, {"alive": False, "ticks": 3}), err


@pytest.mark.verdigris_only  # gevent prints a KeyError when such a thread ends (or leaks it)
def test_native_thread_started_before_patching_keeps_its_identity(tmp_path):
    code, lines, err, _ = run_script(tmp_path, """
        import threading
        seen = []
        go = threading.Event()

        def native_thread():
            go.wait(10)
            seen.append(threading.current_thread().name)

        native = threading.Thread(target=native_thread, name="native")
        native.start()
        from verdigris import monkey
        monkey.patch_all()
        go.set()
        native.join(timeout=10)
        print(native.is_alive(), seen, [t.name for t in threading.enumerate()])
    """)
    assert (code, lines, err) == (0, ["False ['native'] ['MainThread']"], "")


# -- the patching API ----------------------------------------------------------------------------

def test_patching_twice_is_harmless(tmp_path):
    result = run_ok(tmp_path, """
        import json, warnings
        from verdigris import monkey
        out = {"first": monkey.patch_all(), "again": monkey.patch_all()}
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            out["changed"] = monkey.patch_all(thread=False)
        out["warnings"] = [(w.category.__name__, "union" in str(w.message)) for w in caught]
        monkey.patch_thread()
        monkey.patch_time()
        monkey.patch_queue()
        import threading, time, socket, queue
        import verdigris, verdigris.thread, verdigris.queue
        out["time"] = time.sleep is verdigris.sleep
        out["lock"] = threading.Lock is verdigris.thread.allocate_lock
        out["queue"] = queue.Queue is verdigris.queue.Queue
        out["original_sleep"] = type(monkey.get_original("time", "sleep")).__name__
        out["original_lock"] = monkey.get_original("threading", "Lock").__module__ == "_thread"

        def late():
            time.sleep(0.1)
            print("late", flush=True)

        threading.Thread(target=late).start()
        print("RESULT", json.dumps(out), flush=True)
    """)
    assert result == {"first": True, "again": None, "changed": None,
                      "warnings": [["MonkeyPatchWarning", True]], "time": True, "lock": True,
                      "queue": True, "original_sleep": "builtin_function_or_method",
                      "original_lock": True}


def test_get_original_and_is_patched(tmp_path):
    result = run_ok(tmp_path, """
        import json, socket, time
        from verdigris import monkey
        real_sleep, real_socket = time.sleep, socket.socket
        out = {"before": [monkey.is_module_patched("time"),
                          monkey.is_object_patched("time", "sleep"),
                          monkey.get_original("time", "sleep") is real_sleep]}
        monkey.patch_all()
        out["after"] = [monkey.is_module_patched("time"), monkey.is_object_patched("time", "sleep"),
                        monkey.is_object_patched("time", "monotonic"),
                        monkey.is_module_patched("socket"), monkey.is_module_patched("nonesuch")]
        out["originals"] = [monkey.get_original("time", "sleep") is real_sleep,
                            time.sleep is not real_sleep,
                            monkey.get_original("socket", ["socket", "gethostname"])
                            == [real_socket, socket.gethostname],
                            monkey.get_original(("nonesuch_module", "time"), "sleep") is real_sleep,
                            monkey.get_original("_thread", "get_ident").__module__ == "_thread"]
        try:
            monkey.get_original("nonesuch_module", "x")
        except ImportError:
            out["missing"] = "ImportError"
        print("RESULT", json.dumps(out))
    """)
    assert result == {"before": [False, False, True],
                      "after": [True, True, False, True, False],
                      "originals": [True, True, True, True, True], "missing": "ImportError"}


def test_patch_module_copies_implements_and_calls_hooks(tmp_path):
    result = run_ok(tmp_path, """
        import json, sys, types
        from verdigris import monkey

        target = types.ModuleType("fake_target")
        target.f = target.g = "original"
        sys.modules["fake_target"] = target
        source = types.ModuleType("fake_source")
        source.__implements__ = ["f"]
        source.f = source.g = "replacement"
        calls = []
        source._gevent_will_monkey_patch = lambda t, items, warn: calls.append(["will", items])
        source._gevent_did_monkey_patch = lambda t, items, warn: calls.append(["did", t.f])
        out = {"returned": monkey.patch_module(target, source), "calls": list(calls),
               "values": [target.f, target.g],
               "original": monkey.get_original("fake_target", "f"),
               "patched": [monkey.is_object_patched("fake_target", "f"),
                           monkey.is_object_patched("fake_target", "g")]}
        monkey.patch_module(target, source, items=["g"])
        out["items"] = [target.g, monkey.get_original("fake_target", "g")]
        del source.__implements__
        try:
            monkey.patch_module(target, source)
        except AttributeError:
            out["no_implements"] = "AttributeError"
        print("RESULT", json.dumps(out))
    """)
    assert result == {"returned": True, "calls": [["will", ["f"]], ["did", "replacement"]],
                      "values": ["replacement", "original"], "original": "original",
                      "patched": [True, False], "items": ["replacement", "original"],
                      "no_implements": "AttributeError"}


def test_events_are_sent_and_do_not_patch_cancels(tmp_path):
    result = run_ok(tmp_path, """
        import json, time
        from verdigris import events, monkey
        real_sleep = time.sleep
        names = []

        def subscriber(event):
            names.append(type(event).__name__)
            if type(event).__name__ == "GeventWillPatchModuleEvent" and event.module_name == "time":
                raise events.DoNotPatch()

        events.subscribers.append(subscriber)
        monkey.patch_all()
        print("RESULT", json.dumps({"first": names[0], "last": names[-2:],
                                    "modules": "GeventDidPatchModuleEvent" in names,
                                    "time_unpatched": time.sleep is real_sleep}))
    """)
    assert result == {"first": "GeventWillPatchAllEvent",
                      "last": ["GeventDidPatchBuiltinModulesEvent", "GeventDidPatchAllEvent"],
                      "modules": True, "time_unpatched": True}


@pytest.mark.verdigris_only  # the real gevent is what this checks is never imported
def test_patch_all_does_not_import_gevent(tmp_path):
    result = run_ok(tmp_path, """
        import json, sys
        from verdigris import monkey
        monkey.patch_all()
        print("RESULT", json.dumps(sorted(m for m in sys.modules if m.split(".")[0] == "gevent")))
    """)
    assert result == []


def test_ssl_patched_after_import_warns(tmp_path):
    code, lines, err, result = run_script(tmp_path, """
        import json
        from ssl import SSLContext
        from verdigris import monkey
        monkey.patch_all()
        print("RESULT", json.dumps(monkey.is_module_patched("ssl")))
    """)
    assert (code, result) == (0, True), err
    assert "MonkeyPatchWarning" in err and "ssl" in err and "__main__" in err, err


def test_ssl_patched_first_does_not_warn(tmp_path):
    code, lines, err, result = run_script(tmp_path, """
        import json
        from verdigris import monkey
        monkey.patch_all()
        import ssl
        context = ssl.create_default_context()
        print("RESULT", json.dumps([ssl.SSLContext is not monkey.get_original("ssl", "SSLContext"),
                                    type(context) is ssl.SSLContext]))
    """)
    assert (code, result, err) == (0, [True, True], "")


def test_patching_from_another_thread_warns(tmp_path):
    code, lines, err, result = run_script(tmp_path, """
        import json, threading

        def patch():
            from verdigris import monkey
            monkey.patch_all()

        t = threading.Thread(target=patch)
        t.start()
        t.join()
        print("RESULT", json.dumps("patched"))
    """)
    assert (code, result) == (0, "patched"), err
    assert "MonkeyPatchWarning" in err and "main thread" in err, err


def test_patch_all_while_being_imported(tmp_path):
    # The module lock of the module being imported is held under the native thread ident;
    # releasing it after patching must not fail.
    result = run_ok(tmp_path, """
        import json
        import patching_module
        import threading
        print("RESULT", json.dumps([patching_module.PATCHED, threading.current_thread().name]))
    """, files={"patching_module.py": """
        from verdigris import monkey
        monkey.patch_all()
        import threading
        PATCHED = monkey.is_module_patched("threading")
    """})
    assert result == [True, "MainThread"]


def test_logging_configured_before_patching(tmp_path):
    result = run_ok(tmp_path, """
        import json, logging, io, sys
        stream = io.StringIO()
        logging.basicConfig(stream=stream, level=logging.INFO, format="%(threadName)s %(message)s")
        from verdigris import monkey
        monkey.patch_all()
        import threading, _thread
        import verdigris
        handler = logging.getLogger().handlers[0]

        def log(n):
            logging.info("greenlet %d", n)

        verdigris.joinall([verdigris.spawn(log, n) for n in range(3)], timeout=10)
        t = threading.Thread(target=logging.info, args=("thread",), name="Worker")
        t.start(); t.join(10)
        print("RESULT", json.dumps({"native": type(handler.lock) is type(_thread.RLock()),
                                    "lines": sorted(stream.getvalue().split(chr(10)))[1:]}))
    """)
    assert result["native"] is False
    assert [line.split(" ", 1)[1] for line in result["lines"]] == \
        ["greenlet 0", "greenlet 1", "greenlet 2", "thread"]
    assert "Worker thread" in result["lines"]


def test_fork_from_a_greenlet_after_patching(tmp_path):
    code, lines, err, result = run_script(tmp_path, """
        import json, os, sys
        from verdigris import monkey
        monkey.patch_all()
        import threading, time
        import verdigris

        t = threading.Thread(target=time.sleep, args=(0.05,))
        t.start()

        def fork_and_wait():
            pid = os.fork()
            if pid == 0:
                return "child"
            _, status = os.waitpid(pid, 0)
            return os.waitstatus_to_exitcode(status)

        value = verdigris.spawn(fork_and_wait).get(timeout=20)
        if value == "child":
            # The child leaves through the interpreter's normal shutdown (threading._shutdown).
            print("child: main thread is", threading.main_thread().name, flush=True)
            sys.exit(0)
        t.join(10)
        print("RESULT", json.dumps(value))
    """)
    assert (code, result, err) == (0, 0, "")
    assert "child: main thread is MainThread" in lines


# -- python -m verdigris.monkey ------------------------------------------------------------------

ARGV_SCRIPT = """
    import json, socket, sys, time
    from verdigris import monkey
    import verdigris.monkey
    print("RESULT", json.dumps({
        "argv": sys.argv, "name": __name__,
        "socket": socket.socket is not monkey.get_original("socket", "socket"),
        "time": monkey.is_module_patched("time"),
        "one_module": sys.modules["verdigris.monkey"] is monkey,
    }))
"""


def test_run_script_fully_patched(tmp_path):
    result = run_ok(tmp_path, ARGV_SCRIPT, "a", "b", runner=[])
    assert result == {"argv": ["script.py", "a", "b"], "name": "__main__", "socket": True,
                      "time": True, "one_module": True}


def test_run_script_with_an_option(tmp_path):
    result = run_ok(tmp_path, ARGV_SCRIPT, "--flag", runner=["--no-time"])
    assert result == {"argv": ["script.py", "--flag"], "name": "__main__", "socket": True,
                      "time": False, "one_module": True}


@pytest.mark.verdigris_only  # gevent documents --<module> as "only those" but patches them all
def test_run_script_patching_only_named_modules(tmp_path):
    result = run_ok(tmp_path, ARGV_SCRIPT, runner=["--time"])
    assert result == {"argv": ["script.py"], "name": "__main__", "socket": False, "time": True,
                      "one_module": True}


def test_run_module(tmp_path):
    code, lines, err, result = run_script(
        tmp_path, "", "x", runner=["--module", "pkg.main"],
        files={"pkg/__init__.py": "", "pkg/main.py": ARGV_SCRIPT})
    assert code == 0, err
    assert (result["argv"][1:], result["name"], result["socket"]) == (["x"], "__main__", True)


def test_runner_usage(tmp_path):
    code, lines, err, _ = run_script(tmp_path, "", runner=["--no-such-module"])
    assert code != 0 and "Cannot patch" in err
    proc = subprocess.run([sys.executable, "-m", PACKAGE + ".monkey"], capture_output=True,
                          text=True, timeout=60)
    assert proc.returncode == 0 and "USAGE" in proc.stdout
