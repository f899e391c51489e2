"""How many series one Dask task takes, from what the candidates cost.

A task pays a fixed price (scheduling, reading its series, writing its checkpoint, and
the start of one child process per isolated plug-in); the series in it pay their fits.
A batch aims at about two seconds of work, so the fixed price stays small, while a lost
worker still loses little. The per-series costs are CPU seconds measured on 3-year weekly
series over every backtest origin and the future (``benchmarks/forward_cost.py``,
``benchmarks/isolation_cost.py``): AutoETS 0.25, AutoCES 0.06, AutoTheta 0.03 (0.1 on
average for an expensive model), the vectorised baselines and intermittent models about
2 ms. ``compute.series_per_batch`` set in the configuration wins.
"""

from __future__ import annotations

import math

from forecasting.training.plan import Candidate, TrainingPlan

TASK_SECONDS = 2.0  # work a batch aims at
EXPENSIVE_SECONDS = 0.1  # per series, an in-process model tagged expensive
CHEAP_SECONDS = 0.002  # per series, any other in-process model
ISOLATED_SECONDS = 0.05  # per series, a plug-in in its child process (the fit, the round trip)
CHILD_START_SECONDS = 0.3  # per batch and isolated plug-in: the start of its child process
MAX_START_SHARE = 0.25  # child starts may take at most this share of a batch's time


def _series_seconds(candidate: Candidate) -> float:
    if candidate.isolation is not None:
        return ISOLATED_SECONDS
    if candidate.model.get_tag("scope") == "global":
        return 0.0  # fitted once per shard, before the batches
    return EXPENSIVE_SECONDS if candidate.expensive else CHEAP_SECONDS


def series_per_batch(plan: TrainingPlan, n_series: int, configured: int | None = None) -> int:
    """Series per batch for a shard of ``n_series`` series: ``configured`` if set, else from the cost."""
    if configured is not None:
        return configured
    per_series = sum(_series_seconds(c) for c in plan.candidates) or CHEAP_SECONDS
    isolated = sum(1 for c in plan.candidates if c.isolation is not None)
    target = max(TASK_SECONDS, CHILD_START_SECONDS * isolated / MAX_START_SHARE)
    return max(1, min(max(n_series, 1), math.ceil(target / per_series)))
