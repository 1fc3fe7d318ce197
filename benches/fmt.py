"""How costs are written for people: the same rules in the progress lines, the table, the chart."""
from __future__ import annotations


def cost(unit: str, value: float) -> str:
    """A per-operation cost in its natural unit: ``1.27 µs``, ``5,466 req/s``, ``3.1 KiB``."""
    if unit == "rate":
        return f"{1.0 / value:,.0f} req/s"
    if unit == "bytes":
        return f"{value / 1024:,.2f} KiB" if value >= 1024 else f"{value:,.0f} B"
    return duration(value)


def duration(seconds: float) -> str:
    for scale, suffix in ((1.0, "s"), (1e-3, "ms"), (1e-6, "µs")):
        if abs(seconds) >= scale:
            return f"{_three_digits(seconds / scale)} {suffix}"
    return f"{_three_digits(seconds * 1e9)} ns"


def _three_digits(x: float) -> str:
    """Three significant digits, keeping trailing zeros so columns line up: 2.40, 59.0, 370."""
    if abs(x) >= 100:
        return f"{x:.0f}"
    if abs(x) >= 10:
        return f"{x:.1f}"
    return f"{x:.2f}"


def size(n: int) -> str:
    return f"{n:,}"


def ratio(value) -> str:
    return "n/a" if value is None else f"{value:.3f}"
