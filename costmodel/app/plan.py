"""`planner plan`: the cheapest deployment of a model that carries a traffic within latency targets.

Two steps, as configuration searchers in this field do (AIConfigurator, Vidur-Search):

1. **Screen** every layout the plan's `search:` allows on every candidate GPU (`screen`, one call per
   layout; planner/plan_runner.py spreads them over Dask), with the iteration model the simulator itself
   uses (serve_costs.py). A layout must fit (feasibility.py). As a **decode** unit its batch is the
   largest whose iteration keeps TPOT on target; as a **prefill** unit its rate is a full token budget of
   mean prompts, and a p99 prompt alone must prefill within the TTFT target; as an **aggregated** unit
   (prefill chunks riding in the decode iterations) the token budget per iteration is searched too,
   each iteration carrying both a prefill chunk and the largest decode batch that keeps TPOT on target.
   `candidates` sizes each GPU's deployments from these rates and prices them from the GPU file.
2. **Verify** (`verify`): candidates of each GPU are simulated in full (serve_sim.py), cheapest first,
   until one meets the targets: each unit at its share of the traffic as Poisson arrivals, with the
   batch (max_running) and token budget the screen chose, for ten request lifetimes at its planned
   load. One that misses gets more units, up to VERIFY_TRIES times, unless that stops helping.

A prefix-cache hit rate h makes every prompt's first h of tokens cached when it is admitted, in sizing
and in simulation alike (its KV is not recomputed; loading it is not modelled).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

from costmodel.app.feasibility import (
    Problem,
    context_problems,
    instance_problems,
    longest_request,
    request_problems,
    serving_option_problems,
)
from costmodel.app.pareto import pareto_front
from costmodel.app.serving import run_serving, steps_for
from costmodel.counts.memory import serving_memory
from costmodel.inputs.errors import PlannerError
from costmodel.inputs.plan_spec import PlanSpec, load_plan
from costmodel.inputs.specs import ClusterSpec, InferenceSpec, Parallelism, WorkloadSpec
from costmodel.timing.serve_costs import StepModel, decode_breakdown

VERIFY_TRIES = 4  # full simulations of one candidate, each with more units than the last
VERIFY_PER_GPU = 6  # candidates of one GPU simulated, cheapest first, before it is given up
MORE_UNITS = 1.25  # after a missed target: a quarter more units (at least one)
LIFETIMES = 10  # a verification's requests: this many request lifetimes of arrivals at the planned load
MAX_SIMULATED = 50_000  # ... at most this many requests
CHUNK_SHARES = (4, 2, 1, 1 / 2, 1 / 4, 1 / 8, 1 / 16)  # aggregated units: prompt tokens computed per iteration, in
# mean computed prompts (smaller chunks slow the decodes sharing their iterations less, but prefill slower)
CURVE_SHARES = (1, 2, 4, 8)  # the front: each decode layout also at its batch divided by these


@dataclass(frozen=True)
class Layout:
    """One serving unit's shape: `nodes` of the GPU, attention TP (DP fills the unit, EP spans it); a rack
    unit (`rack_gpus` set) is that many GPUs of one NVLink domain larger than a node (an NVL72 rack's)."""

    gpu: str
    nodes: int
    tp: int
    redundant_experts: int
    rack_gpus: int | None = None

    @property
    def label(self) -> str:
        """e.g. "4n TP1 +32r" (nodes) or "48g rack TP1" (GPUs of one rack), attention TP, redundant experts."""
        size = f"{self.rack_gpus}g rack" if self.rack_gpus else f"{self.nodes}n"
        return f"{size} TP{self.tp}" + (f" +{self.redundant_experts}r" if self.redundant_experts else "")

    def domain_gpus(self, gpus_per_node: int) -> int:
        """GPUs of one NVLink domain of the unit: the rack's share, else one node's."""
        return self.rack_gpus or gpus_per_node


@dataclass
class Role:
    """What a layout sustains in one role within the targets, or why it cannot play it."""

    reason: str = ""
    batch: int = 0  # requests decoding at once on the unit
    tpot_s: float = 0.0
    decode_tok_s: float = 0.0  # output tokens per second
    prefill_tok_s: float = 0.0  # prompt tokens per second (cache hits included, as the traffic counts them)
    budget_tokens: int = 0  # per attention rank and iteration (aggregated: the one chosen)
    curve: list[tuple[int, float]] = field(default_factory=list)  # decode: (batch, TPOT) at smaller batches


@dataclass
class Screened:
    layout: Layout
    gpus: int
    reason: str = ""  # the layout cannot serve at all (memory, layout)
    kind: str = ""  # of `reason`
    decode: Role = field(default_factory=Role)
    prefill: Role = field(default_factory=Role)
    aggregated: Role = field(default_factory=Role)


@dataclass
class Candidate:
    """A sized deployment on one GPU type: units of one layout (aggregated) or of two (disaggregated)."""

    gpu: str
    mode: str  # "aggregated" or "disaggregated"
    decode: Screened  # the aggregated unit, or the decode unit
    prefill: Screened | None
    decode_units: int
    prefill_units: int
    price_usd_per_gpu_hour: float
    batch: int  # per decode (or aggregated) unit
    tpot_s: float  # the screen's
    budget_tokens: int  # per rank, of the decode (or aggregated) unit
    simulated: dict = field(default_factory=dict)

    @property
    def gpus(self) -> int:
        return self.decode_units * self.decode.gpus + (self.prefill_units * self.prefill.gpus if self.prefill else 0)

    @property
    def nodes(self) -> int:
        return self.decode_units * self.decode.layout.nodes + (self.prefill_units * self.prefill.layout.nodes if self.prefill else 0)

    @property
    def usd_per_hour(self) -> float:
        return self.gpus * self.price_usd_per_gpu_hour

    @property
    def layout(self) -> str:
        d = self.decode.layout.label
        return d if self.prefill is None else f"P {self.prefill.layout.label} / D {d}"


# ------------------------------------------------------------------------------------------ screen


def plan_problems(plan: PlanSpec, engine: InferenceSpec) -> list[Problem]:
    """What is wrong with the plan as a whole, before any layout is tried: engine settings the model
    cannot use (MTP drafts without MTP modules, expert kernels for a dense model), requests longer than
    the model's context. (Problem.field is inside the plan file.)"""
    out = [Problem(f"engine.{p.field}", p.problem, p.fix, p.kind) for p in serving_option_problems(plan.model, engine)]
    t = plan.traffic
    return out + context_problems(plan.model, longest_request(t.prompt_tokens, t.output_tokens,
                                                              plan.model.max_position_embeddings), "traffic")


def checked_plan(path: Path, text: str | None = None) -> tuple[PlanSpec, InferenceSpec]:
    """load_plan, then plan_problems: the first problem as one error naming the file and the field."""
    plan, engine = load_plan(path, text)
    problems = plan_problems(plan, engine)
    if problems:
        p = problems[0]
        raise PlannerError(p.problem, file=str(path), field=p.field, fix=p.fix)
    return plan, engine


def layouts(plan: PlanSpec) -> list[Layout]:
    """Every layout of `search:` on every GPU (plan_spec checks that some fit the node limit)."""
    s = plan.search
    nodes = [Layout(g.name, n, tp, r) for g in plan.gpus for n in s.nodes if n <= plan.limits.max_nodes
             for tp in s.tp for r in s.redundant_experts]
    racks = [Layout(g.name, 1, tp, r, size) for g in plan.gpus for size in s.rack_gpus
             if plan.limits.gpus_per_node < size <= g.nvlink_domain_gpus for tp in s.tp for r in s.redundant_experts]
    return nodes + racks


def unit(plan: PlanSpec, engine: InferenceSpec, lay: Layout, rate_per_s: float = 1.0, requests: int = 1,
         max_running: int | None = None, budget_tokens: int | None = None) -> InferenceSpec:
    """The layout as an inference part: the engine settings, this GPU, TP x DP = the unit's GPUs, EP over all."""
    gpu = next(g for g in plan.gpus if g.name == lay.gpu)
    domain = lay.domain_gpus(plan.limits.gpus_per_node)
    gpus = lay.nodes * domain
    name = f"{lay.gpu}-{lay.rack_gpus}-gpu-rack" if lay.rack_gpus else f"{lay.gpu}-{lay.nodes}-nodes"
    cluster = ClusterSpec(name=name, gpu=gpu, gpus_per_node=domain, nodes=lay.nodes)
    par = Parallelism(tp=lay.tp, dp=max(1, gpus // lay.tp), ep=gpus if plan.model.ffn == "moe" else 1, zero_stage=0)
    t = plan.traffic
    workload = WorkloadSpec(prompt_tokens=t.prompt_tokens, output_tokens=t.output_tokens, arrival="poisson",
                            rate_per_s=rate_per_s, requests=requests, prefix_cache_hit_rate=t.prefix_cache_hit_rate)
    fields = {**dict(engine), "cluster": cluster, "parallelism": par, "redundant_experts": lay.redundant_experts,
              "workload": workload, **({"max_running": max_running} if max_running else {}),
              **({"max_batch_tokens": budget_tokens} if budget_tokens else {})}
    return InferenceSpec.model_validate(fields)


def tokens_per_step(engine: InferenceSpec) -> float:
    """Tokens a decoding request gains per iteration: 1, plus the expected accepted MTP drafts."""
    kept, total = 1.0, 1.0
    for p in engine.mtp.position_acceptance() if engine.mtp else []:
        kept *= p
        total += kept
    return total


@dataclass(frozen=True)
class Shape:
    """The traffic as the screen uses it: mean decode context, computed part of a mean and a p99 prompt."""

    ctx: int
    prompt: int
    computed: int
    p99: int
    p99_computed: int


def traffic_shape(plan: PlanSpec) -> Shape:
    t, hit = plan.traffic, plan.traffic.prefix_cache_hit_rate
    prompt = int(t.prompt_tokens.mean)
    p99 = min(int(t.prompt_tokens.percentile(99)), plan.model.max_position_embeddings)
    return Shape(int(t.prompt_tokens.mean + t.output_tokens.mean / 2), prompt, max(1, round(prompt * (1 - hit))),
                 p99, max(1, round(p99 * (1 - hit))))


def screen(plan: PlanSpec, engine: InferenceSpec, lay: Layout) -> Screened:
    """One layout: does it fit, and what it sustains as a decode, a prefill and an aggregated unit."""
    m, t = plan.model, plan.traffic
    gpus = lay.nodes * lay.domain_gpus(plan.limits.gpus_per_node)
    if gpus % lay.tp:
        return Screened(lay, gpus, f"TP{lay.tp} does not divide the unit's {gpus} GPUs", "layout")
    inf = unit(plan, engine, lay)
    longest = longest_request(t.prompt_tokens, t.output_tokens, m.max_position_embeddings)
    problems = instance_problems(m, inf) or request_problems(m, inf, longest)
    if problems:
        return Screened(lay, gpus, problems[0].problem, problems[0].kind)
    steps, shape = steps_for(m, inf), traffic_shape(plan)
    return Screened(lay, gpus, decode=decode_role(plan, engine, steps, inf, shape),
                    prefill=prefill_role(plan, steps, inf, shape),
                    aggregated=aggregated_role(plan, engine, steps, inf, shape))


def decode_role(plan: PlanSpec, engine: InferenceSpec, steps: StepModel, inf: InferenceSpec, shape: Shape) -> Role:
    per_step = tokens_per_step(engine)
    batch, tpot = decode_batch(lambda b: decode_breakdown(steps, b, shape.ctx)["iteration_s"] / per_step,
                               batch_limit(steps, inf, shape.ctx), plan.slo.tpot_s)
    if batch == 0:
        return Role(f"one request alone decodes at {1e3 * tpot:.1f} ms a token, over the "
                    f"{1e3 * plan.slo.tpot_s:.1f} ms TPOT target")
    curve = [(b, decode_breakdown(steps, b, shape.ctx)["iteration_s"] / per_step)
             for b in sorted({max(1, batch // k) for k in CURVE_SHARES})]
    return Role("", batch, tpot, batch / tpot, budget_tokens=inf.batch_tokens, curve=curve)


def batch_limit(steps: StepModel, inf: InferenceSpec, ctx: int) -> int:
    """The most requests the unit holds: max_running and the KV cache of every attention rank."""
    per_rank = min(inf.max_running, int(serving_memory(steps.m, inf).kv_capacity_tokens) // max(1, ctx))
    return max(1, per_rank) * inf.parallelism.dp


def decode_batch(tpot, limit: int, target_s: float) -> tuple[int, float]:
    """The largest batch up to `limit` whose tpot(batch) meets the target, with that TPOT; (0, tpot(1))
    when one request alone misses. Bisection (the iteration time grows with the batch) to within 1/64."""
    lo, hi = 1, limit
    if tpot(lo) > target_s:
        return 0, tpot(lo)
    if tpot(hi) <= target_s:
        return hi, tpot(hi)
    while hi - lo > max(1, lo // 64):
        mid = (lo + hi) // 2
        lo, hi = (mid, hi) if tpot(mid) <= target_s else (lo, mid)
    return lo, tpot(lo)


def prefill_role(plan: PlanSpec, steps: StepModel, inf: InferenceSpec, shape: Shape) -> Role:
    """Prompt tokens per second with every rank's token budget full of mean prompts; a p99 prompt alone
    must prefill within the TTFT target."""
    p99_s = steps.time([(shape.p99_computed, shape.p99)], 0, 0)
    if p99_s > plan.slo.ttft_p99_s:
        return Role(f"a p99 prompt of {shape.p99:,} tokens alone takes {p99_s:.2f} s to prefill, over the "
                    f"{plan.slo.ttft_p99_s:g} s TTFT target")
    if inf.batch_tokens >= shape.computed:  # whole prompts: as many as a rank's budget holds
        chunks = [(shape.computed, shape.prompt)] * (inf.batch_tokens // shape.computed * inf.parallelism.dp)
        return Role("", prefill_tok_s=shape.prompt * len(chunks) / steps.time(chunks, 0, 0),
                    budget_tokens=inf.batch_tokens)
    # a budget under one prompt: each rank carries one chunk of it an iteration, at the prompt's middle
    chunk = inf.batch_tokens
    chunks = [(chunk, shape.prompt - shape.computed + max(chunk, shape.computed // 2))] * inf.parallelism.dp
    computed_s = steps.time(chunks, 0, 0) * shape.computed / chunk  # iterations a prompt takes, each this long
    return Role("", prefill_tok_s=shape.prompt * inf.parallelism.dp / computed_s, budget_tokens=inf.batch_tokens)


def aggregated_role(plan: PlanSpec, engine: InferenceSpec, steps: StepModel, inf: InferenceSpec, shape: Shape) -> Role:
    """Each prefill share of CHUNK_SHARES (prompt tokens computed per iteration over the whole unit, in
    the chunks the simulator forms: whole computed prompts, the last cut; each on one attention rank)
    with the largest decode batch that keeps TPOT on target; kept is the share that needs the fewest
    units for the traffic's mix of prompt and output tokens. Its token budget per rank is what lets the
    simulator form those iterations."""
    t, per_step, dp = plan.traffic, tokens_per_step(engine), inf.parallelism.dp
    prompt_tok_s, out_tok_s = t.rate_per_s * t.prompt_tokens.mean, t.rate_per_s * t.output_tokens.mean
    best = None
    for share in CHUNK_SHARES:
        prefill = max(1, round(shape.computed * share))
        chunks = [(shape.computed, shape.prompt)] * (prefill // shape.computed) + (
            [(prefill % shape.computed, shape.prompt)] if prefill % shape.computed else [])
        batch, tpot = decode_batch(lambda b, c=chunks: steps.time(c, b, b * shape.ctx) / per_step,
                                   batch_limit(steps, inf, shape.ctx), plan.slo.tpot_s)
        if batch == 0:
            continue
        budget = -(-(prefill + batch * steps.decode_q) // dp)
        if budget > inf.batch_tokens:  # the engine's token budget per rank caps what an iteration carries
            continue
        role = Role("", batch, tpot, batch / tpot, prefill / (tpot * per_step) * shape.prompt / shape.computed, budget)
        if best is None or units_needed(role, prompt_tok_s, out_tok_s) < units_needed(best, prompt_tok_s, out_tok_s):
            best = role
    return best or Role("no prefill chunk leaves room for a decode batch within the TPOT target")


def units_needed(role: Role, prompt_tok_s: float, out_tok_s: float) -> float:
    """Aggregated units (fractional) for the traffic: the busier of its two resources sets the count."""
    return max(prompt_tok_s / role.prefill_tok_s, out_tok_s / role.decode_tok_s)


# ------------------------------------------------------------------------------------------- size


def candidates(plan: PlanSpec, screened: list[Screened]) -> tuple[list[Candidate], list[dict]]:
    """Each GPU's sized deployments, cheapest first, and the layouts rejected with their reason."""
    rejected = [rejection(s.layout, s.kind, s.reason) for s in screened if s.reason]
    for s in (s for s in screened if not s.reason):
        for role, name in ((s.decode, "decode"), (s.prefill, "prefill"), (s.aggregated, "aggregated")):
            if role.reason:
                rejected.append(rejection(s.layout, "SLO", f"as {'an' if name[0] == 'a' else 'a'} {name} unit: {role.reason}"))
    out: list[Candidate] = []
    for gpu in plan.gpus:
        ok = [s for s in screened if s.layout.gpu == gpu.name and not s.reason]
        price = gpu.price_usd_per_hour.value
        if False in plan.search.disaggregated:
            out += [aggregated(plan, s, price) for s in ok if not s.aggregated.reason]
        if True in plan.search.disaggregated:
            out += disaggregated(plan, [s for s in ok if not s.prefill.reason], [s for s in ok if not s.decode.reason], price)
    over = [c for c in out if c.nodes > plan.limits.max_nodes]
    rejected += [{"plan": f"{c.gpu} {c.mode} {c.layout}", "reason": f"limits: {c.nodes} nodes, over max_nodes "
                  f"{plan.limits.max_nodes}"} for c in over]
    within = [c for c in out if c.nodes <= plan.limits.max_nodes]
    return sorted(within, key=lambda c: (c.usd_per_hour, c.tpot_s)), rejected


def rejection(lay: Layout, kind: str, reason: str) -> dict:
    return {"plan": f"{lay.gpu} {lay.label}", "reason": f"{kind}: {reason}"}


def aggregated(plan: PlanSpec, s: Screened, price: float) -> Candidate:
    t, a = plan.traffic, s.aggregated
    units = math.ceil(units_needed(a, t.rate_per_s * t.prompt_tokens.mean, t.rate_per_s * t.output_tokens.mean))
    return Candidate(s.layout.gpu, "aggregated", s, None, units, 0, price, a.batch, a.tpot_s, a.budget_tokens)


def disaggregated(plan: PlanSpec, prefills: list[Screened], decodes: list[Screened], price: float,
                  batch_share: int = 1) -> list[Candidate]:
    """The GPU's cheapest prefill pool for the prompt tokens with each decode layout sized for the output
    tokens (at its batch divided by batch_share: the front's smaller batches)."""
    if not prefills or not decodes:
        return []
    t = plan.traffic
    prompt_tok_s, out_tok_s = t.rate_per_s * t.prompt_tokens.mean, t.rate_per_s * t.output_tokens.mean
    pre = min(prefills, key=lambda s: math.ceil(prompt_tok_s / s.prefill.prefill_tok_s) * s.gpus)
    p_units = max(1, math.ceil(prompt_tok_s / pre.prefill.prefill_tok_s))
    out = []
    for s in decodes:
        batch, tpot = s.decode.curve[-1] if batch_share == 1 else min(s.decode.curve, key=lambda bt: abs(bt[0] - s.decode.batch // batch_share))
        out.append(Candidate(s.layout.gpu, "disaggregated", s, pre, math.ceil(out_tok_s * tpot / batch), p_units,
                             price, batch, tpot, s.decode.budget_tokens))
    return out


# ------------------------------------------------------------------------------------------ verify


def verify(plan: PlanSpec, engine: InferenceSpec, c: Candidate) -> tuple[Candidate, str]:
    """The candidate simulated in full, with more units after each missed target (VERIFY_TRIES at most,
    while that still helps and stays within max_nodes). Returns the last one simulated and "" when it
    meets both targets, else why it was given up."""
    last_tpot = math.inf
    for _ in range(VERIFY_TRIES):
        c = replace(c, simulated=simulate(plan, engine, c))
        v = c.simulated
        misses = slo_misses(plan, v)
        if not misses:
            return c, ""
        if misses == {"tpot"} and v["tpot_p50_s"] >= last_tpot * 0.99:  # more units no longer lower TPOT
            break
        last_tpot = v["tpot_p50_s"] or 0.0
        grown = grow(c, v, misses)
        if grown.nodes > plan.limits.max_nodes:
            return c, f"limits: meeting the targets needs more than max_nodes {plan.limits.max_nodes} nodes"
        c = grown
    return c, (f"SLO in the full simulation: TTFT p99 {fmt_s(v['ttft_p99_s'])} (target {plan.slo.ttft_p99_s:g} s), "
               f"TPOT p50 {fmt_ms(v['tpot_p50_s'])} (target {1e3 * plan.slo.tpot_s:.1f} ms)")


def fmt_s(x: float | None) -> str:
    return "-" if x is None else f"{x:.2f} s"


def fmt_ms(x: float | None) -> str:
    return "-" if x is None else f"{1e3 * x:.1f} ms"


def grow(c: Candidate, v: dict, misses: set[str]) -> Candidate:
    """More units where the time goes: the prefill pool for a TTFT spent prefilling, else the decode units."""
    if c.prefill is not None and "ttft" in misses and v["prefill_ttft_p99_s"] >= v["decode_wait_p99_s"]:
        return replace(c, prefill_units=max(c.prefill_units + 1, math.ceil(c.prefill_units * MORE_UNITS)))
    return replace(c, decode_units=max(c.decode_units + 1, math.ceil(c.decode_units * MORE_UNITS)))


def slo_misses(plan: PlanSpec, v: dict) -> set[str]:
    """The targets a simulation missed (a TPOT is undefined, and so met, when no request has a second token)."""
    out = set()
    if v["ttft_p99_s"] is None or v["ttft_p99_s"] > plan.slo.ttft_p99_s:
        out.add("ttft")
    if v["tpot_p50_s"] is not None and v["tpot_p50_s"] > plan.slo.tpot_s:
        out.add("tpot")
    return out


def unit_specs(plan: PlanSpec, engine: InferenceSpec, c: Candidate) -> dict[str, InferenceSpec]:
    """The candidate's units as the verification simulates them, by role (aggregated, or prefill and
    decode): each at its share of the traffic (Poisson) for LIFETIMES request lifetimes at that load, the
    decode (or aggregated) unit with the batch and token budget the screen chose. The launch files
    (costmodel/app/launch) express exactly these."""
    t = plan.traffic
    lifetime_s = t.output_tokens.mean * c.tpot_s
    rate = t.rate_per_s / c.decode_units
    n = int(min(MAX_SIMULATED, max(plan.search.simulated_requests, LIFETIMES * rate * lifetime_s)))
    d = unit(plan, engine, c.decode.layout, rate, n, -(-c.batch // unit(plan, engine, c.decode.layout).parallelism.dp),
             c.budget_tokens)
    if c.prefill is None:
        return {"aggregated": d}
    p = unit(plan, engine, c.prefill.layout, t.rate_per_s / c.prefill_units, plan.search.simulated_requests)
    return {"prefill": p, "decode": d}


def simulate(plan: PlanSpec, engine: InferenceSpec, c: Candidate) -> dict:
    """Each unit of unit_specs simulated. Disaggregated: the prefill unit, then the decode unit (prompts
    arriving in its cache); TTFT is the prefill's p99 plus the decode queue's p99 wait."""
    m, units = plan.model, unit_specs(plan, engine, c)
    if c.prefill is None:
        d = units["aggregated"]
        r = run_serving(c.layout, m, d)
        return {"ttft_p99_s": r.latency.ttft_p99_s, "tpot_p50_s": r.latency.tpot_p50_s, "requests": r.requests,
                "max_running_per_rank": d.max_running, "budget_tokens_per_rank": d.batch_tokens}
    p, d = units["prefill"], units["decode"]
    pre = run_serving(c.layout, m, p, phase="prefill")
    dec = run_serving(c.layout, m, d, phase="decode")
    wait = dec.latency.ttft_p99_s or 0.0  # in a decode-only run the first token comes at admission
    ttft = None if pre.latency.ttft_p99_s is None else pre.latency.ttft_p99_s + wait
    return {"ttft_p99_s": ttft, "tpot_p50_s": dec.latency.tpot_p50_s, "prefill_ttft_p99_s": pre.latency.ttft_p99_s,
            "decode_wait_p99_s": wait, "requests": pre.requests + dec.requests, "max_running_per_rank": d.max_running,
            "budget_tokens_per_rank": d.batch_tokens}


# ------------------------------------------------------------------------------------------ answer


def describe(plan: PlanSpec, c: Candidate) -> dict:
    """A candidate as `planner plan` reports it: layout, units, GPUs, price per hour and per million
    tokens, and the simulated TTFT and TPOT (the screen's TPOT until it is simulated)."""
    v = c.simulated
    return {"gpu": c.gpu, "mode": c.mode, "layout": c.layout, "gpus": c.gpus, "nodes": c.nodes,
            "decode_units": c.decode_units, "prefill_units": c.prefill_units, "usd_per_hour": c.usd_per_hour,
            **token_prices(plan, c), "decode_batch_per_unit": c.batch, "simulated": bool(v),
            "ttft_p99_s": v.get("ttft_p99_s"), "tpot_p50_s": v.get("tpot_p50_s", c.tpot_s) if v else c.tpot_s,
            "slo_met": not slo_misses(plan, v) if v else None,
            "max_running_per_rank": v.get("max_running_per_rank"), "budget_tokens_per_rank": v.get("budget_tokens_per_rank"),
            "deployment": {"decode": asdict(c.decode.layout), "prefill": asdict(c.prefill.layout) if c.prefill else None,
                           "batch": c.batch, "screen_tpot_s": c.tpot_s, "budget_tokens": c.budget_tokens}}


def candidate_of(plan: PlanSpec, row: dict) -> Candidate:
    """A described candidate back from its row (describe's "deployment"): enough for unit_specs, so the
    launch files can be written from a plan's JSON answer."""
    d = row["deployment"]
    decode = Screened(Layout(**d["decode"]), row["gpus"])
    prefill = Screened(Layout(**d["prefill"]), row["gpus"]) if d["prefill"] else None
    price = next(g.price_usd_per_hour.value for g in plan.gpus if g.name == row["gpu"])
    return Candidate(row["gpu"], row["mode"], decode, prefill, row["decode_units"], row["prefill_units"], price,
                     d["batch"], d["screen_tpot_s"], d["budget_tokens"])


def token_prices(plan: PlanSpec, c: Candidate) -> dict:
    """$ per million input (prompt, cache hits included) and output tokens: disaggregated, the prefill
    units bill the input and the decode units the output; an aggregated unit's hour is split by the
    shares of its capacity the two take. Also $ per million prompt tokens actually computed (misses)."""
    t = plan.traffic
    in_per_h, out_per_h = t.rate_per_s * t.prompt_tokens.mean * 3600, t.rate_per_s * t.output_tokens.mean * 3600
    if c.prefill is not None:
        pre_usd = c.prefill_units * c.prefill.gpus * c.price_usd_per_gpu_hour
    else:
        a = c.decode.aggregated
        pre_load, out_load = in_per_h / a.prefill_tok_s, out_per_h / a.decode_tok_s
        pre_usd = c.usd_per_hour * pre_load / (pre_load + out_load)
    miss = in_per_h * (1 - t.prefix_cache_hit_rate)
    return {"usd_per_m_input_tokens": pre_usd / in_per_h * 1e6, "usd_per_m_computed_input_tokens": pre_usd / miss * 1e6,
            "usd_per_m_output_tokens": (c.usd_per_hour - pre_usd) / out_per_h * 1e6}


def front(plan: PlanSpec, screened: list[Screened]) -> list[dict]:
    """Cost per hour against TPOT, from the screen: every aggregated layout, and every decode layout at
    its full batch and at CURVE_SHARES smaller ones (a lower TPOT costs more units); its Pareto front."""
    pts: list[Candidate] = []
    for gpu in plan.gpus:
        ok = [s for s in screened if s.layout.gpu == gpu.name and not s.reason]
        price = gpu.price_usd_per_hour.value
        pts += [aggregated(plan, s, price) for s in ok if not s.aggregated.reason and False in plan.search.disaggregated]
        if True in plan.search.disaggregated:
            for share in CURVE_SHARES:
                pts += disaggregated(plan, [s for s in ok if not s.prefill.reason], [s for s in ok if not s.decode.reason],
                                     price, share)
    pts = [c for c in pts if c.nodes <= plan.limits.max_nodes]
    rows = list({(r["gpu"], r["mode"], r["layout"], r["gpus"]): r for r in (describe(plan, c) for c in pts)}.values())
    return sorted(pareto_front(rows, [("usd_per_hour", "min"), ("tpot_p50_s", "min")]), key=lambda p: p["usd_per_hour"])


def cheapest_verified(plan: PlanSpec, engine: InferenceSpec, mine: list[Candidate], rejected: list[dict],
                      progress=None) -> Candidate | None:
    """One GPU's candidates verified cheapest first (VERIFY_PER_GPU at most): a candidate that needed more
    units may now cost more than the next, so the search goes on while the next is cheaper than the best."""
    best = None
    for c in mine[:VERIFY_PER_GPU]:
        if best is not None and c.usd_per_hour >= best.usd_per_hour:
            break
        if progress:
            progress(f"simulating {c.gpu} {c.mode} {c.layout}")
        c, reason = verify(plan, engine, c)
        if reason:
            rejected.append({"plan": f"{c.gpu} {c.mode} {c.layout}", "reason": reason})
        elif best is None or c.usd_per_hour < best.usd_per_hour:
            best = c
    return best


def answer(plan: PlanSpec, engine: InferenceSpec, screened: list[Screened], progress=None) -> dict:
    """Each GPU's cheapest verified deployment; the cheapest of them recommended."""
    cands, rejected = candidates(plan, screened)
    best = [cheapest_verified(plan, engine, [c for c in cands if c.gpu == gpu.name], rejected, progress) for gpu in plan.gpus]
    per_gpu = sorted((describe(plan, c) for c in best if c is not None),  # at equal cost, the faster first
                     key=lambda p: (p["usd_per_hour"], p["tpot_p50_s"] or 0.0, p["ttft_p99_s"] or 0.0))
    t = plan.traffic
    return {"plan": plan.name, "traffic": {"requests_per_s": t.rate_per_s, "prefix_cache_hit_rate": t.prefix_cache_hit_rate},
            "slo": {"ttft_p99_s": plan.slo.ttft_p99_s, "tpot_p50_s": plan.slo.tpot_s},
            "recommended": per_gpu[0] if per_gpu else None, "per_gpu_type": per_gpu, "front": front(plan, screened),
            "rejected": rejected, "layouts_screened": len(screened)}
