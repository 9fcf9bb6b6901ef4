"""Simulated requests per wall-second of the serving engine, 100K requests, against the engine it
replaced (benchmarks/baseline_serve_engine.py), side by side in one run on the same requests and the
same iteration-time model. Target: the new engine at least 2x the old one on the Poisson case.

DeepSeek-V2 on one 8xH800 node (the paper scenario), its chat workload as Poisson arrivals at 60
requests/s, and the same requests all queued at t = 0 (the saturated case). Each engine runs REPEATS
times, alternating, and the best wall time counts (this machine is shared and noisy).
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from baseline_serve_engine import simulate_serving_baseline  # noqa: E402

from costmodel.app.serving import run_serving  # noqa: E402
from costmodel.app.study import open_study  # noqa: E402
from costmodel.counts.memory import serving_memory  # noqa: E402
from costmodel.inputs.requests import make_requests  # noqa: E402
from costmodel.timing.serve_costs import step_model_for  # noqa: E402

N = 100_000
REPEATS = 2


def best_wall_s(run) -> tuple[float, object]:
    out, best = None, float("inf")
    for _ in range(REPEATS):
        t0 = time.perf_counter()
        out = run()
        best = min(best, time.perf_counter() - t0)
    return best, out


def main() -> None:
    v = open_study(ROOT / "scenarios" / "deepseek-v2-paper.yaml").variant("deepseek-v2")
    inf, m = v.inference, v.model
    capacity = int(serving_memory(m, inf).kv_capacity_tokens) * inf.parallelism.dp
    base = inf.workload.model_copy(update={"requests": N})
    print(f"{'arrivals':>8} {'iterations':>10} {'old req/wall-s':>15} {'new req/wall-s':>15} {'new/old':>8}")
    for label, w in (("poisson", base.model_copy(update={"rate_per_s": 60.0})),
                     ("burst", base.model_copy(update={"arrival": "burst"}))):
        reqs = make_requests(w, None, m.max_position_embeddings)
        inf_w = inf.model_copy(update={"workload": w})
        old_s, old = best_wall_s(lambda r=reqs, i=inf_w: simulate_serving_baseline(
            r.arrival_s, r.prompt_tokens, r.output_tokens, i, step_model_for(m, i), capacity))
        new_s, new = best_wall_s(lambda r=reqs, i=inf_w, w=w: run_serving(v.name, m, i, w, requests=r))
        assert new.iterations == old["iterations"] and new.finished == old["finished"], "engines disagree"
        print(f"{label:>8} {new.iterations:>10} {N / old_s:>15,.0f} {N / new_s:>15,.0f} {old_s / new_s:>7.2f}x")


if __name__ == "__main__":
    main()
