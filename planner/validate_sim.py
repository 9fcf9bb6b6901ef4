"""`planner validate-sim`: serve requests with the real kernels/ decoder on this machine, then predict
the same run with the serving simulator fed by this machine's profile, and report the errors.

The model is DeepSeek-V2-shaped at DeepSeek-V2-Lite's real layer widths (those the CPU profile
measured) with fewer layers and a smaller vocabulary so that it fits two cores: 1 dense layer + 2 MoE
layers (64 experts, top-6, 2 shared), absorbed-MLA cache, FP32. All requests are queued at t = 0; the
loop and the simulator admit whole prompts under the same token budget and row limit.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from costmodel.loader import find_named, load_spec
from costmodel.profiles import load_profile
from costmodel.serve_costs import StepModel
from costmodel.serve_sim import RequestArrays, simulate_serving
from costmodel.specs import ClusterSpec, GPUSpec, InferenceSpec, LengthDist, Parallelism, WorkloadSpec
from costmodel.timing import Device, Timer

DEFAULTS = {"requests": 24, "prompt_low": 256, "prompt_high": 512, "output_low": 16, "output_high": 48,
            "max_rows": 16, "max_batch_tokens": 1040, "layers": 3, "vocab": 2048, "seed": 0}


def cpu_gpu_spec(profile) -> GPUSpec:
    """This machine as a 'GPU' file: its peaks are the ones measured into the profile header."""
    measured = {"value": 1.0, "source": f"measured: {profile.path} header"}
    return GPUSpec.model_validate({
        "name": "cpu-local",
        "peak_flops_per_s": {"bf16": {"value": profile.peak_flops_per_s, "source": measured["source"]}},
        "hbm_bytes": {"value": 24e9, "source": "this machine: 24 GiB"},
        "hbm_bw_bytes_per_s": {"value": profile.peak_bytes_per_s, "source": measured["source"]},
        "nvlink_bw_bytes_per_s": {"value": 1e12, "source": "unused: one device"},
        "nic_bw_bytes_per_s": {"value": 1e12, "source": "unused: one device"},
        "price_usd_per_hour": measured,
    })


def real_run(spec, prompts: np.ndarray, outputs: np.ndarray, o: dict):
    """Serve the requests with the kernels/ decoder here (after a two-request warm-up)."""
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
    return serve(model, token_ids, [int(x) for x in outputs], max_rows=o["max_rows"],
                 max_batch_tokens=o["max_batch_tokens"], max_len=max_len)


def cpu_instance(profile, o: dict) -> InferenceSpec:
    """The loop's scheduling limits as an instance of this machine: whole prompts, one device."""
    return InferenceSpec(cluster=ClusterSpec(gpu=cpu_gpu_spec(profile), gpus_per_node=1, nodes=1),
                         parallelism=Parallelism(zero_stage=0), weight_bits=32, kv_bits=32,
                         max_batch_tokens=o["max_batch_tokens"], max_running=o["max_rows"], chunked_prefill=False,
                         block_tokens=16)


def _per_kind(real, err: np.ndarray, measured: np.ndarray, predicted: np.ndarray) -> dict:
    kinds = {"decode only": [i for i, it in enumerate(real.iterations) if not it.prefill_tokens],
             "with prefill": [i for i, it in enumerate(real.iterations) if it.prefill_tokens]}
    return {k: {"iterations": len(ix), "median_abs_pct_error": float(np.median(err[ix])) if ix else None,
                "measured_mean_s": float(measured[ix].mean()) if ix else None,
                "predicted_mean_s": float(predicted[ix].mean()) if ix else None} for k, ix in kinds.items()}


def run(profile_path: Path, opts: dict | None = None) -> dict:
    """The real run and its simulation from the profile, compared per iteration and end to end."""
    o = {**DEFAULTS, **(opts or {})}
    profile = load_profile(profile_path)
    lite = load_spec("model", find_named("model", profile.header.get("model", "deepseek-v2-lite"), Path.cwd() / "x"))
    spec = lite.model_copy(update={"name": "v2-shaped-cpu", "num_hidden_layers": o["layers"], "vocab_size": o["vocab"]})
    rng = np.random.default_rng(o["seed"])
    n = o["requests"]
    prompts = rng.integers(o["prompt_low"], o["prompt_high"] + 1, size=n)
    outputs = rng.integers(o["output_low"], o["output_high"] + 1, size=n)
    real = real_run(spec, prompts, outputs, o)
    timer = Timer(Device.from_profile(profile), profile)
    inf = cpu_instance(profile, o)
    steps = StepModel(spec, inf, timer, timer)
    predicted = np.array([steps.time([(p, p) for p in it.prefill_tokens], it.decode_batch, it.decode_ctx_sum)
                          for it in real.iterations])
    measured = np.array([it.time_s for it in real.iterations])
    err = np.abs(predicted / measured - 1) * 100
    workload = WorkloadSpec(prompt_tokens=LengthDist(value=1), output_tokens=LengthDist(value=1), arrival="burst",
                            requests=n)
    sim = simulate_serving("v2-shaped-cpu", spec, inf, workload, step_model=steps, kv_capacity_tokens=10**7,
                           requests=RequestArrays(np.zeros(n), prompts, outputs))
    real_tok_s = real.generated_tokens / real.total_s
    sim_tok_s = sim.generation_throughput_tok_s
    return {
        "model": spec.name, "layers": o["layers"], "profile": str(profile_path), "requests": n,
        "iterations": len(real.iterations), "real_total_s": real.total_s, "sim_total_s": sim.sim_time_s,
        "real_generation_tok_s": real_tok_s, "sim_generation_tok_s": sim_tok_s,
        "iteration_median_abs_pct_error": float(np.median(err)),
        "iteration_p90_abs_pct_error": float(np.percentile(err, 90)),
        "throughput_abs_pct_error": float(abs(sim_tok_s / real_tok_s - 1) * 100),
        "end_to_end_time_abs_pct_error": float(abs(sim.sim_time_s / real.total_s - 1) * 100),
        "per_kind": _per_kind(real, err, measured, predicted),
        "per_iteration": [{"prefill_tokens": it.prefill_tokens, "decode_batch": it.decode_batch,
                           "decode_ctx_sum": it.decode_ctx_sum, "measured_s": it.time_s, "predicted_s": float(p)}
                          for it, p in zip(real.iterations, predicted, strict=True)],
        "settings": o,
    }
