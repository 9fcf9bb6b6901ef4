"""`planner plan`: the cheapest deployment of a model that carries a traffic within latency targets.

Two steps, as configuration searchers in this field do (AIConfigurator, Vidur-Search):

1. **Screen** every layout the plan's `search:` allows on every candidate GPU (`screen`, one call per
   layout; planner/plan_runner.py spreads them over Dask): the layout must fit (feasibility.py); its
   decode batch is the largest whose iteration, from the iteration model the simulator itself uses
   (serve_costs.py), keeps TPOT within the target; its prefill rate is a full token budget of mean
   prompts; and a p99-long prompt alone must prefill within the TTFT target. `candidates` then sizes
   each GPU's deployments: aggregated (units time-share prefill and decode) or disaggregated (the
   GPU's best prefill layout and each decode layout, sized apart), priced from the GPU file.
2. **Verify** (`verify`): the cheapest candidates of each GPU are simulated in full (serve_sim.py) at
   their share of the traffic, as Poisson arrivals; one whose TTFT p99 or TPOT p50 misses its target gets
   more units, up to VERIFY_TRIES times, and is otherwise rejected with what the simulation measured.

Prefix-cache hits (traffic.prefix_cache_hit_rate) spare prefill work only on disaggregated prefill units,
as DeepSeek's deployment serves them from a KV store (modelled as that share of requests needing no
prefill); an aggregated unit here prefills every prompt in full (the simulator has no prefix cache).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from costmodel.feasibility import instance_problems, longest_tokens, request_problems
from costmodel.memory import serving_memory
from costmodel.pareto import pareto_front
from costmodel.plan_spec import PlanSpec
from costmodel.serve_costs import StepModel, decode_breakdown, step_model_for
from costmodel.serve_sim import simulate_serving
from costmodel.specs import ClusterSpec, InferenceSpec, Parallelism, WorkloadSpec

VERIFY_TRIES = 4  # full simulations of one candidate, each with more units than the last
VERIFIED_PER_GPU = 3  # candidates of each GPU simulated in full, cheapest first
MORE_UNITS = 1.25  # after a missed target: a quarter more units (at least one)


@dataclass(frozen=True)
class Layout:
    """One serving unit's shape: `nodes` of the GPU, attention TP (DP fills the unit, EP spans it)."""

    gpu: str
    nodes: int
    tp: int
    redundant_experts: int

    @property
    def label(self) -> str:
        """e.g. "4n TP1 +32r": nodes, attention TP, redundant experts (the GPU is named beside it)."""
        return f"{self.nodes}n TP{self.tp}" + (f" +{self.redundant_experts}r" if self.redundant_experts else "")


@dataclass
class Screened:
    """A layout's capacities from the iteration model, or why it cannot serve within the targets."""

    layout: Layout
    gpus: int
    reason: str = ""
    decode_batch: int = 0  # requests decoding at once on the unit: the most that keep TPOT on target
    tpot_s: float = 0.0  # at that batch
    decode_tok_s: float = 0.0  # output tokens per second at that batch
    prefill_tok_s: float = 0.0  # prompt tokens per second with a full token budget per iteration
    p99_prefill_s: float = 0.0  # a p99-long prompt alone


@dataclass
class Candidate:
    """A sized deployment on one GPU type: units of one layout (aggregated) or of two (disaggregated)."""

    gpu: str
    mode: str  # "aggregated" or "disaggregated"
    decode: Screened  # the aggregated unit, or the decode unit
    prefill: Screened | None  # the prefill unit when disaggregated
    decode_units: int
    prefill_units: int
    price_usd_per_gpu_hour: float
    verified: dict = field(default_factory=dict)  # the full simulation's figures, once run

    @property
    def gpus(self) -> int:
        return self.decode_units * self.decode.gpus + (self.prefill_units * self.prefill.gpus if self.prefill else 0)

    @property
    def usd_per_hour(self) -> float:
        return self.gpus * self.price_usd_per_gpu_hour


def layouts(plan: PlanSpec) -> list[Layout]:
    """Every layout of `search:` on every GPU, within the node limit."""
    s = plan.search
    return [Layout(g.name, n, tp, r) for g in plan.gpus for n in s.nodes if n <= plan.limits.max_nodes
            for tp in s.tp for r in s.redundant_experts]


