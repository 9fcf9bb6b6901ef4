"""`planner validate-sim`: serve requests with the real kernels/ decoder on this machine, then predict
the same run with the serving simulator fed by this machine's profile, and report the errors.

The model is DeepSeek-V2-shaped at DeepSeek-V2-Lite's real layer widths (those the CPU profile
measured) with fewer layers and a smaller vocabulary so that it fits two cores: 1 dense layer + 2 MoE
layers (64 experts, top-6, 2 shared), absorbed-MLA cache, FP32. All requests are queued at t = 0; the
loop and the simulator admit whole prompts under the same token budget and row limit.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from pathlib import Path

import numpy as np

from costmodel.app.serving import run_serving
from costmodel.counts.opcounts import SIZE_KEYS, structure_key
from costmodel.inputs.loader import find_named, load_spec
from costmodel.inputs.profiles import load_profile
from costmodel.inputs.requests import RequestArrays
from costmodel.inputs.specs import (
    ClusterSpec,
    GPUSpec,
    InferenceSpec,
    LengthDist,
    ModelSpec,
    Parallelism,
    WorkloadSpec,
)
from costmodel.timing.operators import Device, Timer
from costmodel.timing.serve_costs import StepModel
from costmodel.timing.uncertainty import bands, profile_errors
from kernels.fingerprint import fingerprint_id, foreign
from kernels.fingerprint import here as machine_here

DEFAULTS = {"requests": 24, "prompt_low": 256, "prompt_high": 512, "output_low": 16, "output_high": 48,
            "max_rows": 16, "max_batch_tokens": 1040, "layers": 3, "vocab": 2048, "seed": 0}


CACHE_DIR = Path("profiles/cache")  # profiles measured by validate-sim itself, one per machine (git-ignored)
CURVE_POINTS = 5  # sizes measured along each operator curve the run uses, at and above EXACT_BELOW
EXACT_BELOW = 32  # every size under this that the run asks is measured: at a few rows, kernels change
# algorithm with each row count (here FP32 SwiGLU 2048x10944 takes 13, 29, 46, 40 ms at 1, 2, 3, 4 rows:
# one GEMV, then one per row, then a blocked GEMM), which no interpolation between spread sizes follows
NOMINAL_CPU = {"peak_flops_per_s": 1e11, "peak_bytes_per_s": 2e10}  # only to order the queries of a dry run


def cpu_gpu_spec(peak_flops_per_s: float, peak_bytes_per_s: float, source: str) -> GPUSpec:
    """This machine as a 'GPU' file: its peaks are the ones measured into the profile header."""
    measured = {"value": 1.0, "source": source}
    return GPUSpec.model_validate({
        "name": "cpu-local",
        "peak_flops_per_s": {"bf16": {"value": peak_flops_per_s, "source": source}},
        "hbm_bytes": {"value": 24e9, "source": "this machine: 24 GiB"},
        "hbm_bw_bytes_per_s": {"value": peak_bytes_per_s, "source": source},
        "nvlink_bw_bytes_per_s": {"value": 1e12, "source": "unused: one device"},
        "nic_bw_bytes_per_s": {"value": 1e12, "source": "unused: one device"},
        "price_usd_per_hour": measured,
    })


REAL_REPEATS = 2  # the real run is repeated; each iteration keeps its least time (see real_run)


def real_run(spec, prompts: np.ndarray, outputs: np.ndarray, o: dict):
    """Serve the requests with the kernels/ decoder here (after a two-request warm-up), REAL_REPEATS
    times. The schedule is the same each time, so iteration i is the same work in every repeat; it keeps
    its least time, as the profile keeps each shape's least block: on a shared machine interference only
    adds time, so both sides then estimate the same uninterfered time."""
    import torch  # the real run needs the kernels; costmodel never imports torch

    from kernels.config import ModelArgs
    from kernels.model import Decoder
    from kernels.serving import serve

    max_len = int((prompts + outputs).max()) + 1
    torch.manual_seed(o["seed"])
    args = ModelArgs.from_hf(spec.model_dump(), max_seq_len=max_len + 8)
    model = Decoder(args, mla_mode="absorbed").eval()
    token_ids = [torch.randint(0, o["vocab"], (int(p),)) for p in prompts]
    serve(model, token_ids[:2], [2, 2], max_rows=2, max_batch_tokens=o["max_batch_tokens"], max_len=max_len)
    runs = [serve(model, token_ids, [int(x) for x in outputs], max_rows=o["max_rows"],
                  max_batch_tokens=o["max_batch_tokens"], max_len=max_len) for _ in range(REAL_REPEATS)]
    best = min(runs, key=lambda r: r.total_s)
    if all(_schedule(r) == _schedule(best) for r in runs):  # it is, the loop being deterministic; else keep best's
        for i, it in enumerate(best.iterations):
            it.time_s = min(r.iterations[i].time_s for r in runs)
    return best


def _schedule(run) -> list[tuple]:
    return [(tuple(it.prefill_tokens), it.decode_batch, it.decode_ctx_sum) for it in run.iterations]


def cpu_instance(gpu: GPUSpec, o: dict) -> InferenceSpec:
    """The loop's scheduling limits as an instance of this machine: whole prompts, one device."""
    return InferenceSpec(cluster=ClusterSpec(gpu=gpu, gpus_per_node=1, nodes=1),
                         parallelism=Parallelism(zero_stage=0), weight_bits=32, kv_bits=32,
                         max_batch_tokens=o["max_batch_tokens"], max_running=o["max_rows"], chunked_prefill=False,
                         block_tokens=16)


