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
from dataclasses import dataclass, field, replace
from pathlib import Path

import simpy
from pydantic import BaseModel

from costmodel.counts.deepep import COMM_SM_FRACTION
from costmodel.counts.flops import train_flops_per_token
from costmodel.counts.memory import training_memory
from costmodel.counts.reliability import Goodput, goodput
from costmodel.counts.schedules import LIST_SCHEDULED, SCHEDULES, in_flight, interleaved_1f1b
from costmodel.inputs.specs import ModelSpec, TrainingSpec
from costmodel.timing.calibration import TRAINING_A2A_EFFICIENCY, TRAINING_STACK_EFFICIENCY
from costmodel.timing.kernel_timer import COVERAGE_FAMILIES, ROOFLINE, KernelTimer
from costmodel.timing.operators import Device, MeasuredBackend, Timer
from costmodel.timing.train_costs import (
    PassCost,
    StageCost,
    build_stage_costs,
    compute_seconds,
    op_times,
    overlap_span,
    training_kernel_plan,
)


class TrainingResult(BaseModel):
    name: str
    num_gpus: int
    step_time_s: float
    tokens_per_step: int
    tokens_per_s_per_gpu: float
    mfu: float
    flop_convention: str
    stack_efficiency: float  # fraction of the kernel benchmarks' speed assumed for the software stack
    all_to_all_efficiency: float  # fraction of the standalone all-to-all rate beside the other chunk's compute
    bubble_fraction: float
    compute_s: float  # per step, busiest stage's compute stream
    comm_s: float  # per step, its communication stream (all-to-all, TP, p2p excluded, DP sync)
    exposed_comm_s: float  # compute stream waiting on communication (all-to-all, TP, DP sync)
    dp_sync_s: float
    peak_memory_bytes_per_gpu: float
    memory: dict  # TrainingMemory of the heaviest stage: weights, grads, optimizer, activations (bytes)
    memory_capacity_bytes: float
    fits: bool
    gpu_hours_per_trillion_tokens: float
    cost_usd_per_trillion_tokens: float
    gpu_hours_total: float  # the whole run, batch ramp included
    ramp_gpu_hours: float  # what the batch ramp adds over running its tokens at the full batch
    cost_usd_total: float
    days_total: float
    goodput: float | None = None  # useful step time over the run's wall time (training.reliability), else None
    reliability: Goodput | None = None  # interruptions, checkpoints and lost work behind it
    events: int
    sim_wall_s: float
    bands: dict | None = None  # metric -> {p10, p50, p90} over drawn timing errors (--bands; uncertainty.py)
    timing_coverage: dict | None = None  # training_coverage: measured share of the compute (kernel database only)

    @property
    def exposed_comm_fraction(self) -> float:
        """The share of the step the compute stream waits on communication."""
        return self.exposed_comm_s / self.step_time_s


@dataclass
class _Trace:
    segments: bool = True  # per-layer segments (Chrome trace); the pass list is always kept
    events: list[dict] = field(default_factory=list)
    passes: list[tuple[int, str, int, float, float, float]] = field(default_factory=list)  # stage, kind, mb, start, dur, exposed comm

    def add(self, stage: int, stream: str, name: str, start_s: float, dur_s: float) -> None:
        self.events.append({"name": name, "ph": "X", "pid": stage, "tid": stream, "ts": start_s * 1e6,
                            "dur": dur_s * 1e6})

    def record(self, stage: int, kind: str, mb: int, start_s: float, pc: PassCost) -> None:
        self.passes.append((stage, kind, mb, start_s, pc.total_s, pc.exposed_comm_s))
        if self.segments:
            for stream, name, off, dur in pc.segments:
                self.add(stage, stream, f"{name} mb{mb}", start_s + off, dur)

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


@dataclass
class StageStats:
    """One pipeline stage's busy times over a step (seconds)."""

    compute_s: float = 0.0  # compute stream inside the passes
    comm_s: float = 0.0  # all-to-all and TP collectives inside the passes
    exposed_comm_s: float = 0.0  # of which the compute stream waited on
    passes_s: float = 0.0  # the passes' total duration
    passes_end_s: float = 0.0  # when the stage's last pass ended
    sync_and_step_s: float = 0.0  # DP sync on the critical path + optimizer step
    end_s: float = 0.0  # when the stage finished the step


