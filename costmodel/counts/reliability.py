"""What failures, checkpoints and restarts add to a whole training run (goodput), from first-order
checkpoint/restart analysis (YD in docs/sources.md).

A run of T seconds of useful steps on N GPUs is interrupted at rate N / MTBF (each GPU interrupts the whole
synchronous job, LL3 §3.3.4). It writes a checkpoint every tau seconds of work, each taking delta (the job's
weights and optimizer state over the storage bandwidth, training paused while it writes). Each
interruption costs the restart R, the checkpoint read back (delta again) and on average half an interval
of lost work. The wall time W solves W = T (1 + delta / tau) + lambda W (tau / 2 + R + delta), so
W = T (1 + delta / tau) / (1 - lambda (tau / 2 + R + delta)). Goodput is T / W. The default tau is Young's
sqrt(2 delta / lambda). Step-level figures never include any of it.
"""

from __future__ import annotations

import math

from pydantic import BaseModel

from costmodel.counts.params import params_total
from costmodel.inputs.specs import ModelSpec, ReliabilitySpec, TrainingSpec


class Goodput(BaseModel):
    goodput: float  # useful step time over the wall time
    expected_interruptions: float
    checkpoint_interval_s: float
    checkpoint_write_s: float
    checkpoints_s: float  # writing checkpoints over the run
    lost_s: float  # lost work, restarts and checkpoint reads over the run
    wall_s: float


def checkpoint_bytes(m: ModelSpec, t: TrainingSpec) -> float:
    """A checkpoint: every parameter's weights and optimizer state (master weights and moments)."""
    return params_total(m) * (t.memory.weight_bytes + t.memory.optimizer_bytes)


def _terms(m: ModelSpec, t: TrainingSpec, r: ReliabilitySpec) -> tuple[float, float, float]:
    """(interruptions per second, checkpoint write seconds, checkpoint interval seconds)."""
    rate = t.cluster.num_gpus / (r.gpu_mtbf_hours * 3600)  # each GPU interrupts the whole job
    delta = r.checkpoint_write_s or checkpoint_bytes(m, t) / r.storage_bytes_per_s
    return rate, delta, r.checkpoint_interval_s or math.sqrt(2 * delta / rate)


def recovery_load(m: ModelSpec, t: TrainingSpec, r: ReliabilitySpec) -> float:
    """Seconds lost to interruptions per second of wall time; at 1 or more the run never finishes."""
    rate, delta, tau = _terms(m, t, r)
    return rate * (tau / 2 + r.restart_s + delta)


def goodput(m: ModelSpec, t: TrainingSpec, useful_s: float, r: ReliabilitySpec) -> Goodput:
    """The wall time and goodput of `useful_s` seconds of steps under `r` (see the module docstring);
    recovery_load must be under 1 (feasibility.py)."""
    rate, delta, tau = _terms(m, t, r)
    wall = useful_s * (1 + delta / tau) / (1 - recovery_load(m, t, r))
    return Goodput(goodput=useful_s / wall, expected_interruptions=rate * wall, checkpoint_interval_s=tau,
                   checkpoint_write_s=delta, checkpoints_s=useful_s * delta / tau,
                   lost_s=rate * wall * (tau / 2 + r.restart_s + delta), wall_s=wall)
