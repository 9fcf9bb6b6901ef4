"""What one micro-batch costs on each pipeline stage: forward (F), input-gradient (B) and weight-gradient
(W) passes, each a sequence of compute and communication segments folded into one duration.

Per layer, forward: [TP all-gather] attention [TP reduce-scatter] [TP all-gather] then either the dense
FFN, or MoE: dispatch all-to-all (overlapped with the shared experts), routed experts, combine
all-to-all; [TP reduce-scatter]. Backward mirrors it. Operator times come from the Timer (measured
profile or roofline), collectives from comm.py over the link placement.py says the group uses.

Symmetry: all DP replicas, TP ranks and EP ranks of a stage do the same work (EP in lockstep, with the
busiest rank's load from the routing model), so one representative rank per stage is simulated.
"""

from __future__ import annotations

from dataclasses import dataclass

from costmodel.counts.comm import Link, all_gather_time, links_of, p2p_time, reduce_scatter_time
from costmodel.counts.deepep import COMM_SM_FRACTION, FP8_BYTES_PER_ELEMENT, normal_dispatch_combine_s
from costmodel.counts.kernels import KernelPlan
from costmodel.counts.memory import stage_params, virtual_stage_layers
from costmodel.counts.opcounts import attention_flop_split, attention_shape
from costmodel.counts.placement import groups, stage_node
from costmodel.counts.routing import (
    assignment_bucket,
    busiest_rank_factor,
    contiguous_slots,
    selection_shares,
    token_fanout,
)
from costmodel.inputs.specs import ModelSpec, TrainingSpec
from costmodel.timing.operators import Timer

# FP32 master + m + v read and written, BF16 weight written, BF16 gradient read (ZeRO paper's 16 B/param
# of state, touched once per step): 4+4+4 read, 4+4+4 write, 2 write, 2 read = 28 B.
OPTIMIZER_BYTES_PER_PARAM = 28

# names of the communication segments that stay inside a layer's chain (a pair cannot hide them)
TP_GATHER, TP_SCATTER, TP_OVERLAPPED, CP_RING = "tp all-gather", "tp reduce-scatter", "tp all-gather + reduce-scatter", \
    "cp ring"
IN_LAYER_COMM = (TP_GATHER, TP_SCATTER, TP_OVERLAPPED, CP_RING)


@dataclass(frozen=True)
class PassCost:
    total_s: float
    compute_s: float
    comm_s: float
    exposed_comm_s: float
    segments: tuple[tuple[str, str, float, float], ...]  # (stream, name, start offset, duration)
    work_s: float | None = None  # the compute at full SMs (compute_s less the SMs lent to communication)
    in_layer_exposed_s: float = 0.0  # of exposed_comm_s, the in-layer part (IN_LAYER_COMM) a pair cannot hide

    @property
    def in_layer_comm_s(self) -> float:
        """The pass's communication that stays in each layer's chain, its TP collectives and CP ring (only
        the EP all-to-all crosses over to the other micro-batch of a combined-1F1B pair, MCA2A)."""
        return sum(d for stream, name, _, d in self.segments if stream == "comm" and name in IN_LAYER_COMM)

    @property
    def full_sm_compute_s(self) -> float:
        return self.compute_s if self.work_s is None else self.work_s

    def __add__(self, other: PassCost) -> PassCost:
        shifted = tuple((st, n, t + self.total_s, d) for st, n, t, d in other.segments)
        return PassCost(self.total_s + other.total_s, self.compute_s + other.compute_s, self.comm_s + other.comm_s,
                        self.exposed_comm_s + other.exposed_comm_s, self.segments + shifted,
                        self.full_sm_compute_s + other.full_sm_compute_s,
                        self.in_layer_exposed_s + other.in_layer_exposed_s)


