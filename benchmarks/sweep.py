"""Sweep throughput: points per second on a local Dask cluster (2 worker processes) against a plain
loop, for a training-simulation grid; and the cost of one static (analytic) point.
Targets on this 2-core machine: >= 1.6x with Dask, <= 35 ms per static point."""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from planner.sweep_runner import run_sweep  # noqa: E402

GRID = """\
name: bench-{kind}
base: {base}
variant: deepseek-v2
kind: {kind}
axes:
  gpu: [h800, h100-sxm, h200, b200]
  ep: [8, 16]
  pp: [8, 16]
  precision: [bf16, fp8]
  schedule: [1f1b, zero-bubble, gpipe]
  recompute: [selective, full]
objectives:
  - {{metric: {metric}, goal: min}}
"""


def sweep_file(tmp: Path, kind: str) -> Path:
    metric = "cost_usd_per_trillion_tokens" if kind == "train" else "peak_memory_gb"
    path = tmp / f"{kind}.yaml"
    path.write_text(GRID.format(kind=kind, base=ROOT / "scenarios" / "deepseek-v2-paper.yaml", metric=metric))
    return path


def main() -> None:
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        train = sweep_file(tmp, "train")
        t0 = time.perf_counter()
        _, rows = run_sweep(train, tmp / "seq.jsonl", sequential=True)
        seq = time.perf_counter() - t0
        stamps: list[float] = []
        t0 = time.perf_counter()
        run_sweep(train, tmp / "dask.jsonl", workers=2, progress=lambda done, total: stamps.append(time.perf_counter()))
        dask = time.perf_counter() - t0
        n = len(rows)
        per_point = sum(r["wall_s"] for r in rows) / n
        steady = (stamps[-1] - stamps[2]) / (n - 2)  # from the first remote result on: the cluster is up
        print(f"training-simulation sweep, {n} points ({per_point * 1e3:.0f} ms each in the loop)")
        print(f"  sequential loop      {seq:6.2f} s  {n / seq:6.1f} points/s")
        print(f"  Dask, 2 workers      {dask:6.2f} s  {n / dask:6.1f} points/s  -> {seq / dask:.2f}x including the "
              f"cluster's start ({stamps[2] - t0:.1f} s)")
        print(f"  Dask, once started           {1 / steady:6.1f} points/s  -> {seq / n / steady:.2f}x")
        static = sweep_file(tmp, "static")
        t0 = time.perf_counter()
        _, rows = run_sweep(static, tmp / "static.jsonl", sequential=True)
        wall = time.perf_counter() - t0
        print(f"static (analytic) sweep, {len(rows)} points: {wall / len(rows) * 1e3:.1f} ms per point "
              f"(evaluation alone {sum(r['wall_s'] for r in rows) / len(rows) * 1e3:.1f} ms)")


if __name__ == "__main__":
    main()
