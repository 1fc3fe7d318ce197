"""The driver half of the wsgi workload: start LIB's server in a subprocess, point wrk at it.

One measurement = a fresh server process (``benches.wsgi_server``), a wrk warm-up, then a
timed wrk run whose "Requests/sec" is the result. wrk runs with one thread: on a 2-core box
the server gets one core and wrk the other. The cost reported is 1 / (requests per second),
so that, like every other row, lower is better.
"""
from __future__ import annotations

import json
import re
import select
import shutil
import subprocess
import sys
import tempfile

WARMUP_SECONDS = 1
STARTUP_TIMEOUT = 30


def wrk_path():
    return shutil.which("wrk")


def wrk_version() -> str:
    path = wrk_path()
    if not path:
        return "n/a"
    out = subprocess.run([path, "-v"], capture_output=True, text=True).stdout
    match = re.search(r"wrk (\S+)", out)
    return match.group(1) if match else "?"


def parse_wrk(text: str) -> dict:
    """The numbers of wrk's summary: requests/s, requests, non-2xx/3xx and socket errors."""
    out = {"rps": None, "requests": None, "non_2xx": 0, "socket_errors": 0}
    match = re.search(r"Requests/sec:\s+([\d.]+)", text)
    if match:
        out["rps"] = float(match.group(1))
    match = re.search(r"(\d+) requests in", text)
    if match:
        out["requests"] = int(match.group(1))
    match = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", text)
    if match:
        out["non_2xx"] = int(match.group(1))
    match = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", text)
    if match:
        out["socket_errors"] = sum(int(x) for x in match.groups())
    return out


def _run_wrk(port: int, connections: int, seconds: int) -> dict:
    command = [wrk_path(), "-t1", f"-c{connections}", f"-d{seconds}s", "--timeout", "10s",
               f"http://127.0.0.1:{port}/"]
    done = subprocess.run(command, capture_output=True, text=True, timeout=seconds + 60)
    parsed = parse_wrk(done.stdout)
    if done.returncode != 0 or parsed["rps"] is None:
        raise RuntimeError(f"wrk failed ({done.returncode}): {(done.stderr or done.stdout)[-200:]}")
    return parsed


def _read_handshake(server: subprocess.Popen, errors) -> dict:
    """The server's first stdout line, waiting at most STARTUP_TIMEOUT seconds."""
    ready, _, _ = select.select([server.stdout], [], [], STARTUP_TIMEOUT)
    if not ready:
        raise RuntimeError(f"server did not start within {STARTUP_TIMEOUT}s")
    line = server.stdout.readline()
    if not line:
        raise RuntimeError(f"server exited: {_tail(errors)}")
    return json.loads(line)


def measure(lib_name: str, connections: int, seconds: int, cwd, env) -> dict:
    """One measurement; returns ``{"cost", "rps", ...}`` or ``{"error": ...}``."""
    if not wrk_path():
        return {"error": "wrk not installed (apt-get install wrk)"}
    # The server's stderr goes to a file, not a pipe: a server that logs an error per request
    # must not block on a full pipe that nobody reads.
    with tempfile.TemporaryFile("w+") as errors:
        server = subprocess.Popen([sys.executable, "-m", "benches.wsgi_server", lib_name],
                                  cwd=cwd, env=env, stdin=subprocess.DEVNULL,
                                  stdout=subprocess.PIPE, stderr=errors, text=True)
        try:
            hello = _read_handshake(server, errors)
            if "error" in hello:
                return {"error": f"{lib_name}.pywsgi: {hello['error']}"}
            _run_wrk(hello["port"], connections, WARMUP_SECONDS)
            result = _run_wrk(hello["port"], connections, seconds)
            if server.poll() is not None:
                return {"error": f"server died: {_tail(errors)}"}
            if result["non_2xx"] or not result["requests"]:
                return {"error": f"bad responses: {result}"}
            result["cost"] = 1.0 / result["rps"]
            return result
        except (RuntimeError, ValueError, subprocess.TimeoutExpired) as exc:
            return {"error": str(exc)}
        finally:
            _stop(server)


def _stop(server: subprocess.Popen) -> None:
    """Stop the server this module started, by its own handle (never by name)."""
    if server.poll() is None:
        server.terminate()
        try:
            server.wait(timeout=5)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()
    server.stdout.close()


def _tail(stream, chars=300) -> str:
    stream.seek(0)
    return stream.read()[-chars:].strip()