def overlap_span(comm_s: float, compute_s: float, sm_fraction: float) -> tuple[float, float]:
    """(span, compute busy) of compute running beside communication kernels that hold `sm_fraction` of
    the SMs while they run (V3P §3.2.2: 20 of 132): compute goes at 1 - f of its speed until they end."""
    if comm_s <= 0 or compute_s <= 0:
        return max(comm_s, compute_s), compute_s
    slowed = compute_s / (1 - sm_fraction)
    if slowed <= comm_s:  # all of it under the communication
        return comm_s, slowed
    busy = compute_s + sm_fraction * comm_s  # comm_s of slowed compute, the rest at full speed
    return busy, busy


def fold(segments: list[tuple]) -> PassCost:
    """Run segments back to back: ("compute", name, s), ("comm", name, s), or
    ("overlap", (comm name, s), (compute name, s), SM fraction the communication holds)."""
    t = compute = comm = exposed = work = in_layer = 0.0
    out = []
    for seg in segments:
        kind = seg[0]
        if kind == "compute" and seg[2] > 0:
            out.append(("compute", seg[1], t, seg[2]))
            t, compute, work = t + seg[2], compute + seg[2], work + seg[2]
        elif kind == "comm" and seg[2] > 0:
            out.append(("comm", seg[1], t, seg[2]))
            t, comm, exposed = t + seg[2], comm + seg[2], exposed + seg[2]
            in_layer += seg[2] if seg[1] in IN_LAYER_COMM else 0.0
        elif kind == "overlap":
            (cn, cd), (kn, kd), sm = seg[1], seg[2], seg[3]
            span, busy = overlap_span(cd, kd, sm)
            if cd > 0:
                out.append(("comm", cn, t, cd))
            if kd > 0:
                out.append(("compute", kn, t, busy))
            t += span
            comm, compute, exposed, work = comm + cd, compute + busy, exposed + span - busy, work + kd
            in_layer += span - busy if cn in IN_LAYER_COMM else 0.0  # e.g. the CP ring beyond its attention
    return PassCost(t, compute, comm, exposed, tuple(out), work, in_layer)


@dataclass(frozen=True)
class StageCost:
    F: PassCost
    B: PassCost
    W: PassCost
    p2p_s: float  # activation (or gradient) transfer to the neighbouring stage
    dp_sync_s: float  # ZeRO reduce-scatter of gradients + all-gather of parameters
    optimizer_s: float
    layers: int
    overlapped_comm_efficiency: float = 1.0  # of the standalone rate, beside the other chunk's compute


@dataclass(frozen=True)
class OpTimes:
    """Seconds of each operator of one layer for one micro-batch on one rank (F: forward, half: the dX or
    the dW half of the backward, each the same GEMM size), and its collectives."""

    attn_f: float
    attn_dx: float  # input gradient, incl. selective recompute of the MLA up-projections
    attn_dw: float
    dense_f: float
    dense_half: float
    shared_f: float
    shared_half: float
    routed_f: float
    routed_half: float
    dispatch: float  # all-to-all of the routed tokens (forward); its gradient costs the same as combine's
    combine: float
    tp: float  # one sequence-parallel all-gather or reduce-scatter
    head_f: float  # the LM head GEMM
    cp_ring: float = 0.0  # context parallelism: the forward's K/V ring exchange (the backward's is twice it)


def _attention_times(m: ModelSpec, t: TrainingSpec, mbs: int, attn_timer: Timer,
                     gemm_timer: Timer) -> tuple[float, float, float]:
    """(forward, dX, dW) of one attention layer: dW is the projections' weight-gradient GEMMs, one
    projection-sized GEMM of the backward's 2(proj + core) FLOPs; dX is the rest."""
    par = t.parallelism
    op, shape = attention_shape(m, par.tp, mbs, t.seq_len, t.seq_len)
    fwd = attn_timer.time(op, shape, "fwd")
    bwd = attn_timer.time(op, shape, "fwd_bwd") - fwd
    proj, core = attention_flop_split(op, shape)
    dw = bwd * proj / (2 * (proj + core))
    return fwd, bwd - dw + _selective_recompute(m, t, mbs * t.seq_len, gemm_timer), dw