def unit(plan: PlanSpec, engine: InferenceSpec, lay: Layout, rate_per_s: float = 1.0, requests: int = 1,
         max_running: int | None = None) -> InferenceSpec:
    """The layout as an inference part: the engine settings, this GPU, TP x DP = the unit's GPUs, EP over all."""
    gpu = next(g for g in plan.gpus if g.name == lay.gpu)
    gpus = lay.nodes * plan.limits.gpus_per_node
    cluster = ClusterSpec(name=f"{lay.gpu}-{lay.nodes}-nodes", gpu=gpu, gpus_per_node=plan.limits.gpus_per_node,
                          nodes=lay.nodes)
    par = Parallelism(tp=lay.tp, dp=max(1, gpus // lay.tp), ep=gpus if plan.model.ffn == "moe" else 1, zero_stage=0)
    t = plan.traffic
    workload = WorkloadSpec(prompt_tokens=t.prompt_tokens, output_tokens=t.output_tokens, arrival="poisson",
                            rate_per_s=rate_per_s, requests=requests)
    fields = {**dict(engine), "cluster": cluster, "parallelism": par, "redundant_experts": lay.redundant_experts,
              "workload": workload, **({"max_running": max_running} if max_running else {})}
    return InferenceSpec.model_validate(fields)


def tokens_per_step(engine: InferenceSpec) -> float:
    """Tokens a decoding request gains per iteration: 1, plus the expected accepted MTP drafts."""
    kept, total = 1.0, 1.0
    for p in engine.mtp.position_acceptance() if engine.mtp else []:
        kept *= p
        total += kept
    return total


def screen(plan: PlanSpec, engine: InferenceSpec, lay: Layout) -> Screened:
    """One layout's fit, its decode batch at the TPOT target, its prefill rate and a p99 prompt's prefill."""
    m, t = plan.model, plan.traffic
    gpus = lay.nodes * plan.limits.gpus_per_node
    if gpus % lay.tp:
        return Screened(lay, gpus, f"layout: TP{lay.tp} does not divide the unit's {gpus} GPUs")
    inf = unit(plan, engine, lay)
    longest = longest_tokens(t.prompt_tokens, m.max_position_embeddings) + longest_tokens(t.output_tokens, m.max_position_embeddings)
    problems = instance_problems(m, inf) or request_problems(m, inf, longest)
    if problems:
        return Screened(lay, gpus, f"{'memory' if 'GB' in problems[0].problem else 'layout'}: {problems[0].problem}")
    steps = step_model_for(m, inf)
    per_step = tokens_per_step(engine)
    batch, tpot = decode_batch(steps, inf, int(t.prompt_tokens.mean + t.output_tokens.mean / 2), plan.slo.tpot_s, per_step)
    if batch == 0:
        return Screened(lay, gpus, f"SLO: one request alone decodes at {1e3 * tpot:.1f} ms a token, over the "
                        f"{1e3 * plan.slo.tpot_s:.1f} ms TPOT target")
    p99 = min(int(t.prompt_tokens.percentile(99)), m.max_position_embeddings)
    p99_s = steps.time([(p99, p99)], 0, 0)
    if p99_s > plan.slo.ttft_p99_s:
        return Screened(lay, gpus, f"SLO: a p99 prompt of {p99:,} tokens alone takes {p99_s:.2f} s to prefill, "
                        f"over the {plan.slo.ttft_p99_s:g} s TTFT target")
    return Screened(lay, gpus, "", batch, tpot, batch / tpot, prefill_rate(steps, inf, int(t.prompt_tokens.mean)), p99_s)


def decode_batch(steps: StepModel, inf: InferenceSpec, ctx: int, tpot_target_s: float,
                 per_step: float) -> tuple[int, float]:
    """The largest decode batch of the unit whose TPOT (iteration time / tokens per step) meets the
    target, within the KV cache and max_running of every attention rank, with its TPOT; (0, TPOT of one
    request) when one request alone misses. Bisection: the iteration time grows with the batch."""
    def tpot(b: int) -> float:
        return decode_breakdown(steps, b, ctx)["iteration_s"] / per_step

    dp = inf.parallelism.dp
    per_rank = min(inf.max_running, int(serving_memory(steps.m, inf).kv_capacity_tokens) // max(1, ctx))
    lo, hi = 1, max(1, per_rank) * dp
    if tpot(lo) > tpot_target_s:
        return 0, tpot(lo)
    if tpot(hi) <= tpot_target_s:
        return hi, tpot(hi)
    while hi - lo > max(1, lo // 64):  # to within 1.6%: a capacity, not an exact count
        mid = (lo + hi) // 2
        lo, hi = (mid, hi) if tpot(mid) <= tpot_target_s else (lo, mid)
    return lo, tpot(lo)


def prefill_rate(steps: StepModel, inf: InferenceSpec, prompt: int) -> float:
    """Prompt tokens per second of prefill-only iterations, each rank's token budget full of mean prompts."""
    per_rank = max(1, inf.max_batch_tokens // max(1, prompt))
    chunks = [(prompt, prompt)] * (per_rank * inf.parallelism.dp)
    return prompt * len(chunks) / steps.time(chunks, 0, 0)


def candidates(plan: PlanSpec, screened: list[Screened]) -> tuple[list[Candidate], list[dict]]:
    """Each GPU's sized deployments (aggregated per layout; disaggregated: its best prefill layout with
    each decode layout), and the layouts rejected with their reason."""
    rejected = [{"plan": f"{s.layout.gpu} {s.layout.label}", "reason": s.reason} for s in screened if s.reason]
    out: list[Candidate] = []
    t = plan.traffic
    rate = t.rate_per_s
    prompt_tok_s, out_tok_s = rate * t.prompt_tokens.mean, rate * t.output_tokens.mean
    for gpu in plan.gpus:
        ok = [s for s in screened if s.layout.gpu == gpu.name and not s.reason]
        price = gpu.price_usd_per_hour.value
        if False in plan.search.disaggregated:
            for s in ok:  # one unit time-shares prompts and decodes: its load is the sum of both shares
                units = math.ceil(prompt_tok_s / s.prefill_tok_s + out_tok_s / s.decode_tok_s)
                out.append(Candidate(gpu.name, "aggregated", s, None, units, 0, price))
        if True in plan.search.disaggregated and ok:
            pre = min(ok, key=lambda s: math.ceil(prompt_tok_s * (1 - t.prefix_cache_hit_rate) / s.prefill_tok_s) * s.gpus)
            p_units = max(1, math.ceil(prompt_tok_s * (1 - t.prefix_cache_hit_rate) / pre.prefill_tok_s))
            for s in ok:
                out.append(Candidate(gpu.name, "disaggregated", s, pre, math.ceil(out_tok_s / s.decode_tok_s), p_units, price))
    within = [c for c in out if nodes_of(c) <= plan.limits.max_nodes]
    rejected += [{"plan": f"{c.gpu} {c.mode} {describe(c)['layout']}", "reason": f"limits: {nodes_of(c)} nodes, over max_nodes "
                  f"{plan.limits.max_nodes}"} for c in out if nodes_of(c) > plan.limits.max_nodes]
    return sorted(within, key=lambda c: c.usd_per_hour), rejected


def nodes_of(c: Candidate) -> int:
    return c.decode_units * c.decode.layout.nodes + (c.prefill_units * c.prefill.layout.nodes if c.prefill else 0)


def verify(plan: PlanSpec, engine: InferenceSpec, c: Candidate) -> str:
    """Simulate the candidate in full at its traffic share; add units until TTFT p99 and TPOT p50 meet
    the targets (VERIFY_TRIES simulations at most). Returns "" when they do, else what was measured."""
    for _ in range(VERIFY_TRIES):
        c.verified = simulate_candidate(plan, engine, c)
        misses = slo_misses(plan, c.verified)
        if not misses:
            return ""
        if "ttft" in misses and c.prefill is not None:
            c.prefill_units = grow(c.prefill_units)
        if "tpot" in misses or c.prefill is None:
            c.decode_units = grow(c.decode_units)
        if nodes_of(c) > plan.limits.max_nodes:
            break
    v = c.verified
    return (f"SLO in the full simulation: TTFT p99 {v['ttft_p99_s']:.2f} s (target {plan.slo.ttft_p99_s:g} s), "
            f"TPOT p50 {1e3 * v['tpot_p50_s']:.1f} ms (target {1e3 * plan.slo.tpot_s:.1f} ms)")


def grow(units: int) -> int:
    return max(units + 1, math.ceil(units * MORE_UNITS))


def slo_misses(plan: PlanSpec, v: dict) -> set[str]:
    out = set()
    if v["ttft_p99_s"] is None or v["ttft_p99_s"] > plan.slo.ttft_p99_s:
        out.add("ttft")
    if v["tpot_p50_s"] is None or v["tpot_p50_s"] > plan.slo.tpot_s:
        out.add("tpot")
    return out


def simulate_candidate(plan: PlanSpec, engine: InferenceSpec, c: Candidate) -> dict:
    """TTFT p99 and TPOT p50 of one unit at its share of the traffic (Poisson arrivals), enough requests
    to fill its planned decode batch three times over; disaggregated: the prefill unit (requests that
    miss the prefix cache) and the decode unit (prompts arriving in its cache) simulated apart."""
    t, m = plan.traffic, plan.model
    d = c.decode
    n_decode = max(plan.search.simulated_requests, 3 * d.decode_batch)
    rank_rows = -(-d.decode_batch // unit(plan, engine, d.layout).parallelism.dp)
    if c.prefill is None:
        inf = unit(plan, engine, d.layout, t.rate_per_s / c.decode_units, n_decode, rank_rows)
        r = simulate_serving(d.layout.label, m, inf)
        return {"ttft_p99_s": r.latency.ttft_p99_s, "tpot_p50_s": r.latency.tpot_p50_s, "requests": r.requests}
    miss_rate = t.rate_per_s * (1 - t.prefix_cache_hit_rate) / c.prefill_units
    pre = simulate_serving(c.prefill.layout.label, m, unit(plan, engine, c.prefill.layout, miss_rate,
                                                          plan.search.simulated_requests), phase="prefill")
    dec = simulate_serving(d.layout.label, m, unit(plan, engine, d.layout, t.rate_per_s / c.decode_units, n_decode,
                                                   rank_rows), phase="decode")
    return {"ttft_p99_s": pre.latency.ttft_p99_s, "tpot_p50_s": dec.latency.tpot_p50_s,
            "requests": pre.requests + dec.requests}


def describe(c: Candidate, plan: PlanSpec | None = None) -> dict:
    """A candidate as the JSON of `planner plan`: layout, GPUs, price per hour and per million tokens."""
    layout = c.decode.layout.label if c.prefill is None else f"P {c.prefill.layout.label} / D {c.decode.layout.label}"
    out = {"gpu": c.gpu, "mode": c.mode, "layout": layout, "gpus": c.gpus, "nodes": nodes_of(c),
           "decode_units": c.decode_units, "prefill_units": c.prefill_units, "usd_per_hour": c.usd_per_hour,
           "decode_batch_per_unit": c.decode.decode_batch, "tpot_p50_s": c.verified.get("tpot_p50_s", c.decode.tpot_s),
           "ttft_p99_s": c.verified.get("ttft_p99_s"), "verified": bool(c.verified)}
    if plan is not None:
        out |= token_prices(plan, c)
    return out


def token_prices(plan: PlanSpec, c: Candidate) -> dict:
    """$ per million input and output tokens: a disaggregated deployment's prefill units bill the input,
    its decode units the output; an aggregated unit's hour is split by the time it spends on each."""
    t = plan.traffic
    in_per_h, out_per_h = t.rate_per_s * t.prompt_tokens.mean * 3600, t.rate_per_s * t.output_tokens.mean * 3600
    price = c.price_usd_per_gpu_hour
    if c.prefill is not None:
        pre_usd = c.prefill_units * c.prefill.gpus * price
        dec_usd = c.decode_units * c.decode.gpus * price
    else:
        pre_share = (in_per_h / c.decode.prefill_tok_s) / (in_per_h / c.decode.prefill_tok_s + out_per_h / c.decode.decode_tok_s)
        pre_usd, dec_usd = c.usd_per_hour * pre_share, c.usd_per_hour * (1 - pre_share)
    return {"usd_per_m_input_tokens": pre_usd / in_per_h * 1e6, "usd_per_m_output_tokens": dec_usd / out_per_h * 1e6}


def front(plan: PlanSpec, cands: list[Candidate]) -> list[dict]:
    """The Pareto front of cost per hour against TPOT over every sized candidate."""
    pts = [describe(c, plan) for c in cands]
    return sorted(pareto_front(pts, [("usd_per_hour", "min"), ("tpot_p50_s", "min")]), key=lambda p: p["usd_per_hour"])


def answer(plan: PlanSpec, engine: InferenceSpec, screened: list[Screened],
           progress=None) -> dict:
    """The whole plan: verify each GPU's cheapest candidates, recommend the cheapest verified one."""
    cands, rejected = candidates(plan, screened)
    per_gpu: list[dict] = []
    for gpu in plan.gpus:
        mine = [c for c in cands if c.gpu == gpu.name][:VERIFIED_PER_GPU]
        best = None
        for c in mine:
            if progress:
                progress(f"simulating {c.gpu} {describe(c)['layout']}")
            reason = verify(plan, engine, c)
            if reason:
                rejected.append({"plan": f"{c.gpu} {c.mode} {describe(c)['layout']}", "reason": reason})
            elif best is None or c.usd_per_hour < best.usd_per_hour:
                best = c
        if best is not None:
            per_gpu.append(describe(best, plan))
    recommended = min(per_gpu, key=lambda p: p["usd_per_hour"]) if per_gpu else None
    return {"plan": plan.name, "traffic": {"requests_per_s": plan.traffic.rate_per_s,
                                           "prefix_cache_hit_rate": plan.traffic.prefix_cache_hit_rate},
            "slo": {"ttft_p99_s": plan.slo.ttft_p99_s, "tpot_p50_s": plan.slo.tpot_s},
            "recommended": recommended, "per_gpu_type": sorted(per_gpu, key=lambda p: p["usd_per_hour"]),
            "front": front(plan, cands), "rejected": rejected, "layouts_screened": len(screened)}
