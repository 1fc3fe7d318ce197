"""Summaries of repeated samples: median and spread, and the geometric mean of ratios.

The median, not the mean, because a run on a shared 2-core machine is now and then disturbed
by something else; min/max show how much, and the quartiles say whether it was one outlier.
"""
from __future__ import annotations

import math
import statistics


def summarize(samples) -> dict:
    """Median, min, max, quartiles and count of a non-empty list of numbers."""
    xs = sorted(samples)
    if len(xs) >= 2:
        q1, _, q3 = statistics.quantiles(xs, n=4, method="inclusive")
    else:
        q1 = q3 = xs[0]
    return {"median": statistics.median(xs), "min": xs[0], "max": xs[-1], "q1": q1, "q3": q3,
            "n": len(xs)}


def spread(summary: dict) -> float:
    """Half the min-max range relative to the median: 0.03 reads as "±3%"."""
    if not summary["median"]:
        return 0.0
    return (summary["max"] - summary["min"]) / 2 / summary["median"]


def geomean(values) -> float:
    values = list(values)
    return math.exp(sum(math.log(v) for v in values) / len(values))
