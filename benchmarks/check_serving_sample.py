"""`planner check-serving` over NVIDIA's silicon sample, both splits, as the README reports it: DeepSeek-V3/R1,
Kimi, Qwen3 (and Qwen3.5, refused: linear attention) and Llama-3.1 rows, every GPU, engine and mode.

    .venv/bin/python benchmarks/check_serving_sample.py
writes benchmarks/results/check-serving-{dev,test}.json (the command's JSON, which the dashboard's
Validation page reads) and check-serving.md (the per GPU x engine x mode x family tables, and the
wall time of each split on this machine).
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
MODELS = r"deepseek|kimi|qwen3|llama-3\.1"
PLANNER = Path(sys.executable).with_name("planner")


def run_split(split: str) -> tuple[dict, float]:
    t0 = time.perf_counter()
    out = subprocess.run([str(PLANNER), "check-serving", "aiconfigurator", "--split", split, "--model", MODELS,
                          "--format", "json"], capture_output=True, text=True, check=True)
    return json.loads(out.stdout), time.perf_counter() - t0


def pct(v: float | None, signed: bool = False) -> str:
    return "—" if v is None else (f"{v:+.0f}%" if signed else f"{v:.0f}%")


def table(summary: dict) -> list[str]:
    lines = ["| GPU | engine | mode | family | points | simulated | TPOT median abs err | TPOT bias | "
             "TTFT median abs err | TTFT bias |", "|---" * 10 + "|"]
    for g in [*summary["groups"], {"gpu": "**all**", "engine": "", "mode": "", "family": "", **summary}]:
        lines.append(f"| {g['gpu']} | {g['engine']} | {g['mode']} | {g['family']} | {g['points']} | {g['simulated']} | "
                     f"{pct(g['tpot_median_abs_pct_error'])} | {pct(g['tpot_median_signed_pct_error'], True)} | "
                     f"{pct(g['ttft_median_abs_pct_error'])} | {pct(g['ttft_median_signed_pct_error'], True)} |")
    return lines


def headline(result: dict) -> str:
    """Coverage over every row, and over the rows of the families the planner models (Qwen3.5 aside: its
    linear attention is refused)."""
    s = result["summary"]
    modelled = [p for p in result["points"] if p["group"]["family"] != "qwen3.5"]
    done = sum(1 for p in modelled if p["predicted"])
    return (f"{s['simulated']} of {s['points']} points simulated ({s['coverage']:.0%}); of the {len(modelled)} "
            f"rows without Qwen3.5: {done} ({done / len(modelled):.0%}).")


def main() -> None:
    lines = ["# check-serving on the silicon sample", ""]
    for split in ("dev", "test"):
        result, wall_s = run_split(split)
        (HERE / "results" / f"check-serving-{split}.json").write_text(json.dumps(result, separators=(",", ":")))
        lines += [f"## {split} split ({wall_s:.0f} s on this machine)", "", headline(result), "",
                  *table(result["summary"]), "", "Skipped:", ""]
        lines += [f"- {n}: {reason}" for reason, n in result["summary"]["skipped_reasons"].items()] + [""]
        print(f"{split}: {headline(result)} ({wall_s:.0f} s)", flush=True)
    (HERE / "results" / "check-serving.md").write_text("\n".join(lines))


if __name__ == "__main__":
    main()
