"""How much check-serving's TTFT rests on the benchmark client it replays, which the silicon sample's rows
do not record themselves.

check-serving replays a sample row as InferenceX's client drove it (`INFX`, `AISIM` in docs/sources.md;
measured_serving.INFERENCEX_CLIENT): lengths uniform in [int(0.8 L), L], ten prompts a user, and the means
of TTFT and TPOT. With fixed lengths instead, every user's requests stay in step: each wave of
`concurrency` prompts is prefilled together, so TTFT grows with the concurrency. This benchmark replays
one GPU's aggregated InferenceX dev rows under both clients (the fixed one with two prompts a user and p50s, the
reading check-serving used before it had the source) and prints the median errors of each, so the
spread is a measured number. No row is tuned to.

    .venv/bin/python benchmarks/client_lengths.py [GPU]      (default h200_sxm)
writes benchmarks/results/client-lengths.json.
"""

from __future__ import annotations

import dataclasses
import json
import sys
import time
from pathlib import Path

import numpy as np

from costmodel.app import check_serving as cs
from costmodel.inputs import kernel_db
from costmodel.inputs.measured_serving import INFERENCEX_CLIENT, Client, MeasuredPoint, read_points

HERE = Path(__file__).resolve().parent
READINGS = {"InferenceX's client: range 0.8, 10 a user, means (check-serving)": INFERENCEX_CLIENT,
            "fixed lengths, 2 a user, p50s (the earlier reading)": Client(1.0, 2, "median")}


def predict(p: MeasuredPoint, client: Client) -> tuple[float, float] | None:
    """(TTFT ms, TPOT ms) predicted with the point driven by `client`, or None where check-serving skips it."""
    r = cs.check_point(dataclasses.replace(p, client=client))
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
              and p.client == INFERENCEX_CLIENT  # InferenceX's rows: the others' client is not recorded
              and cs.family_of(p.model_path) in ("deepseek", "kimi", "qwen3", "llama-3.1")]
    t0, out = time.perf_counter(), {"gpu": gpu, "split": "dev", "mode": "agg", "readings": {}}
    preds = {name: {p.id: predict(p, client) for p in points} for name, client in READINGS.items()}
    both = [p for p in points if all(preds[name][p.id] for name in READINGS)]  # the same points each way
    for name in READINGS:
        out["readings"][name] = errors_pct([(p, preds[name][p.id]) for p in both])
        print(f"{name:45s}", json.dumps(out["readings"][name]))
    out["seconds"] = time.perf_counter() - t0
    (HERE / "results" / "client-lengths.json").write_text(json.dumps(out, indent=1) + "\n")


if __name__ == "__main__":
    main()