def _per_kind(real, err: np.ndarray, measured: np.ndarray, predicted: np.ndarray) -> dict:
    kinds = {"decode only": [i for i, it in enumerate(real.iterations) if not it.prefill_tokens],
             "with prefill": [i for i, it in enumerate(real.iterations) if it.prefill_tokens]}
    return {k: {"iterations": len(ix), "median_abs_pct_error": float(np.median(err[ix])) if ix else None,
                "measured_mean_s": float(measured[ix].mean()) if ix else None,
                "predicted_mean_s": float(predicted[ix].mean()) if ix else None} for k, ix in kinds.items()}


def run_model(o: dict) -> ModelSpec:
    """DeepSeek-V2-Lite's layer widths, with the run's fewer layers and smaller vocabulary."""
    lite = load_spec("model", find_named("model", "deepseek-v2-lite", Path.cwd() / "x"))
    return lite.model_copy(update={"name": "v2-shaped-cpu", "num_hidden_layers": o["layers"], "vocab_size": o["vocab"]})


def run_requests(o: dict) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(o["seed"])
    n = o["requests"]
    return rng.integers(o["prompt_low"], o["prompt_high"] + 1, size=n), rng.integers(o["output_low"], o["output_high"] + 1, size=n)


class RecordingTimer(Timer):
    """A roofline timer that notes every (op, pass, shape) asked of it."""

    def __init__(self, device: Device):
        super().__init__(device)  # no profile: the sourced roofline
        self.asked: set[tuple] = set()

    def time(self, op: str, shape: dict, pass_: str = "fwd") -> float:
        self.asked.add((op, pass_, tuple(sorted(shape.items()))))
        return super().time(op, shape, pass_)


def grid_for_run(o: dict) -> list[tuple[str, str, dict]]:
    """The shapes this run's simulation will ask for: a dry run of the simulator on a nominal device
    records them; each curve (opcounts.structure_key) gets every size asked under EXACT_BELOW and
    CURVE_POINTS sizes spread in log over those asked above, and decode attention the powers-of-two
    batch sizes around the ones asked."""
    rec = RecordingTimer(Device("nominal", NOMINAL_CPU["peak_flops_per_s"], NOMINAL_CPU["peak_bytes_per_s"], 4))
    spec, (prompts, outputs) = run_model(o), run_requests(o)
    inf = cpu_instance(cpu_gpu_spec(NOMINAL_CPU["peak_flops_per_s"], NOMINAL_CPU["peak_bytes_per_s"], "nominal"), o)
    steps = StepModel(spec, inf, rec, rec)
    for p in np.unique(prompts):  # every prompt prefilled alone, besides whatever batches the dry run forms
        steps.time([(int(p), int(p))], 0, 0)
    run_serving("dry-run", spec, inf, _burst(o["requests"]), step_model=steps, kv_capacity_tokens=10**7,
                     requests=RequestArrays(np.zeros(len(prompts)), prompts, outputs))
    curves: dict[tuple, list[dict]] = {}
    for op, pass_, items in rec.asked:
        shape = dict(items)
        key = (op, pass_, structure_key(op, {**shape, "b": 0} if "b" in shape else shape))
        curves.setdefault(key, []).append(shape)
    return [pt for (op, pass_, _), shapes in sorted(curves.items(), key=str) for pt in _curve_points(op, pass_, shapes)]


