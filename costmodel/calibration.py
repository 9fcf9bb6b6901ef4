"""Measured anchors for constants that no datasheet gives: derived here so the numbers in the scenarios
can be re-checked (tests compare them) rather than typed in.

DeepSeek's published training profile (FACTS.md §6.5, profile-data `train.json`): one DualPipe chunk
pair of DeepSeek-V3 on H800 — 4 MoE layers forward for one micro-batch and 4 backward for another,
EP64, TP1, 4K sequence, FP8 GEMMs, FP8 dispatch / BF16 combine — keeps the compute stream busy 118 ms
and the communication stream 115 ms. Modelled with this tool's sourced kernel efficiencies, the same
operators take less compute time; the ratio is how close DeepSeek's whole training stack (casts,
quantisation, norms, SMs lent to communication, launch gaps) comes to the kernel benchmarks.
"""

from __future__ import annotations

from costmodel.memory import stage_layers
from costmodel.specs import ClusterSpec, GPUSpec, ModelSpec, Parallelism, TrainingSpec
from costmodel.timing import Device, Timer
from costmodel.train_costs import StageCost, build_stage_costs

# The fraction of the kernel benchmarks' speed DeepSeek's training stack reaches, as
# stack_efficiency_from_pd_trace derives it (a test re-derives it): every training scenario uses it
# unless it states its own `stack_efficiency`.
TRAINING_STACK_EFFICIENCY = 0.638
PD_COMPUTE_BUSY_S = 0.118  # FACTS.md §6.5 [DERIVED from the trace]
PD_COMM_BUSY_S = 0.115
PD_TOKENS = 4096  # one 4K sequence per micro-batch (trace name: seqlen4096)


def pd_chunk_pair(v3: ModelSpec, h800: GPUSpec, stack_efficiency: float = 1.0) -> StageCost:
    """This tool's costs for the profiled chunk pair: a 4-MoE-layer stage of V3 on EP64."""
    t = TrainingSpec(cluster=ClusterSpec(gpu=h800, gpus_per_node=8, nodes=256),
                     parallelism=Parallelism(pp=16, ep=64, dp=128, micro_batches=1, placement=("tp", "dp", "pp")),
                     seq_len=PD_TOKENS, global_batch_seqs=128, precision="fp8", dispatch_bits=8)
    costs = build_stage_costs(v3, t, Timer(Device.from_gpu(h800, "fp8", stack_efficiency)),
                              Timer(Device.from_gpu(h800, "bf16", stack_efficiency)))
    stages = stage_layers(v3.num_hidden_layers, t.parallelism.pp)
    return next(c for c, layers in zip(costs, stages, strict=True)
                if len(layers) == 4 and all(v3.is_moe_layer(i) for i in layers))


def stack_efficiency_from_pd_trace(v3: ModelSpec, h800: GPUSpec) -> float:
    """Modelled compute time of the chunk pair / its measured compute-stream time."""
    c = pd_chunk_pair(v3, h800)
    return (c.F.compute_s + c.B.compute_s + c.W.compute_s) / PD_COMPUTE_BUSY_S


def pd_trace_comm_ratio(v3: ModelSpec, h800: GPUSpec) -> float:
    """Modelled all-to-all time of the chunk pair / its measured communication-stream time."""
    c = pd_chunk_pair(v3, h800)
    return (c.F.comm_s + c.B.comm_s) / PD_COMM_BUSY_S
