"""Discrete-event simulation (simpy) of one expert-parallel training step.

What is simulated: one representative rank per pipeline stage, each with a compute stream and a
communication stream (simpy Resources). A stage runs its schedule's passes (schedules.py) in order; a
pass waits for its input from the neighbouring stage (plus the p2p transfer) and then holds the compute
stream for the pass's duration, whose layer-by-layer compute, all-to-all and TP collectives were folded
in train_costs.py (one event per pass, never per layer or token). After its last pass a stage
reduce-scatters gradients and all-gathers parameters on its communication stream (ZeRO) and steps the
optimizer.
What is folded by symmetry: DP replicas, TP ranks and EP ranks of a stage do identical work in lockstep
(EP at the busiest rank's load), so a 2,048-GPU layout costs the same to simulate as its pipeline.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from pathlib import Path

import simpy
from pydantic import BaseModel

from costmodel.errors import PlannerError
from costmodel.flops import train_flops_per_token
from costmodel.memory import training_memory
from costmodel.schedules import LIST_SCHEDULED, SCHEDULES, in_flight
from costmodel.specs import ModelSpec, TrainingSpec
from costmodel.timing import Device, Timer
from costmodel.train_costs import PassCost, StageCost, build_stage_costs

SIMULATED = (*SCHEDULES, *LIST_SCHEDULED)


class TrainingResult(BaseModel):
    name: str
    num_gpus: int
    step_time_s: float
    tokens_per_step: int
    tokens_per_s_per_gpu: float
    mfu: float
    flop_convention: str
    bubble_fraction: float
    compute_s: float  # per step, busiest stage's compute stream
    comm_s: float  # per step, its communication stream (all-to-all, TP, p2p excluded, DP sync)
    exposed_comm_s: float  # compute stream waiting on communication (all-to-all, TP, DP sync)
    dp_sync_s: float
    peak_memory_bytes_per_gpu: float
    memory_capacity_bytes: float
    fits: bool
    gpu_hours_per_trillion_tokens: float
    cost_usd_per_trillion_tokens: float
    gpu_hours_total: float
    cost_usd_total: float
    days_total: float
    events: int
    sim_wall_s: float


@dataclass
class _Trace:
    segments: bool = True  # per-layer segments (Chrome trace); the pass list is always kept
    events: list[dict] = field(default_factory=list)
    passes: list[tuple[int, str, int, float, float, float]] = field(default_factory=list)  # stage, kind, mb, start, dur, exposed comm

    def add(self, stage: int, stream: str, name: str, start_s: float, dur_s: float) -> None:
        self.events.append({"name": name, "ph": "X", "pid": stage, "tid": stream, "ts": start_s * 1e6,
                            "dur": dur_s * 1e6})

    def write(self, path: Path, pp: int) -> None:
        meta = [{"name": "process_name", "ph": "M", "pid": s, "args": {"name": f"stage {s}"}} for s in range(pp)]
        Path(path).write_text(json.dumps({"traceEvents": meta + self.events, "displayTimeUnit": "ms"}))


@dataclass
class _Lane:
    """One pipeline direction through a rank: its stage position, that stage's costs, its micro-batches."""

    direction: int
    pos: int
    cost: StageCost
    mbs: list[int]
    next_f: int = 0
    next_b: int = 0

    def _f_dep(self, event):
        return None if self.pos == 0 else event((self.direction, "F", self.pos - 1, self.mbs[self.next_f]))

    def _b_dep(self, event, pp: int):
        """The last stage's backward needs only its own forward, which next_b < next_f guarantees."""
        return None if self.pos == pp - 1 else event((self.direction, "B", self.pos + 1, self.mbs[self.next_b]))

    def f_ready(self, event, pp: int) -> bool:
        if self.next_f >= len(self.mbs) or self.next_f - self.next_b >= in_flight(self.pos, pp):
            return False
        dep = self._f_dep(event)
        return dep is None or dep.triggered

    def b_ready(self, event, pp: int) -> bool:
        if self.next_b >= self.next_f:
            return False
        dep = self._b_dep(event, pp)
        return dep is None or dep.triggered

    def waits(self, event, pp: int) -> list:
        out = []
        if self.next_b < self.next_f and (dep := self._b_dep(event, pp)) is not None:
            out.append(dep)
        if self.next_f < len(self.mbs) and self.next_f - self.next_b < in_flight(self.pos, pp) \
                and (dep := self._f_dep(event)) is not None:
            out.append(dep)
        return out

    def did_f(self, deliver, pp: int) -> None:
        if self.pos < pp - 1:
            deliver((self.direction, "F", self.pos, self.mbs[self.next_f]), self.cost.p2p_s)
        self.next_f += 1

    def did_b(self, deliver, costs: list[StageCost]) -> None:
        if self.pos > 0:
            deliver((self.direction, "B", self.pos, self.mbs[self.next_b]), costs[self.pos - 1].p2p_s)
        self.next_b += 1


