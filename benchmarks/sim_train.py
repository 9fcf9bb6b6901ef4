"""Wall time and events/s of the training simulator for DeepSeek-V2 on 2,048 H800s (target: under 2 s).

The paper scenario's V2 layout (PP16, EP8, ZeRO-1, zero-bubble) with DP doubled to 128; each run builds
the stage costs (timing model) and simulates one step. Also the same on 1,024 GPUs, for the scaling.
"""

from __future__ import annotations

import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from costmodel.inputs.loader import load_scenario  # noqa: E402
from costmodel.sim.train_sim import simulate_training  # noqa: E402


def variant_on(gpus: int):
    v = load_scenario(ROOT / "scenarios" / "deepseek-v2-paper.yaml").variants[0]
    t = v.training
    dp = gpus // (t.parallelism.pp * t.parallelism.tp)
    par = t.parallelism.model_copy(update={"dp": dp, "micro_batches": t.global_batch_seqs // dp})
    cluster = t.cluster.model_copy(update={"nodes": gpus // t.cluster.gpus_per_node})
    return v, t.model_copy(update={"parallelism": par, "cluster": cluster})


def main() -> None:
    print(f"{'GPUs':>6} {'micro-batches':>14} {'events':>7} {'wall s (median of 5)':>21} {'events/s':>10} {'GPU-h/T tok':>12}")
    for gpus in (1024, 2048):
        v, t = variant_on(gpus)
        walls, r = [], None
        for _ in range(5):
            t0 = time.perf_counter()
            r = simulate_training(v.name, v.model, t)
            walls.append(time.perf_counter() - t0)
        wall = statistics.median(walls)
        print(f"{gpus:>6} {t.parallelism.micro_batches:>14} {r.events:>7} {wall:>21.3f} {r.events / wall:>10.0f}"
              f" {r.gpu_hours_per_trillion_tokens / 1e3:>11.1f}K")


if __name__ == "__main__":
    main()
