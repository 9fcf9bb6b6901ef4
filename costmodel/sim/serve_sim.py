"""Discrete-event simulation (simpy) of one serving unit with iteration-level scheduling: one instance, or
(disaggregated) prefill instances handing their requests round robin to decode instances.

Processes: `arrivals` puts requests into a pool's waiting queue; each pool's `engine` process runs one
iteration per simpy event. An iteration is a sequence of named steps (`Engine`):
  preempt        — free KV blocks by evicting the newest running request while decodes need blocks;
  plan_chunks    — continue unfinished prefills within the token budget (chunked prefill);
  admit          — admit waiting requests while blocks, budget and the running cap allow;
  advance        — after the iteration's time (StepModel), one token per decode, chunks into the cache;
  finish         — release finished requests (a prefill pool hands them to a decode pool instead).
Request state lives in numpy arrays of shape (n,) (`RequestState`); the running set is an int array in
admission order, so an iteration costs a few vector operations whatever the batch. `serving_metrics`
turns the final state into a `ServeResult`. The simulator assumes a feasible input (app/feasibility.py)
and takes everything else as arguments: the requests, each unit's iteration model and KV capacity.
"""

from __future__ import annotations

import itertools
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import simpy
from pydantic import BaseModel

from costmodel.counts.comm import Link, p2p_time
from costmodel.inputs.requests import RequestArrays
from costmodel.inputs.specs import InferenceSpec, MTPSpec, WorkloadSpec
from costmodel.sim.steady_state import SteadyState, steady_state
from costmodel.timing.serve_costs import StepModel

WATERMARK = 0.01  # vLLM's default: keep 1% of KV blocks free at admission, so decodes rarely preempt
SATURATED_WINDOW = (10, 90)  # percentiles of completions between which the instance counts as saturated
FAST_FORWARD_MAX = 4096  # decode iterations one fast-forward covers at most (it bounds its arrays)


class LatencyStats(BaseModel):
    """Per-request latencies of one run: time to first token, time per output token, end to end."""

    ttft_p50_s: float | None
    ttft_p90_s: float | None
    ttft_p99_s: float | None
    tpot_p50_s: float | None  # None when no request produced a second token
    tpot_p90_s: float | None
    tpot_p99_s: float | None
    e2e_p50_s: float | None
    e2e_p90_s: float | None
    e2e_p99_s: float | None
    # means, as benchmark clients report beside the percentiles (InferenceX's sample rows are means)
    ttft_mean_s: float | None
    tpot_mean_s: float | None
    e2e_mean_s: float | None


class ServeResult(BaseModel):
    name: str
    requests: int
    finished: int
    preemptions: int
    sim_time_s: float
    iterations: int
    iterations_stepped: int  # of `iterations`, those run one at a time; the rest were fast-forwarded
    generation_throughput_tok_s: float
    prompt_throughput_tok_s: float
    max_generation_throughput_tok_s: float  # generation tok/s while saturated: the steady state where it
    # converged (steady_state.py), else between the SATURATED_WINDOW percentiles of completions
    steady_state: SteadyState | None = None  # a saturated run's steady-state rate and 95% interval
    latency: LatencyStats
    max_concurrent_requests: int
    kv_capacity_tokens: int
    peak_kv_utilisation: float
    timeline: dict  # t_s, running, kv_utilisation (downsampled)
    samples: dict  # ttft_s, tpot_s of up to 2,000 requests (for distributions)
    sim_wall_s: float


@dataclass
class RequestState:
    """Every request's progress; arrays of shape (n,)."""

    prompt: np.ndarray  # prompt tokens
    output: np.ndarray  # output tokens to generate
    arrived_s: np.ndarray  # when it entered the first queue
    target: np.ndarray = None  # tokens to prefill: the prompt, plus generated tokens after a preemption
    prefilled: np.ndarray = None  # tokens of `target` already in the cache
    generated: np.ndarray = None  # output tokens so far
    ctx: np.ndarray = None  # tokens whose KV is in the cache
    held: np.ndarray = None  # KV blocks held
    first_token_s: np.ndarray = None
    finish_s: np.ndarray = None

    def __post_init__(self) -> None:
        n = len(self.prompt)
        self.target = self.prompt.copy()
        self.prefilled, self.generated, self.ctx, self.held = (np.zeros(n, dtype=np.int64) for _ in range(4))
        self.first_token_s, self.finish_s = np.full(n, np.nan), np.full(n, np.nan)


