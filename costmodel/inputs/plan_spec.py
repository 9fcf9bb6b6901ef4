"""Plan files (`scenarios/plans/*.yaml`): a model, the traffic it must serve, latency targets, candidate
GPUs and limits, and the layouts to search. Reading only; the search is plan.py's (application layer).

A plan states its engine settings (weight and KV bits, all-to-all kernels, MTP, token budget, ...) once,
as the inference part of a scenario would; the planner varies only what `search:` names: nodes per unit,
TP (DP fills the rest of the unit, EP spans it), redundant experts, and aggregated against
prefill/decode-disaggregated units.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import Field, model_validator

from costmodel.inputs.errors import FieldProblem
from costmodel.inputs.loader import load_named, read_yaml, validate
from costmodel.inputs.reading import clip
from costmodel.inputs.specs import (
    ClusterSpec,
    FleetSpec,
    GPUSpec,
    InferenceSpec,
    LengthDist,
    ModelSpec,
    NonNegInt,
    PosFloat,
    PosInt,
    Spec,
    exactly_one,
)

SEARCHED = {"cluster", "parallelism", "prefill_pool", "redundant_experts", "workload", "fleet"}


class Traffic(FleetSpec):
    """What the service must carry: a request rate (or tokens a day), as a fleet's, of these lengths."""

    prompt_tokens: LengthDist
    output_tokens: LengthDist

    @property
    def rate_per_s(self) -> float:
        return self.request_rate(self.prompt_tokens.mean, self.output_tokens.mean)


class SLO(Spec):
    """Latency targets every recommended plan meets in the full serving simulation."""

    ttft_p99_s: PosFloat = Field(le=3600, description="time to first token, 99th percentile")
    tpot_p50_s: PosFloat | None = Field(None, le=60, description="time per output token, median")
    user_tok_s: PosFloat | None = Field(None, le=1e5, description="or: tokens per second each user sees (1 / TPOT)")

    @model_validator(mode="after")
    def _tpot(self) -> SLO:
        exactly_one(self, "tpot_p50_s", "user_tok_s")
        return self

    @property
    def tpot_s(self) -> float:
        return self.tpot_p50_s or 1 / self.user_tok_s


class Limits(Spec):
    max_nodes: PosInt = Field(64, le=10_000, description="nodes of the whole deployment, at most")
    gpus_per_node: PosInt = Field(8, le=64)


class Search(Spec):
    """The layouts tried for each GPU type (every combination that the model and GPU allow)."""

    nodes: list[PosInt] = Field([1, 2, 4, 8], min_length=1, description="nodes per serving unit")
    rack_gpus: list[PosInt] = Field([], description="units of this many GPUs in one NVLink domain larger than a node, "
                                    "tried on each GPU whose nvlink_domain_gpus holds them (48 of a GB200 NVL72 rack); "
                                    "a rack unit counts as one node against limits.max_nodes")
    tp: list[PosInt] = Field([1, 8], min_length=1, description="tensor parallelism of attention; DP fills the unit")
    redundant_experts: list[NonNegInt] = Field([0], min_length=1, description="extra expert replicas (EPLB)")
    disaggregated: list[bool] = Field([False, True], min_length=1, description="prefill and decode on separate units")
    simulated_requests: PosInt = Field(3000, ge=200, le=100_000,
                                       description="requests in each re-simulation of a winner (at least 200: a p99 needs them)")

    @model_validator(mode="after")
    def _distinct(self) -> Search:
        for key in ("nodes", "rack_gpus", "tp", "redundant_experts", "disaggregated"):
            values = getattr(self, key)
            for i, v in enumerate(values):
                if v in values[:i]:
                    raise FieldProblem(f"{key}.{i}", f"{clip(v)} is listed twice", "list each value once")
        return self


class PlanSpec(Spec):
    name: str = Field(min_length=1)
    description: str = ""
    model: ModelSpec
    engine: dict[str, Any] = Field(default_factory=dict, description="inference settings shared by every candidate")
    traffic: Traffic
    slo: SLO
    gpus: list[GPUSpec] = Field(min_length=1)
    limits: Limits = Limits()
    search: Search = Search()

    @model_validator(mode="after")
    def _nodes(self) -> PlanSpec:
        if min(self.search.nodes) > self.limits.max_nodes:
            raise FieldProblem("search.nodes", f"every unit size is over limits.max_nodes ({self.limits.max_nodes}), "
                               "so there is nothing to search", "list unit sizes of at most max_nodes nodes")
        return self

    @model_validator(mode="after")
    def _node_size(self) -> PlanSpec:
        small = [g.name for g in self.gpus if g.nvlink_domain_gpus < self.limits.gpus_per_node]
        if small:
            domain = min(g.nvlink_domain_gpus for g in self.gpus)
            raise FieldProblem("limits.gpus_per_node", f"{self.limits.gpus_per_node} GPUs a node, but {', '.join(small)} "
                               f"comes in NVLink domains of at most {domain} (its nvlink_domain_gpus)",
                               f"use gpus_per_node <= {domain}; units larger than a node go under search.rack_gpus")
        return self

    @model_validator(mode="after")
    def _racks(self) -> PlanSpec:
        widest = max(g.nvlink_domain_gpus for g in self.gpus)
        for i, size in enumerate(self.search.rack_gpus):
            if not self.limits.gpus_per_node < size <= widest:
                raise FieldProblem(f"search.rack_gpus.{i}", f"{size} GPUs is not a rack unit of these GPUs: more than a "
                                   f"node's {self.limits.gpus_per_node} and at most the widest NVLink domain listed "
                                   f"({widest}, the GPU files' nvlink_domain_gpus)",
                                   "list sizes between them, or add a rack GPU (gb200, gb300) to gpus:")
            hosts = {g.gpus_per_host for g in self.gpus if g.gpus_per_host and size <= g.nvlink_domain_gpus}
            odd = sorted(h for h in hosts if size % h)
            if odd:
                raise FieldProblem(f"search.rack_gpus.{i}", f"{size} GPUs is not whole hosts of {odd[0]} GPUs (the "
                                   "GPU files' gpus_per_host: an NVL72 compute tray), so no engine could start it",
                                   f"list multiples of {odd[0]}")
        return self

    @model_validator(mode="after")
    def _engine(self) -> PlanSpec:
        for key in self.engine:
            if key in SEARCHED:
                raise FieldProblem(f"engine.{key}", f"{key} is what the planner searches or derives",
                                   "remove it from engine: (the layouts tried are under search:)")
        return self


def load_plan(path: Path, text: str | None = None) -> tuple[PlanSpec, InferenceSpec]:
    """The plan (the file at `path`, or `text` as if it were that file), and its engine settings as an
    inference part (on the first GPU, one node) that every candidate copies; errors name the plan file,
    the line and the field."""
    path = Path(path)
    data, node = read_yaml(path, text)
    data = dict(data)
    if isinstance(data.get("model"), str):
        data["model"] = load_named("model", data["model"], path, referer=path, node=node, loc=("model",))
    if isinstance(data.get("gpus"), list):
        data["gpus"] = [load_named("gpu", g, path, referer=path, node=node, loc=("gpus", i)) if isinstance(g, str) else g
                        for i, g in enumerate(data["gpus"])]
    plan = validate(PlanSpec, data, path, node)
    cluster = ClusterSpec(gpu=plan.gpus[0], gpus_per_node=plan.limits.gpus_per_node, nodes=1)
    engine = validate(InferenceSpec, {**plan.engine, "cluster": cluster}, path, node, prefix=("engine",))
    return plan, engine
