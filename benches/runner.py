"""Schedule the measurements: libraries interleaved (A B A B ...), each run a fresh process.

Interleaving spreads any slow drift of the machine (another tenant, thermal state, page
cache) over every library alike instead of charging it to whichever ran last. A library that
fails once for a workload (not installed, a missing API, a crash) is not retried for it: its
error becomes the row's "n/a (reason)".
"""
from __future__ import annotations

import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

from benches import catalog, floors, fmt, wsgi_bench

#: The directory holding the ``benches`` package: the children's cwd and import path.
ROOT = Path(__file__).resolve().parent.parent
#: Seconds one child may take before it is killed and its library's row becomes n/a (a library
#: under development can hang). Default sizes take a few seconds; --sweep sizes up to minutes.
TIMEOUTS = {"quick": 120, "full": 300, "sweep": 900}


def child_env() -> dict:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT), env.get("PYTHONPATH")) if p)
    env["PYTHONWARNINGS"] = "ignore"  # eventlet's deprecation notice, on every import
    return env


def run_child(*args, timeout=TIMEOUTS["full"]) -> dict:
    """Run ``python -m benches.child ARGS`` with this interpreter; its last stdout line.
    On timeout ``subprocess.run`` kills the child (ours, by its handle)."""
    try:
        done = subprocess.run([sys.executable, "-m", "benches.child", *map(str, args)], cwd=ROOT,
                              env=child_env(), stdin=subprocess.DEVNULL, capture_output=True,
                              text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return {"error": f"killed after {timeout}s (hung?)"}
    lines = done.stdout.strip().splitlines()
    try:
        return json.loads(lines[-1])
    except (IndexError, ValueError):
        tail = (done.stderr.strip().splitlines() or ["no output"])[-1]
        return {"error": f"exit status {done.returncode}: {tail}"}


def max_connections() -> int:
    """Loopback connections one process can hold: two fds each (client and server end)."""
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY:
        return 1 << 30
    return (hard - 100) // 2


def effective_size(workload: catalog.Workload, size: int):
    """The size to run and, when it had to differ from the one asked, why."""
    if workload.name == "tcp_echo" and size > max_connections():
        cap = max_connections()
        return cap, f"{size:,} connections asked; RLIMIT_NOFILE allows {cap:,} in one process"
    return size, None


class Runner:
    """Runs the plan; prints one progress line per measurement on stderr."""

    def __init__(self, libs, repeat: int, wsgi_seconds: int, clock: str = "wall",
                 timeout: int = TIMEOUTS["full"], log=sys.stderr):
        self.libs = list(libs)
        self.clock = clock
        self.timeout = timeout
        self.repeat = repeat
        self.wsgi_seconds = wsgi_seconds
        self.log = log
        self.availability = {}
        self.done = 0
        self.total = 0
        self.started = time.monotonic()

    def say(self, text: str) -> None:
        elapsed = int(time.monotonic() - self.started)
        print(f"[{elapsed // 60:2d}:{elapsed % 60:02d}] {text}", file=self.log, flush=True)

    def probe(self) -> dict:
        """Import each library once in a child: version, or the reason it cannot run."""
        for lib in self.libs:
            out = run_child("probe", lib, timeout=self.timeout)
            out["ok"] = "error" not in out
            self.availability[lib] = out
            self.say(f"{lib}: {out.get('version')} {out.get('detail', '')}" if out["ok"]
                     else f"{lib}: n/a ({out['error']})")
        return self.availability

    def plan_size(self, plan) -> None:
        """Count the measurements of ``plan`` [(workload, size)] for the progress lines."""
        self.total = sum(self.repeat * len(self.libs_for(w)) for w, _ in plan)

    def libs_for(self, workload: catalog.Workload):
        return [lib for lib in self.libs if lib in workload.libs and self.availability[lib]["ok"]]

    def measure(self, workload: catalog.Workload, size: int) -> dict:
        """All repeats of one workload at one size: ``{lib: {"samples", "details", "error"}}``."""
        results = {}
        for lib in self.libs:
            if lib not in workload.libs:
                results[lib] = {"error": "no counterpart"}
            elif not self.availability[lib]["ok"]:
                results[lib] = {"error": self.availability[lib]["error"]}
            else:
                results[lib] = {"samples": [], "details": [], "error": None}
        active = self.libs_for(workload)
        for round_ in range(self.repeat):
            for lib in active:
                slot = results[lib]
                if slot["error"]:
                    continue
                out = self.one(workload, lib, size)
                self.done += 1
                if "error" in out:
                    slot["error"] = out["error"]
                    self.done += self.repeat - round_ - 1  # the runs it will not do
                    self.say(f"{workload.name} {size:,} {lib}: n/a ({out['error']})")
                    continue
                slot["samples"].append(out.pop("cost"))
                slot["details"].append(out)
                self.say(f"({self.done}/{self.total}) {workload.name} {size:,} {lib} "
                         f"#{round_ + 1}: {fmt.cost(workload.unit, slot['samples'][-1])}")
        return results

    def one(self, workload: catalog.Workload, lib: str, size: int) -> dict:
        if workload.name == "wsgi":
            return wsgi_bench.measure(lib, size, self.wsgi_seconds, ROOT, child_env())
        return run_child("run", lib, workload.name, size, self.clock, timeout=self.timeout)

    def floor(self, name: str) -> dict:
        out = run_child("floor", name, self.clock, timeout=self.timeout)
        shown = fmt.cost(floors.unit(name), out["cost"]) if "cost" in out else out["error"]
        self.say(f"floor {name}: {shown}")
        return out
