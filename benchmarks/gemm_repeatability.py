"""How reproducible one row of the kernel database's GEMM table is, against how well the timing model
predicts a held-out row: the floor under `check-timing`'s GEMM error.

Every engine's folder of the database holds its own BF16 GEMM table, and all three time the same call:
torch's linear on cuBLAS (kernel_source `sglang_torch_linear`, `torch.nn.functional.linear`, `torch_flow`).
The same (m, n, k) measured in two engines' collections on one GPU model therefore differs by measurement
alone (another node, another day, another torch and cuBLAS build). Per GPU and pair of engines: the
median |ratio - 1| of the rows both measured, after the pair's median ratio (a systematic offset
between collections) is divided out, by m band as check-timing's GEMM rows spread.

Beside it, check-timing's held-out error (timing.operators.held_out_errors: a seeded fifth of an
imported DeepSeek-V3 profile held out) of the same GPU's SGLang GEMM rows, per dtype: BF16 (the kernel
the pairs measure), FP8 per-tensor and block-scaled FP8 (no twin in another engine's folder: vLLM and
TensorRT-LLM run other FP8 kernels).

Writes benchmarks/results/gemm-repeatability.json and prints a table.
"""

from __future__ import annotations

import itertools
import json
import statistics
import sys
import tempfile
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from costmodel.app.kernel_import import import_profile, render_csv  # noqa: E402
from costmodel.inputs import kernel_db  # noqa: E402
from costmodel.inputs.loader import model_on_command_line  # noqa: E402
from costmodel.inputs.profiles import load_profile  # noqa: E402
from costmodel.timing.operators import MeasuredBackend, _split  # noqa: E402

OUT = ROOT / "benchmarks" / "results" / "gemm-repeatability.json"
GPUS = ("h100_sxm", "h200_sxm", "b200_sxm")
ENGINES = ("sglang", "vllm", "trtllm")
M_BANDS = ((1, 16), (16, 128), (128, 1024), (1024, 8193), (8193, 10**9))


def bf16_rows(gpu: str, engine: str) -> dict[tuple[int, int, int], float]:
    """(m, n, k) -> latency of the engine's current BF16 GEMM table on `gpu`."""
    table = kernel_db.find_table(gpu, engine, kernel_db.resolve(gpu, engine), "gemm")
    cols = table.read()
    return {(m, n, k): t for m, n, k, dt, t in zip(cols["m"], cols["n"], cols["k"], cols["gemm_dtype"],
                                                      cols["latency"], strict=True) if dt == "bfloat16"}


def band_medians(pairs: list[tuple[int, float]]) -> dict[str, float | None]:
    """Median of the |deviation| % per m band, from (m, deviation %) pairs."""
    out = {}
    for lo, hi in M_BANDS:
        inside = [d for m, d in pairs if lo <= m < hi]
        out[f"m {lo}-{hi - 1}"] = statistics.median(inside) if inside else None
    return out


def twin_scatter(a: dict, b: dict) -> dict:
    """Median |ratio / median ratio - 1| (%) of the rows both tables hold, in all and per m band."""
    common = sorted(set(a) & set(b))
    log_ratio = np.log([b[key] / a[key] for key in common])
    offset = float(np.median(log_ratio))
    dev = (np.exp(np.abs(log_ratio - offset)) - 1) * 100
    return {"rows": len(common), "offset_pct": (np.exp(offset) - 1) * 100,
            "median_abs_pct": float(np.median(dev)), "by_m": band_medians([(k[0], float(d)) for k, d in zip(common, dev, strict=True)])}


def held_out_by_dtype(gpu: str) -> dict:
    """check-timing's split of the imported DeepSeek-V3 SGLang profile on `gpu`: the held-out GEMM rows'
    median |error| % per dtype, inside their curves' sizes (as check-timing's GEMM line)."""
    imported = import_profile(gpu, "sglang", "current", model_on_command_line("deepseek-v3"))
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "p.csv"
        path.write_text(render_csv(imported))
        profile = load_profile(path)
    train, test = _split(profile, 0.2, 0)
    backend = MeasuredBackend(profile, train)
    errors: dict[str, list[tuple[int, float]]] = {}
    for p in test:
        if p.op == "gemm" and backend.covers(p.op, p.shape, p.pass_):
            err = abs(backend.time(p.op, p.shape, p.pass_) / p.median_s - 1) * 100
            errors.setdefault(p.shape["dtype"], []).append((p.shape["m"], err))
    return {dt: {"points": len(e), "median_abs_pct": statistics.median(x for _, x in e), "by_m": band_medians(e)}
            for dt, e in sorted(errors.items())}


def main() -> None:
    result = {"twins": {}, "held_out": {}}
    for gpu in GPUS:
        rows = {e: bf16_rows(gpu, e) for e in ENGINES}
        result["twins"][gpu] = {f"{a} vs {b}": twin_scatter(rows[a], rows[b]) for a, b in itertools.combinations(ENGINES, 2)}
        result["held_out"][gpu] = held_out_by_dtype(gpu)
    OUT.write_text(json.dumps(result, indent=1) + "\n")
    for gpu in GPUS:
        for pair, s in result["twins"][gpu].items():
            print(f"{gpu:9} BF16 {pair:17} {s['rows']:6} rows  offset {s['offset_pct']:+5.1f}%  "
                  f"scatter {s['median_abs_pct']:4.1f}%")
        for dt, s in result["held_out"][gpu].items():
            print(f"{gpu:9} held-out {dt:10} {s['points']:5} rows  median |error| {s['median_abs_pct']:4.1f}%")
    print(f"wrote {OUT.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
