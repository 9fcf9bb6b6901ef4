"""Wall time of `planner profile` over the default CPU grid (target: under 4 minutes on 2 cores), and the
held-out error of the fresh profile (targets: median <= 7%, p90 <= 25% inside the curves' sizes).

Writes benchmarks/results/profiler-cpu.json with the machine's fingerprint, and the profile itself beside
it (profiler-cpu.csv).
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from costmodel.inputs.profiles import load_profile  # noqa: E402
from costmodel.timing.operators import held_out_errors  # noqa: E402


def main() -> None:
    results = ROOT / "benchmarks" / "results"
    results.mkdir(exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "cpu.csv"
        t0 = time.perf_counter()
        subprocess.run([sys.executable, "-m", "planner.cli", "profile", "--device", "cpu", "--out", str(out)],
                       cwd=ROOT, check=True, stdout=subprocess.DEVNULL)
        wall_s = time.perf_counter() - t0
        profile = load_profile(out)
        errors = held_out_errors(profile)
        (results / "profiler-cpu.csv").write_text(out.read_text())
    m = errors["measured"]
    result = {"wall_s": wall_s, "points": len(profile.points) + profile.failed,
              "machine": {k: profile.header.get(k) for k in ("device_name", "logical_cpus", "torch", "fingerprint_id")},
              "held_out": {k: m[k] for k in ("median_abs_pct_error", "p90_abs_pct_error", "inside_range", "beyond_range")}}
    (results / "profiler-cpu.json").write_text(json.dumps(result, indent=2) + "\n")
    inside = m["inside_range"]
    print(f"default CPU grid: {result['points']} points in {wall_s:.0f} s on {result['machine']['device_name']}; "
          f"held-out median {m['median_abs_pct_error']:.1f}%, p90 {m['p90_abs_pct_error']:.1f}% "
          f"(inside the curves' sizes: {inside['median_abs_pct_error']:.1f}% / {inside['p90_abs_pct_error']:.1f}%)")


if __name__ == "__main__":
    main()
