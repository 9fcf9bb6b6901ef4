"""The serving engine as it stood before the rewrite (commit 30c6a4e), kept only so that
`benchmarks/sim_serve.py` can measure the new engine against it side by side in one run. Not used by
the product; trimmed to the shared (non-disaggregated) path that the benchmark exercises.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field

import numpy as np
import simpy

from costmodel.inputs.specs import InferenceSpec
from costmodel.timing.serve_costs import StepModel

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


def simulate_serving_baseline(arrival: np.ndarray, prompt: np.ndarray, output: np.ndarray, inf: InferenceSpec,
                              step_model: StepModel, kv_capacity_tokens: int) -> dict:
    """The old engine on Poisson/burst arrivals of a shared instance; returns its counters."""
    phase, w, par = "mixed", inf.workload, inf.parallelism
    n = len(prompt)
    block = inf.block_tokens
    blocks_total = kv_capacity_tokens // block

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
    main = _Pool(phase, step_model, blocks_total, inf.batch_tokens * par.dp, inf.max_running * par.dp,
                 blocks_total)
    pools, entry = [main], main
    for pool in pools:
        pool.wake = env.event()

    def enqueue(pool: _Pool, i: int) -> None:
        pool.waiting.append(i)
        if not pool.wake.triggered:
            pool.wake.succeed()

    def submit(i: int) -> None:
        arrived_at[i] = env.now
        enqueue(entry, i)

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
                on_finish(i)
            if pool is main:
                state["max_running"] = max(state["max_running"], len(running) + len(done_now))
                samples.append((env.now, len(running), 1 - pool.free / blocks_total))

    env.process(arrivals())
    for pool in pools:
        env.process(engine(pool))
    env.run()
    return {"requests": n, "finished": state["done"], "iterations": state["iters"], "preemptions": state["preempt"],
            "generated_tokens": state["gen_tok"], "sim_time_s": float(np.nanmax(finish))}