def _curve_points(op: str, pass_: str, shapes: list[dict]) -> list[tuple[str, str, dict]]:
    size_key = SIZE_KEYS[op][-1]  # m, tokens, or ctx (attention's q follows ctx in prefill, is 1 in decode)
    asked = sorted({s[size_key] for s in shapes})
    sizes = [v for v in asked if v < EXACT_BELOW] + _spread([v for v in asked if v >= EXACT_BELOW])
    batches = _spread_batches(sorted({s["b"] for s in shapes})) if "b" in shapes[0] else [None]
    base = shapes[0]
    out = []
    for b in batches:
        for size in sizes:
            shape = {**base, size_key: size, **({"b": b} if b is not None else {})}
            if op in ("mla", "attn") and base["q"] != 1:
                shape["q"] = size
            out.append((op, pass_, shape))
    return out


def _spread(values: list[int]) -> list[int]:
    """CURVE_POINTS of `values`, nearest to log-spaced targets between the least and the greatest."""
    if len(values) <= CURVE_POINTS:
        return values
    lo, hi = math.log(values[0]), math.log(values[-1])
    targets = [math.exp(lo + (hi - lo) * i / (CURVE_POINTS - 1)) for i in range(CURVE_POINTS)]
    return sorted({min(values, key=lambda v, t=t: abs(math.log(v) - math.log(t))) for t in targets})


def _spread_batches(batches: list[int]) -> list[int]:
    """Powers of two from the least batch asked up to the first at or above the greatest."""
    out, b = [], 1
    while b < batches[-1]:
        if b * 2 > batches[0]:
            out.append(b)
        b *= 2
    return sorted(set(out) | {b, batches[0]})


def _burst(n: int) -> WorkloadSpec:
    return WorkloadSpec(prompt_tokens=LengthDist(value=1), output_tokens=LengthDist(value=1), arrival="burst", requests=n)


def cached_profile_path() -> Path:
    """Where validate-sim keeps its own profile of this machine: the name carries the fingerprint."""
    return CACHE_DIR / f"cpu-{fingerprint_id(machine_here('cpu', 'float32'))}-validate-sim.csv"


PROFILE_MIN_TIME_S = 0.3  # per point, as `planner profile` measures by default (kernels/profiler.py)
PROFILE_REMEASURE_S = 40.0  # in all, for re-timing points whose rounds disagree (kernels/profiler.py)


def profile_for_run(path: Path, o: dict, progress: Callable[[int, int], None]) -> int:
    """Measure the run's grid on this machine into `path`, the points it lacks only (an interrupted
    or smaller earlier run is resumed); returns how many were measured."""
    import torch  # kernels only when measuring: the rest of the CLI never loads torch

    from kernels.profiler import profile

    points, measured = grid_for_run(o), 0
    rows = profile(points, path, device="cpu", dtype=torch.float32, resume=path.exists(),
                   extra_header={"model": "deepseek-v2-lite", "grid": "validate-sim"},
                   min_time_s=PROFILE_MIN_TIME_S, remeasure_budget_s=PROFILE_REMEASURE_S)
    for measured, _ in enumerate(rows, start=1):
        progress(measured, len(points))
    return measured


