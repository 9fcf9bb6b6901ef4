"""Simulated requests per wall-second of the serving simulator, 100K requests (target: >= 5,000/s).

DeepSeek-V2 on one 8xH800 node (the paper scenario), its chat workload as Poisson arrivals at the
scenario's rate, and the same requests all queued at t = 0 (the saturated case).
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from costmodel.loader import load_scenario  # noqa: E402
from costmodel.serve_sim import simulate_serving  # noqa: E402

N = 100_000


def main() -> None:
    v = load_scenario(ROOT / "scenarios" / "deepseek-v2-paper.yaml").variants[0]
    base = v.inference.workload.model_copy(update={"requests": N})
    print(f"{'arrivals':>10} {'requests':>9} {'iterations':>11} {'simulated s':>12} {'wall s':>7} {'requests/wall-s':>16}")
    for label, w in (("poisson", base.model_copy(update={"rate_per_s": 60.0})), ("burst", base.model_copy(update={"arrival": "burst"}))):
        t0 = time.perf_counter()
        r = simulate_serving(v.name, v.model, v.inference, w)
        wall = time.perf_counter() - t0
        print(f"{label:>10} {r.requests:>9} {r.iterations:>11} {r.sim_time_s:>12.0f} {wall:>7.2f} {r.requests / wall:>16,.0f}")


if __name__ == "__main__":
    main()
