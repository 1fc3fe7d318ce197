"""PNG charts (matplotlib, Agg backend, so no display is needed).

* :func:`ratios`: one group of bars per workload, a bar per library's cost relative to
  gevent (verdigris green where it meets its target, red where not), the target as a black
  tick over the group, gevent's own level as a dashed line at 1. Log scale: 0.5 and 2 are the
  same distance from parity.
* :func:`sweep`: cost per operation against size, log-log, a line per library and the floor,
  above the ratios to gevent at each size.

matplotlib is optional: without it these return the reason instead of a path.
"""
from __future__ import annotations

from pathlib import Path

from benches import catalog, fmt, judge, machine

COLORS = {"eventlet": "#8c6d31", "uvloop": "#3182bd", "asyncio": "#9e9ac8", "gevent": "#636363"}
PASS_COLOR, FAIL_COLOR, UNJUDGED_COLOR = "#31a354", "#de2d26", "#74c476"


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def ratios(rows, geomeans, info, path):
    """Bar chart of every library's ratio to gevent; returns the path or "n/a (reason)"."""
    try:
        plt = _pyplot()
    except ImportError as exc:
        return f"n/a ({exc})"
    groups = [(r["workload"], r["ratios"], r["target"], r["pass"]) for r in rows]
    means = {lib: g["value"] for lib, g in geomeans.items() if g["value"] is not None}
    if means:
        subject = geomeans.get(judge.SUBJECT, {})
        counts = {g["count"] for lib, g in geomeans.items() if lib in means}
        label = "geomean" if counts == {len(catalog.GEOMEAN_WORKLOADS)} else "geomean\n(partial)"
        groups.append((label, means, catalog.GEOMEAN_TARGET, subject.get("pass")))
    libs = sorted({lib for _, rs, _, _ in groups for lib in rs},
                  key=lambda lib: (lib != judge.SUBJECT, lib))
    if not libs:
        return "n/a (no ratios to gevent: gevent or every other library missing)"

    fig, ax = plt.subplots(figsize=(max(8, 1.1 * len(groups) + 2), 5))
    width = 0.8 / len(libs)
    for g, (_, rs, target, passed) in enumerate(groups):
        for k, lib in enumerate(libs):
            if lib not in rs:
                continue
            x = g - 0.4 + width * (k + 0.5)
            if lib == judge.SUBJECT:
                color = {True: PASS_COLOR, False: FAIL_COLOR, None: UNJUDGED_COLOR}[passed]
            else:
                color = COLORS.get(lib, "#bdbdbd")
            ax.bar(x, rs[lib], width, color=color, label=lib)
            ax.annotate(f"{rs[lib]:.2f}", (x, rs[lib]), ha="center", va="bottom", fontsize=7)
        ax.hlines(target, g - 0.45, g + 0.45, colors="black", linewidth=2, label="target")
    ax.axhline(1.0, color="#636363", linestyle="--", linewidth=1, label="gevent = 1")
    _log_axis(ax)
    if judge.SUBJECT not in libs:
        ax.text(0.01, 0.98, f"{judge.SUBJECT}: n/a in this run", transform=ax.transAxes,
                va="top", fontsize=8, color=FAIL_COLOR)
    ax.set_xticks(range(len(groups)))
    ax.set_xticklabels([name for name, *_ in groups], rotation=30, ha="right")
    ax.set_ylabel("cost relative to gevent (lower is better)")
    ax.set_title(f"verdigris benches: ratio to gevent, same run ({info.get('clock', 'wall')} "
                 f"clock)\n{machine.one_line(info)}",
                 fontsize=9)
    _dedupe_legend(ax)
    return _save(fig, plt, path)


def sweep(rows, libs, info, path):
    """Cost and ratio against size for one workload's sweep; returns the path or the reason."""
    try:
        plt = _pyplot()
    except ImportError as exc:
        return f"n/a ({exc})"
    workload = rows[0]["workload"]
    unit = rows[0]["unit"]
    sizes = [r["size"] for r in rows]
    fig, (top, bottom) = plt.subplots(2, 1, figsize=(8, 8), sharex=True)
    for lib in libs:
        points = [(r["size"], r["libs"][lib]["median"]) for r in rows
                  if "median" in r["libs"].get(lib, {})]
        if points:
            color = PASS_COLOR if lib == judge.SUBJECT else COLORS.get(lib)
            top.plot(*zip(*points), marker="o", label=lib, color=color)
            ratios = [(r["size"], r["ratios"][lib]) for r in rows if lib in r["ratios"]]
            if ratios:
                bottom.plot(*zip(*ratios), marker="o", label=f"{lib}/gevent", color=color)
    floors = [(r["size"], r["floor"]["cost"]) for r in rows if r["floor"] and "cost" in r["floor"]]
    if floors:
        top.plot(*zip(*floors), linestyle=":", color="black",
                 label=f"floor ({rows[0]['floor']['name']})")
    top.set_xscale("log")
    _log_axis(top, lambda y: fmt.cost(unit, y))
    top.set_ylabel({"time": "cost per op", "rate": "requests per second",
                    "bytes": "memory per greenlet"}[unit])
    top.set_title(f"{workload}: cost per op against {rows[0]['size_name']} "
                  f"({info.get('clock', 'wall')} clock)\n"
                  f"{machine.one_line(info)}", fontsize=9)
    top.legend(fontsize=8)
    bottom.axhline(rows[0]["target"], color="black", linewidth=2, label="target")
    bottom.axhline(1.0, color="#636363", linestyle="--", linewidth=1, label="gevent = 1")
    _log_axis(bottom)
    bottom.set_xlabel(rows[0]["size_name"])
    bottom.set_ylabel("cost relative to gevent")
    bottom.set_xticks(sizes)
    bottom.set_xticklabels([fmt.size(s) for s in sizes])
    bottom.legend(fontsize=8)
    return _save(fig, plt, path)


def _log_axis(ax, label=lambda y: f"{y:g}"):
    """Log scale with plain tick labels (0.5, 1, 2 or 2 µs), not 5x10^-1."""
    from matplotlib.ticker import FuncFormatter, LogLocator

    ax.set_yscale("log")
    ax.yaxis.set_major_locator(LogLocator(base=10, subs=(1.0, 2.0, 5.0)))
    ax.yaxis.set_minor_formatter(FuncFormatter(lambda *_: ""))
    ax.yaxis.set_major_formatter(FuncFormatter(lambda y, _: label(y)))
    ax.grid(axis="y", which="major", color="#e0e0e0", linewidth=0.5)
    ax.set_axisbelow(True)


def _dedupe_legend(ax):
    handles, labels = ax.get_legend_handles_labels()
    seen = {}
    for handle, label in zip(handles, labels):
        seen.setdefault(label, handle)
    ax.legend(seen.values(), seen.keys(), fontsize=8, loc="upper left", bbox_to_anchor=(1.0, 1.0))


def _save(fig, plt, path):
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return str(path)
