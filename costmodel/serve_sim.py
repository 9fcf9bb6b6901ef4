"""Discrete-event simulation (simpy) of one serving instance with iteration-level scheduling.

Processes: `arrivals` (Poisson, closed loop, burst or trace) puts requests into the waiting queue;
`engine` runs one iteration per event — continuous batching with chunked prefill under a token budget,
a paged KV cache of `block_tokens` blocks sized from the memory left after the weights, and preemption
(recompute) of the newest request when a decode step finds no free block. Iteration time comes from
StepModel (timing model). Request state lives in numpy arrays, so an iteration costs a few vector
operations whatever the batch.
"""

from __future__ import annotations

import csv
import math
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import simpy
from pydantic import BaseModel

from costmodel.comm import links_of, p2p_time
from costmodel.errors import PlannerError
from costmodel.kvcache import kv_bytes_per_token as kv_bytes_per_token_of
from costmodel.memory import serving_memory
from costmodel.serve_costs import StepModel
from costmodel.specs import InferenceSpec, LengthDist, ModelSpec, WorkloadSpec
from costmodel.timing import Device, Timer


class ServeResult(BaseModel):
    name: str
    requests: int
    finished: int
    preemptions: int
    sim_time_s: float
    iterations: int
    generation_throughput_tok_s: float
    prompt_throughput_tok_s: float
    max_generation_throughput_tok_s: float  # generation tok/s while the instance is saturated (10%-90% window)
    ttft_p50_s: float
    ttft_p90_s: float
    ttft_p99_s: float
    tpot_p50_s: float
    tpot_p90_s: float
    tpot_p99_s: float
    e2e_p50_s: float
    e2e_p90_s: float
    e2e_p99_s: float
    max_concurrent_requests: int
    kv_capacity_tokens: int
    peak_kv_utilisation: float
    timeline: dict  # t_s, running, kv_utilisation (downsampled)
    samples: dict  # ttft_s, tpot_s of up to 2,000 requests (for distributions)
    sim_wall_s: float


def sample_lengths(d: LengthDist, n: int, rng: np.random.Generator) -> np.ndarray:
    if d.dist == "fixed":
        return np.full(n, d.value, dtype=np.int64)
    if d.dist == "uniform":
        return rng.integers(d.low, d.high + 1, size=n)
    x = np.rint(rng.lognormal(math.log(d.median), d.sigma, size=n)).astype(np.int64)
    return np.clip(x, 1, d.max or None)