def _selective_recompute(m: ModelSpec, t: TrainingSpec, tokens: int, gemm_timer: Timer) -> float:
    """Re-running the MLA up-projections before the backward (V3P §3.2.3); nothing otherwise."""
    if t.parallelism.recompute != "selective" or m.attention != "mla":
        return 0.0
    heads = m.num_attention_heads // t.parallelism.tp
    up_kv = gemm_timer.time("gemm", {"m": tokens, "n": heads * (m.qk_nope_head_dim + m.v_head_dim), "k": m.kv_lora_rank})
    up_q = gemm_timer.time("gemm", {"m": tokens, "n": heads * m.qk_head_dim, "k": m.q_lora_rank}) if m.q_lora_rank else 0.0
    return up_q + up_kv


def _ffn_pair(gemm_timer: Timer, hidden: int, width: int, tokens: int) -> tuple[float, float]:
    """(forward, one backward half) of a SwiGLU FFN."""
    if not width:
        return 0.0, 0.0
    shape = {"tokens": tokens, "hidden": hidden, "inter": width}
    f = gemm_timer.time("ffn", shape, "fwd")
    return f, (gemm_timer.time("ffn", shape, "fwd_bwd") - f) / 2


def group_link(t: TrainingSpec, group: str) -> Link:
    """The link a parallel group's collectives cross: the NIC when its members span nodes, else NVLink."""
    spans = groups(t.parallelism)[group].spans_nodes(t.cluster.gpus_per_node)
    return links_of(t.cluster.gpu)["nic" if spans else "nvlink"]


def _moe_times(m: ModelSpec, t: TrainingSpec, tokens: int, gemm_timer: Timer) -> tuple[float, ...]:
    """(routed F, routed half, dispatch, combine) of one MoE layer at the busiest EP rank's load. The
    all-to-all is DeepEP's normal kernels (deepep.py) over the token fan-out of the routing model, so
    node-limited routing (V3P §2.1.2: at most 4 nodes a token) bounds the InfiniBand bytes."""
    par, h = t.parallelism, m.hidden_size
    load = training_load_factor(m, t, tokens)
    # expert TP: each GPU runs its ETP group's gathered tokens through 1/etp of each local expert's width
    shape = {"tokens": max(1, round(tokens * load * par.etp)), "hidden": h, "experts": m.n_routed_experts // par.ep,
             "top_k": m.num_experts_per_tok, "inter": m.moe_intermediate_size // par.etp, "shared_inter": 0,
             # DeepEP's normal kernels feed the experts (a kernel profile times DeepGEMM's contiguous GEMM)
             **({"total_experts": m.n_routed_experts, "a2a": "normal"} if par.ep > 1 else {})}
    r_f = gemm_timer.time("moe", shape, "fwd")
    r_half = (gemm_timer.time("moe", shape, "fwd_bwd") - r_f) / 2
    if par.ep <= 1:
        return r_f, r_half, 0.0, 0.0
    ep_per_node = groups(par)["ep"].peers_in_node(t.cluster.gpus_per_node) + 1
    fan = token_fanout(m, t.routing, contiguous_slots(m.n_routed_experts, par.ep), ep_per_node)
    bpe = FP8_BYTES_PER_ELEMENT if t.dispatch_bits == 8 else 2
    dispatch, combine = normal_dispatch_combine_s(tokens * load, h, bpe, fan, ep_per_node, links_of(t.cluster.gpu))
    etp_s = expert_tp_collective_s(t, tokens * load * fan.ranks, h)
    return r_f, r_half, dispatch + etp_s, combine + etp_s


def expert_tp_collective_s(t: TrainingSpec, received_tokens: float, hidden: int) -> float:
    """Expert TP (MCMOE's folding): after the dispatch the ETP group all-gathers the tokens its GPUs
    received, and before the combine it reduce-scatters the experts' partial outputs; one of the two (a
    ring over etp GPUs of the group's gathered BF16 tokens). `received_tokens`: one GPU's, a hidden vector
    each."""
    par = t.parallelism
    if par.etp == 1:
        return 0.0
    return all_gather_time(par.etp * received_tokens * hidden * 2, par.etp, group_link(t, "etp"))


