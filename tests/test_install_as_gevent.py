"""install_as_gevent(): programs written for gevent, unmodified, running on verdigris.

The alias changes the whole process's import system, so each test runs in a child interpreter
(timeout 60 s) and asserts on the ``RESULT <json>`` line it prints.
"""
import json
import os
import subprocess
import sys
import textwrap

import pytest

# install_as_gevent() is verdigris's own API: gevent has nothing to compare it with.
pytestmark = pytest.mark.verdigris_only


def run(tmp_path, body, files=None):
    """Run *body* as ``main.py`` in *tmp_path* (next to *files*); return (code, stderr, result)."""
    for name, source in (files or {}).items():
        (tmp_path / name).write_text(textwrap.dedent(source))
    (tmp_path / "main.py").write_text(textwrap.dedent(body))
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(p for p in sys.path if p))
    env.pop("VERDIGRIS_TEST_AGAINST", None)
    proc = subprocess.run([sys.executable, "main.py"], cwd=str(tmp_path), env=env,
                          capture_output=True, text=True, timeout=60)
    result = None
    for line in proc.stdout.splitlines():
        if line.startswith("RESULT "):
            result = json.loads(line[len("RESULT "):])
    return proc.returncode, proc.stderr, result


def test_gevent_program_runs_on_verdigris(tmp_path):
    code, err, result = run(tmp_path, """
        import json, sys
        from verdigris._gevent_alias import install_as_gevent
        install_as_gevent()

        import gevent
        from gevent import monkey
        monkey.patch_all()
        import gevent.socket
        import verdigris, verdigris.socket

        out = {"spawn": gevent.spawn is verdigris.spawn,
               "socket_module": gevent.socket is verdigris.socket,
               "monkey_module": monkey is sys.modules["verdigris.monkey"],
               "patched": monkey.is_module_patched("socket")}
        import socket
        out["socket_class"] = socket.socket is gevent.socket.socket

        left, right = socket.socketpair()
        record = []

        def reader():
            record.append(right.recv(100).decode())

        def writer():
            record.append("writing")
            left.sendall(b"through gevent.socket")

        gevent.joinall([gevent.spawn(reader), gevent.spawn(writer)], timeout=10)
        out["record"] = record
        out["join"] = gevent.spawn(lambda: 6 * 7).get(timeout=10)
        out["real_gevent"] = any(getattr(m, "__file__", "") and "site-packages/gevent"
                                 in m.__file__ for m in list(sys.modules.values()))
        print("RESULT", json.dumps(out))
    """)
    assert (code, err) == (0, "")
    assert result == {"spawn": True, "socket_module": True, "monkey_module": True,
                      "patched": True, "socket_class": True,
                      "record": ["writing", "through gevent.socket"], "join": 42,
                      "real_gevent": False}


def test_unmodified_module_written_for_gevent(tmp_path):
    code, err, result = run(tmp_path, """
        import json
        from verdigris._gevent_alias import install_as_gevent
        install_as_gevent()
        import app
        print("RESULT", json.dumps(app.main()))
    """, files={"app.py": """
        from gevent import monkey
        monkey.patch_all()

        import time
        import gevent
        from gevent.event import Event
        from gevent.pool import Pool
        from gevent.queue import Queue

        def main():
            ready = Event()
            results = Queue()

            def work(n):
                ready.wait()
                time.sleep(0.01 * (3 - n))
                results.put(n)

            pool = Pool(3)
            for n in range(3):
                pool.spawn(work, n)
            gevent.sleep(0)
            ready.set()
            pool.join(timeout=10)
            try:
                with gevent.Timeout(0.01):
                    gevent.sleep(1)
            except gevent.Timeout:
                timed_out = True
            return {"order": [results.get() for _ in range(3)], "timed_out": timed_out,
                    "names": [gevent.__name__, gevent.pool.__name__]}
    """})
    assert (code, err) == (0, "")
    assert result == {"order": [2, 1, 0], "timed_out": True,
                      "names": ["verdigris", "verdigris.pool"]}


def test_modules_keep_their_own_identity(tmp_path):
    code, err, result = run(tmp_path, """
        import importlib, json
        from verdigris._gevent_alias import install_as_gevent
        install_as_gevent()
        install_as_gevent()  # a second call changes nothing
        import gevent.event
        from gevent import queue
        import verdigris.event, verdigris.queue
        out = {"same": [gevent.event is verdigris.event, queue is verdigris.queue],
               "spec": gevent.event.__spec__.name, "name": gevent.event.__name__,
               "reloaded": importlib.reload(gevent.event) is verdigris.event}
        try:
            import gevent.libev
        except ModuleNotFoundError as exc:
            out["missing"] = exc.name
        print("RESULT", json.dumps(out))
    """)
    assert (code, err) == (0, "")
    assert result == {"same": [True, True], "spec": "verdigris.event",
                      "name": "verdigris.event", "reloaded": True, "missing": "gevent.libev"}


def test_refuses_when_real_gevent_is_imported(tmp_path):
    pytest.importorskip("gevent", reason="the real gevent is not installed")
    code, err, result = run(tmp_path, """
        import json
        import gevent
        from verdigris._gevent_alias import install_as_gevent
        try:
            install_as_gevent()
        except RuntimeError as exc:
            print("RESULT", json.dumps(["RuntimeError", "already imported" in str(exc)]))
    """)
    assert (code, err, result) == (0, "", ["RuntimeError", True])


def test_exported_from_the_package(tmp_path):
    code, err, result = run(tmp_path, """
        import json
        import verdigris, verdigris._gevent_alias
        print("RESULT", json.dumps(
            verdigris.install_as_gevent is verdigris._gevent_alias.install_as_gevent))
    """)
    assert (code, err, result) == (0, "", True)
