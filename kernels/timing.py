"""One tiny timing helper (warm-up, synchronise, median), shared by the benchmarks and the profiler."""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable

import torch


def _sync(device: torch.device | str | None) -> None:
    if device is not None and torch.device(device).type == "cuda":
        torch.cuda.synchronize()


def time_fn(fn: Callable[[], object], *, warmup: int = 2, min_repeats: int = 5, max_repeats: int = 50,
            min_time_s: float = 0.2, device: torch.device | str | None = None) -> dict:
    """Median and IQR of fn's wall time in seconds; repeats until min_time_s has passed (bounded)."""
    for _ in range(warmup):
        fn()
    _sync(device)
    times: list[float] = []
    start = time.perf_counter()
    while len(times) < min_repeats or (time.perf_counter() - start < min_time_s and len(times) < max_repeats):
        t0 = time.perf_counter()
        fn()
        _sync(device)
        times.append(time.perf_counter() - t0)
    q = statistics.quantiles(times, n=4) if len(times) >= 2 else [times[0]] * 3
    return {"median_s": statistics.median(times), "iqr_s": q[2] - q[0], "repeats": len(times)}


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