@dataclass(frozen=True)
class PipelineRun:
    step_time_s: float
    bubble_s: float  # mean over stages of the pipeline span not spent in passes
    stages: list[StageStats]
    busiest: int  # the stage with the most pass time
    events: int  # passes simulated
    pipeline_s: float  # when the last pass of any stage ended


class Pipeline:
    """The simpy processes of one training step: one per stage, each with a compute and a comm stream.
    Cross-stage dependencies are simpy events keyed (direction, kind, stage, micro-batch)."""

    def __init__(self, costs: list[StageCost], schedule: str, m: int, overlap_grad_sync: bool, trace: _Trace | None,
                 chunks: int = 1, overlap_a2a: bool = False):
        self.costs, self.schedule, self.m = costs, schedule, m  # costs: one per virtual stage (chunk c, rank r: c*pp + r)
        self.chunks, self.pp = chunks, len(costs) // chunks
        self.overlap_a2a = overlap_a2a  # combined 1F1B: steady-phase F and B run as one pair
        self.overlap_grad_sync, self.trace = overlap_grad_sync, trace
        self.env = simpy.Environment()
        self.done: dict[tuple, simpy.Event] = {}
        self.stats = [StageStats() for _ in range(self.pp)]
        self.events = 0

    def event(self, key: tuple) -> simpy.Event:
        if key not in self.done:
            self.done[key] = self.env.event()
        return self.done[key]

    def deliver(self, key: tuple, delay_s: float) -> None:
        """Mark `key` done after `delay_s` (a p2p transfer to the neighbouring stage)."""
        if delay_s <= 0:
            self.event(key).succeed()
        else:
            self.env.timeout(delay_s).callbacks.append(lambda _: self.event(key).succeed())

    def run_pass(self, s: int, compute: simpy.Resource, kind: str, mb: int, pc: PassCost):
        """Hold stage s's compute stream for one pass and account for it."""
        with compute.request() as req:
            yield req
            start = self.env.now
            yield self.env.timeout(pc.total_s)
        self.events += 1
        st = self.stats[s]
        st.compute_s += pc.compute_s
        st.comm_s += pc.comm_s
        st.exposed_comm_s += pc.exposed_comm_s
        st.passes_s += pc.total_s
        if self.trace is not None:
            self.trace.record(s, kind, mb, start, pc)

    def order(self, s: int) -> list[tuple[str, int, int]]:
        """Rank s's passes as (kind, micro-batch, model chunk)."""
        if self.chunks > 1 or self.overlap_a2a:
            return interleaved_1f1b(s, self.pp, self.m, self.chunks, self.overlap_a2a)
        return [(kind, mb, 0) for kind, mb in SCHEDULES[self.schedule](s, self.pp, self.m)]

    def steps(self, s: int) -> list[list[tuple[str, int, int]]]:
        """Rank s's order cut into what runs as one pass: a lone F or B, or under combined 1F1B a forward
        and the backward right after it (the steady phase) as one pair."""
        out, order = [], self.order(s)
        i = 0
        while i < len(order):
            pair = self.overlap_a2a and order[i][0] == "F" and i + 1 < len(order) and order[i + 1][0] == "B"
            out.append(order[i:i + 2] if pair else order[i:i + 1])
            i += 2 if pair else 1
        return out

    def input_of(self, kind: str, g: int, mb: int) -> simpy.Event | None:
        """What a pass of virtual stage g on micro-batch mb waits for: the previous stage's forward, the
        next stage's backward (the last stage's backward: its own forward)."""
        if kind == "F":
            return self.event((0, "F", g - 1, mb)) if g > 0 else None
        return self.event((0, "Fdone", g, mb)) if g == len(self.costs) - 1 else self.event((0, "B", g + 1, mb))

    def output_of(self, kind: str, g: int, mb: int) -> None:
        """A finished pass hands its activations (or gradients) to the neighbouring virtual stage."""
        if kind == "F":
            self.deliver((0, "Fdone", g, mb), 0.0)
            if g < len(self.costs) - 1:
                self.deliver((0, "F", g, mb), self.costs[g].p2p_s)
        elif g > 0:
            self.deliver((0, "B", g, mb), self.costs[g - 1].p2p_s)

    def step_cost(self, s: int, step: list[tuple[str, int, int]]) -> PassCost:
        """One pass's cost (B includes W), or a combined-1F1B pair's: the forward and the backward beside
        each other, each one's all-to-all under the other's compute (fb_pair, as DualPipe's pairs), the
        weight gradients after the pair unless they ran inside it."""
        costs = [self.costs[chunk * self.pp + s] for _, _, chunk in step]
        if len(step) == 1:
            return costs[0].F if step[0][0] == "F" else costs[0].B + costs[0].W
        f, b = costs
        pair, carry_w = fb_pair(f.F, b.B, b.W, b.overlapped_comm_efficiency)
        return pair if carry_w else pair + b.W

    def fixed_order(self, s: int, compute: simpy.Resource):
        """gpipe, 1f1b and interleaved 1f1b (combined or not): the schedule's order, each pass waiting for
        its inputs from the neighbouring virtual stages (chunk c of rank s is virtual stage g = c * pp + s)."""
        for step in self.steps(s):
            for kind, mb, chunk in step:
                dep = self.input_of(kind, chunk * self.pp + s, mb)
                if dep is not None:
                    yield dep
            name = "F&B" if len(step) == 2 else step[0][0]
            yield from self.run_pass(s, compute, name, step[0][1], self.step_cost(s, step))
            for kind, mb, chunk in step:
                self.output_of(kind, chunk * self.pp + s, mb)

    def lanes(self, s: int) -> list[_Lane]:
        """Zero-bubble: one lane of all micro-batches. DualPipe: half from each end of the pipeline."""
        if self.schedule == "zero-bubble":
            return [_Lane(0, s, self.costs[s], list(range(self.m)))]
        half = self.m // 2
        return [_Lane(0, s, self.costs[s], list(range(half))),
                _Lane(1, self.pp - 1 - s, self.costs[self.pp - 1 - s], list(range(half, self.m)))]

    def paired(self, s: int, compute: simpy.Resource, lf: _Lane, lb: _Lane, pending_w: list):
        """DualPipe's F&B pair: one lane's forward and the other's backward overlapped, so each one's
        all-to-all hides under the other's compute (V3P §3.2.1). When the all-to-all outlasts that
        compute, the backward's weight gradients run in the pair too (DeepSeek's profiled chunk pair
        holds attn(W) and mlp(W)); otherwise they are deferred to fill pipeline gaps."""
        pair, carry_w = fb_pair(lf.cost.F, lb.cost.B, lb.cost.W, lb.cost.overlapped_comm_efficiency)
        mb_b = lb.mbs[lb.next_b]
        yield from self.run_pass(s, compute, "F&B", lf.mbs[lf.next_f], pair)
        lf.did_f(self.deliver, self.pp)
        lb.did_b(self.deliver, self.costs)
        if not carry_w:
            pending_w.append((lb, mb_b))

    def list_schedule(self, s: int, compute: simpy.Resource):
        """Zero-bubble and DualPipe: each lane keeps 1F1B's forwards-in-flight limit; priority (F&B pair) >
        B > F > W; a deferred W runs only when nothing else is ready."""
        lanes, pending_w = self.lanes(s), []
        while any(ln.next_b < len(ln.mbs) for ln in lanes):
            ready_b = [ln for ln in lanes if ln.b_ready(self.event, self.pp)]
            ready_f = [ln for ln in lanes if ln.f_ready(self.event, self.pp)]
            if self.schedule == "dualpipe" and ready_b and ready_f:
                lf = next((ln for ln in ready_f if ln is not ready_b[0]), ready_f[0])
                yield from self.paired(s, compute, lf, ready_b[0], pending_w)
            elif ready_b:
                ln = ready_b[0]
                mb = ln.mbs[ln.next_b]
                yield from self.run_pass(s, compute, "B", mb, ln.cost.B)
                ln.did_b(self.deliver, self.costs)
                pending_w.append((ln, mb))
            elif ready_f:
                ln = ready_f[0]
                yield from self.run_pass(s, compute, "F", ln.mbs[ln.next_f], ln.cost.F)
                ln.did_f(self.deliver, self.pp)
            elif pending_w:
                ln, mb = pending_w.pop(0)
                yield from self.run_pass(s, compute, "W", mb, ln.cost.W)
            else:
                yield self.env.any_of([e for ln in lanes for e in ln.waits(self.event, self.pp)])
        for ln, mb in pending_w:
            yield from self.run_pass(s, compute, "W", mb, ln.cost.W)

    def sync_and_step(self, s: int, compute: simpy.Resource, comm: simpy.Resource):
        """ZeRO gradient sync, then the optimizer step. With overlap the parameter all-gather of the next
        step hides under its first forwards, so only the reduce-scatter half stays on the critical path."""
        cost = rank_cost(self.costs, self.pp, s)
        sync = cost.dp_sync_s / 2 if self.overlap_grad_sync else cost.dp_sync_s
        with comm.request() as req:
            yield req
            start = self.env.now
            yield self.env.timeout(sync)
        with compute.request() as req:
            yield req
            yield self.env.timeout(cost.optimizer_s)
        self.stats[s].sync_and_step_s = sync + cost.optimizer_s
        if self.trace is not None:
            self.trace.add(s, "comm", "dp reduce-scatter" + ("" if self.overlap_grad_sync else " + all-gather"),
                           start, sync)
            self.trace.add(s, "compute", "optimizer", start + sync, cost.optimizer_s)

    def stage(self, s: int):
        compute, comm = simpy.Resource(self.env, 1), simpy.Resource(self.env, 1)
        passes = self.list_schedule if self.schedule in LIST_SCHEDULED else self.fixed_order
        yield from passes(s, compute)
        self.stats[s].passes_end_s = self.env.now
        yield from self.sync_and_step(s, compute, comm)
        self.stats[s].end_s = self.env.now

    def run(self) -> PipelineRun:
        for s in range(self.pp):
            self.env.process(self.stage(s))
        self.env.run()
        pipeline_end = max(st.passes_end_s for st in self.stats)
        return PipelineRun(
            step_time_s=max(st.end_s for st in self.stats),
            bubble_s=sum(pipeline_end - st.passes_s for st in self.stats) / self.pp,
            stages=self.stats, busiest=max(range(self.pp), key=lambda s: self.stats[s].passes_s),
            events=self.events, pipeline_s=pipeline_end)


