"""Serving runs as the application prepares them: each unit's iteration model and KV capacity, the
requests built once, the prefill pool of a disaggregated variant, and the three runs `planner simulate
serve` reports (the workload as configured, then decode-only and prefill-only saturated runs), with the
saturation and overload notes. The simulator itself (sim/serve_sim.py) is handed all of it."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from pydantic import BaseModel

from costmodel.app.feasibility import saturation_note, saturation_requests
from costmodel.app.kernel_import import measured_backend
from costmodel.counts.comm import links_of
from costmodel.counts.kvcache import kv_bytes_per_token
from costmodel.counts.memory import serving_memory
from costmodel.inputs.requests import RequestArrays, make_requests
from costmodel.inputs.specs import InferenceSpec, ModelSpec, WorkloadSpec
from costmodel.sim.serve_sim import Instance, LatencyStats, PrefillPool, ServeResult, simulate_serving
from costmodel.sim.steady_state import SteadyState
from costmodel.timing.serve_costs import StepModel, decode_breakdown, step_model_for, timing_coverage


def steps_for(m: ModelSpec, inf: InferenceSpec, scale: dict[str, float] | None = None,
              base_dir: Path | None = None) -> StepModel:
    """The instance's iteration model: from its kernel profile (its `profile:`, or its engine's measured
    kernels on its GPU) where it has one, else from the GPU file's roofline."""
    return step_model_for(m, inf, scale, measured_backend(m, inf, base_dir))


def instance_for(m: ModelSpec, inf: InferenceSpec, step_model: StepModel | None = None,
                 kv_capacity_tokens: int | None = None) -> Instance:
    """One unit as the simulator needs it: its iteration model (built here unless given) and its KV
    capacity from the instance's memory (each attention-DP rank holds its own requests' cache)."""
    dp = inf.parallelism.dp
    kv = int(serving_memory(m, inf).kv_capacity_tokens) * dp if kv_capacity_tokens is None else kv_capacity_tokens
    return Instance(step_model or steps_for(m, inf), kv, inf.batch_tokens * dp, inf.max_running * dp)


def prefill_pool_for(m: ModelSpec, inf: InferenceSpec, step_model: StepModel | None = None) -> PrefillPool | None:
    """The disaggregated prefill unit of `inf`, or None when prompts prefill on the instance itself."""
    if inf.prefill_pool is None:
        return None
    unit, pool = instance_for(m, inf.prefill_instance(), step_model), inf.prefill_pool
    # each prefill rank sends the KV it holds over its own NIC: a GQA cache is split by KV head over TP,
    # MLA's latent is replicated (counts/memory.py: serving_memory), so one rank's NIC carries it all
    shards = 1 if m.attention == "mla" else min(pool.parallelism.tp, m.kv_heads)
    return PrefillPool(unit, links_of(inf.cluster.gpu)[kv_link(inf)], kv_bytes_per_token(m, inf.kv_bits) / shards,
                       pool.instances, pool.decode_instances)


def kv_link(inf: InferenceSpec) -> str:
    """The link a disaggregated unit's KV crosses: NVLink when all its prefill and decode instances fit in
    one NVLink domain of their part (an NVL72 rack), else the NIC."""
    pool, gpu = inf.prefill_pool, inf.cluster.gpu
    gpus = pool.instances * pool.gpus_per_node * pool.nodes + pool.decode_instances * inf.cluster.num_gpus
    return "nvlink" if gpus <= gpu.nvlink_domain_gpus else "nic"


def one_request_s(w: WorkloadSpec, steps: StepModel, inf: InferenceSpec) -> float:
    """One request's latency at full load, as the iteration model times it: its prompt prefilled alone,
    then its mean output decoded in a batch of every user (at most the unit's running cap) at the mean
    context. A closed loop's users started this far apart are out of step from the first request."""
    prompt, out = int(w.prompt_tokens.mean), max(1, int(w.output_tokens.mean))
    batch = max(1, min(w.users or 1, inf.max_running * inf.parallelism.dp))
    ctx = prompt + out // 2
    return steps.time([(prompt, prompt)], 0, 0) + out * steps.time([], batch, batch * ctx)


def with_ramp(w: WorkloadSpec, steps: StepModel, inf: InferenceSpec) -> WorkloadSpec:
    """The workload with a `one_request` ramp in seconds (the simulator takes seconds only)."""
    if w.ramp_s != "one_request":
        return w
    return w.model_copy(update={"ramp_s": one_request_s(w, steps, inf)})