@dataclass
class Counters:
    preemptions: int = 0
    iterations: int = 0
    finished: int = 0
    prompt_tokens: int = 0
    generated_tokens: int = 0
    max_running: int = 0
    stepped: int = 0  # iterations run one by one (the rest were fast-forwarded)


# --------------------------------------------------------------------------------------------- pools


@dataclass(frozen=True)
class Instance:
    """What the simulator needs of one serving unit, prepared above it (app/serving.py: instance_for)."""

    step_model: StepModel  # the time of one iteration (timing/serve_costs.py)
    kv_capacity_tokens: int  # KV-cache tokens over the whole unit (each attention-DP rank holds its own)
    budget_tokens: int  # prefill + decode tokens per iteration, over all attention ranks
    max_running: int  # running requests, over all attention ranks


@dataclass
class Pool:
    """One instance's scheduler state. Phase "prefill" hands requests on after their first token;
    "decode" receives prompts already in the cache; "mixed" does both in shared iterations."""

    phase: str
    unit: Instance  # its iteration model, token budget and running cap
    blocks_total: int  # the unit's KV capacity in blocks
    final: bool  # requests leave the system from this pool (else they go on to the decode pool)
    free: int = 0
    waiting: deque = field(default_factory=deque)
    running: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))  # (r,) admission order
    prefilling: list = field(default_factory=list)  # running requests with prefill left, admission order
    wake: simpy.Event | None = None

    def __post_init__(self) -> None:
        self.free = self.blocks_total


@dataclass(frozen=True)
class QuietRun:
    """k decode-only iterations from now in which nothing changes but the contexts (Engine.quiet_run)."""

    end_s: np.ndarray  # (k,) when each ends
    blocks: np.ndarray  # (k,) KV blocks the decodes have taken by the end of each, cumulative

    @property
    def k(self) -> int:
        return len(self.end_s)


@dataclass(frozen=True)
class PrefillPool:
    """A disaggregated prefill unit, and the NIC its requests' KV crosses to the decode unit; `instances`
    prefill and `decode_instances` decode units of the same layouts behind one round-robin router."""

    unit: Instance
    link: Link
    kv_bytes_per_token: float  # over one NIC: the bytes of a token's KV that one prefill rank sends
    instances: int = 1
    decode_instances: int = 1


def pool_for(unit: Instance, block_tokens: int, phase: str, final: bool) -> Pool:
    """A pool with the unit's KV cache cut into blocks."""
    blocks = unit.kv_capacity_tokens // block_tokens
    return Pool(phase, unit, blocks, final)


# -------------------------------------------------------------------------------------------- engine


