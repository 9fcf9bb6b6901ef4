"""Sweep files (`scenarios/sweeps/*.yaml`): a base scenario's variant, axes to vary, objectives and
constraints. Reading and expanding them only; evaluating a point is sweep.py's (application layer)."""

from __future__ import annotations

import hashlib
import itertools
import json
import math
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, model_validator

from costmodel.errors import FieldProblem, PlannerError
from costmodel.loader import load_named, read_yaml, validate
from costmodel.reading import clip, read_text
from costmodel.specs import Spec

PAR_AXES = {"tp", "pp", "ep", "dp", "micro_batches", "schedule", "recompute", "zero_stage"}
TRAIN_AXES = {"precision", "global_batch_seqs", "seq_len", "dispatch_bits", "capacity_factor"}
INFER_AXES = {"kv_bits", "weight_bits", "max_batch_tokens", "max_running"}
OTHER_AXES = {"gpu", "nodes", "gpus_per_node", "rate_per_s"}
AXES = PAR_AXES | TRAIN_AXES | INFER_AXES | OTHER_AXES
# What an axis's values must be before any point runs (the specs then check each point in full).
COUNT_AXES = {"tp", "pp", "ep", "dp", "micro_batches", "global_batch_seqs", "seq_len", "dispatch_bits", "kv_bits",
              "weight_bits", "max_batch_tokens", "max_running", "nodes", "gpus_per_node"}
NUMBER_AXES = {"capacity_factor", "rate_per_s"}


def _axis_value_problem(key: str, value: Any) -> str | None:
    """Why `value` cannot be a value of axis `key`, or None."""
    if key in COUNT_AXES or key == "zero_stage":
        least = 0 if key == "zero_stage" else 1
        ok = isinstance(value, int) and not isinstance(value, bool) and value >= least
        return None if ok else f"{clip(value)} is not a whole number of at least {least}"
    if key in NUMBER_AXES:
        ok = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value) and value > 0
        return None if ok else f"{clip(value)} is not a positive finite number"
    return None if isinstance(value, str) else f"{clip(value)} is not a name"


# The metrics each kind of sweep records (sweep.py computes them): objectives and constraints name these.
TRAIN_METRICS = ("num_gpus", "step_time_s", "tokens_per_s_per_gpu", "mfu", "bubble_fraction",
                 "gpu_hours_per_trillion_tokens", "cost_usd_per_trillion_tokens", "days_total", "cost_usd_total",
                 "peak_memory_gb")
SERVE_METRICS = ("num_gpus", "max_generation_throughput_tok_s", "prompt_throughput_tok_s", "ttft_p99_s",
                 "tpot_p50_s", "tpot_p99_s", "usd_per_million_output_tokens", "generation_tok_s_per_gpu")
STATIC_METRICS = ("num_gpus", "peak_memory_gb", "train_flops_per_token", "price_usd_per_gpu_hour", "fits",
                  "weights_gb_per_gpu", "kv_capacity_tokens")
METRICS = {"train": TRAIN_METRICS, "serve": SERVE_METRICS, "static": STATIC_METRICS}


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
            for i, value in enumerate(values):
                problem = _axis_value_problem(key, value)
                if problem:
                    raise FieldProblem(f"axes.{key}.{i}", problem, f"list valid values of {key}")
                if value in values[:i]:
                    raise FieldProblem(f"axes.{key}.{i}", f"{clip(value)} is listed twice", "list each value once")
        for part, items in (("objectives", self.objectives), ("constraints", self.constraints)):
            for i, item in enumerate(items):
                if item.metric not in METRICS[self.kind]:
                    raise FieldProblem(f"{part}.{i}.metric", f"a {self.kind} sweep records no metric {clip(item.metric)}",
                                       f"use one of {', '.join(METRICS[self.kind])}")
        return self


def load_sweep(path: Path) -> tuple[SweepSpec, str, Path]:
    """The sweep, its base scenario's text and that file's path (errors name the right file)."""
    data, node = read_yaml(Path(path))
    spec = validate(SweepSpec, data, Path(path), node)
    base = (Path(path).parent / spec.base).resolve()
    if not base.is_file():
        raise PlannerError(f"base scenario {spec.base!r} not found", file=str(path), field="base",
                           fix="give a scenario path relative to the sweep file")
    text = read_text(base)
    for name in spec.axes.get("gpu", []):
        load_named("gpu", str(name), base, referer=Path(path), node=node, loc=("axes", "gpu"))
    return spec, text, base


def expand(spec: SweepSpec) -> list[dict]:
    """Every combination of the axes, in a stable order."""
    keys = list(spec.axes)
    return [dict(zip(keys, combo, strict=True)) for combo in itertools.product(*(spec.axes[k] for k in keys))]


def point_id(point: dict) -> str:
    return hashlib.sha256(json.dumps(point, sort_keys=True).encode()).hexdigest()[:16]


def label(point: dict) -> str:
    return " ".join(f"{k}={v}" for k, v in point.items())