def run_serving(name: str, m: ModelSpec, inf: InferenceSpec, workload: WorkloadSpec | None = None, *,
                phase: str = "mixed", step_model: StepModel | None = None, kv_capacity_tokens: int | None = None,
                base_dir: Path | None = None, requests: RequestArrays | None = None,
                progress: Callable[[int, int], None] | None = None,
                prefill_step_model: StepModel | None = None, fast_forward: bool = True,
                steady: bool = False) -> ServeResult:
    """One run of `workload` (the instance's own by default) on `inf`: its requests (given, or built from
    the workload), its units, then the simulator. step_model / kv_capacity_tokens replace the
    instance's own (tests and validation use them); prefill_step_model, the prefill pool's;
    fast_forward False steps every iteration (the simulator's own check of its fast-forward); steady
    stops a saturated run at its steady state (simulate_serving)."""
    w = workload or inf.workload
    reqs = requests or make_requests(w, base_dir, m.max_position_embeddings)
    prefill = prefill_pool_for(m, inf, prefill_step_model) if phase == "mixed" else None
    unit = instance_for(m, inf, step_model, kv_capacity_tokens)
    w = with_ramp(w, unit.step_model, inf)
    return simulate_serving(name, inf, w, reqs, unit, phase=phase, prefill=prefill, progress=progress,
                            fast_forward=fast_forward, steady=steady)


class ServeVariantResult(BaseModel):
    """What `planner simulate serve` reports for a variant: the workload served as configured (mixed
    prefill and decode), plus the maximum generation and prompt throughputs measured with the instance
    saturated by decode-only and prefill-only runs of the same requests (on the prefill pool, when
    prefill is disaggregated). Per-GPU and per-node figures divide by the GPUs of the unit that ran."""

    name: str
    max_generation_throughput_tok_s: float
    prompt_throughput_tok_s: float
    generation_throughput_tok_s: float  # of the workload as configured
    latency: LatencyStats  # of the workload as configured
    max_concurrent_requests: int
    kv_capacity_tokens: int
    preemptions: int
    requests: int
    saturation_requests: int  # requests queued at t = 0 for the two maximum-throughput runs
    # the decode-only run's steady state (rate, 95% interval, warm-up dropped, whether it stopped there);
    # None when its saturated stretch was too short to judge (max_generation_throughput_tok_s then comes
    # from the completions' 10th-90th percentile window)
    max_generation_steady_state: SteadyState | None = None
    saturation_note: str | None = None  # None when those runs saturate the instance, else why their figures are low
    carried_rate_per_s: float | None = None  # Poisson workloads: the request rate the instance carries with them
    overload_note: str | None = None  # None unless the offered rate is above what the instance carries
    decode_gpus: int  # the unit that decodes (the variant's instance)
    prefill_gpus: int  # the unit that prefills (the prefill pool, or the same instance)
    generation_tok_s_per_gpu: float
    prompt_tok_s_per_gpu: float
    generation_tok_s_per_node: float
    prompt_tok_s_per_node: float
    decode_iteration: dict  # serve_costs.decode_breakdown at the saturated batch: per-layer times, EP load
    timing_coverage: dict | None = None  # serve_costs.timing_coverage: measured share per kernel family (profiles only)
    timeline: dict
    samples: dict
    sim_wall_s: float
    fleet: dict | None = None  # FleetPlan fields when the inference part has `fleet:` (study.py)
    bands: dict | None = None  # metric -> {p10, p50, p90} over drawn timing errors (--bands; uncertainty.py)


OVERLOAD_MARGIN = 1.10  # offered over carried beyond this counts as overload: a Poisson run's steady rate
# varies by a few percent from run to run, so a smaller excess is not told apart from noise


def overload(w: WorkloadSpec, mixed: ServeResult) -> dict:
    """Whether a Poisson workload offers more requests per second than the instance carries with it.
    The mixed run's steady generation rate (between the completion percentiles where it neither fills nor
    drains) is the offered rate when the instance keeps up, and the instance's capacity when it does not;
    divided by the mean output it is the request rate carried."""
    if w.arrival != "poisson":
        return {}
    carried = mixed.max_generation_throughput_tok_s / w.output_tokens.mean
    if w.rate_per_s <= OVERLOAD_MARGIN * carried:
        return {"carried_rate_per_s": carried}
    note = (f"the offered load ({w.rate_per_s:,.1f} requests/s) is above what the instance carries with this "
            f"workload (about {carried:,.1f} requests/s, {mixed.max_generation_throughput_tok_s:,.0f} output tok/s): "
            f"requests queue without bound, so TTFT grows with the run's length; lower rate_per_s to at most "
            f"{carried:,.1f}, or serve it with more instances (fleet:)")
    return {"carried_rate_per_s": carried, "overload_note": note}