def make_requests(w: WorkloadSpec, base_dir: Path | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(arrival_s, prompt_tokens, output_tokens); closed-loop arrivals are decided during the run (NaN)."""
    rng = np.random.default_rng(w.seed)
    if w.arrival == "trace":
        path = Path(w.trace_csv) if base_dir is None else Path(base_dir) / w.trace_csv
        try:
            rows = list(csv.DictReader(path.open()))
            arr = np.array([float(r["arrival_s"]) for r in rows])
            return arr, np.array([int(r["prompt_tokens"]) for r in rows]), np.array([int(r["output_tokens"]) for r in rows])
        except (OSError, KeyError, ValueError) as e:
            raise PlannerError(f"cannot read the trace ({e})", file=str(path),
                               fix="give a CSV with columns arrival_s, prompt_tokens, output_tokens") from None
    n = w.requests
    prompt, output = sample_lengths(w.prompt_tokens, n, rng), sample_lengths(w.output_tokens, n, rng)
    if w.arrival == "poisson":
        arrival = np.cumsum(rng.exponential(1 / w.rate_per_s, size=n))
    elif w.arrival == "burst":
        arrival = np.zeros(n)
    else:
        arrival = np.full(n, np.nan)
    return arrival, prompt, output


def _pct(x: np.ndarray, q: float) -> float:
    return float(np.percentile(x, q)) if len(x) else float("nan")


WATERMARK = 0.01  # vLLM's default: keep 1% of KV blocks free at admission, so decodes rarely preempt


@dataclass
class _Pool:
    """One engine's share of the run: its queue, running requests, free KV blocks and iteration timer.
    `phase` "prefill" pools hand requests on after their first token; "decode" pools receive prompts
    already in the cache."""

    phase: str
    step_model: StepModel
    blocks_total: int
    budget_total: int
    max_running: int
    free: int = 0
    waiting: deque = field(default_factory=deque)
    running: list = field(default_factory=list)
    wake: object = None


def prefill_instance(inf: InferenceSpec) -> InferenceSpec:
    """The disaggregated prefill pool as an instance of its own: same GPU, its own nodes and layout."""
    pp = inf.prefill_pool
    cluster = inf.cluster.model_copy(update={"gpus_per_node": pp.gpus_per_node, "nodes": pp.nodes})
    return inf.model_copy(update={"cluster": cluster, "parallelism": pp.parallelism, "prefill_pool": None})


def step_model_for(m: ModelSpec, inf: InferenceSpec) -> StepModel:
    """Iteration times of an instance from the GPU file's sourced efficiencies."""
    stack = inf.stack_efficiency.value if inf.stack_efficiency else 1.0
    gpu = inf.cluster.gpu
    precision = "fp8" if inf.weight_bits <= 8 and gpu.peak_flops_per_s.fp8 else "bf16"
    return StepModel(m, inf, Timer(Device.from_gpu(gpu, precision, stack)), Timer(Device.from_gpu(gpu, "bf16", stack)),
                     expert_load_skew=inf.expert_load_skew, kv_bytes=inf.kv_bits / 8)


def kv_capacity_of(m: ModelSpec, inf: InferenceSpec, field_name: str = "inference.parallelism") -> int:
    """KV tokens an instance holds (each attention-DP rank holds its own requests' cache)."""
    mem = serving_memory(m, inf)
    if not mem.fits:
        raise PlannerError(f"the weights need {mem.weights_bytes / 1e9:.1f} GB per GPU, more than the "
                           f"{mem.capacity_bytes / 1e9:.0f} GB x 0.9 usable", field=field_name,
                           fix="spread the model over more GPUs (tp, ep) or lower weight_bits")
    return int(mem.kv_capacity_tokens) * inf.parallelism.dp


def simulate_serving(name: str, m: ModelSpec, inf: InferenceSpec, workload: WorkloadSpec | None = None, *,
                     phase: str = "mixed", step_model: StepModel | None = None, kv_capacity_tokens: int | None = None,
                     base_dir: Path | None = None, progress: Callable[[int, int], None] | None = None,
                     requests: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None) -> ServeResult:
    """Serve the workload's requests on one instance; returns latency and throughput metrics.

    phase: "mixed" — prefill and decode share the iterations (chunked prefill);
           "decode" — prompts arrive already in the cache (a disaggregated decode pool: no prefill work);
           "prefill" — every request stops after its first token (a prefill pool).
    requests: (arrival_s, prompt_tokens, output_tokens) arrays instead of the workload's own."""
    t_wall = time.perf_counter()
    w = workload or inf.workload
    if w is None:
        raise PlannerError(f"variant {name!r} has no workload", field="inference.workload",
                           fix="add a workload (e.g. workload: deepseek-chat-assumed)")
    par = inf.parallelism
    step_model = step_model or step_model_for(m, inf)
    if kv_capacity_tokens is None:
        kv_capacity_tokens = kv_capacity_of(m, inf)
    disaggregated = phase == "mixed" and inf.prefill_pool is not None
    arrival, prompt, output = (np.asarray(a) for a in requests) if requests is not None else make_requests(w, base_dir)
    if phase == "prefill":
        output = np.ones_like(output)
    n = len(prompt)
    block = inf.block_tokens
    blocks_total = kv_capacity_tokens // block
    need_max = int(np.max(-(-(prompt + output) // block)))
    if need_max > blocks_total // par.dp:
        raise PlannerError(f"a request of {int(np.max(prompt + output))} tokens needs {need_max} KV blocks but one "
                           f"attention rank holds {blocks_total // par.dp}", field="inference.workload",
                           fix="cap the prompt/output lengths (max:) or free memory (lower kv_bits, more GPUs)")

    prefilled = np.zeros(n, dtype=np.int64)  # prompt tokens (incl. recomputed ones) in the cache
    target = prompt.copy()  # tokens to prefill: the prompt, plus generated tokens after a preemption
    generated = np.zeros(n, dtype=np.int64)
    held = np.zeros(n, dtype=np.int64)  # KV blocks held
    ctx = np.zeros(n, dtype=np.int64)  # tokens whose KV is in the cache
    first_token = np.full(n, np.nan)
    finish = np.full(n, np.nan)
    arrived_at = arrival.copy()
    env = simpy.Environment()
    state = {"preempt": 0, "iters": 0, "max_running": 0, "done": 0, "prompt_tok": 0, "gen_tok": 0}
    samples: list[tuple[float, int, float]] = []
    gen_events: list[tuple[float, int]] = []
    main = _Pool("decode" if disaggregated else phase, step_model, blocks_total, inf.max_batch_tokens * par.dp,
                 inf.max_running * par.dp, blocks_total)
    pools = [main]
    if disaggregated:  # prompts go to a separate prefill instance; their KV crosses the network to `main`
        pre_inf = prefill_instance(inf)
        pre_cap = kv_capacity_of(m, pre_inf, "inference.prefill_pool.parallelism") // block
        entry = _Pool("prefill", step_model_for(m, pre_inf), pre_cap, pre_inf.max_batch_tokens * pre_inf.parallelism.dp,
                      pre_inf.max_running * pre_inf.parallelism.dp, pre_cap)
        pools.insert(0, entry)
        nic = links_of(inf.cluster.gpu)["nic"]
        kv_bytes_per_token = kv_bytes_per_token_of(m, inf.kv_bits)
    else:
        entry = main
    for pool in pools:
        pool.wake = env.event()

    def enqueue(pool: _Pool, i: int) -> None:
        pool.waiting.append(i)
        if not pool.wake.triggered:
            pool.wake.succeed()

    def submit(i: int) -> None:
        arrived_at[i] = env.now
        enqueue(entry, i)

    def hand_off(i: int) -> None:
        """A prefilled request's KV travels over the NIC to the decode instance."""
        if generated[i] >= output[i]:
            on_finish(i)
            return
        ctx[i] = 0
        env.timeout(p2p_time(int(target[i]) * kv_bytes_per_token, nic)).callbacks.append(lambda _, i=i: enqueue(main, i))

    def arrivals():
        if w.arrival == "closed":
            for i in range(min(w.users, n)):
                submit(i)
            return
        order = np.argsort(arrival, kind="stable")
        for i in order:
            if arrival[i] > env.now:
                yield env.timeout(arrival[i] - env.now)
            submit(int(i))

    next_closed = [min(w.users, n) if w.arrival == "closed" else n]

    def on_finish(i: int) -> None:
        finish[i] = env.now
        state["done"] += 1
        if w.arrival == "closed" and next_closed[0] < n:
            j = next_closed[0]
            next_closed[0] += 1
            if w.think_time_s:
                env.timeout(w.think_time_s).callbacks.append(lambda _, j=j: submit(j))
            else:
                submit(j)

    first_only = np.ones_like(output)

    def engine(pool: _Pool):
        phase, step_model, blocks_total = pool.phase, pool.step_model, pool.blocks_total
        budget_total, max_running = pool.budget_total, pool.max_running
        waiting, running = pool.waiting, pool.running
        while state["done"] < n:
            if not running and not waiting:
                pool.wake = env.event()
                yield pool.wake
                continue
            run = np.array(running, dtype=np.int64)
            decoding = run[prefilled[run] >= target[run]]
            # a decode token needs a new block when the request's last block is full
            needs = int(np.count_nonzero(ctx[decoding] >= held[decoding] * block))
            while needs > pool.free and running:
                victim = running.pop()  # newest first: it has the least invested (vLLM recompute policy)
                pool.free += int(held[victim])
                held[victim] = ctx[victim] = prefilled[victim] = 0
                target[victim] = prompt[victim] + generated[victim]
                state["preempt"] += 1
                waiting.appendleft(victim)
                run = np.array(running, dtype=np.int64)
                decoding = run[prefilled[run] >= target[run]]
                needs = int(np.count_nonzero(ctx[decoding] >= held[decoding] * block))
            # chunked prefill in what the budget leaves: unfinished prefills first, then admissions
            budget = budget_total - len(decoding)
            chunks: list[tuple[int, int]] = []
            for i in running:
                if budget <= 0:
                    break
                left = int(target[i] - prefilled[i])
                if left > 0:
                    take = min(left, budget)
                    chunks.append((i, take))
                    budget -= take
            while waiting and (budget > 0 or phase == "decode") and len(running) < max_running:
                i = waiting[0]
                # decode-phase arrivals decode at once: room for their next token too
                blocks = -(-(int(target[i]) + (phase == "decode")) // block)
                free = pool.free - needs  # the running decodes' new blocks are spoken for
                if blocks > free or (running and blocks > free - WATERMARK * blocks_total):
                    break
                if not inf.chunked_prefill and phase != "decode" and target[i] > budget:
                    break
                waiting.popleft()
                pool.free -= blocks
                held[i] = blocks
                running.append(i)
                if phase == "decode":  # the prompt's KV arrives from a prefill pool
                    prefilled[i] = ctx[i] = target[i]
                    if generated[i] == 0:
                        generated[i], first_token[i] = 1, env.now
                    continue
                take = min(int(target[i]), budget)
                chunks.append((i, take))
                budget -= take
            if phase == "decode":  # admitted requests decode in this very iteration
                run = np.array(running, dtype=np.int64)
                decoding = run[prefilled[run] >= target[run]]
            p_tokens = sum(t for _, t in chunks)
            d_batch = len(decoding)
            d_ctx = int(np.sum(ctx[decoding]))
            if p_tokens == 0 and d_batch == 0:
                pool.wake = env.event()
                yield pool.wake
                continue
            step = step_model.time([(t, int(prefilled[i]) + t) for i, t in chunks], d_batch, d_ctx)
            yield env.timeout(step)
            state["iters"] += 1
            # decode: one token each
            if d_batch:
                grow = ctx[decoding] >= held[decoding] * block
                held[decoding] += grow
                pool.free -= int(np.count_nonzero(grow))
                ctx[decoding] += 1
                generated[decoding] += 1
                state["gen_tok"] += d_batch
            # prefill chunks; a completed prefill emits its first token
            for i, t in chunks:
                prefilled[i] += t
                ctx[i] += t
                state["prompt_tok"] += t
                if prefilled[i] >= target[i] and generated[i] == 0:
                    generated[i] = 1
                    first_token[i] = env.now
                    state["gen_tok"] += 1
            gen_events.append((env.now, state["gen_tok"]))
            leave_at = output if pool is main else first_only  # a prefill pool lets go after the first token
            done_now = [i for i in running if generated[i] >= leave_at[i]]
            for i in done_now:
                running.remove(i)
                pool.free += int(held[i])
                held[i] = 0
                hand_off(i) if pool is not main else on_finish(i)
            if pool is main:
                state["max_running"] = max(state["max_running"], len(running) + len(done_now))
                samples.append((env.now, len(running), 1 - pool.free / blocks_total))
            if progress is not None and state["iters"] % 200 == 0:
                progress(state["done"], n)

    env.process(arrivals())
    for pool in pools:
        env.process(engine(pool))
    env.run()
    if progress is not None:
        progress(n, n)
    ttft = first_token - arrived_at
    e2e = finish - arrived_at
    multi = output > 1
    tpot = (finish[multi] - first_token[multi]) / (output[multi] - 1)
    end = float(np.nanmax(finish))
    # saturated window: between the 10th and the 90th percentile of completions
    t10, t90 = np.nanpercentile(finish, 10), np.nanpercentile(finish, 90)
    times = np.array([t for t, _ in gen_events])
    toks = np.array([g for _, g in gen_events])
    g10, g90 = np.interp([t10, t90], times, toks)
    sat = (g90 - g10) / (t90 - t10) if t90 > t10 else state["gen_tok"] / end
    idx = np.linspace(0, len(samples) - 1, min(len(samples), 400)).astype(int) if samples else []
    return ServeResult(
        name=name, requests=n, finished=state["done"], preemptions=state["preempt"], sim_time_s=end,
        iterations=state["iters"], generation_throughput_tok_s=state["gen_tok"] / end,
        prompt_throughput_tok_s=state["prompt_tok"] / end, max_generation_throughput_tok_s=float(sat),
        ttft_p50_s=_pct(ttft, 50), ttft_p90_s=_pct(ttft, 90), ttft_p99_s=_pct(ttft, 99),
        tpot_p50_s=_pct(tpot, 50), tpot_p90_s=_pct(tpot, 90), tpot_p99_s=_pct(tpot, 99),
        e2e_p50_s=_pct(e2e, 50), e2e_p90_s=_pct(e2e, 90), e2e_p99_s=_pct(e2e, 99),
        max_concurrent_requests=state["max_running"], kv_capacity_tokens=int(blocks_total * block),
        peak_kv_utilisation=max((u for _, _, u in samples), default=0.0),
        samples={"ttft_s": ttft[:: max(1, n // 2000)].tolist(), "tpot_s": tpot[:: max(1, len(tpot) // 2000)].tolist()},
        timeline={"t_s": [samples[i][0] for i in idx], "running": [samples[i][1] for i in idx],
                  "kv_utilisation": [samples[i][2] for i in idx]},
        sim_wall_s=time.perf_counter() - t_wall,
    )


class ServeVariantResult(BaseModel):
    """What `planner simulate serve` reports for a variant: the workload served as configured (mixed
    prefill and decode), plus the instance's maximum generation and prompt throughputs measured with the
    instance saturated by decode-only and prefill-only runs of the same requests."""

    name: str
    max_generation_throughput_tok_s: float
    prompt_throughput_tok_s: float
    generation_throughput_tok_s: float  # of the workload as configured
    ttft_p50_s: float
    ttft_p90_s: float
    ttft_p99_s: float
    tpot_p50_s: float
    tpot_p90_s: float
    tpot_p99_s: float
    e2e_p50_s: float
    e2e_p99_s: float
    max_concurrent_requests: int
    kv_capacity_tokens: int
    preemptions: int
    requests: int
    timeline: dict
    samples: dict
    sim_wall_s: float


def serve_variant(name: str, m: ModelSpec, inf: InferenceSpec, *, requests: int | None = None,
                  base_dir: Path | None = None, progress: Callable[[str, int, int], None] | None = None) -> ServeVariantResult:
    w = inf.workload
    if w is None:
        raise PlannerError(f"variant {name!r} has no workload", field="inference.workload",
                           fix="add a workload (e.g. workload: deepseek-chat-assumed)")
    if requests is not None:
        w = w.model_copy(update={"requests": requests})
    # enough requests queued at once to fill the KV cache three times over: the instance saturates
    cap = serving_memory(m, inf).kv_capacity_tokens * inf.parallelism.dp
    mean_tokens = w.prompt_tokens.mean + w.output_tokens.mean / 2
    n_sat = int(min(200_000, max(w.requests, 3 * cap / mean_tokens)))
    saturated = w.model_copy(update={"arrival": "burst", "requests": n_sat}) if w.arrival != "trace" else w
    runs = {}
    for phase, work in (("mixed", w), ("decode", saturated), ("prefill", saturated)):
        cb = (lambda done, total, phase=phase: progress(phase, done, total)) if progress else None
        runs[phase] = simulate_serving(name, m, inf, work, phase=phase, base_dir=base_dir, progress=cb)
    mixed = runs["mixed"]
    return ServeVariantResult(
        name=name,
        max_generation_throughput_tok_s=runs["decode"].max_generation_throughput_tok_s,
        prompt_throughput_tok_s=runs["prefill"].prompt_throughput_tok_s,
        generation_throughput_tok_s=mixed.generation_throughput_tok_s,
        ttft_p50_s=mixed.ttft_p50_s, ttft_p90_s=mixed.ttft_p90_s, ttft_p99_s=mixed.ttft_p99_s,
        tpot_p50_s=mixed.tpot_p50_s, tpot_p90_s=mixed.tpot_p90_s, tpot_p99_s=mixed.tpot_p99_s,
        e2e_p50_s=mixed.e2e_p50_s, e2e_p99_s=mixed.e2e_p99_s,
        max_concurrent_requests=runs["decode"].max_concurrent_requests,
        kv_capacity_tokens=mixed.kv_capacity_tokens, preemptions=mixed.preemptions, requests=mixed.requests,
        timeline=mixed.timeline, samples=mixed.samples, sim_wall_s=sum(r.sim_wall_s for r in runs.values()),
    )