def rank_cost(costs: list[StageCost], pp: int, rank: int) -> StageCost:
    """What rank `rank` syncs and steps: its model chunks' DP sync and optimizer times summed (its first
    chunk's passes; without interleaving, the stage's own cost)."""
    mine = costs[rank::pp]
    if len(mine) == 1:
        return mine[0]
    return replace(mine[0], dp_sync_s=sum(c.dp_sync_s for c in mine), optimizer_s=sum(c.optimizer_s for c in mine),
                   layers=sum(c.layers for c in mine))


def fb_pair(f: PassCost, b: PassCost, w: PassCost, comm_efficiency: float = 1.0) -> tuple[PassCost, bool]:
    """A DualPipe forward-backward pair on one rank: the two chunks' compute back to back on the compute
    stream while their all-to-alls run on the communication stream beside it, at `comm_efficiency` of
    their standalone rate and holding COMM_SM_FRACTION of the SMs (V3P §3.2.2). When the all-to-all
    outlasts that compute, the backward's weight gradients join the pair (returned True); else they
    wait for a gap. The in-layer communication keeps the exposure it has in its own pass: the TP
    collectives all of it, the CP ring only what outlasts its attention (MCCP)."""
    compute_s = f.full_sm_compute_s + b.full_sm_compute_s
    in_layer_s = f.in_layer_comm_s + b.in_layer_comm_s
    serial_s = f.in_layer_exposed_s + b.in_layer_exposed_s
    comm_s = (f.comm_s + b.comm_s - in_layer_s) / comm_efficiency
    carry_w = comm_s > compute_s / (1 - COMM_SM_FRACTION)
    compute_s += w.full_sm_compute_s if carry_w else 0.0
    span, busy = overlap_span(comm_s, compute_s, COMM_SM_FRACTION)
    return (PassCost(span + serial_s, busy, comm_s + in_layer_s, span - busy + serial_s, (), compute_s, serial_s),
            carry_w)


