"""Design-space sweeps: a base scenario's variant, axes to vary, objectives and constraints.

Expansion and evaluation are pure functions of the sweep file, so any executor (a local loop, a Dask
cluster) gets the same answer for a point. A point is a dict of axis values; its id is a hash of them.
"""

from __future__ import annotations

import functools
import hashlib
import itertools
import json
import time
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, model_validator

from costmodel.errors import FieldProblem, PlannerError
from costmodel.layout import layout_problems, training_problems
from costmodel.loader import load_named, load_scenario_text, read_yaml, validate
from costmodel.memory import serving_memory, training_memory
from costmodel.specs import Spec

PAR_AXES = {"tp", "pp", "ep", "dp", "micro_batches", "schedule", "recompute", "zero_stage"}
TRAIN_AXES = {"precision", "global_batch_seqs", "seq_len", "dispatch_bits", "capacity_factor"}
INFER_AXES = {"kv_bits", "weight_bits", "max_batch_tokens", "max_running"}
OTHER_AXES = {"gpu", "nodes", "gpus_per_node", "rate_per_s"}
AXES = PAR_AXES | TRAIN_AXES | INFER_AXES | OTHER_AXES


class Objective(Spec):
    metric: str
    goal: Literal["min", "max"]


class Constraint(Spec):
    metric: str
    max: float | None = None
    min: float | None = None


class SweepSpec(Spec):
    """`scenarios/sweeps/*.yaml`: vary one variant of a base scenario over a grid."""

    name: str = Field(min_length=1)
    description: str = ""
    base: str = Field(description="scenario file, relative to the sweep file")
    variant: str
    kind: Literal["train", "serve", "static"] = Field(
        "train", description="train/serve: simulate each point; static: analytic counts and memory only")
    axes: dict[str, list[Any]] = Field(min_length=1)
    objectives: list[Objective] = Field(min_length=1)
    constraints: list[Constraint] = []
    requests: int = Field(2000, gt=0, description="serve: requests per point")

    @model_validator(mode="after")
    def _axes(self) -> SweepSpec:
        for key, values in self.axes.items():
            if key not in AXES:
                raise FieldProblem(f"axes.{key}", f"unknown axis {key!r}", f"use one of {', '.join(sorted(AXES))}")
            if not values:
                raise FieldProblem(f"axes.{key}", "has no values", "list at least one value")
        return self


def load_sweep(path: Path) -> tuple[SweepSpec, str, Path]:
    """The sweep, its base scenario's text and that file's path (errors name the right file)."""
    data, node = read_yaml(Path(path))
    spec = validate(SweepSpec, data, Path(path), node)
    base = (Path(path).parent / spec.base).resolve()
    try:
        text = base.read_text()
    except OSError:
        raise PlannerError(f"base scenario {spec.base!r} not found", file=str(path), field="base",
                           fix="give a scenario path relative to the sweep file") from None
    for name in spec.axes.get("gpu", []):
        load_named("gpu", str(name), base, referer=Path(path), node=node, loc=("axes", "gpu"))
    sc = load_scenario_text(text, base)
    if spec.variant not in [v.name for v in sc.variants]:
        raise PlannerError(f"no variant {spec.variant!r} in {spec.base}", file=str(path), field="variant",
                           fix=f"use one of {', '.join(v.name for v in sc.variants)}")
    return spec, text, base


def expand(spec: SweepSpec) -> list[dict]:
    """Every combination of the axes, in a stable order."""
    keys = list(spec.axes)
    return [dict(zip(keys, combo, strict=True)) for combo in itertools.product(*(spec.axes[k] for k in keys))]


def point_id(point: dict) -> str:
    return hashlib.sha256(json.dumps(point, sort_keys=True).encode()).hexdigest()[:16]


def label(point: dict) -> str:
    return " ".join(f"{k}={v}" for k, v in point.items())


@functools.lru_cache(maxsize=8)
def _scenario(text: str, base: str):
    return load_scenario_text(text, Path(base))


