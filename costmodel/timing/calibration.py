"""Measured anchors for constants that no datasheet gives: derived here so the numbers in the scenarios
can be re-checked (tests compare them) rather than typed in.

DeepSeek's published training profile (PD in docs/sources.md: profile-data `train.json`): one DualPipe chunk
pair of DeepSeek-V3 on H800 — 4 MoE layers forward for one micro-batch and 4 backward for another,
EP64, TP1, 4K sequence, FP8 GEMMs, FP8 dispatch / BF16 combine — keeps the compute stream busy 118 ms
and the communication stream 115 ms. Modelled with this tool's sourced kernel efficiencies, the same
operators take less compute time; the ratio is how close DeepSeek's whole training stack (casts,
quantisation, norms, launch gaps) comes to the kernel benchmarks, once the SMs lent to communication are
accounted for. The all-to-all is likewise slower than DeepEP's standalone benchmark; that ratio too.
"""

from __future__ import annotations

from costmodel.counts.deepep import COMM_SM_FRACTION
from costmodel.counts.memory import stage_layers
from costmodel.inputs.specs import ClusterSpec, GPUSpec, ModelSpec, Parallelism, TrainingSpec
from costmodel.timing.operators import Device, Timer
from costmodel.timing.train_costs import StageCost, build_stage_costs

# What DeepSeek's training stack reaches of the kernel benchmarks, as the functions below derive them
# from the profiled chunk pair (a test re-derives both): every training scenario uses them unless it
# states its own `stack_efficiency` / `all_to_all_efficiency`.
TRAINING_STACK_EFFICIENCY = 0.740
TRAINING_A2A_EFFICIENCY = 0.508
PD_COMPUTE_BUSY_S = 0.118  # PD train.json: compute stream busy (measured from the trace)
PD_COMM_BUSY_S = 0.115
PD_SPAN_S = 0.129
PD_TOKENS = 4096  # one 4K sequence per micro-batch (trace name: seqlen4096)


def pd_chunk_pair(v3: ModelSpec, h800: GPUSpec, stack_efficiency: float = 1.0,
                  a2a_efficiency: float = 1.0) -> StageCost:
    """This tool's costs for the profiled chunk pair: a 4-MoE-layer stage of V3 on EP64."""
    t = TrainingSpec(cluster=ClusterSpec(gpu=h800, gpus_per_node=8, nodes=256),
                     parallelism=Parallelism(pp=16, ep=64, dp=128, micro_batches=1, placement=("tp", "dp", "pp")),
                     seq_len=PD_TOKENS, global_batch_seqs=128, precision="fp8", dispatch_bits=8)
    costs = build_stage_costs(v3, t, Timer(Device.from_gpu(h800, "fp8", stack_efficiency)),
                              Timer(Device.from_gpu(h800, "bf16", stack_efficiency)), a2a_efficiency)
    stages = stage_layers(v3.num_hidden_layers, t.parallelism.pp)
    return next(c for c, layers in zip(costs, stages, strict=True)
                if len(layers) == 4 and all(v3.is_moe_layer(i) for i in layers))


def stack_efficiency_from_pd_trace(v3: ModelSpec, h800: GPUSpec) -> float:
    """Modelled compute of the chunk pair at full SMs / the trace's compute work at full SMs. The trace's
    compute stream ran on the SMs the all-to-all left free whenever both streams were busy — at least
    compute + comm - span of it — so its work at full SMs is busy - COMM_SM_FRACTION x that overlap."""
    c = pd_chunk_pair(v3, h800)
    overlap_s = PD_COMPUTE_BUSY_S + PD_COMM_BUSY_S - PD_SPAN_S
    modelled = c.F.full_sm_compute_s + c.B.full_sm_compute_s + c.W.full_sm_compute_s
    return modelled / (PD_COMPUTE_BUSY_S - COMM_SM_FRACTION * overlap_s)


def a2a_efficiency_from_pd_trace(v3: ModelSpec, h800: GPUSpec) -> float:
    """The chunk pair's all-to-all at DeepEP's standalone benchmarked rates / the trace's communication-
    stream time. Beside the other chunk's GEMMs the kernels take longer than their bytes alone would (V3P
    §3.2.2 tunes PTX and chunk sizes to limit exactly this interference; waits on 63 peers add to it);
    the tool cannot split the two, so the ratio is taken as measured, for overlapped all-to-all only."""
    c = pd_chunk_pair(v3, h800)
    return (c.F.comm_s + c.B.comm_s) / PD_COMM_BUSY_S