def run_pipeline(costs: list[StageCost], schedule: str, m: int, *, overlap_grad_sync: bool = True,
                 trace: _Trace | None = None, chunks: int = 1, overlap_a2a: bool = False) -> PipelineRun:
    """Simulate one step of `schedule` over `m` micro-batches (the layout is assumed feasible); `costs` has
    one entry per virtual stage, `chunks` model chunks per rank (interleaved 1F1B when more than one);
    `overlap_a2a`: combined 1F1B."""
    return Pipeline(costs, schedule, m, overlap_grad_sync, trace, chunks, overlap_a2a).run()


def stack_efficiency_of(t: TrainingSpec) -> float:
    """The scenario's own stack efficiency, else the one derived from DeepSeek's profile."""
    return t.stack_efficiency.value if t.stack_efficiency else TRAINING_STACK_EFFICIENCY


def a2a_efficiency_of(t: TrainingSpec) -> float:
    """The scenario's own all-to-all efficiency, else the one derived from DeepSeek's profile."""
    return t.all_to_all_efficiency.value if t.all_to_all_efficiency else TRAINING_A2A_EFFICIENCY


def training_timers(m: ModelSpec, t: TrainingSpec, scale: dict[str, float] | None = None,
                    measured: MeasuredBackend | None = None, only: str | None = None) -> tuple[Timer, Timer]:
    """(GEMM timer, attention timer): the GPU file's sourced efficiencies scaled by the stack efficiency;
    with `measured` kernels (the database's), every GEMM of the forward and backward read from them and
    slowed by the same stack efficiency, the rest on that roofline (kernel_timer.py; `only`: one family's
    seconds, for the coverage)."""
    gpu, stack = t.cluster.gpu, stack_efficiency_of(t)
    if measured is None:
        return (Timer(Device.from_gpu(gpu, t.precision, stack), scale=scale),
                Timer(Device.from_gpu(gpu, "bf16", stack), scale=scale))  # BF16 attention under FP8 (V3P §3.3)
    devices = {p: Device.from_gpu(gpu, p, stack) for p in ("bf16", "fp8", "fp4")}
    return tuple(KernelTimer(devices, measured, training_kernel_plan(m, t, attention), scale, only, 1 / stack)
                 for attention in (False, True))


