"""Turn raw samples into a verdict: ratio to gevent, pass/fail against the target, floor multiples.

A row is a plain dict (it goes into the JSON file as it is). Every cost is lower-is-better
(see ``catalog``), so for every row: ratio = median(verdigris) / median(gevent), and the row
passes when the ratio is at most the target and, for a workload with ``beat`` set, verdigris's
median is also below that library's, measured in the same run.
"""
from __future__ import annotations

from benches import catalog, stats

SUBJECT, BASELINE = "verdigris", "gevent"


def row(workload: catalog.Workload, size: int, results: dict, floor=None, note=None) -> dict:
    """The verdict on one workload at one size. ``results`` is ``Runner.measure``'s output,
    ``floor`` a ``{"name", "cost"}`` dict or None."""
    libs = {}
    for lib, raw in results.items():
        entry = {"error": raw.get("error")}
        if raw.get("samples") and not entry["error"]:
            entry.update(stats.summarize(raw["samples"]), samples=raw["samples"],
                         details=raw["details"])
        libs[lib] = entry
    out = {"workload": workload.name, "size": size, "size_name": workload.size_name,
           "unit": workload.unit, "op": workload.op, "target": workload.target,
           "beat": workload.beat, "libs": libs, "notes": [note] if note else [],
           "floor": floor, "ratios": {}, "above_floor": {}}

    base = median(libs, BASELINE)
    for lib in libs:
        if lib != BASELINE and base and median(libs, lib) is not None:
            out["ratios"][lib] = median(libs, lib) / base
        if floor and floor.get("cost") and median(libs, lib) is not None:
            out["above_floor"][lib] = median(libs, lib) / floor["cost"]

    out["ratio"] = out["ratios"].get(SUBJECT)
    out["pass"] = None
    if out["ratio"] is not None:
        out["pass"] = out["ratio"] <= workload.target
        rival = median(libs, workload.beat) if workload.beat else None
        if workload.beat and rival is None:
            out["notes"].append(f"{workload.beat} not measured: the 'faster than "
                                f"{workload.beat}' half of the target is unchecked")
        elif rival is not None and median(libs, SUBJECT) >= rival:
            out["pass"] = False
            out["notes"].append(f"slower than {workload.beat}")
    return out


def median(libs: dict, lib: str):
    entry = libs.get(lib)
    return entry.get("median") if entry else None


def geomeans(rows) -> dict:
    """Per library, the geometric mean of its ratio to gevent over the geomean workloads
    (first row of each); for verdigris also the target and verdict."""
    first = {}
    for r in rows:
        first.setdefault(r["workload"], r)
    out = {}
    libs = {lib for r in rows for lib in r["ratios"]}
    if any(SUBJECT in r["libs"] for r in rows):
        libs.add(SUBJECT)  # even with no ratio at all: its n/a verdict belongs in the report
    for lib in sorted(libs):
        ratios = [first[w]["ratios"].get(lib) for w in catalog.GEOMEAN_WORKLOADS if w in first]
        missing = [w for w in catalog.GEOMEAN_WORKLOADS
                   if w not in first or first[w]["ratios"].get(lib) is None]
        present = [x for x in ratios if x is not None]
        entry = {"value": stats.geomean(present) if present else None, "count": len(present),
                 "of": len(catalog.GEOMEAN_WORKLOADS), "missing": missing}
        if lib == SUBJECT:
            entry["target"] = catalog.GEOMEAN_TARGET
            entry["pass"] = (entry["value"] <= catalog.GEOMEAN_TARGET
                             if entry["value"] is not None and not missing else None)
        out[lib] = entry
    return out
