"""How fast `simulate serve` answers, measured side by side in one run (this machine is shared and noisy:
each measurement alternates the contenders and keeps the best of REPEATS).

1. The paper scenario (`planner simulate serve scenarios/deepseek-v2-paper.yaml`, its table written to a
   pipe, as a user runs it) with this code and with two older trees taken from this repository's history
   (`git archive`): BEFORE, the code just before fast-forward and the steady-state stop (the simulator
   is otherwise the same), and FILED, the code when that work was asked for (before the table's
   progress fix).
2. Simulated requests per wall-second of the serving engine on 100K requests against the engine it
   replaced (benchmarks/baseline_serve_engine.py), on the same requests and iteration-time model, and
   the iterations the engine actually stepped of those it simulated: DeepSeek-V2 on one 8xH800 node (the
   paper scenario) with its chat workload as Poisson arrivals at 60 requests/s, and all queued at t = 0.

Writes benchmarks/results/sim-serve.json.
"""

from __future__ import annotations

import io
import json
import subprocess
import sys
import tarfile
import tempfile
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
TREES = {"BEFORE": "06fb04a", "FILED": "2b2d1d3"}  # commits of this repository (see the docstring)
PAPER = "scenarios/deepseek-v2-paper.yaml"
RUN_CLI = ("import sys; sys.path.insert(0, '.'); from planner.cli import main; "
           f"sys.argv = ['planner', 'simulate', 'serve', '{PAPER}']; main()")


def best_wall_s(run) -> tuple[float, object]:
    out, best = None, float("inf")
    for _ in range(REPEATS):
        t0 = time.perf_counter()
        out = run()
        best = min(best, time.perf_counter() - t0)
    return best, out


def tree_of(commit: str, into: Path) -> Path | None:
    """The repository's files at `commit` under `into`, or None where git or the commit is missing."""
    archive = subprocess.run(["git", "-C", str(ROOT), "archive", commit], capture_output=True)
    if archive.returncode:
        return None
    into.mkdir()
    with tarfile.open(fileobj=io.BytesIO(archive.stdout)) as tar:
        tar.extractall(into, filter="data")
    return into


def cli_wall_s(tree: Path) -> float:
    """One `planner simulate serve` of the paper scenario in `tree`, its table to a pipe."""
    t0 = time.perf_counter()
    subprocess.run([sys.executable, "-c", RUN_CLI], cwd=tree, check=True, capture_output=True)
    return time.perf_counter() - t0


def paper_walls() -> dict[str, float]:
    """Best wall seconds of the paper scenario per tree, the trees alternating in each round."""
    with tempfile.TemporaryDirectory() as tmp:
        trees = {"NOW": ROOT} | {k: t for k, c in TREES.items() if (t := tree_of(c, Path(tmp) / k))}
        best = dict.fromkeys(trees, float("inf"))
        for _ in range(REPEATS):
            for name, tree in trees.items():
                best[name] = min(best[name], cli_wall_s(tree))
    return best


def engine_rates() -> list[dict]:
    v = open_study(ROOT / PAPER).variant("deepseek-v2")
    inf, m = v.inference, v.model
    capacity = int(serving_memory(m, inf).kv_capacity_tokens) * inf.parallelism.dp
    base = inf.workload.model_copy(update={"requests": N})
    out = []
    for label, w in (("poisson", base.model_copy(update={"rate_per_s": 60.0})),
                     ("burst", base.model_copy(update={"arrival": "burst"}))):
        reqs = make_requests(w, None, m.max_position_embeddings)
        inf_w = inf.model_copy(update={"workload": w})
        old_s, old = best_wall_s(lambda r=reqs, i=inf_w: simulate_serving_baseline(
            r.arrival_s, r.prompt_tokens, r.output_tokens, i, step_model_for(m, i), capacity))
        new_s, new = best_wall_s(lambda r=reqs, i=inf_w, w=w: run_serving(v.name, m, i, w, requests=r))
        assert new.iterations == old["iterations"] and new.finished == old["finished"], "engines disagree"
        out.append({"arrivals": label, "iterations": new.iterations, "stepped": new.iterations_stepped,
                    "old_requests_per_wall_s": N / old_s, "new_requests_per_wall_s": N / new_s})
    return out


def main() -> None:
    walls = paper_walls()
    print(f"planner simulate serve {PAPER} (table to a pipe), best of {REPEATS}:")
    for name, s in walls.items():
        speedup = f", {walls['BEFORE'] / s:.2f}x BEFORE's speed" if "BEFORE" in walls else ""
        print(f"  {name:>6} ({TREES.get(name, 'working tree')}): {s:6.2f} s{speedup}")
    rates = engine_rates()
    print(f"{'arrivals':>8} {'iterations':>10} {'stepped':>8} {'old req/wall-s':>15} {'new req/wall-s':>15} {'new/old':>8}")
    for r in rates:
        print(f"{r['arrivals']:>8} {r['iterations']:>10} {r['stepped']:>8} {r['old_requests_per_wall_s']:>15,.0f} "
              f"{r['new_requests_per_wall_s']:>15,.0f} {r['new_requests_per_wall_s'] / r['old_requests_per_wall_s']:>7.2f}x")
    out = {"repeats": REPEATS, "trees": TREES, "paper_wall_s": walls, "engine": rates}
    (ROOT / "benchmarks" / "results" / "sim-serve.json").write_text(json.dumps(out, indent=1) + "\n")


if __name__ == "__main__":
    main()