class Engine:
    """The scheduler of every pool of one run, and the simpy processes that drive it."""

    def __init__(self, env: simpy.Environment, reqs: RequestArrays, state: RequestState, pools: list[Pool],
                 block_tokens: int, w: WorkloadSpec, prefill: PrefillPool | None,
                 progress: Callable[[int, int], None] | None, chunked_prefill: bool, mtp: MTPSpec | None = None,
                 mixed: bool = True, fast_forward: bool = True, steady: bool = False):
        self.env, self.reqs, self.s, self.pools = env, reqs, state, pools
        self.block, self.w, self.prefill = block_tokens, w, prefill  # its NIC and KV bytes when disaggregated
        self.progress, self.chunked_prefill = progress, chunked_prefill
        self.mixed = mixed  # prefill chunks share iterations with decodes (else a prefill batch runs alone)
        self.fast_forward = fast_forward  # run quiet decode stretches in one step (same results as stepping)
        self.steady = steady  # a saturated run: stop once its steady-state rate is known (steady_state.py)
        self.saturated_log: int | None = None  # gen_log entries logged while requests still waited
        self.next_look, self.steady_result = 0, None
        self.stopped = False
        # requests enter the prefill instances (else the unit) and move on to the decode ones, round robin
        # (ASSUMPTION: a router without load or cache awareness; measured deployments record none)
        self.finals = [p for p in pools if p.final]
        self.final_blocks = sum(p.blocks_total for p in self.finals)  # the KV blocks requests leave from
        self.entry, self.exit = itertools.cycle([p for p in pools if not p.final] or pools), itertools.cycle(self.finals)
        self.q = 1 + (mtp.tokens if mtp else 0)  # tokens a decode step verifies: its own plus the drafts
        self.acceptance = np.array(mtp.position_acceptance()) if mtp else None  # (drafts,) per position
        self.rng = np.random.default_rng(w.seed + 1)  # draft acceptance draws
        self.n = len(state.prompt)
        self.c = Counters()
        self.next_closed = min(w.users, self.n) if w.arrival == "closed" else self.n
        self.samples: list[tuple[float, int, float]] = []  # (t_s, running, kv utilisation) per final-pool iteration
        self.gen_log: list[tuple[float, int]] = []  # (t_s, generated tokens so far) per iteration

    # ------------------------------------------------------------------ arrivals and hand-offs
    def enqueue(self, pool: Pool, i: int) -> None:
        pool.waiting.append(i)
        if not pool.wake.triggered:
            pool.wake.succeed()

    def submit(self, i: int) -> None:
        self.s.arrived_s[i] = self.env.now
        self.enqueue(next(self.entry), i)

    def arrivals(self):
        if self.w.arrival == "closed":  # the users start together, or one after another over ramp_s
            gap_s = float(self.w.ramp_s) / self.next_closed if self.next_closed else 0.0
            for i in range(self.next_closed):
                if i and gap_s:
                    yield self.env.timeout(gap_s)
                self.submit(i)
            return
        arrival = self.reqs.arrival_s
        for i in np.argsort(arrival, kind="stable"):
            if arrival[i] > self.env.now:
                yield self.env.timeout(arrival[i] - self.env.now)
            self.submit(int(i))

    def hand_off(self, i: int) -> None:
        """A prefilled request's KV travels over the NIC to a decode pool; its first token reaches the user
        from there, so TTFT includes the transfer."""
        s = self.s
        if s.generated[i] >= s.output[i]:  # a one-token answer leaves from the prefill pool
            s.first_token_s[i] = self.env.now
            return self.on_finish(i)
        s.ctx[i] = 0
        delay = p2p_time(int(s.target[i]) * self.prefill.kv_bytes_per_token, self.prefill.link)
        target = next(self.exit)
        self.env.timeout(delay).callbacks.append(lambda _, i=i, target=target: self.enqueue(target, i))

    def on_finish(self, i: int) -> None:
        self.s.finish_s[i] = self.env.now
        self.c.finished += 1
        if self.next_closed < self.n:  # closed loop: the user sends the next request
            j = self.next_closed
            self.next_closed += 1
            if self.w.think_time_s:
                self.env.timeout(self.w.think_time_s).callbacks.append(lambda _, j=j: self.submit(j))
            else:
                self.submit(j)

    def final_running(self) -> int:
        """Requests running in the pools requests leave from."""
        finals = self.finals
        return len(finals[0].running) if len(finals) == 1 else sum(len(p.running) for p in finals)

    def final_free(self) -> int:
        """Free KV blocks of the pools requests leave from."""
        finals = self.finals
        return finals[0].free if len(finals) == 1 else sum(p.free for p in finals)

    # ----------------------------------------------------------------------------- steps
    def decoding(self, pool: Pool) -> np.ndarray:
        run = pool.running
        return run[self.s.prefilled[run] >= self.s.target[run]]

    def blocks_needed(self, dec: np.ndarray) -> int:
        """New blocks the decodes need for this iteration's tokens (up to q each, with MTP drafts). A decode
        holds the blocks its context fills (admit and advance keep it so), so with q no more than a block
        each needs one at most: where its context plus q passes its blocks' end."""
        s = self.s
        if self.q <= self.block:
            return int(np.count_nonzero(s.ctx[dec] + self.q > s.held[dec] * self.block))
        return int(np.maximum(-(-(s.ctx[dec] + self.q) // self.block) - s.held[dec], 0).sum())

    def preempt(self, pool: Pool) -> tuple[np.ndarray, int]:
        """Evict newest-first until the decodes' new blocks fit; returns (decoding, blocks needed)."""
        s = self.s
        dec = self.decoding(pool)
        needs = self.blocks_needed(dec)
        while needs > pool.free and len(pool.running):
            victim = int(pool.running[-1])  # newest first: it has the least invested (vLLM recompute policy)
            pool.running = pool.running[:-1]
            if victim in pool.prefilling:
                pool.prefilling.remove(victim)
            pool.free += int(s.held[victim])
            s.held[victim] = s.ctx[victim] = s.prefilled[victim] = 0
            s.target[victim] = s.prompt[victim] + s.generated[victim]
            self.c.preemptions += 1
            pool.waiting.appendleft(victim)
            dec = self.decoding(pool)
            needs = self.blocks_needed(dec)
        return dec, needs

    def plan_chunks(self, pool: Pool, budget: int) -> tuple[list[tuple[int, int]], int]:
        """Unfinished prefills continue first, oldest first, within the token budget."""
        chunks = []
        for i in pool.prefilling:
            if budget <= 0:
                break
            take = min(int(self.s.target[i] - self.s.prefilled[i]), budget)
            chunks.append((i, take))
            budget -= take
        return chunks, budget

    def can_admit(self, pool: Pool, i: int, budget: int, needs: int, running: int) -> bool:
        """Whether waiting request i starts now, with `running` requests already in the pool."""
        decode = pool.phase == "decode"
        if not (budget > 0 or decode) or running >= pool.unit.max_running:
            return False
        blocks = -(-(int(self.s.target[i]) + decode * self.q) // self.block)  # a decode arrival's next tokens too
        free = pool.free - needs  # the running decodes' new blocks are spoken for
        if blocks > free or (running and blocks > free - WATERMARK * pool.blocks_total):
            return False
        return self.chunked_prefill or decode or self.s.target[i] <= budget

    def admit(self, pool: Pool, budget: int, needs: int, chunks: list) -> None:
        """Admit from the head of the queue while it fits; a prefill starts with a chunk at once."""
        s, admitted = self.s, []
        while pool.waiting and self.can_admit(pool, pool.waiting[0], budget, needs, len(pool.running) + len(admitted)):
            i = pool.waiting.popleft()
            s.held[i] = -(-(int(s.target[i]) + (pool.phase == "decode") * self.q) // self.block)
            pool.free -= int(s.held[i])
            admitted.append(i)
            if pool.phase == "decode":  # the prompt's KV (and its first token) arrived from a prefill pool
                s.prefilled[i] = s.ctx[i] = s.target[i]
                if np.isnan(s.first_token_s[i]):
                    s.generated[i], s.first_token_s[i] = max(int(s.generated[i]), 1), self.env.now
                continue
            if s.generated[i] == 0 and s.prefilled[i] == 0:  # first admission: a prefix-cache hit skips its tokens
                s.prefilled[i] = s.ctx[i] = min(int(self.w.prefix_cache_hit_rate * s.target[i]), int(s.target[i]) - 1)
            take = min(int(s.target[i] - s.prefilled[i]), budget)
            chunks.append((i, take))
            pool.prefilling.append(i)
            budget -= take
        if admitted:
            pool.running = np.concatenate([pool.running, np.array(admitted, dtype=np.int64)])

    def advance(self, pool: Pool, dec: np.ndarray, chunks: list[tuple[int, int]]) -> None:
        """The iteration's work lands: one token per decode, each chunk into the cache."""
        s, c = self.s, self.c
        if len(dec):
            # one token each, or MTP's accepted drafts, up to the request's end: in a mixed pool every
            # decode has a token to go (finish lets a request go as its last lands), so only drafts can
            # pass it; a decode pool admits a one-token answer with its token already made (a saturated
            # decode-only run without a prefill pool does: none is emitted for it)
            generated = s.generated[dec]
            capped = pool.final and (self.acceptance is not None or pool.phase == "decode")
            emitted = np.minimum(self.emitted(len(dec)), s.output[dec] - generated) if capped else 1
            ctx = s.ctx[dec] + emitted
            s.ctx[dec] = ctx
            s.held[dec], new_blocks = self.grown(s.held[dec], ctx)
            pool.free -= new_blocks
            s.generated[dec] = generated + emitted
            c.generated_tokens += int(emitted.sum()) if capped else len(dec)
        for i, t in chunks:
            s.prefilled[i] += t
            s.ctx[i] += t
            c.prompt_tokens += t
            if s.prefilled[i] >= s.target[i]:
                pool.prefilling.remove(i)
                if s.generated[i] == 0:  # a completed prefill computes the first token (a prefill pool's
                    s.generated[i] = 1  # reaches the user from the decode pool, after its KV: admit)
                    s.first_token_s[i] = self.env.now if pool.final else s.first_token_s[i]
                    c.generated_tokens += 1

    def grown(self, held: np.ndarray, ctx: np.ndarray) -> tuple[np.ndarray, int]:
        """(blocks held, blocks added) once contexts grew to `ctx`: a block more where a context passed its
        blocks' end. Held blocks cover the context before (admit and advance keep it so), and an
        iteration adds at most q tokens, so with q no more than a block it is one at most."""
        if self.q <= self.block:
            crossed = ctx > held * self.block
            return held + crossed, int(np.count_nonzero(crossed))
        grown = np.maximum(-(-ctx // self.block), held)
        return grown, int((grown - held).sum())

    def emitted(self, n: int) -> np.ndarray | int:
        """Tokens each of n decodes emits: 1, plus the accepted prefix of its MTP drafts."""
        if self.acceptance is None:
            return 1
        accepted = np.cumprod(self.rng.random((n, len(self.acceptance))) < self.acceptance, axis=1)  # (n, drafts)
        return 1 + accepted.sum(axis=1)

    def finish(self, pool: Pool) -> None:
        s, run = self.s, pool.running
        leave_at = s.output[run] if pool.final else 1  # a prefill pool lets go after the first token
        done_mask = s.generated[run] >= leave_at
        if pool.final:
            self.c.max_running = max(self.c.max_running, self.final_running())
        if not done_mask.any():
            return
        done = run[done_mask]
        pool.running = run[~done_mask]
        pool.free += int(s.held[done].sum())
        s.held[done] = 0
        for i in done.tolist():
            self.on_finish(i) if pool.final else self.hand_off(i)

    # ------------------------------------------------------------------------- fast-forward
    def quiet_run(self, pool: Pool, dec: np.ndarray, first_s: float) -> QuietRun | None:
        """The decode-only iterations from now that stepping would run with nothing changing but the
        contexts until the last: each ends before the next simpy event (an arrival, a hand-off, another
        pool's iteration), so no admission can differ; none but the last finishes a request; every block
        they take is free, so none preempts. The caller has found no prefill chunk and admitted what
        fits, and what waits stays refused (the free blocks only shrink, the running count is fixed).
        None when fewer than two qualify, or with MTP (its drafts draw random numbers each step). `first_s`:
        the first iteration's time, which the caller steps with when none qualify."""
        # once the steady state is known (stopped), this iteration is the run's last, as when stepping
        if not self.fast_forward or self.acceptance is not None or self.stopped or not pool.final \
                or pool.prefilling or not len(dec):
            return None
        s, horizon_s = self.s, self.env.peek()
        k = self.iterations_before(horizon_s, first_s)  # the next event is often this close: test it first
        if k < 2:
            return None
        k = min(k, int((s.output[dec] - s.generated[dec]).min()))
        if k < 2:
            return None
        if self.steady and self.saturated_log is None:  # land no further than the next look (as stepping)
            k = min(k, self.next_look - self.c.iterations)
            if k < 2:
                return None
        blocks = np.cumsum(self.block_crossings(dec, k))
        k = min(k, int(np.searchsorted(blocks, pool.free, side="right")))
        end_s = self.end_times(pool, dec, k, first_s) if k >= 2 else blocks[:0]
        k = int(np.searchsorted(end_s, horizon_s, side="left"))  # those ending before the next event
        return QuietRun(end_s[:k], blocks[:k]) if k >= 2 else None

    def iterations_before(self, horizon_s: float, first_s: float) -> int:
        """How many decode-only iterations from now can end before `horizon_s`, at most, if none is shorter
        than the first, of `first_s` (contexts only grow): j of them take at least j times the first, which
        must be less than the time left; a longer run found later is simply not taken in one step."""
        if horizon_s == float("inf"):
            return FAST_FORWARD_MAX
        return min(FAST_FORWARD_MAX, int((horizon_s - self.env.now) / first_s))

    def block_crossings(self, dec: np.ndarray, k: int) -> np.ndarray:
        """(k,) new KV blocks the decodes take in each of the next k iterations: a decode takes one when
        its context passes a block's end, then every `block` iterations (bincount of each one's first,
        summed along a stride of `block`)."""
        s, b = self.s, self.block
        first = np.maximum(s.held[dec] * b - s.ctx[dec] + 1, 1)
        rows = -(-k // b)
        starts = np.bincount(first[first <= k] - 1, minlength=rows * b)
        return starts[:k] if rows == 1 else np.cumsum(starts.reshape(rows, b), axis=0).reshape(-1)[:k]

    def end_times(self, pool: Pool, dec: np.ndarray, k: int, first_s: float) -> np.ndarray:
        """When each of the next k decode-only iterations ends (the first taking `first_s`), added one after
        another as simpy adds each timeout."""
        n, steps = len(dec), pool.unit.step_model
        ctx_sums = int(self.s.ctx[dec].sum()) + n * np.arange(1, k, dtype=np.int64)
        times = getattr(steps, "decode_times", None)  # a step model without it (tests') is called per iteration
        dt = times(n, ctx_sums) if times is not None else [steps.time([], n, int(c)) for c in ctx_sums]
        return np.add.accumulate(np.concatenate(([self.env.now, first_s], dt)))[1:]

    def land_quiet(self, pool: Pool, dec: np.ndarray, run: QuietRun) -> None:
        """All but the last of a quiet run's iterations land at once, with the log entries stepping writes
        after each; the last lands as any iteration does (it may finish requests)."""
        s, c, m, n = self.s, self.c, run.k - 1, len(dec)
        s.ctx[dec] += m
        s.generated[dec] += m
        held = np.maximum(-(-s.ctx[dec] // self.block), s.held[dec])
        pool.free -= int((held - s.held[dec]).sum())
        s.held[dec] = held
        g0, c.generated_tokens = c.generated_tokens, c.generated_tokens + n * m
        times = run.end_s[:m].tolist()
        self.gen_log.extend(zip(times, range(g0 + n, c.generated_tokens + 1, n), strict=True))
        others = self.final_free() - pool.free
        free = others + pool.free + int(run.blocks[m - 1]) - run.blocks[:m]  # free after each iteration
        running = self.final_running()
        c.max_running = max(c.max_running, running)
        self.samples.extend(zip(times, itertools.repeat(running), (1 - free / self.final_blocks).tolist()))
        c.iterations += m

    # ------------------------------------------------------------------------- steady state
    def look(self, pool: Pool) -> None:
        """A saturated run, before each iteration: while requests still wait, look at the steady state at
        geometrically spaced iterations and stop once it converged; once nothing waits, the drain begins
        and the saturated stretch of the log ends there."""
        if self.saturated_log is not None:
            return
        if not pool.waiting:
            self.saturated_log = len(self.gen_log)
            return
        if self.c.iterations < self.next_look:
            return
        self.next_look = max(self.c.iterations * 5 // 4, self.c.iterations + 200)
        found = self.saturated_state(len(self.gen_log))
        if found is not None and found.converged:
            self.steady_result, self.stopped = found.model_copy(update={"stopped_early": True}), True

    def saturated_state(self, entries: int) -> SteadyState | None:
        """steady_state over the first `entries` iterations of the log."""
        if entries < 2:
            return None
        t_s, generated = np.array(self.gen_log[:entries]).T
        return steady_state(np.diff(generated, prepend=0.0), np.diff(t_s, prepend=0.0))

    def timeout_until(self, t_s: float) -> simpy.Timeout:
        """A timeout ending exactly at t_s (simpy adds the delay to now; the nearest delay may be off by
        one unit in the last place)."""
        now, delay = self.env.now, t_s - self.env.now
        for _ in range(4):
            if now + delay == t_s:
                break
            delay = float(np.nextafter(delay, np.inf if now + delay < t_s else -np.inf))
        return self.env.timeout(delay)

    # --------------------------------------------------------------------------- process
    def iterate(self, pool: Pool):
        """One iteration: preempt, plan chunks, admit, run, advance, finish. Returns False when idle."""
        dec, needs = self.preempt(pool)
        alone = not self.mixed and pool.phase == "mixed"  # a prefill batch runs without the decodes
        chunks, budget = self.plan_chunks(pool, pool.unit.budget_tokens - (0 if alone else len(dec) * self.q))
        self.admit(pool, budget, needs, chunks)
        if pool.phase == "decode":  # admitted requests decode in this very iteration
            dec = self.decoding(pool)
        elif alone and chunks:  # prefill first: the decodes wait for the next iteration
            dec = dec[:0]
        if not chunks and not len(dec):
            return False
        if self.steady:
            self.look(pool)
        step_s = pool.unit.step_model.time([(t, int(self.s.prefilled[i]) + t) for i, t in chunks],
                                           len(dec), int(self.s.ctx[dec].sum()))
        run, before = None if chunks else self.quiet_run(pool, dec, step_s), self.c.iterations
        if run is None:
            yield self.env.timeout(step_s)
            self.c.stepped += 1
        else:
            yield self.timeout_until(float(run.end_s[-1]))
            self.land_quiet(pool, dec, run)
        self.land(pool, dec, chunks, before)
        return True

    def land(self, pool: Pool, dec: np.ndarray, chunks: list[tuple[int, int]], before: int) -> None:
        """An iteration's work lands: tokens, chunks, finished requests, the logs; progress every 200
        iterations since `before` (the count before a quiet run's iterations landed)."""
        self.c.iterations += 1
        self.advance(pool, dec, chunks)
        self.gen_log.append((self.env.now, self.c.generated_tokens))
        self.finish(pool)
        if pool.final:
            used = 1 - self.final_free() / self.final_blocks
            self.samples.append((self.env.now, self.final_running(), used))
        if self.progress is not None and before // 200 != self.c.iterations // 200:
            self.progress(self.c.finished, self.n)

    def engine(self, pool: Pool):
        while self.c.finished < self.n and not self.stopped:
            busy = len(pool.running) or pool.waiting
            if not busy or not (yield from self.iterate(pool)):
                pool.wake = self.env.event()
                yield pool.wake


# ------------------------------------------------------------------------------------------- metrics


def _pct(x: np.ndarray, q: float) -> float | None:
    """A percentile, or None (JSON null) where there is nothing to take it of."""
    return float(np.percentile(x, q)) if len(x) else None


def _mean(x: np.ndarray) -> float | None:
    """The mean, or None where there is nothing to take it of."""
    return float(np.mean(x)) if len(x) else None


def latency_stats(ttft: np.ndarray, tpot: np.ndarray, e2e: np.ndarray) -> LatencyStats:
    named = (("ttft", ttft), ("tpot", tpot), ("e2e", e2e))
    return LatencyStats(**{f"{name}_p{q}_s": _pct(x, q) for name, x in named for q in (50, 90, 99)},
                        **{f"{name}_mean_s": _mean(x) for name, x in named})


def saturated_throughput(finish_s: np.ndarray, gen_log: list[tuple[float, int]]) -> float:
    """Generated tokens per second between the SATURATED_WINDOW percentiles of completion times, where
    the instance is neither filling up nor draining (the whole run when they coincide)."""
    lo, hi = np.nanpercentile(finish_s, SATURATED_WINDOW)
    times, toks = np.array(gen_log).T
    if hi <= lo:
        return float(toks[-1] / np.nanmax(finish_s))
    g_lo, g_hi = np.interp([lo, hi], times, toks)
    return float((g_hi - g_lo) / (hi - lo))


def _downsample(samples: list[tuple[float, int, float]], n: int = 400) -> dict:
    idx = np.linspace(0, len(samples) - 1, min(len(samples), n)).astype(int) if samples else []
    return {"t_s": [samples[i][0] for i in idx], "running": [samples[i][1] for i in idx],
            "kv_utilisation": [samples[i][2] for i in idx]}


def serving_metrics(name: str, eng: Engine, capacity_tokens: int, wall_s: float) -> ServeResult:
    """What one run measured, from the engine's final state."""
    s, c = eng.s, eng.c
    ttft, e2e = s.first_token_s - s.arrived_s, s.finish_s - s.arrived_s
    multi = s.output > 1
    tpot = (s.finish_s[multi] - s.first_token_s[multi]) / (s.output[multi] - 1)
    end = float(np.nanmax(s.finish_s))
    steady = eng.steady_result
    if eng.steady and steady is None:  # it ran to its end: the saturated stretch's state, converged or not
        steady = eng.saturated_state(len(eng.gen_log) if eng.saturated_log is None else eng.saturated_log)
    window = saturated_throughput(s.finish_s, eng.gen_log)
    return ServeResult(
        name=name, requests=eng.n, finished=c.finished, preemptions=c.preemptions, sim_time_s=end,
        iterations=c.iterations, iterations_stepped=c.stepped, generation_throughput_tok_s=c.generated_tokens / end,
        prompt_throughput_tok_s=c.prompt_tokens / end,
        max_generation_throughput_tok_s=steady.rate_tok_s if steady is not None and steady.converged else window,
        steady_state=steady,
        latency=latency_stats(ttft, tpot, e2e), max_concurrent_requests=c.max_running,
        kv_capacity_tokens=capacity_tokens, peak_kv_utilisation=max((u for _, _, u in eng.samples), default=0.0),
        samples={"ttft_s": ttft[:: max(1, eng.n // 2000)].tolist(), "tpot_s": tpot[:: max(1, len(tpot) // 2000)].tolist()},
        timeline=_downsample(eng.samples), sim_wall_s=wall_s)


# ------------------------------------------------------------------------------------------- running


def simulate_serving(name: str, inf: InferenceSpec, w: WorkloadSpec, reqs: RequestArrays, unit: Instance, *,
                     phase: str = "mixed", prefill: PrefillPool | None = None,
                     progress: Callable[[int, int], None] | None = None, fast_forward: bool = True,
                     steady: bool = False) -> ServeResult:
    """Serve `reqs` (the requests of workload `w`) on `unit`; returns latency and throughput metrics.

    phase: "mixed" — prefill and decode on one instance (chunked prefill): in shared iterations, or, where
           inf.mixes_batches is false (SGLang), a prefill batch alone before the decodes; with a `prefill` pool
           the prompts run there and their KV crosses the NIC to `unit`, which only decodes;
           "decode" — prompts arrive already in the cache (a disaggregated decode pool: no prefill work);
           "prefill" — every request stops after its first token (a prefill pool).
    `inf` gives the scheduler's settings (KV block size, chunked prefill, mixed batches, MTP drafts).
    fast_forward: quiet decode stretches in one step (Engine.quiet_run); False steps every iteration,
    with the same results (tests/costmodel/sim/test_fast_forward.py). steady: a saturated run (every request
    queued at once) that stops once its steady-state generation rate is known to +-0.5% (steady_state.py)."""
    t_wall = time.perf_counter()
    output = np.ones_like(reqs.output_tokens) if phase == "prefill" else reqs.output_tokens
    state = RequestState(reqs.prompt_tokens.astype(np.int64), output.astype(np.int64), reqs.arrival_s.astype(float))
    disaggregated = phase == "mixed" and prefill is not None
    mains = [pool_for(unit, inf.block_tokens, "decode" if disaggregated else phase, final=True)
             for _ in range(prefill.decode_instances if disaggregated else 1)]
    pools = [pool_for(prefill.unit, inf.block_tokens, "prefill", final=False)
             for _ in range(prefill.instances)] + mains if disaggregated else mains
    env = simpy.Environment()
    eng = Engine(env, reqs, state, pools, inf.block_tokens, w, prefill if disaggregated else None, progress,
                 inf.chunked_prefill, inf.mtp, inf.mixes_batches, fast_forward, steady)
    for pool in pools:
        pool.wake = env.event()
        env.process(eng.engine(pool))
    env.process(eng.arrivals())
    env.run()
    if progress is not None:
        progress(eng.n, eng.n)
    capacity_tokens = sum(p.blocks_total for p in mains) * inf.block_tokens
    return serving_metrics(name, eng, capacity_tokens, time.perf_counter() - t_wall)