def foreign_profile(header: dict) -> str | None:
    """None when the profile was measured on this machine, else one line saying how it differs."""
    if header.get("source"):  # imported (`planner import-profile`): no machine of ours measured it
        return (f"imported from {header['source']}: {header.get('gpu', '?')}, {header.get('engine', '?')} "
                f"{header.get('engine_version', '?')}; measured there, not on this machine")
    if header.get("device") == "cuda" and not cuda_visible():
        return f"measured on CUDA device {header.get('device_name', '?')}; this machine has none"
    return foreign(header, machine_here(header.get("device", "cpu"), header.get("dtype", "float32")))


def cuda_visible() -> bool:
    import torch  # kernels' world: only asked for a CUDA profile

    return torch.cuda.is_available()


def run(profile_path: Path, opts: dict | None = None) -> dict:
    """The real run and its simulation from the profile, compared per iteration and end to end."""
    o = {**DEFAULTS, **(opts or {})}
    profile = load_profile(profile_path)
    spec, (prompts, outputs) = run_model(o), run_requests(o)
    n = o["requests"]
    real = real_run(spec, prompts, outputs, o)
    timer = Timer(Device.from_profile(profile), profile)
    inf = cpu_instance(cpu_gpu_spec(profile.peak_flops_per_s, profile.peak_bytes_per_s, f"measured: {profile.path}"), o)
    steps = StepModel(spec, inf, timer, timer)
    predicted = np.array([steps.time([(p, p) for p in it.prefill_tokens], it.decode_batch, it.decode_ctx_sum)
                          for it in real.iterations])
    measured = np.array([it.time_s for it in real.iterations])
    err = np.abs(predicted / measured - 1) * 100
    sim = run_serving("v2-shaped-cpu", spec, inf, _burst(n), step_model=steps, kv_capacity_tokens=10**7,
                           requests=RequestArrays(np.zeros(n), prompts, outputs))
    real_tok_s = real.generated_tokens / real.total_s

    def draw(scale: dict[str, float]) -> dict[str, float]:  # the same simulation, the profile's errors drawn
        t = Timer(Device.from_profile(profile), profile, scale)
        r = run_serving("v2-shaped-cpu", spec, inf, _burst(n), step_model=StepModel(spec, inf, t, t),
                             kv_capacity_tokens=10**7, requests=RequestArrays(np.zeros(n), prompts, outputs))
        return {"sim_generation_tok_s": r.generation_throughput_tok_s, "sim_total_s": r.sim_time_s}
    sim_bands = bands(draw, profile_errors(profile))
    sim_tok_s = sim.generation_throughput_tok_s
    return {
        "model": spec.name, "layers": o["layers"], "profile": str(profile_path), "requests": n,
        "machine": {k: profile.header.get(k) for k in ("device_name", "logical_cpus", "torch", "dtype", "fingerprint_id")},
        "profile_foreign": foreign_profile(profile.header),
        "iterations": len(real.iterations), "real_total_s": real.total_s, "sim_total_s": sim.sim_time_s,
        "real_generation_tok_s": real_tok_s, "sim_generation_tok_s": sim_tok_s,
        "iteration_median_abs_pct_error": float(np.median(err)),
        "iteration_p90_abs_pct_error": float(np.percentile(err, 90)),
        "throughput_abs_pct_error": float(abs(sim_tok_s / real_tok_s - 1) * 100),
        "end_to_end_time_abs_pct_error": float(abs(sim.sim_time_s / real.total_s - 1) * 100),
        "bands": sim_bands,  # p10/p50/p90 over the profile's held-out per-operator errors (uncertainty.py)
        "real_throughput_within_p10_p90": bool(sim_bands["sim_generation_tok_s"]["p10"] <= real_tok_s
                                               <= sim_bands["sim_generation_tok_s"]["p90"]),
        "per_kind": _per_kind(real, err, measured, predicted),
        "per_iteration": [{"prefill_tokens": it.prefill_tokens, "decode_batch": it.decode_batch,
                           "decode_ctx_sum": it.decode_ctx_sum, "measured_s": it.time_s, "predicted_s": float(p)}
                          for it, p in zip(real.iterations, predicted, strict=True)],
        "settings": o,
    }