def run_pipeline(costs: list[StageCost], schedule: str, m: int, *, overlap_grad_sync: bool = True,
                 trace: _Trace | None = None) -> dict:
    """Simulate one step; returns step time, per-stage busy times and the event count."""
    if schedule not in SIMULATED:
        raise PlannerError(f"schedule {schedule!r} is not simulated", field="parallelism.schedule",
                           fix=f"use one of {', '.join(SIMULATED)}")
    pp = len(costs)
    if schedule == "dualpipe" and (m % 2 or pp % 2):
        raise PlannerError(f"dualpipe needs an even pp and micro_batches (got pp {pp}, micro_batches {m})",
                           field="parallelism.micro_batches", fix="use even values")
    env = simpy.Environment()
    done: dict[tuple, simpy.Event] = {}

    def event(key: tuple) -> simpy.Event:
        if key not in done:
            done[key] = env.event()
        return done[key]

    def deliver(key: tuple, delay: float) -> None:
        if delay <= 0:
            event(key).succeed()
        else:
            env.timeout(delay).callbacks.append(lambda _: event(key).succeed())

    stats = [{"compute": 0.0, "comm": 0.0, "exposed": 0.0, "passes": 0.0, "end_passes": 0.0, "end": 0.0,
              "dp": 0.0} for _ in range(pp)]
    n_events = [0]

    def stage(s: int, compute: simpy.Resource, comm: simpy.Resource):
        cost = costs[s]
        fixed_passes = {"F": cost.F, "B": cost.B + cost.W}  # gpipe / 1f1b: the whole backward in one pass

        def run(kind: str, mb: int, pc: PassCost | None = None):
            pc = pc or fixed_passes[kind]
            with compute.request() as req:
                yield req
                start = env.now
                yield env.timeout(pc.total_s)
            n_events[0] += 1
            st = stats[s]
            st["compute"] += pc.compute_s
            st["comm"] += pc.comm_s
            st["exposed"] += pc.exposed_comm_s
            st["passes"] += pc.total_s
            if trace is not None:
                trace.passes.append((s, kind, mb, start, pc.total_s, pc.exposed_comm_s))
                if trace.segments:
                    for stream, name, off, dur in pc.segments:
                        trace.add(s, stream, f"{name} mb{mb}", start + off, dur)

        def fixed_order():
            """gpipe and 1f1b: the schedule's order, each pass waiting for its input."""
            for kind, mb in SCHEDULES[schedule](s, pp, m):
                dep = None
                if kind == "F" and s > 0:
                    dep = event((0, "F", s - 1, mb))
                elif kind == "B":
                    dep = event((0, "B", s + 1, mb)) if s < pp - 1 else event((0, "Fdone", s, mb))
                if dep is not None:
                    yield dep
                yield from run(kind, mb)
                if kind == "F":
                    deliver((0, "Fdone", s, mb), 0.0)
                    if s < pp - 1:
                        deliver((0, "F", s, mb), cost.p2p_s)
                elif kind == "B" and s > 0:
                    deliver((0, "B", s, mb), costs[s - 1].p2p_s)

        def list_schedule():
            """Zero-bubble and DualPipe: each lane (one pipeline direction through this rank) keeps 1F1B's
            forwards-in-flight limit; priority B > F > W; a deferred W runs only when nothing else is ready.
            DualPipe feeds half the micro-batches from each end and runs a ready F and B as one overlapped
            pair whose communication hides under the partner's compute (V3P §3.2.1)."""
            lanes = [_Lane(0, s, costs[s], list(range(m)) if schedule == "zero-bubble" else list(range(m // 2)))]
            if schedule == "dualpipe":
                lanes.append(_Lane(1, pp - 1 - s, costs[pp - 1 - s], list(range(m // 2, m))))
            pending_w: list[tuple[_Lane, int]] = []
            while any(ln.next_b < len(ln.mbs) for ln in lanes):
                ready_b = [ln for ln in lanes if ln.b_ready(event, pp)]
                ready_f = [ln for ln in lanes if ln.f_ready(event, pp)]
                if schedule == "dualpipe" and ready_b and ready_f:
                    lb = ready_b[0]
                    lf = next((ln for ln in ready_f if ln is not lb), ready_f[0])
                    fb, bb = lf.cost.F, lb.cost.B
                    compute_s, comm_s = fb.compute_s + bb.compute_s, fb.comm_s + bb.comm_s
                    exposed = max(0.0, comm_s - compute_s)
                    mb_b = lb.mbs[lb.next_b]
                    yield from run("F&B", lf.mbs[lf.next_f], PassCost(compute_s + exposed, compute_s, comm_s, exposed, ()))
                    lf.did_f(deliver, pp)
                    lb.did_b(deliver, costs)
                    pending_w.append((lb, mb_b))
                elif ready_b:
                    ln = ready_b[0]
                    mb = ln.mbs[ln.next_b]
                    yield from run("B", mb, ln.cost.B)
                    ln.did_b(deliver, costs)
                    pending_w.append((ln, mb))
                elif ready_f:
                    ln = ready_f[0]
                    yield from run("F", ln.mbs[ln.next_f], ln.cost.F)
                    ln.did_f(deliver, pp)
                elif pending_w:
                    ln, mb = pending_w.pop(0)
                    yield from run("W", mb, ln.cost.W)
                else:
                    yield env.any_of([e for ln in lanes for e in ln.waits(event, pp)])
            for ln, mb in pending_w:
                yield from run("W", mb, ln.cost.W)

        yield from (list_schedule() if schedule in LIST_SCHEDULED else fixed_order())
        stats[s]["end_passes"] = env.now
        # ZeRO gradient sync, then the optimizer step; with overlap the parameter all-gather of the next
        # step hides under its first forwards, so only the reduce-scatter half stays on the critical path
        sync = cost.dp_sync_s / 2 if overlap_grad_sync else cost.dp_sync_s
        with comm.request() as req:
            yield req
            start = env.now
            yield env.timeout(sync)
        with compute.request() as req:
            yield req
            yield env.timeout(cost.optimizer_s)
        stats[s]["dp"] = sync + cost.optimizer_s
        if trace is not None:
            trace.add(s, "comm", "dp reduce-scatter" + ("" if overlap_grad_sync else " + all-gather"), start, sync)
            trace.add(s, "compute", "optimizer", start + sync, cost.optimizer_s)
        stats[s]["end"] = env.now

    for s in range(pp):
        env.process(stage(s, simpy.Resource(env, 1), simpy.Resource(env, 1)))
    env.run()
    step = max(st["end"] for st in stats)
    pipeline_end = max(st["end_passes"] for st in stats)
    bubble = sum(pipeline_end - st["passes"] for st in stats) / pp
    busiest = max(range(pp), key=lambda s: stats[s]["passes"])
    return {"step_time_s": step, "bubble_s": bubble, "stats": stats, "busiest": busiest, "events": n_events[0],
            "pipeline_s": pipeline_end}


def check_trainable(v, file: str, loc: tuple) -> None:
    """Refuse, before anything runs, a variant whose layout cannot be simulated or does not fit."""
    from costmodel.loader import line_of, read_yaml

    t = v.training
    problem = None
    if t.parallelism.schedule == "dualpipe" and (t.parallelism.pp % 2 or t.parallelism.micro_batches % 2):
        problem = ("parallelism.micro_batches", "dualpipe needs an even pp and an even number of micro-batches "
                   "(half enter from each end)", "use even pp and micro_batches")
    else:
        mem = training_memory(v.model, t)
        if not mem.fits:
            problem = ("parallelism", f"variant {v.name!r} needs {mem.total_bytes / 1e9:.1f} GB per GPU on pipeline stage "
                       f"{mem.stage} (weights {mem.weights_bytes / 1e9:.1f}, grads {mem.grads_bytes / 1e9:.1f}, optimizer "
                       f"{mem.optimizer_bytes / 1e9:.1f}, activations {mem.activations_bytes / 1e9:.1f}) but "
                       f"{t.cluster.gpu.name} has {mem.capacity_bytes / 1e9:.0f} GB",
                       "raise recompute (selective, full), zero_stage, pp or ep, or use fewer micro-batches in flight")
    if problem:
        field, msg, fix = problem
        full = loc + tuple(field.split("."))
        try:
            _, node = read_yaml(Path(file))
        except PlannerError:  # a scenario given as text (dashboard): no file to point into
            node = None
        raise PlannerError(msg, file=file, line=line_of(node, full), field=".".join(map(str, full)), fix=fix)


def simulate_training(name: str, m: ModelSpec, t: TrainingSpec, *, trace_path: Path | None = None,
                      passes: list | None = None) -> TrainingResult:
    """One step of `t`'s layout, extrapolated to the whole run."""
    t0 = time.perf_counter()
    mem = training_memory(m, t)
    par = t.parallelism
    gpu = t.cluster.gpu
    stack = t.stack_efficiency.value if t.stack_efficiency else 1.0
    gemm_timer = Timer(Device.from_gpu(gpu, t.precision, stack))
    attn_timer = Timer(Device.from_gpu(gpu, "bf16", stack))  # attention stays BF16 under FP8 training (V3P §3.3)
    costs = build_stage_costs(m, t, gemm_timer, attn_timer)
    trace = _Trace(segments=trace_path is not None) if trace_path is not None or passes is not None else None
    sim = run_pipeline(costs, par.schedule, par.micro_batches, overlap_grad_sync=par.overlap_grad_sync, trace=trace)
    if trace_path is not None:
        trace.write(trace_path, par.pp)
    if passes is not None:  # (stage, kind, micro-batch, start_s, duration_s, exposed comm s) of every pass
        passes.extend(trace.passes)
    step = sim["step_time_s"]
    tokens = t.global_batch_seqs * t.seq_len
    gpus = t.cluster.num_gpus
    flops_per_token = train_flops_per_token(m, t.seq_len)
    peak = (gpu.peak_flops_per_s.fp8 if t.precision == "fp8" and gpu.peak_flops_per_s.fp8 else gpu.peak_flops_per_s.bf16).value
    gpu_s_per_token = step * gpus / tokens
    busiest = sim["stats"][sim["busiest"]]
    price = gpu.price_usd_per_hour.value
    return TrainingResult(
        name=name,
        num_gpus=gpus,
        step_time_s=step,
        tokens_per_step=tokens,
        tokens_per_s_per_gpu=tokens / (step * gpus),
        mfu=flops_per_token * tokens / (step * gpus * peak),
        flop_convention=f"6·N_active + causal attention at seq {t.seq_len} (costmodel/flops.py), "
                        f"over the {t.precision.upper()} dense peak; recompute not counted",
        bubble_fraction=sim["bubble_s"] / step,
        compute_s=busiest["compute"],
        comm_s=busiest["comm"],
        exposed_comm_s=busiest["exposed"] + busiest["dp"] - costs[sim["busiest"]].optimizer_s,
        dp_sync_s=costs[sim["busiest"]].dp_sync_s,
        peak_memory_bytes_per_gpu=mem.total_bytes,
        memory_capacity_bytes=mem.capacity_bytes,
        fits=mem.fits,
        gpu_hours_per_trillion_tokens=gpu_s_per_token * 1e12 / 3600,
        cost_usd_per_trillion_tokens=gpu_s_per_token * 1e12 / 3600 * price,
        gpu_hours_total=gpu_s_per_token * t.tokens / 3600,
        cost_usd_total=gpu_s_per_token * t.tokens / 3600 * price,
        days_total=step * t.tokens / tokens / 86400,
        events=sim["events"],
        sim_wall_s=time.perf_counter() - t0,
    )
