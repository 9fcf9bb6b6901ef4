"""Evaluating one point of a sweep (sweep_spec.py reads the file): the point becomes overrides of the
base variant, the application layer (study.py) validates and checks them and runs the simulation.

A pure function of (base scenario text, sweep spec, point), so any executor (a local loop, a Dask
cluster) gets the same answer for a point.
"""

from __future__ import annotations

import functools
import time
from pathlib import Path
from typing import Any

from costmodel.app.fleet import usd_per_million_output_tokens
from costmodel.app.study import Study, check, override, serve, study_from_text, train
from costmodel.counts.flops import train_flops_per_token
from costmodel.counts.memory import serving_memory, training_memory
from costmodel.inputs.errors import PlannerError
from costmodel.inputs.loader import load_named
from costmodel.inputs.specs import Variant
from costmodel.inputs.sweep_spec import (
    INFER_AXES,
    PAR_AXES,
    TRAIN_AXES,
    TRAIN_METRICS,
    SweepSpec,
    label,
    point_id,
)


@functools.lru_cache(maxsize=8)
def _base_study(text: str, base: str) -> Study:
    return study_from_text(text, Path(base))


def part_of(v: Variant, kind: str) -> str:
    """The part a sweep of `kind` varies: inference for serve sweeps, else training (else whichever exists)."""
    preferred = ("inference", "training") if kind == "serve" else ("training", "inference")
    part = next((name for name in preferred if getattr(v, name) is not None), None)
    if part is None:
        raise PlannerError(f"variant {v.name!r} has no training or inference part", field="variant",
                           fix="sweep a variant that has the part the sweep simulates")
    return part


def point_overrides(v: Variant, part: str, point: dict, base: Path) -> dict[str, Any]:
    """The point as overrides inside the variant. dp follows the GPU count unless it is an axis; a
    training point without micro_batches runs micro-batches of one sequence."""
    spec = getattr(v, part)
    out: dict[str, Any] = {}
    if "gpu" in point:
        gpu = load_named("gpu", str(point["gpu"]), base, referer=base, node=None, loc=("axes", "gpu"))
        out[f"{part}.cluster.gpu"] = gpu.model_dump()
    out |= {f"{part}.cluster.{k}": point[k] for k in ("nodes", "gpus_per_node") if k in point}
    out |= {f"{part}.parallelism.{k}": point[k] for k in PAR_AXES if k in point}
    out |= {f"{part}.{k}": point[k] for k in (TRAIN_AXES if part == "training" else INFER_AXES) if k in point}
    par = spec.parallelism
    gpus = point.get("nodes", spec.cluster.nodes) * point.get("gpus_per_node", spec.cluster.gpus_per_node)
    tp, pp = point.get("tp", par.tp), point.get("pp", par.pp)
    cp = point.get("cp", getattr(par, "cp", 1))  # serving has no cp
    dp = point.get("dp", max(1, gpus // (tp * cp * pp)))
    out[f"{part}.parallelism.dp"] = dp
    if part == "training" and "micro_batches" not in point:
        out[f"{part}.parallelism.micro_batches"] = max(1, point.get("global_batch_seqs", spec.global_batch_seqs) // dp)
    if part == "inference" and "rate_per_s" in point and spec.workload is not None:
        out |= {f"{part}.workload.arrival": "poisson", f"{part}.workload.rate_per_s": point["rate_per_s"]}
    return out


def static_metrics(v: Variant, part: str) -> dict:
    """kind: static — analytic counts and memory, no simulation."""
    spec = getattr(v, part)
    if part == "training":
        return {"num_gpus": spec.cluster.num_gpus, "peak_memory_gb": training_memory(v.model, spec).total_bytes / 1e9,
                "train_flops_per_token": train_flops_per_token(v.model, spec.seq_len),
                "price_usd_per_gpu_hour": spec.cluster.gpu.price_usd_per_hour.value, "fits": 1.0}
    mem = serving_memory(v.model, spec)
    return {"num_gpus": spec.cluster.num_gpus, "weights_gb_per_gpu": mem.weights_bytes / 1e9,
            "kv_capacity_tokens": mem.kv_capacity_tokens * spec.parallelism.dp}




def simulated_metrics(study: Study, v: Variant, part: str, requests: int) -> dict:
    """kind: train | serve — the point simulated through the application layer."""
    spec = getattr(v, part)
    if part == "training":
        (r,) = train(study, only=v.name)
        derived = {"peak_memory_gb": r.peak_memory_bytes_per_gpu / 1e9, "exposed_comm_fraction": r.exposed_comm_fraction}
        return {k: getattr(r, k) for k in TRAIN_METRICS if k not in derived} | derived
    (r,) = serve(study, only=v.name, requests=requests, bound_saturation=False)
    gpus = spec.cluster.num_gpus
    return {"num_gpus": gpus, "max_generation_throughput_tok_s": r.max_generation_throughput_tok_s,
            "prompt_throughput_tok_s": r.prompt_throughput_tok_s, "ttft_p99_s": r.latency.ttft_p99_s,
            "tpot_p50_s": r.latency.tpot_p50_s, "tpot_p99_s": r.latency.tpot_p99_s,
            "usd_per_million_output_tokens": usd_per_million_output_tokens(spec, r.max_generation_throughput_tok_s),
            "generation_tok_s_per_gpu": r.max_generation_throughput_tok_s / gpus}


def measure(study: Study, spec: SweepSpec, point: dict) -> dict:
    """The point's metrics; a PlannerError says why the point cannot run."""
    v = study.variant(spec.variant)
    part = part_of(v, spec.kind)
    study = override(study, spec.variant, point_overrides(v, part, point, Path(study.base_dir) / "x"))
    v = study.variant(spec.variant)
    if spec.kind == "static":
        check(study, (part,), [study.index(v.name)])
        return static_metrics(v, part)
    return simulated_metrics(study, v, part, spec.requests)


def violated(spec: SweepSpec, metrics: dict) -> str:
    """The first constraint the metrics break, as a reason; empty when none."""
    for c in spec.constraints:
        value = metrics.get(c.metric)
        if value is None or (c.max is not None and value > c.max) or (c.min is not None and value < c.min):
            return f"constraint {c.metric} ({value}) outside [{c.min}, {c.max}]"
    return ""


def evaluate(text: str, base: str, spec_dict: dict, point: dict) -> dict:
    """One point: {"id", "label", "point", "status": ok|invalid, "reason", "metrics", "wall_s"}."""
    t0 = time.perf_counter()
    spec = SweepSpec.model_validate(spec_dict)
    out = {"id": point_id(point), "label": label(point), "point": point, "status": "ok", "reason": "", "metrics": {}}
    try:
        out["metrics"] = measure(_base_study(text, base), spec, point)
        reason = violated(spec, out["metrics"])
        if reason:
            out["status"], out["reason"] = "invalid", reason
    except PlannerError as e:
        out["status"], out["reason"] = "invalid", e.problem
    except Exception as e:  # noqa: BLE001 — one point's failure, whatever it is, is its own row, never the batch's
        out["status"], out["reason"] = "error", f"{type(e).__name__}: {str(e)[:200]}"
    out["wall_s"] = time.perf_counter() - t0
    return out
