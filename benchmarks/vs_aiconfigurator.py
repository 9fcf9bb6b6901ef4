"""moe-planner's `check-serving` beside AIConfigurator's own estimator on the same measured dev points.

AIConfigurator (`aiconfigurator==0.12.0`, NVIDIA's, Apache-2.0) goes into a side folder,
benchmarks/.aiconfigurator/ (a venv of its own: the project's environment never holds it), on first use.
Its `cli estimate --estimate-mode agg` runs offline from the same kernel database; it is calibrated on
this very sample, so its errors here are in-sample, the planner's are not (no constant of the planner
comes from a row of it).

The points: the dev split's aggregated rows of DeepSeek-V3/R1, Kimi, Qwen3 and Llama-3.1 on H100, H200
and B200, ordered by sha1(id) (not by either tool's error) and the first --points of them taken. Each
tool's coverage is the points it returned numbers for; medians are over the points both covered.

    .venv/bin/python benchmarks/vs_aiconfigurator.py [--points 60]
writes benchmarks/results/vs-aiconfigurator.{json,md}.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import re
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from costmodel.app.check_serving import check_point, config_path, family_of, read_input
from costmodel.inputs.measured_serving import MeasuredPoint

HERE = Path(__file__).resolve().parent
SIDE = HERE / ".aiconfigurator"  # AIConfigurator's own venv (git-ignored)
AIC_VERSION = "0.12.0"
GPUS = ("h100_sxm", "h200_sxm", "b200_sxm")
TIMEOUT_S = 180


def aic_binary() -> Path:
    """AIConfigurator's CLI in the side folder, installed there on first use."""
    exe = SIDE / "bin" / "aiconfigurator"
    if not exe.exists():
        print(f"installing aiconfigurator=={AIC_VERSION} into {SIDE} (once)", flush=True)
        subprocess.run([sys.executable, "-m", "venv", str(SIDE)], check=True)
        subprocess.run([str(SIDE / "bin" / "pip"), "install", "-q", f"aiconfigurator=={AIC_VERSION}"], check=True)
    return exe


def chosen_points(n: int) -> list[MeasuredPoint]:
    """The first n dev aggregated points of the four families on H100/H200/B200, by sha1(id)."""
    pts = [p for p in read_input(Path("aiconfigurator")) if p.split == "dev" and p.mode == "agg"
           and p.system in GPUS and family_of(p.model_path) != "other" and p.layout is not None and p.concurrency]
    return sorted(pts, key=lambda p: hashlib.sha1(p.id.encode()).hexdigest())[:n]


def aic_model(model_path: str) -> str:
    """The checkpoint as AIConfigurator names it: ORG/NAME of the shipped config both tools read (it
    refuses some spellings the sample uses, e.g. meta-llama/Llama-3.1-8B-Instruct for Meta-Llama-3.1-8B)."""
    return config_path(model_path).name.removesuffix("_config.json").replace("--", "/", 1)


