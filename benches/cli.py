"""``python -m benches``: parse the command line, run the plan, print and save the results.

The table goes to stdout (text, or Markdown with --markdown) and progress to stderr, so
``python -m benches --markdown > table.md`` captures just the table.
"""
from __future__ import annotations

import argparse
import sys
import time

from benches import catalog, chart, judge, machine, report
from benches.runner import TIMEOUTS, Runner, effective_size

EPILOG = """workloads: """ + ", ".join(w.name for w in catalog.WORKLOADS) + """

A default run takes one size per workload and 7 runs per library (--quick: smaller sizes, 3
runs, about 2 minutes on 2 cores). --sweep W runs workload W at each of its sweep sizes (or
--sizes) and writes bench-results/sweep-W.{json,png} unless --json/--png say otherwise."""


def parse(argv):
    p = argparse.ArgumentParser(prog="python -m benches", epilog=EPILOG,
                                formatter_class=argparse.RawDescriptionHelpFormatter,
                                description="verdigris against gevent, eventlet and asyncio+uvloop,"
                                            " interleaved, each run in a fresh process.")
    p.add_argument("--quick", action="store_true", help="smaller sizes, fewer runs (~2 min)")
    p.add_argument("--repeat", type=int, metavar="N",
                   help="runs per library and workload (default 7; 3 with --quick or --sweep)")
    p.add_argument("--libs", default=",".join(catalog.DEFAULT_LIBS),
                   help=f"comma-separated, from {','.join(catalog.ALL_LIBS)} (default %(default)s)")
    p.add_argument("--only", metavar="W1,W2", help="run only these workloads")
    p.add_argument("--sweep", metavar="W", help="run workload W at several sizes")
    p.add_argument("--sizes", metavar="N1,N2",
                   help="the sizes for --sweep (default: the workload's sweep list)")
    p.add_argument("--size", type=int, metavar="N", help="one size for every workload run")
    p.add_argument("--wsgi-seconds", type=int, metavar="S",
                   help="length of each timed wrk run (default 5; 1 with --quick)")
    p.add_argument("--clock", choices=("wall", "cpu"), default="wall",
                   help="judge time workloads by wall time (default) or by the process's CPU "
                        "time, which ignores time slices lost to other processes")
    p.add_argument("--no-floors", action="store_true", help="skip measuring the floors")
    p.add_argument("--json", metavar="PATH", help="default bench-results/latest.json")
    p.add_argument("--png", metavar="PATH", help="default bench-results/ratios.png")
    p.add_argument("--markdown", action="store_true", help="print the table as Markdown")
    args = p.parse_args(argv)

    args.libs = _names(p, args.libs, catalog.ALL_LIBS, "library")
    if args.sweep and args.only:
        p.error("--sweep and --only do not go together")
    if args.sweep:
        args.workloads = _names(p, args.sweep, catalog.BY_NAME, "workload")
        if len(args.workloads) != 1:
            p.error("--sweep takes one workload")
    else:
        args.workloads = _names(p, args.only or ",".join(catalog.BY_NAME), catalog.BY_NAME,
                                "workload")
    if args.sizes and not args.sweep:
        p.error("--sizes goes with --sweep; use --size for a single size")
    args.repeat = args.repeat or (3 if args.quick or args.sweep else 7)
    if args.repeat < 1:
        p.error("--repeat must be at least 1")
    args.wsgi_seconds = args.wsgi_seconds or (1 if args.quick else 5)
    stem = f"sweep-{args.sweep}" if args.sweep else None
    args.json = args.json or f"bench-results/{stem or 'latest'}.json"
    args.png = args.png or f"bench-results/{stem or 'ratios'}.png"
    return args


def _names(parser, text, known, what):
    names = [n.strip() for n in text.split(",") if n.strip()]
    unknown = [n for n in names if n not in known]
    if unknown or not names:
        parser.error(f"unknown {what}: {', '.join(unknown) or '(none)'}; known: {', '.join(known)}")
    return names


def plan(args):
    """[(workload, size, note)] in run order."""
    out = []
    for name in args.workloads:
        workload = catalog.BY_NAME[name]
        if args.sweep:
            sizes = ([int(float(s)) for s in args.sizes.split(",")] if args.sizes
                     else list(workload.sweep))
        else:
            sizes = [args.size or (workload.quick_size if args.quick else workload.size)]
        for size in sizes:
            out.append((workload, *effective_size(workload, size)))
    return out


def main(argv=None) -> int:
    args = parse(sys.argv[1:] if argv is None else argv)
    started = time.monotonic()
    contention = machine.Contention()
    mode = "sweep" if args.sweep else "quick" if args.quick else "full"
    runner = Runner(args.libs, args.repeat, args.wsgi_seconds, args.clock, TIMEOUTS[mode])
    availability = runner.probe()
    steps = plan(args)
    runner.plan_size([(w, s) for w, s, _ in steps])

    floors, rows = {}, []
    for workload, size, note in steps:
        results = runner.measure(workload, size)
        floor = None
        if workload.floor and not args.no_floors:
            if workload.floor not in floors:
                floors[workload.floor] = {"name": workload.floor, **runner.floor(workload.floor)}
            floor = floors[workload.floor]
        rows.append(judge.row(workload, size, results, floor, note))

    geomeans = judge.geomeans(rows) if not args.sweep else {}
    info = machine.describe(availability, contention)
    info["clock"] = args.clock
    if args.markdown:
        print(report.markdown(rows, args.libs, geomeans, info))
    else:
        print(report.text(rows, args.libs, geomeans, info))

    config = {"quick": args.quick, "repeat": args.repeat, "clock": args.clock, "libs": args.libs,
              "workloads": args.workloads, "sweep": args.sweep, "wsgi_seconds": args.wsgi_seconds,
              "elapsed_seconds": round(time.monotonic() - started, 1), "argv": sys.argv[1:]}
    json_path = report.write_json(args.json, rows, geomeans, info, config, availability)
    if args.sweep:
        png = chart.sweep(rows, args.libs, info, args.png)
    else:
        png = chart.ratios(rows, geomeans, info, args.png)
    runner.say(f"wrote {json_path} and {png}; total {config['elapsed_seconds']:.0f}s")
    return 0
