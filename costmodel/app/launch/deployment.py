"""One verified deployment of a plan as the launch files express it: its roles (aggregated, or prefill and
decode), each a unit's inference part exactly as the plan's verification simulated it (plan.unit_specs),
how many units of it, and what was planned (cost, latency, throughput)."""

from __future__ import annotations

from dataclasses import dataclass, field

from costmodel.app.plan import candidate_of, unit_specs
from costmodel.inputs.errors import PlannerError
from costmodel.inputs.plan_spec import PlanSpec
from costmodel.inputs.specs import InferenceSpec, ModelSpec, PrefillPool

# Hugging Face repositories of the bundled models (a plan names the model by the planner's name; the
# engines load a checkpoint). Others: `--model-path`.
HF_REPOS = {"deepseek-v3": "deepseek-ai/DeepSeek-V3", "deepseek-v2": "deepseek-ai/DeepSeek-V2",
            "deepseek-v2-lite": "deepseek-ai/DeepSeek-V2-Lite", "kimi-k2": "moonshotai/Kimi-K2-Instruct",
            "qwen3-235b-a22b": "Qwen/Qwen3-235B-A22B", "deepseek-llm-67b": "deepseek-ai/deepseek-llm-67b-chat",
            "deepseek-llm-7b": "deepseek-ai/deepseek-llm-7b-chat"}
ENGINE_VERSIONS = {"sglang": "0.5.14", "vllm": "0.24.0", "trtllm": "1.3.0rc20"}  # the kernel database's current
ROLES = ("aggregated", "prefill", "decode")


@dataclass(frozen=True)
class Role:
    name: str  # aggregated | prefill | decode
    units: int
    spec: InferenceSpec  # one unit, with its share of the traffic as its workload

    @property
    def gpus_per_unit(self) -> int:
        return self.spec.cluster.num_gpus


@dataclass(frozen=True)
class Deployment:
    plan: str
    model: ModelSpec
    model_path: str
    engine: str  # the engine the launch files are for
    version: str
    roles: tuple[Role, ...]
    planned: dict = field(default_factory=dict)  # describe()'s row: cost, units, TTFT p99, TPOT p50
    timed_with: str | None = None  # the engine whose measured kernels timed the plan, if any

    def role(self, name: str) -> Role | None:
        return next((r for r in self.roles if r.name == name), None)

    @property
    def disaggregated(self) -> bool:
        return self.role("decode") is not None


def model_path_of(m: ModelSpec, given: str | None) -> str:
    """The checkpoint the engines load: given, else the bundled model's Hugging Face repository."""
    if given:
        return given
    if m.name not in HF_REPOS:
        raise PlannerError(f"the model {m.name!r} has no known Hugging Face repository", field="--model-path",
                           fix="give the checkpoint with --model-path (a Hugging Face id or a local path)")
    return HF_REPOS[m.name]


def deployment_of(plan: PlanSpec, engine: InferenceSpec, row: dict, target: str,
                  model_path: str | None = None) -> Deployment:
    """A row of the plan's answer (its per-GPU list) as roles, each unit as the verification simulated it
    (plan.unit_specs), for the launch files of `target`'s engine."""
    c = candidate_of(plan, row)
    specs = unit_specs(plan, engine, c)
    units = {"aggregated": c.decode_units, "decode": c.decode_units, "prefill": c.prefill_units}
    roles = tuple(Role(name, units[name], spec) for name, spec in specs.items())
    name = TARGET_ENGINES.get(target, target)
    return Deployment(plan.name, plan.model, model_path_of(plan.model, model_path), name, ENGINE_VERSIONS[name],
                      roles, row, engine.engine.name if engine.engine else None)


# the engine a manifest target runs: Dynamo's multi-node P/D example runs SGLang, llm-d's wide-EP guide vLLM
TARGET_ENGINES = {"dynamo": "sglang", "llm-d": "vllm"}


MAX_INSTANCES = PrefillPool.model_fields["instances"].metadata[0].le  # a prefill pool's instances, and decode's


def serving_spec(roles: dict[str, Role]) -> InferenceSpec:
    """The deployment as one `simulate serve` inference part: the aggregated unit (at its share of the
    traffic), or the decode units with the prefill units as their prefill pool (their own layout, token
    budget and running cap), which share the whole traffic round robin."""
    if "aggregated" in roles:
        return roles["aggregated"].spec
    d, p = roles["decode"], roles["prefill"]
    if max(d.units, p.units) > MAX_INSTANCES:
        raise PlannerError(f"{p.units} prefill and {d.units} decode units: a simulated prefill pool holds at most "
                           f"{MAX_INSTANCES} of each", field="prefill_pool.instances",
                           fix="plan fewer, larger units (search.nodes)")
    ps = p.spec
    pool = PrefillPool(gpus_per_node=ps.cluster.gpus_per_node, nodes=ps.cluster.nodes, parallelism=ps.parallelism,
                       redundant_experts=ps.redundant_experts, eplb=ps.eplb, two_batch_overlap=ps.two_batch_overlap,
                       instances=p.units, decode_instances=d.units, max_batch_tokens=ps.batch_tokens,
                       max_running=ps.max_running)
    workload = d.spec.workload.model_copy(update={"rate_per_s": d.spec.workload.rate_per_s * d.units})
    return d.spec.model_copy(update={"prefill_pool": pool, "workload": workload})
