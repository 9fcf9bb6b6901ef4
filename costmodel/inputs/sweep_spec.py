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

from costmodel.inputs.budget import MAX_REQUESTS, largest_sweep, sweep_core_s
from costmodel.inputs.errors import FieldProblem, PlannerError
from costmodel.inputs.loader import line_of, load_named, read_yaml, scenario_and_node, validate
from costmodel.inputs.reading import clip, read_text
from costmodel.inputs.specs import Spec

PAR_AXES = {"tp", "cp", "pp", "ep", "etp", "dp", "virtual_stages", "micro_batches", "schedule", "recompute", "zero_stage"}
TRAIN_AXES = {"precision", "global_batch_seqs", "seq_len", "dispatch_bits", "capacity_factor"}
INFER_AXES = {"kv_bits", "weight_bits", "max_batch_tokens", "max_running"}
OTHER_AXES = {"gpu", "nodes", "gpus_per_node", "rate_per_s"}
AXES = PAR_AXES | TRAIN_AXES | INFER_AXES | OTHER_AXES
# What an axis's values must be before any point runs (the specs then check each point in full).
COUNT_AXES = {"tp", "cp", "pp", "ep", "etp", "dp", "virtual_stages", "micro_batches", "global_batch_seqs", "seq_len", "dispatch_bits", "kv_bits",
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
                 "peak_memory_gb", "exposed_comm_fraction")
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

    @model_validator(mode="after")
    def _bound(self) -> Constraint:
        if self.max is None and self.min is None:
            raise FieldProblem("max", f"the constraint on {self.metric} has neither max nor min, so it would "
                               "constrain nothing", "give max:, min: or both")
        return self


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
    requests: int = Field(2000, gt=0, le=MAX_REQUESTS, description="serve: requests per point")

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
    """The sweep, its base scenario's text and that file's path (errors name the right file), checked
    whole before any point runs: the base is a scenario with the named variant, every GPU of the axes
    exists, and the grid's points fit the work budget."""
    data, node = read_yaml(Path(path))
    spec = validate(SweepSpec, data, Path(path), node)
    base = (Path(path).parent / spec.base).resolve()
    if base == Path(path).resolve():
        raise PlannerError("`base:` names this sweep file itself", file=str(path), line=line_of(node, ("base",)),
                           field="base", fix="name the scenario file whose variant the sweep varies")
    if not base.is_file():
        raise PlannerError(f"base scenario {spec.base!r} not found", file=str(path), field="base",
                           fix="give a scenario path relative to the sweep file")
    text = read_text(base)
    names = [v.name for v in scenario_and_node(base, text)[0].variants]
    if spec.variant not in names:
        raise PlannerError(f"the base scenario {spec.base} has no variant {spec.variant!r}", file=str(path),
                           line=line_of(node, ("variant",)), field="variant", fix=f"use one of {', '.join(names)}")
    for name in spec.axes.get("gpu", []):
        load_named("gpu", str(name), base, referer=Path(path), node=node, loc=("axes", "gpu"))
    _check_budget(spec, path, node)
    return spec, text, base


def _check_budget(spec: SweepSpec, path: Path, node) -> None:
    """The grid's points, counted without expanding it, within the sweep budget (costmodel/inputs/budget.py)."""
    points, largest = math.prod(len(v) for v in spec.axes.values()), largest_sweep(spec.kind)
    if points > largest:
        hours = sweep_core_s(spec.kind, points) / 3600
        raise PlannerError(f"the axes make {points:,} points (about {hours:,.0f} core-hours of {spec.kind} "
                           f"simulation), over the {largest:,} a {spec.kind} sweep may run", file=str(path),
                           line=line_of(node, ("axes",)), field="axes",
                           fix=f"list fewer values, so that the axes' lengths multiply to at most {largest:,}")


def expand(spec: SweepSpec) -> list[dict]:
    """Every combination of the axes, in a stable order."""
    keys = list(spec.axes)
    return [dict(zip(keys, combo, strict=True)) for combo in itertools.product(*(spec.axes[k] for k in keys))]


def point_id(point: dict) -> str:
    return hashlib.sha256(json.dumps(point, sort_keys=True).encode()).hexdigest()[:16]


def label(point: dict) -> str:
    return " ".join(f"{k}={v}" for k, v in point.items())