def stage_costs_for(m: ModelSpec, t: TrainingSpec, scale: dict[str, float] | None = None,
                    measured: MeasuredBackend | None = None) -> list[StageCost]:
    """Per-stage pass costs (`scale`: one drawn timing error per operator, for uncertainty bands)."""
    return build_stage_costs(m, t, *training_timers(m, t, scale, measured), a2a_efficiency_of(t))


def training_coverage(m: ModelSpec, t: TrainingSpec, measured: MeasuredBackend) -> dict:
    """Which share of a micro-batch's compute through the model (forward, backward, weight gradients) came
    from measured kernels, per kernel family; collectives come from the link model and are not in it."""
    total = compute_seconds(m, t, op_times(m, t, *training_timers(m, t, None, measured)))
    per = {f: compute_seconds(m, t, op_times(m, t, *training_timers(m, t, None, measured, f))) / total
           for f in COVERAGE_FAMILIES}
    per = {f: s for f, s in per.items() if s > 0}
    return {"measured_share": 1 - per.get(ROOFLINE, 0.0), "per_family": per, "of": "compute"}


def simulate_training(name: str, m: ModelSpec, t: TrainingSpec, *, trace_path: Path | None = None,
                      passes: list | None = None, scale: dict[str, float] | None = None,
                      measured: MeasuredBackend | None = None) -> TrainingResult:
    """One step of `t`'s layout (assumed feasible), extrapolated to the whole run. `passes` receives
    (stage, kind, micro-batch, start_s, duration_s, exposed comm s) of every pass; `measured`: the
    kernel database's kernels for the GEMMs (the app layer imports them)."""
    t0 = time.perf_counter()
    par = t.parallelism
    costs = stage_costs_for(m, t, scale, measured)
    trace = _Trace(segments=trace_path is not None) if trace_path is not None or passes is not None else None
    sim = run_pipeline(costs, par.schedule, par.micro_batches, overlap_grad_sync=par.overlap_grad_sync, trace=trace,
                       chunks=par.virtual_stages, overlap_a2a=par.overlap_moe_a2a)
    if trace_path is not None:
        trace.write(trace_path, par.pp)
    if passes is not None:
        passes.extend(trace.passes)
    ramp_gpu_s = ramp_gpu_seconds(t, costs, sim)
    r = training_result(name, m, t, sim, rank_cost(costs, par.pp, sim.busiest), time.perf_counter() - t0, ramp_gpu_s)
    r.timing_coverage = None if measured is None or scale is not None else training_coverage(m, t, measured)
    return r


