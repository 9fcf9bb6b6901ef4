"""One tiny timing helper (warm-up, synchronise, median), shared by the benchmarks and the profiler."""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable

import torch


def _sync(device: torch.device | str | None) -> None:
    if device is not None and torch.device(device).type == "cuda":
        torch.cuda.synchronize()


def _spread(times: list[float]) -> tuple[float, float]:
    """(median, IQR) of the samples."""
    if len(times) < 2:
        return times[0], 0.0
    q = statistics.quantiles(times, n=4)
    return statistics.median(times), q[2] - q[0]


def time_fn(fn: Callable[[], object], *, warmup: int = 2, min_repeats: int = 5, max_repeats: int = 50,
            min_time_s: float = 0.2, max_time_s: float = 3.0, target_spread: float | None = None,
            device: torch.device | str | None = None) -> dict:
    """Median and IQR of fn's wall time in seconds. Repeats at least min_repeats times and min_time_s,
    and, with target_spread, until IQR / median falls below it (bounded by max_repeats and max_time_s)."""
    for _ in range(warmup):
        fn()
    _sync(device)
    times: list[float] = []
    start = time.perf_counter()
    while True:
        t0 = time.perf_counter()
        fn()
        _sync(device)
        times.append(time.perf_counter() - t0)
        elapsed = time.perf_counter() - start
        if len(times) >= max_repeats or (elapsed >= max_time_s and len(times) >= min_repeats):
            break
        if len(times) < min_repeats or elapsed < min_time_s:
            continue
        median, iqr = _spread(times)
        if target_spread is None or iqr <= target_spread * median:
            break
    median, iqr = _spread(times)
    return {"median_s": median, "iqr_s": iqr, "repeats": len(times)}


def time_interleaved(fns: dict[str, Callable[[], object]], *, warmup: int = 2, repeats: int = 15,
                     device: torch.device | str | None = None) -> dict[str, float]:
    """Median seconds of each fn, run in turn (a, b, a, b, ...) so machine noise hits all alike.
    Ratios of these medians are what the benchmarks report."""
    for fn in fns.values():
        for _ in range(warmup):
            fn()
    times: dict[str, list[float]] = {name: [] for name in fns}
    for _ in range(repeats):
        for name, fn in fns.items():
            _sync(device)
            t0 = time.perf_counter()
            fn()
            _sync(device)
            times[name].append(time.perf_counter() - t0)
    return {name: statistics.median(ts) for name, ts in times.items()}
