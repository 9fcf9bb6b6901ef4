"""How much check-serving's TTFT rests on what the benchmark client sent, which the silicon sample does not record.

check-serving replays a row as a closed loop with fixed prompt and output lengths, two requests a user
(check_serving.py's ASSUMPTION). With fixed lengths every user's requests stay in step: each wave of
`concurrency` prompts is prefilled together, so TTFT grows with the concurrency. A client that draws
lengths from a range (InferenceMAX's, `IMAX` in docs/sources.md: `--random-range-ratio 0.8`, ten prompts a
user) falls out of step, and each prompt is prefilled nearly alone. This benchmark replays one GPU's dev
rows (aggregated) both ways and prints the median errors of each, so the spread is a measured number.
Nothing here changes a prediction; no row is tuned to.

    .venv/bin/python benchmarks/client_lengths.py [GPU]      (default h200_sxm)
writes benchmarks/results/client-lengths.json.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import numpy as np
import yaml

from costmodel.app import check_serving as cs
from costmodel.inputs import kernel_db
from costmodel.inputs.measured_serving import MeasuredPoint, read_points

HERE = Path(__file__).resolve().parent
RANGE_RATIO = 0.8  # IMAX: --random-range-ratio 0.8 (lengths uniform in [0.8 L, L])
PROMPTS_PER_USER = 10  # IMAX: --num-prompts CONC * 10
READINGS = {"fixed lengths, 2 a user (check-serving)": None, "range 0.8, 10 a user (InferenceMAX's client)": RANGE_RATIO}


def scenario(p: MeasuredPoint, ratio: float | None) -> str:
    """check-serving's scenario for the point, with the client's lengths drawn from [ratio L, L] if ratio."""
    if ratio is None:
        return cs.scenario_text(p)
    doc = yaml.safe_load(cs.scenario_text(p))
    w = doc["variants"][0]["inference"]["workload"]
    w["prompt_tokens"] = {"dist": "uniform", "low": int(p.isl * ratio), "high": p.isl}
    w["output_tokens"] = {"dist": "uniform", "low": int(p.osl * ratio), "high": p.osl}
    w["requests"] = w["saturation_requests"] = PROMPTS_PER_USER * p.concurrency
    return yaml.safe_dump(doc, sort_keys=False)


def predict(p: MeasuredPoint, ratio: float | None) -> tuple[float, float] | None:
    """(TTFT ms, TPOT ms) predicted under one reading, or None where check-serving skips the point."""
    r = cs.check_point(p, lambda q: scenario(q, ratio))
    if r.skipped or not r.predicted["tpot_ms"]:
        return None
    return r.predicted["ttft_ms"], r.predicted["tpot_ms"]


def errors_pct(rows: list[tuple[MeasuredPoint, tuple[float, float]]]) -> dict:
    """Median |error| and signed median of TTFT and TPOT, in %."""
    ttft = np.array([pred[0] / p.ttft_ms - 1 for p, pred in rows]) * 100
    tpot = np.array([pred[1] / p.tpot_ms - 1 for p, pred in rows]) * 100
    return {"points": len(rows), "ttft_median_abs_pct": float(np.median(np.abs(ttft))),
            "ttft_bias_pct": float(np.median(ttft)), "tpot_median_abs_pct": float(np.median(np.abs(tpot))),
            "tpot_bias_pct": float(np.median(tpot))}


def main() -> None:
    gpu = sys.argv[1] if len(sys.argv) > 1 else "h200_sxm"
    points = [p for p in read_points(kernel_db.systems_dir() / "silicon_sample.csv")
              if p.split == "dev" and p.system == gpu and p.mode == "agg" and p.concurrency
              and cs.family_of(p.model_path) in ("deepseek", "kimi", "qwen3", "llama-3.1")]
    t0, out = time.perf_counter(), {"gpu": gpu, "split": "dev", "mode": "agg", "readings": {}}
    preds = {name: {p.id: predict(p, ratio) for p in points} for name, ratio in READINGS.items()}
    both = [p for p in points if all(preds[name][p.id] for name in READINGS)]  # the same points each way
    for name in READINGS:
        out["readings"][name] = errors_pct([(p, preds[name][p.id]) for p in both])
        print(f"{name:45s}", json.dumps(out["readings"][name]))
    out["seconds"] = time.perf_counter() - t0
    (HERE / "results" / "client-lengths.json").write_text(json.dumps(out, indent=1) + "\n")


if __name__ == "__main__":
    main()