RAMP_POINTS = 4  # batch sizes simulated along a batch ramp (midpoints of equal token segments)


def ramp_gpu_seconds(t: TrainingSpec, costs: list[StageCost], full: PipelineRun) -> float:
    """Extra GPU-seconds the batch ramp costs over running its tokens at the full batch: each segment's
    step is simulated with fewer micro-batches of the same size (a larger bubble per token)."""
    ramp, par = t.batch_ramp, t.parallelism
    if ramp is None:
        return 0.0
    gpus, full_tokens = t.cluster.num_gpus, t.global_batch_seqs * t.seq_len
    seqs_per_mb = t.global_batch_seqs / (par.dp * par.micro_batches)
    # DualPipe feeds half the micro-batches from each end; interleaving runs them in groups of pp
    step_unit = 2 if par.schedule == "dualpipe" else par.pp if par.virtual_stages > 1 else 1
    extra = 0.0
    for i in range(RAMP_POINTS):
        batch = ramp.start_seqs + (t.global_batch_seqs - ramp.start_seqs) * (i + 0.5) / RAMP_POINTS
        m = max(step_unit, round(batch / (par.dp * seqs_per_mb) / step_unit) * step_unit)
        step = run_pipeline(costs, par.schedule, m, overlap_grad_sync=par.overlap_grad_sync,
                            chunks=par.virtual_stages, overlap_a2a=par.overlap_moe_a2a).step_time_s
        per_token = step * gpus / (m * par.dp * seqs_per_mb * t.seq_len)
        extra += ramp.tokens / RAMP_POINTS * (per_token - full.step_time_s * gpus / full_tokens)
    return extra


def training_result(name: str, m: ModelSpec, t: TrainingSpec, sim: PipelineRun, busiest_cost: StageCost,
                    wall_s: float, ramp_gpu_s: float = 0.0) -> TrainingResult:
    """A simulated step turned into throughput, MFU and the cost of the run (batch ramp included)."""
    mem = training_memory(m, t)
    step, gpus, gpu = sim.step_time_s, t.cluster.num_gpus, t.cluster.gpu
    tokens = t.global_batch_seqs * t.seq_len
    gpu_s_per_token = step * gpus / tokens
    gpu_hours_per_token = gpu_s_per_token / 3600
    price = gpu.price_usd_per_hour.value
    busiest = sim.stages[sim.busiest]
    run_gpu_hours = gpu_hours_per_token * t.tokens + ramp_gpu_s / 3600
    good = None if t.reliability is None else goodput(m, t, run_gpu_hours * 3600 / gpus, t.reliability)
    if good is not None:  # failures, checkpoints and restarts lengthen the run, never the step
        run_gpu_hours = good.wall_s * gpus / 3600
    return TrainingResult(
        name=name, num_gpus=gpus, step_time_s=step, tokens_per_step=tokens, tokens_per_s_per_gpu=1 / gpu_s_per_token,
        mfu=train_flops_per_token(m, t.seq_len) / (gpu_s_per_token * gpu.peak_flops(t.precision)),
        stack_efficiency=stack_efficiency_of(t), all_to_all_efficiency=a2a_efficiency_of(t),
        flop_convention=f"6·N_active + causal attention at seq {t.seq_len} (costmodel/counts/flops.py), "
                        f"over the {gpu.compute_precision(t.precision).upper()} dense peak; recompute not counted",
        bubble_fraction=sim.bubble_s / step, compute_s=busiest.compute_s, comm_s=busiest.comm_s,
        exposed_comm_s=busiest.exposed_comm_s + busiest.sync_and_step_s - busiest_cost.optimizer_s,
        dp_sync_s=busiest_cost.dp_sync_s, peak_memory_bytes_per_gpu=mem.total_bytes, memory=mem.as_dict(),
        memory_capacity_bytes=mem.capacity_bytes, fits=mem.fits,
        gpu_hours_per_trillion_tokens=gpu_hours_per_token * 1e12, cost_usd_per_trillion_tokens=gpu_hours_per_token * 1e12 * price,
        gpu_hours_total=run_gpu_hours, cost_usd_total=run_gpu_hours * price, ramp_gpu_hours=ramp_gpu_s / 3600,
        days_total=run_gpu_hours * 3600 / gpus / 86400, events=sim.events, sim_wall_s=wall_s,
        goodput=None if good is None else good.goodput, reliability=good)
