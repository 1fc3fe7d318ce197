"""Show the verdicts: an aligned text table, the same table in Markdown, and the JSON file.

The text and Markdown tables are built from one list of cells (:func:`cells`), so they cannot
disagree. A library that could not run shows "n/a[k]", with reason k listed under the table
once, however many rows it affects; "—" means the library has no counterpart of the workload.
"""
from __future__ import annotations

import json
from pathlib import Path

from benches import catalog, fmt, judge, machine, stats


def cells(rows, libs):
    """(header, body rows, footnotes) of the results table, all strings."""
    reasons = {}  # reason -> who it applies to, in order of first appearance

    def footnote(who, reason):
        whom = reasons.setdefault(reason, [])
        if who not in whom:
            whom.append(who)
        return f"[{list(reasons).index(reason) + 1}]"

    header = ["workload", "size", *libs, "v/g", "target", "verdict", "floor", "×floor v / g"]
    body = []
    for r in rows:
        line = [r["workload"], fmt.size(r["size"])]
        for lib in libs:
            entry = r["libs"].get(lib, {"error": "not run"})
            if entry.get("error") == "no counterpart":
                line.append("—")
            elif entry.get("error") or "median" not in entry:
                line.append("n/a" + footnote(lib, entry.get("error") or "no samples"))
            else:
                line.append(f"{fmt.cost(r['unit'], entry['median'])} "
                            f"±{stats.spread(entry) * 100:.0f}%")
        line.append(fmt.ratio(r["ratio"]))
        line.append(f"≤ {r['target']:.2f}" + (f" & < {r['beat']}" if r["beat"] else ""))
        verdict = {True: "PASS", False: "FAIL", None: "n/a"}[r["pass"]]
        for note in r["notes"]:
            verdict += footnote(f"{r['workload']} {fmt.size(r['size'])}", note)
        line.append(verdict)
        floor = r["floor"]
        if floor and "cost" in floor:
            line.append(fmt.cost("bytes" if r["unit"] == "bytes" else "time", floor["cost"]))
            multiples = [r["above_floor"].get(lib) for lib in (judge.SUBJECT, judge.BASELINE)]
            line.append(" / ".join("—" if m is None else f"{m:.1f}×" for m in multiples))
        elif floor:
            line.extend(["n/a" + footnote(f"floor {floor['name']}", floor.get("error")), "—"])
        else:
            line.extend(["—", "—"])
        body.append(line)
    notes = [f"{', '.join(whom)}: {reason}" for reason, whom in reasons.items()]
    return header, body, notes


def geomean_lines(geomeans) -> list:
    lines = []
    for lib, g in geomeans.items():
        if g["value"] is None:
            text = f"n/a ({lib} has none of the {g['of']} time ratios)"
        else:
            text = f"{g['value']:.2f}"
            if g["missing"]:
                text += f" over {g['count']} of {g['of']} (missing: {', '.join(g['missing'])})"
        if lib == judge.SUBJECT:
            verdict = {True: "PASS", False: "FAIL", None: "n/a"}[g["pass"]]
            text += f"  target ≤ {g['target']:.2f}  {verdict}"
        lines.append(f"geomean {lib}/gevent of the 8 time ratios: {text}")
    return lines


def text(rows, libs, geomeans, info) -> str:
    header, body, notes = cells(rows, libs)
    widths = [max(len(line[i]) for line in [header, *body]) for i in range(len(header))]

    def render(line):
        return "  ".join(c.ljust(w) if i < 2 else c.rjust(w)
                         for i, (c, w) in enumerate(zip(line, widths))).rstrip()

    out = [f"# {machine.one_line(info)}"]
    if machine.busy_warning(info):
        out.append(f"# {machine.busy_warning(info)}")
    out += [render(header), render(["-" * w for w in widths])]
    out += [render(line) for line in body]
    out += [""] + geomean_lines(geomeans)
    out += [f"[{i + 1}] {n}" for i, n in enumerate(notes)]
    out += [legend(info)]
    return "\n".join(out)


def markdown(rows, libs, geomeans, info) -> str:
    header, body, notes = cells(rows, libs)
    out = [f"Measured on {info['cpu']} ({info['cores']} cores), Linux {info['kernel']}, "
           f"{info['python']}, greenlet {info['greenlet']}, wrk {info['wrk']}, {info['date']}.", ""]
    if machine.busy_warning(info):
        out += [f"**{machine.busy_warning(info)}**", ""]
    out += [f"- {lib}: {version}" for lib, version in info["libraries"].items()]
    if info.get("others_cpu_share") is not None:
        out.append(f"- other processes' share of the CPUs during the run: "
                   f"{info['others_cpu_share']:.0%}")
    out += ["", "| " + " | ".join(header) + " |",
            "|" + "|".join(":---" if i < 2 else "---:" for i in range(len(header))) + "|"]
    out += ["| " + " | ".join(c.replace("|", "\\|") for c in line) + " |" for line in body]
    out += [""] + [f"- {line}" for line in geomean_lines(geomeans)]
    if notes:
        out += [""] + [f"[{i + 1}] {n}  " for i, n in enumerate(notes)]
    out += ["", legend(info)]
    return "\n".join(out)


def legend(info) -> str:
    clock = {"cpu": "process CPU time", "wall": "wall time"}.get(info.get("clock"), "wall time")
    return (f"Per-op cost ({clock}; wsgi is wrk's req/s, memory is bytes): median of the runs, "
            "± half the min-max range. v/g = verdigris/gevent (wsgi: gevent req/s over "
            "verdigris req/s); lower is better. ×floor = cost / floor for verdigris / gevent. "
            "— = no counterpart.")


def write_json(path, rows, geomeans, info, config, availability) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    doc = {"machine": info, "config": config, "libraries": availability, "rows": rows,
           "geomeans": geomeans, "targets": {w.name: w.target for w in catalog.WORKLOADS},
           "geomean_target": catalog.GEOMEAN_TARGET}
    path.write_text(json.dumps(doc, indent=1) + "\n")
    return path