def apply_point(text: str, base: str, variant: str, kind: str, point: dict):
    """The variant with the point's values applied; dp follows the GPU count unless it is an axis."""
    sc = _scenario(text, base)
    v = next(x for x in sc.variants if x.name == variant)
    preferred = ("inference", "training") if kind == "serve" else ("training", "inference")
    part_name = next((name for name in preferred if getattr(v, name) is not None), None)
    if part_name is None:
        raise PlannerError(f"variant {variant!r} has no training or inference part", field="variant",
                           fix="sweep a variant that has the part the sweep simulates")
    part = getattr(v, part_name)
    cluster = part.cluster
    if "gpu" in point:
        cluster = cluster.model_copy(update={"gpu": load_named("gpu", point["gpu"], Path(base), referer=Path(base),
                                                                node=None, loc=("axes", "gpu"))})
    cluster = cluster.model_copy(update={k: point[k] for k in ("nodes", "gpus_per_node") if k in point})
    par = part.parallelism.model_copy(update={k: point[k] for k in PAR_AXES if k in point})
    if "dp" not in point:
        par = par.model_copy(update={"dp": max(1, cluster.num_gpus // (par.tp * par.pp))})
    if part_name == "training" and "micro_batches" not in point:
        per_replica = max(1, part.global_batch_seqs // par.dp)
        par = par.model_copy(update={"micro_batches": per_replica})  # micro-batch of one sequence
    fields = TRAIN_AXES if part_name == "training" else INFER_AXES
    update = {"cluster": cluster, "parallelism": par, **{k: point[k] for k in fields if k in point}}
    if part_name == "inference" and "rate_per_s" in point and part.workload is not None:
        update["workload"] = part.workload.model_copy(update={"arrival": "poisson", "rate_per_s": point["rate_per_s"]})
    new_part = type(part).model_validate({**part.model_dump(), **update})  # re-validated as a whole
    return v.model_copy(update={part_name: new_part}), part_name


def evaluate(text: str, base: str, spec_dict: dict, point: dict) -> dict:
    """One point: {"id", "label", "point", "status": ok|invalid, "reason", "metrics", "wall_s"}."""
    t0 = time.perf_counter()
    spec = SweepSpec.model_validate(spec_dict)
    out = {"id": point_id(point), "label": label(point), "point": point, "status": "ok", "reason": "", "metrics": {}}
    try:
        v, part_name = apply_point(text, base, spec.variant, spec.kind, point)
        metrics = _measure(v, part_name, spec)
        for c in spec.constraints:
            value = metrics.get(c.metric)
            if value is None or (c.max is not None and value > c.max) or (c.min is not None and value < c.min):
                out["status"], out["reason"] = "invalid", f"constraint {c.metric} ({value}) outside [{c.min}, {c.max}]"
        out["metrics"] = metrics
    except PlannerError as e:
        out["status"], out["reason"] = "invalid", e.problem
    except ValueError as e:  # a pydantic error from an impossible combination of values
        out["status"], out["reason"] = "invalid", str(e).splitlines()[0]
    out["wall_s"] = time.perf_counter() - t0
    return out


def _measure(v, part_name: str, spec: SweepSpec) -> dict:
    part = getattr(v, part_name)
    if part_name == "training":
        problems = training_problems(v.model, part)
        if problems:
            raise PlannerError(problems[0][1])
        mem = training_memory(v.model, part)
        if not mem.fits:
            raise PlannerError(f"needs {mem.total_bytes / 1e9:.0f} GB per GPU of {mem.capacity_bytes / 1e9:.0f}")
        if spec.kind == "static":
            from costmodel.flops import train_flops_per_token

            return {"num_gpus": part.cluster.num_gpus, "peak_memory_gb": mem.total_bytes / 1e9,
                    "train_flops_per_token": train_flops_per_token(v.model, part.seq_len),
                    "price_usd_per_gpu_hour": part.cluster.gpu.price_usd_per_hour.value, "fits": 1.0}
        from costmodel.train_sim import simulate_training

        r = simulate_training(v.name, v.model, part)
        return {k: getattr(r, k) for k in ("num_gpus", "step_time_s", "tokens_per_s_per_gpu", "mfu", "bubble_fraction",
                                           "gpu_hours_per_trillion_tokens", "cost_usd_per_trillion_tokens",
                                           "days_total", "cost_usd_total")} | {"peak_memory_gb": mem.total_bytes / 1e9}
    problems = layout_problems(v.model, part.cluster, part.parallelism, training=False)
    if problems:
        raise PlannerError(problems[0][1])
    mem = serving_memory(v.model, part)
    if not mem.fits:
        raise PlannerError(f"weights need {mem.weights_bytes / 1e9:.0f} GB per GPU")
    gpus = part.cluster.num_gpus
    if spec.kind == "static":
        return {"num_gpus": gpus, "weights_gb_per_gpu": mem.weights_bytes / 1e9,
                "kv_capacity_tokens": mem.kv_capacity_tokens * part.parallelism.dp}
    from costmodel.serve_sim import serve_variant

    r = serve_variant(v.name, v.model, part, requests=spec.requests)
    price = part.cluster.gpu.price_usd_per_hour.value * gpus
    return {"num_gpus": gpus, "max_generation_throughput_tok_s": r.max_generation_throughput_tok_s,
            "prompt_throughput_tok_s": r.prompt_throughput_tok_s, "ttft_p99_s": r.ttft_p99_s, "tpot_p50_s": r.tpot_p50_s,
            "tpot_p99_s": r.tpot_p99_s, "usd_per_million_output_tokens": price / 3600 / r.max_generation_throughput_tok_s * 1e6,
            "generation_tok_s_per_gpu": r.max_generation_throughput_tok_s / gpus}
