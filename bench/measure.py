"""Measurement helpers shared by the benchmark's scenarios (bench.bench, bench.capacity)."""

from __future__ import annotations

import math
import resource

# The server's CPU: the processes a deployment runs. The sandbox (standing in for WeChat / UMF) and the load generator
# (standing in for the terminals) share the cores here but are not part of it.
SERVER_PARTS = ("app", "postgresql", "redis", "celery")


def percentile(values: list[float], q: float) -> float:
    """The nearest-rank percentile `q` (0-100) of `values`; NaN for none."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, math.ceil(q / 100 * len(ordered)) - 1))
    return ordered[index]


def children_cpu() -> float:
    """CPU seconds of this process's finished children: the load generator's pool processes."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime
