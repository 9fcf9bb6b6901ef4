"""The work a command may start: each bound is checked before any simulation runs, and a refusal names
the field and the largest value that fits. The bounds keep one command within about a minute on the
2-core machine this project is built on; each is derived below from a measurement of the project's own
engine (`benchmarks/sim_serve.py`, and the sweep benchmark), not from a wish.
"""

from __future__ import annotations

# measured: the serving engine served 100,000 requests of the V2 paper's chat workload in 1.7 s (all queued)
# and 2.3 s (Poisson at 60/s) on the 2-core dev machine, i.e. 43-59K requests per wall-second. 200,000
# requests are then about 4-5 s per run, and `simulate serve` makes three runs per variant.
MAX_REQUESTS = 200_000  # per serving run: a workload's `requests`, a trace's rows, the saturated runs' queue
# measured: the engine ran 3.4-6.4K iterations per wall-second at the paper's batches of 100-1,000
# requests, and some 30K at a handful; 300,000 iterations are then 10-90 s.
MAX_ITERATIONS = 300_000  # per serving run, estimated from requests x output tokens / requests in flight
MAX_VARIANTS = 64  # per scenario: the dashboard lays them side by side and every command runs each
MAX_SWEEP_POINTS = 100_000  # a grid's points, counted before it is expanded (a million-point grid took 2.7 GB)
MAX_PROFILE_ROWS = 100_000  # rows of a profile CSV: `planner profile`'s default grid writes about 150
MAX_SWEEP_CORE_S = 86_400.0  # a sweep's estimated work, in seconds of one core: a day
# measured: seconds one sweep point takes on one core, on the 2-core dev machine: a training point 0.10 s
# (V2, pp 16, costmodel/app/sweep.py evaluate) to 0.43 s (V3's 2,048-GPU step: simulate train, start-up taken
# off); a serving point 0.83-0.90 s (the bundled V2 serving sweep: 1,500 requests plus saturated runs of
# 25.9K), and the wide-EP examples 11.2 s for their four variants (2.8 s each); counts 0.01 s. Each
# estimate is the largest measured.
SWEEP_POINT_CORE_S = {"train": 0.45, "serve": 2.8, "static": 0.01}


def sweep_core_s(kind: str, points: int) -> float:
    """The estimated work of a sweep of `points` points of `kind`, in seconds of one core."""
    return points * SWEEP_POINT_CORE_S[kind]


def largest_sweep(kind: str) -> int:
    """The most points of `kind` a sweep may have: the point limit or the work limit, whichever is lower."""
    return min(MAX_SWEEP_POINTS, int(MAX_SWEEP_CORE_S / SWEEP_POINT_CORE_S[kind]))