def training_load_factor(m: ModelSpec, t: TrainingSpec, tokens: int) -> float:
    """The busiest EP rank's tokens over the mean, from the routing model (all `ep` ranks' micro-batch
    tokens meet in the experts), cut at the capacity factor when tokens are dropped (V2P §2.2.4)."""
    ep, k = t.parallelism.ep, m.num_experts_per_tok
    slots = contiguous_slots(m.n_routed_experts, ep)
    factor = busiest_rank_factor(selection_shares(m, t.routing), slots,
                                 assignment_bucket(tokens * ep * k), t.routing.seed)
    return factor if t.capacity_factor is None else min(factor, t.capacity_factor)


def cp_ring_bytes(m: ModelSpec, t: TrainingSpec) -> float:
    """BF16 bytes one context-parallel rank sends around the ring in one layer's forward: its 1/cp of the
    micro-batch's K and V (MLA: after the up-projection, its TP rank's heads), passed on cp - 1 times
    (RING; the backward sends K and V again with their gradients: twice this)."""
    par = t.parallelism
    if par.cp == 1:
        return 0.0
    mbs = t.micro_batch_seqs
    heads = (m.num_attention_heads if m.attention == "mla" else m.kv_heads) // par.tp or 1
    v_dim = m.v_head_dim if m.attention == "mla" else m.attn_head_dim
    return (par.cp - 1) * mbs * t.seq_len / par.cp * heads * (m.qk_head_dim + v_dim) * 2


def op_times(m: ModelSpec, t: TrainingSpec, gemm_timer: Timer, attn_timer: Timer) -> OpTimes:
    """One layer's operators for a rank's micro-batch: under context parallelism its 1/cp of each
    sequence, attention's work spread evenly over the cp ranks (the causal mask load-balanced, MCCP)."""
    par, h = t.parallelism, m.hidden_size
    mbs = t.micro_batch_seqs
    tokens = -(-mbs * t.seq_len // par.cp)
    tp = reduce_scatter_time(tokens * h * 2, par.tp, group_link(t, "tp"))  # BF16 activations; 0 without TP
    # under TP the layer runs sequence-parallel, so each TP rank routes its own 1/tp of the tokens through
    # whole experts (Megatron-Core requires sequence parallelism for MoE with TP, MCMOE)
    moe = _moe_times(m, t, -(-tokens // par.tp), gemm_timer) if m.ffn == "moe" else (0.0,) * 4
    dense = _ffn_pair(gemm_timer, h, (m.intermediate_size or 0) // par.tp, tokens)
    shared = _ffn_pair(gemm_timer, h, m.shared_ffn_width // par.tp, tokens)
    head_f = gemm_timer.time("gemm", {"m": tokens, "n": m.vocab_size // par.tp, "k": h})
    attention = (x / par.cp for x in _attention_times(m, t, mbs, attn_timer, gemm_timer))
    ring = p2p_time(cp_ring_bytes(m, t), group_link(t, "cp")) if par.cp > 1 else 0.0
    return OpTimes(*attention, *dense, *shared, *moe, tp, head_f, ring)


def _with_tp(name: str, compute_s: float, tp_s: float, overlap: bool) -> list:
    """A block's compute between its sequence-parallel all-gather and reduce-scatter."""
    if overlap:
        # NCCL's SMs are not sourced here: the TP collectives are taken to leave compute its SMs
        return [("overlap", (TP_OVERLAPPED, 2 * tp_s), (name, compute_s), 0.0)]
    return [("comm", TP_GATHER, tp_s), ("compute", name, compute_s), ("comm", TP_SCATTER, tp_s)]


def _attention_block(name: str, compute_s: float, ring_s: float, tp_s: float, overlap_tp: bool) -> list:
    """Attention between its TP collectives; under context parallelism the K/V ring runs beside the
    attention compute (each step's transfer under the previous block's attention, MCCP), its SMs not
    sourced here (as the TP collectives'), and the TP collectives then not overlapped."""
    if ring_s <= 0:
        return _with_tp(name, compute_s, tp_s, overlap_tp)
    return [("comm", TP_GATHER, tp_s), ("overlap", (CP_RING, ring_s), (name, compute_s), 0.0),
            ("comm", TP_SCATTER, tp_s)]


def _moe_segments(o: OpTimes, hide_shared: bool) -> tuple[list, list]:
    """Forward and backward of a MoE block: the dispatch (or its gradient) overlaps the shared experts."""
    s_f, s_b = (0.0, o.shared_f) if not hide_shared else (o.shared_f, 0.0)
    h_f, h_b = (0.0, o.shared_half) if not hide_shared else (o.shared_half, 0.0)
    f = [("overlap", ("dispatch", o.dispatch), ("shared experts", s_f), COMM_SM_FRACTION),
         ("compute", "shared experts", s_b),
         ("compute", "routed experts", o.routed_f), ("comm", "combine", o.combine)]
    b = [("overlap", ("combine grad", o.dispatch), ("shared experts dX", h_f), COMM_SM_FRACTION),
         ("compute", "shared experts dX", h_b),
         ("compute", "routed experts dX", o.routed_half), ("comm", "dispatch grad", o.combine)]
    tp_in, tp_out = ("comm", TP_GATHER, o.tp), ("comm", TP_SCATTER, o.tp)
    return [tp_in, *f, tp_out], [tp_in, *b, tp_out]


def layer_segments(m: ModelSpec, t: TrainingSpec, o: OpTimes, i: int) -> tuple[list, list, list]:
    """(F, B, W) segments of layer i for one micro-batch."""
    par = t.parallelism
    f = _attention_block("attention", o.attn_f, o.cp_ring, o.tp, par.overlap_tp_comm)
    b = _attention_block("attention dX", o.attn_dx, 2 * o.cp_ring, o.tp, par.overlap_tp_comm)
    w = [("compute", "attention dW", o.attn_dw)]
    if m.is_moe_layer(i):
        f_moe, b_moe = _moe_segments(o, t.overlap_shared_experts)
        f, b, w = f + f_moe, b_moe + b, w + [("compute", "experts dW", o.routed_half + o.shared_half)]
    else:
        f = f + _with_tp("ffn", o.dense_f, o.tp, par.overlap_tp_comm)
        b = _with_tp("ffn dX", o.dense_half, o.tp, par.overlap_tp_comm) + b
        w = w + [("compute", "ffn dW", o.dense_half)]
    if par.recompute == "full":  # re-run the layer's forward compute before its backward
        again = sum(seg[2] for seg in f if seg[0] == "compute") + sum(seg[2][1] for seg in f if seg[0] == "overlap")
        b.insert(0, ("compute", "recompute", again))
    return f, b, w


def dp_sync_time(m: ModelSpec, t: TrainingSpec, dense_params: float, expert_params: float) -> float:
    """ZeRO reduce-scatter of BF16 gradients and all-gather of BF16 parameters of one stage's weights:
    dense weights over all dp ranks, routed experts over their dp / ep replicas."""
    par, g = t.parallelism, groups(t.parallelism)
    dp_link, edp_link = group_link(t, "wdp"), group_link(t, "edp")
    dp = par.weight_data_parallel  # DP x CP hold the same dense weights
    return (reduce_scatter_time(2 * dense_params, dp, dp_link) + all_gather_time(2 * dense_params, dp, dp_link)
            + reduce_scatter_time(2 * expert_params, g["edp"].size, edp_link)
            + all_gather_time(2 * expert_params, g["edp"].size, edp_link))


def optimizer_time(t: TrainingSpec, dense_params: float, expert_params: float, memory_efficiency: float) -> float:
    """The optimizer step reads and writes OPTIMIZER_BYTES_PER_PARAM for each parameter of its ZeRO shard."""
    par = t.parallelism
    shard = (dense_params / par.weight_data_parallel + expert_params / par.expert_data_parallel) if par.zero_stage >= 1 \
        else dense_params + expert_params
    return OPTIMIZER_BYTES_PER_PARAM * shard / (t.cluster.gpu.hbm_bw_bytes_per_s.value * memory_efficiency)


def _stage_passes(m: ModelSpec, t: TrainingSpec, o: OpTimes, layers: range, last: bool) -> tuple[list, list, list]:
    F, B, W = [], [], []
    for i in layers:
        f, b, w = layer_segments(m, t, o, i)
        F, B, W = F + f, b + B, W + w  # backward runs the layers in reverse
    if last:
        F.append(("compute", "lm head", o.head_f))
        B.insert(0, ("compute", "lm head dX", o.head_f))
        W.append(("compute", "lm head dW", o.head_f))
        for _ in range(m.num_nextn_predict_layers):  # MTP module: a block like the last layer, and the head
            f, b, w = layer_segments(m, t, o, m.num_hidden_layers - 1)
            F, B, W = F + f + [("compute", "mtp head", o.head_f)], [("compute", "mtp head dX", o.head_f)] + b + B, \
                W + w + [("compute", "mtp head dW", o.head_f)]
    return F, B, W


def compute_seconds(m: ModelSpec, t: TrainingSpec, o: OpTimes) -> float:
    """Forward, backward and weight-gradient compute of one micro-batch through every layer, the head and
    the MTP module (the compute stream's work, without the collectives beside it)."""
    F, B, W = _stage_passes(m, t, o, range(m.num_hidden_layers), True)
    return sum(seg[2] if seg[0] == "compute" else seg[2][1] if seg[0] == "overlap" else 0.0 for seg in F + B + W)


def training_kernel_plan(m: ModelSpec, t: TrainingSpec, attention: bool) -> KernelPlan:
    """The database precisions of a training run's GEMMs: block-scaled FP8 (V3P §3.3: 1x128 activation
    tiles and 128x128 weight blocks, as DeepGEMM's fp8_block) under FP8 training, else BF16; attention,
    its projections included, in BF16 as the roofline path times it (V3P §3.3 keeps attention in BF16)."""
    dtype = "fp8_block" if t.precision == "fp8" and not attention else "bfloat16"
    return KernelPlan(gemm_dtype=dtype, moe_dtype=dtype, attn_dtype="bfloat16", kv_dtype="bfloat16",
                      bmm_dtype="bfloat16", ep=t.parallelism.ep, n_experts=m.n_routed_experts or 1)


def build_stage_costs(m: ModelSpec, t: TrainingSpec, gemm_timer: Timer, attn_timer: Timer,
                      a2a_efficiency: float = 1.0) -> list[StageCost]:
    """Each (virtual) pipeline stage's F, B and W pass costs, p2p, DP sync and optimizer times (pp x
    virtual_stages of them); communication that runs beside the other chunk's compute (DualPipe pairs) at
    `a2a_efficiency` of its standalone rate."""
    par, cl = t.parallelism, t.cluster
    o = op_times(m, t, gemm_timer, attn_timer)
    links = links_of(cl.gpu)
    act_bytes = t.micro_batch_seqs * t.seq_len / par.cp * m.hidden_size * 2
    out = []
    virtual = virtual_stage_layers(m.num_hidden_layers, par.pp, par.virtual_stages, par.layer_split)
    for g, layers in enumerate(virtual):  # chunk c of rank r is virtual stage c * pp + r
        last = g == len(virtual) - 1
        F, B, W = _stage_passes(m, t, o, layers, last)
        rank, nxt = g % par.pp, min(g + 1, len(virtual) - 1) % par.pp  # the next stage's rank: NVLink in a node
        link = links["nvlink"] if stage_node(par, cl, rank) == stage_node(par, cl, nxt) else links["nic"]
        p2p = p2p_time(act_bytes / par.tp, link) if par.pp > 1 else 0.0
        dense, experts = stage_params(m, t, layers, g == 0, last)
        optim = optimizer_time(t, dense, experts, gemm_timer.roofline.efficiency["gemm"].memory)
        out.append(StageCost(fold(F), fold(B), fold(W), p2p, dp_sync_time(m, t, dense, experts), optim, len(layers),
                             a2a_efficiency))
    return out