def aic_args(p: MeasuredPoint) -> list[str]:
    """The point as AIConfigurator's estimate arguments (its batch size is per attention-DP rank)."""
    lay = p.layout
    args = ["cli", "estimate", "--model-path", aic_model(p.model_path), "--system", p.system, "--backend", p.engine,
            "--estimate-mode", "agg", "--isl", str(p.isl), "--osl", str(p.osl),
            "--batch-size", str(-(-p.concurrency // lay.attention_dp)), "--tp-size", str(lay.tp),
            "--pp-size", str(lay.pp), "--attention-dp-size", str(lay.attention_dp)]
    if lay.moe_tp and lay.moe_ep:
        args += ["--moe-tp-size", str(lay.moe_tp), "--moe-ep-size", str(lay.moe_ep)]
    quant = {"--gemm-quant-mode": p.gemm_quant, "--moe-quant-mode": p.moe_quant}
    return args + [x for flag, mode in quant.items() if mode for x in (flag, mode)]


def run_aic(exe: Path, p: MeasuredPoint) -> tuple[dict | None, float, str]:
    """(TTFT and TPOT in ms, or None; seconds; the failure's last line)."""
    t0 = time.perf_counter()
    try:
        out = subprocess.run([str(exe), *aic_args(p)], capture_output=True, text=True, timeout=TIMEOUT_S)
    except subprocess.TimeoutExpired:
        return None, time.perf_counter() - t0, "timeout"
    seconds = time.perf_counter() - t0
    found = {k: re.search(rf"{k.upper()}:\s+([\d.]+) ms", out.stdout) for k in ("ttft", "tpot")}
    if not all(found.values()):
        lines = (out.stderr or out.stdout).strip().splitlines()
        return None, seconds, lines[-1][:200] if lines else f"exit {out.returncode}"
    return {f"{k}_ms": float(m.group(1)) for k, m in found.items()}, seconds, ""


def run_ours(p: MeasuredPoint) -> tuple[dict | None, float, str]:
    t0 = time.perf_counter()
    r = check_point(p)
    return r.predicted, time.perf_counter() - t0, r.skipped or ""


def errors(rows: list[dict], tool: str, metric: str) -> list[float]:
    both = [r for r in rows if r["planner"] and r["aiconfigurator"]]
    return [100 * (r[tool][metric] - r["measured"][metric]) / r["measured"][metric] for r in both]


def summary(rows: list[dict]) -> dict:
    out = {"points": len(rows), "both_covered": sum(1 for r in rows if r["planner"] and r["aiconfigurator"])}
    for tool in ("planner", "aiconfigurator"):
        out[tool] = {"covered": sum(1 for r in rows if r[tool]),
                     "seconds_per_point": float(np.mean([r[f"{tool}_s"] for r in rows]))}
        for metric in ("ttft_ms", "tpot_ms"):
            e = errors(rows, tool, metric)
            out[tool] |= {f"{metric[:4]}_median_abs_pct_error": float(np.median(np.abs(e))) if e else None,
                          f"{metric[:4]}_median_signed_pct_error": float(np.median(e)) if e else None}
    return out


def markdown(s: dict) -> str:
    head = "| tool | covered | TPOT median abs err | TPOT bias | TTFT median abs err | TTFT bias | s / point |"
    lines = [f"{s['points']} dev points (aggregated; DeepSeek, Kimi, Qwen3, Llama-3.1 on H100/H200/B200); errors "
             f"over the {s['both_covered']} both tools covered. AIConfigurator is calibrated on this sample: its "
             "errors are in-sample; the planner's are not.", "", head, "|---" * 7 + "|"]
    for tool in ("planner", "aiconfigurator"):
        t = s[tool]
        fmt = lambda v, signed=False: "n/a" if v is None else (f"{v:+.1f}%" if signed else f"{v:.1f}%")  # noqa: E731
        lines.append(f"| {tool} | {t['covered']} | {fmt(t['tpot_median_abs_pct_error'])} | "
                     f"{fmt(t['tpot_median_signed_pct_error'], True)} | {fmt(t['ttft_median_abs_pct_error'])} | "
                     f"{fmt(t['ttft_median_signed_pct_error'], True)} | {t['seconds_per_point']:.2f} |")
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--points", type=int, default=60)
    args = parser.parse_args()
    exe = aic_binary()
    rows = []
    for i, p in enumerate(chosen_points(args.points), start=1):
        ours, ours_s, why = run_ours(p)
        theirs, theirs_s, their_why = run_aic(exe, p)
        rows.append({"id": p.id, "measured": {"ttft_ms": p.ttft_ms, "tpot_ms": p.tpot_ms}, "planner": ours,
                     "planner_s": ours_s, "planner_skipped": why, "aiconfigurator": theirs,
                     "aiconfigurator_s": theirs_s, "aiconfigurator_failed": their_why})
        print(f"[{i}/{args.points}] {p.id}: planner {'ok' if ours else why[:60]}, "
              f"aiconfigurator {'ok' if theirs else their_why[:60]}", flush=True)
    s = summary(rows)
    (HERE / "results" / "vs-aiconfigurator.json").write_text(json.dumps({"summary": s, "points": rows}, indent=1))
    (HERE / "results" / "vs-aiconfigurator.md").write_text(markdown(s))
    print(markdown(s))


if __name__ == "__main__":
    main()