def serve_variant(name: str, m: ModelSpec, inf: InferenceSpec, *, base_dir: Path | None = None,
                  progress: Callable[[str, int, int], None] | None = None,
                  scale: dict[str, float] | None = None, requests: RequestArrays | None = None) -> ServeVariantResult:
    """The workload as configured, then decode-only and prefill-only saturated runs of the same lengths
    (`scale`: one drawn timing error per operator, for uncertainty bands). `requests`: the workload's
    own, when the caller has built them already (a trace is read once)."""
    w = inf.workload
    prefill_inf = inf.prefill_instance() if inf.prefill_pool is not None else inf
    steps = steps_for(m, inf, scale, base_dir)  # one iteration model (and its memo) for every run of this unit
    pre_steps = steps if prefill_inf is inf else steps_for(m, prefill_inf, scale, base_dir)
    unit, pool = instance_for(m, inf, steps), prefill_pool_for(m, inf, pre_steps)
    pre_unit = pool.unit if pool is not None else unit  # the prefill-only run's unit
    own = requests or make_requests(w, base_dir, m.max_position_embeddings)
    w = with_ramp(w, steps, inf)
    runs = {}
    for phase, u, u_inf in (("mixed", unit, inf), ("decode", unit, inf), ("prefill", pre_unit, prefill_inf)):
        work, reqs = w, own
        if phase != "mixed" and w.arrival != "trace":  # the saturated runs: every request queued at t = 0
            work = w.model_copy(update={"arrival": "burst", "requests": saturation_requests(m, u_inf, w)})
            reqs = make_requests(work, base_dir, m.max_position_embeddings)
        cb = (lambda done, total, phase=phase: progress(phase, done, total)) if progress else None
        runs[phase] = simulate_serving(name, u_inf, work, reqs, u, phase=phase,
                                       prefill=pool if phase == "mixed" else None, progress=cb,
                                       steady=phase == "decode" and work.arrival == "burst")
    mixed, gen, pre = runs["mixed"], runs["decode"], runs["prefill"]
    ctx = int(w.prompt_tokens.mean + w.output_tokens.mean / 2)
    measured = steps.timer.measured  # the profile this unit's iteration model was built from, if any
    coverage = None if measured is None else timing_coverage(
        m, inf, measured, gen.max_concurrent_requests, ctx, min(int(w.prompt_tokens.mean), inf.batch_tokens))
    d_gpus, p_gpus = inf.cluster.num_gpus, prefill_inf.cluster.num_gpus
    gen_tok_s, pre_tok_s = gen.max_generation_throughput_tok_s, pre.prompt_throughput_tok_s
    return ServeVariantResult(
        name=name, max_generation_throughput_tok_s=gen_tok_s, prompt_throughput_tok_s=pre_tok_s,
        generation_throughput_tok_s=mixed.generation_throughput_tok_s, latency=mixed.latency,
        max_concurrent_requests=gen.max_concurrent_requests, kv_capacity_tokens=mixed.kv_capacity_tokens,
        preemptions=mixed.preemptions, requests=mixed.requests, saturation_requests=gen.requests,
        max_generation_steady_state=gen.steady_state,
        saturation_note=saturation_note(m, inf, w) or saturation_note(m, prefill_inf, w),
        **overload(w, mixed),
        decode_gpus=d_gpus, prefill_gpus=p_gpus, generation_tok_s_per_gpu=gen_tok_s / d_gpus,
        prompt_tok_s_per_gpu=pre_tok_s / p_gpus, generation_tok_s_per_node=gen_tok_s / inf.cluster.nodes,
        prompt_tok_s_per_node=pre_tok_s / prefill_inf.cluster.nodes,
        decode_iteration=decode_breakdown(steps, gen.max_concurrent_requests, ctx), timing_coverage=coverage,
        timeline=mixed.timeline, samples=mixed.samples, sim_wall_s=sum(r.sim_wall_s for r in runs.values()))
