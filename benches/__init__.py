"""verdigris's side-by-side benchmarks: ``python -m benches`` (see README.md beside this file).

Runs the same workloads against verdigris and gevent (and, where they have a counterpart,
eventlet and asyncio on uvloop), interleaved, each run in a fresh subprocess, and reports the
median cost per operation, its spread, the ratio verdigris/gevent, and pass/fail against the
performance targets.

Modules, one idea each:

* ``catalog``: the workloads, their sizes, targets and floors, as data.
* ``libs``: load a library under test behind gevent's names.
* ``greenlet_workloads`` / ``asyncio_workloads``: the workloads themselves.
* ``floors``: what no library can go below on this machine.
* ``timing``, ``rss``: the clocks and the memory gauges the workloads read.
* ``child``: one measurement inside a fresh process.
* ``wsgi_server`` / ``wsgi_bench``: the WSGI server under test and the wrk driver.
* ``runner``: the interleaved schedule of child processes.
* ``stats``, ``judge``: summaries, ratios, verdicts.
* ``machine``, ``fmt``, ``report``, ``chart``: what was measured on, and how it is shown.
* ``cli``: the command line.

Nothing here is imported by verdigris itself, and importing this package imports no library
under test: only the children do.
"""
