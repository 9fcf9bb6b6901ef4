"""What one micro-batch costs on each pipeline stage: forward (F), input-gradient (B) and weight-gradient
(W) passes, each a sequence of compute and communication segments folded into one duration.

Per layer, forward: [TP all-gather] attention [TP reduce-scatter] [TP all-gather] then either the dense
FFN, or MoE: dispatch all-to-all (overlapped with the shared experts), routed experts, combine
all-to-all; [TP reduce-scatter]. Backward mirrors it. Operator times come from the Timer (measured
profile or roofline), collectives from comm.py over the link placement.py says the group uses.

Symmetry: all DP replicas, TP ranks and EP ranks of a stage do the same work (EP in lockstep, with the
busiest rank's load when `expert_load_skew` > 1), so one representative rank per stage is simulated.
"""

from __future__ import annotations

from dataclasses import dataclass

from costmodel.comm import (
    Link,
    all_gather_time,
    links_of,
    p2p_time,
    reduce_scatter_time,
    remote_ranks_per_token,
)
from costmodel.memory import stage_layers
from costmodel.opcounts import attention_flop_split
from costmodel.params import embedding_params, head_params, layer_params
from costmodel.placement import groups, stage_node
from costmodel.specs import ModelSpec, TrainingSpec
from costmodel.timing import Timer

# FP32 master + m + v read and written, BF16 weight written, BF16 gradient read (ZeRO paper's 16 B/param
# of state, touched once per step): 4+4+4 read, 4+4+4 write, 2 write, 2 read = 28 B.
OPTIMIZER_BYTES_PER_PARAM = 28


@dataclass(frozen=True)
class PassCost:
    total_s: float
    compute_s: float
    comm_s: float
    exposed_comm_s: float
    segments: tuple[tuple[str, str, float, float], ...]  # (stream, name, start offset, duration)

    def __add__(self, other: PassCost) -> PassCost:
        shifted = tuple((st, n, t + self.total_s, d) for st, n, t, d in other.segments)
        return PassCost(self.total_s + other.total_s, self.compute_s + other.compute_s, self.comm_s + other.comm_s,
                        self.exposed_comm_s + other.exposed_comm_s, self.segments + shifted)


def fold(segments: list[tuple]) -> PassCost:
    """Run segments back to back: ("compute", name, s), ("comm", name, s), or
    ("overlap", (comm name, s), (compute name, s)) where both streams run at once."""
    t = compute = comm = exposed = 0.0
    out = []
    for seg in segments:
        kind = seg[0]
        if kind == "compute" and seg[2] > 0:
            out.append(("compute", seg[1], t, seg[2]))
            t, compute = t + seg[2], compute + seg[2]
        elif kind == "comm" and seg[2] > 0:
            out.append(("comm", seg[1], t, seg[2]))
            t, comm, exposed = t + seg[2], comm + seg[2], exposed + seg[2]
        elif kind == "overlap":
            (cn, cd), (kn, kd) = seg[1], seg[2]
            if cd > 0:
                out.append(("comm", cn, t, cd))
            if kd > 0:
                out.append(("compute", kn, t, kd))
            t += max(cd, kd)
            comm, compute, exposed = comm + cd, compute + kd, exposed + max(0.0, cd - kd)
    return PassCost(t, compute, comm, exposed, tuple(out))


@dataclass(frozen=True)
class StageCost:
    F: PassCost
    B: PassCost
    W: PassCost
    p2p_s: float  # activation (or gradient) transfer to the neighbouring stage
    dp_sync_s: float  # ZeRO reduce-scatter of gradients + all-gather of parameters
    optimizer_s: float
    layers: int


def _split_link(bytes_: float, peers: int, in_node: int, links: dict[str, Link]) -> float:
    """All-to-all time when `in_node` of `peers` destinations are on NVLink and the rest on the NIC."""
    if peers <= 0 or bytes_ <= 0:
        return 0.0
    nv = bytes_ * in_node / peers
    nic = bytes_ - nv
    return max(nv / links["nvlink"].effective_bw, nic / links["nic"].effective_bw)


def build_stage_costs(m: ModelSpec, t: TrainingSpec, gemm_timer: Timer, attn_timer: Timer) -> list[StageCost]:
    par, cl = t.parallelism, t.cluster
    mbs = t.global_batch_seqs // (par.dp * par.micro_batches)
    tokens = mbs * t.seq_len
    h, tp, ep = m.hidden_size, par.tp, par.ep
    links = links_of(cl.gpu)
    g = groups(par)
    gpn = cl.gpus_per_node
    tp_link = links["nic"] if g["tp"].spans_nodes(gpn) else links["nvlink"]
    act_bytes = tokens * h * 2  # BF16 hidden states of the micro-batch

    def tp_collective() -> float:  # sequence parallelism: all-gather or reduce-scatter of the activations
        return reduce_scatter_time(act_bytes, tp, tp_link) if tp > 1 else 0.0

    # attention (same for every layer)
    if m.attention == "mla":
        attn_op = "mla"
        shape = {"hidden": h, "heads": m.num_attention_heads // tp, "q_lora": m.q_lora_rank or 0,
                 "kv_lora": m.kv_lora_rank, "nope": m.qk_nope_head_dim, "rope": m.qk_rope_head_dim,
                 "v": m.v_head_dim, "b": mbs, "q": t.seq_len, "ctx": t.seq_len, "mode": "naive"}
    else:
        attn_op = "attn"
        shape = {"hidden": h, "heads": m.num_attention_heads // tp, "kv_heads": max(1, m.kv_heads // tp),
                 "head_dim": m.attn_head_dim, "b": mbs, "q": t.seq_len, "ctx": t.seq_len}
    a_f = attn_timer.time(attn_op, shape, "fwd")
    a_bt = attn_timer.time(attn_op, shape, "fwd_bwd") - a_f
    proj, core = attention_flop_split(attn_op, shape)
    a_w = a_bt * proj / (2 * (proj + core))  # weight-gradient GEMMs: one proj-sized GEMM of the 2(proj+core)
    a_b = a_bt - a_w
    recompute_b = 0.0
    if par.recompute == "selective" and m.attention == "mla":  # re-run the up-projections (V3P §3.2.3)
        heads = m.num_attention_heads // tp
        if m.q_lora_rank:
            recompute_b += gemm_timer.time("gemm", {"m": tokens, "n": heads * m.qk_head_dim, "k": m.q_lora_rank})
        recompute_b += gemm_timer.time("gemm", {"m": tokens, "n": heads * (m.qk_nope_head_dim + m.v_head_dim),
                                                "k": m.kv_lora_rank})

    def ffn_pair(width: int, n_tokens: int) -> tuple[float, float]:
        shape = {"tokens": n_tokens, "hidden": h, "inter": width}
        f = gemm_timer.time("ffn", shape, "fwd")
        return f, (gemm_timer.time("ffn", shape, "fwd_bwd") - f) / 2

    # MoE pieces
    if m.ffn == "moe":
        load = t.expert_load_skew if t.capacity_factor is None else min(t.expert_load_skew, t.capacity_factor)
        moe_shape = {"tokens": max(1, round(tokens * load)), "hidden": h, "experts": m.n_routed_experts // ep,
                     "top_k": m.num_experts_per_tok, "inter": m.moe_intermediate_size, "shared_inter": 0}
        r_f = gemm_timer.time("moe", moe_shape, "fwd")
        r_half = (gemm_timer.time("moe", moe_shape, "fwd_bwd") - r_f) / 2
        s_f, s_half = ffn_pair(m.shared_ffn_width // tp, tokens) if m.shared_ffn_width else (0.0, 0.0)
        remote = remote_ranks_per_token(m, ep)
        in_node = g["ep"].peers_in_node(gpn)
        dispatch = _split_link(tokens * remote * load * h * t.dispatch_bits / 8, ep - 1, in_node, links)
        combine = _split_link(tokens * remote * load * h * 2, ep - 1, in_node, links)
    if m.ffn == "dense" or m.first_k_dense_replace or m.moe_layer_freq > 1:
        d_f, d_half = ffn_pair(m.intermediate_size // tp, tokens)

    def with_tp(name: str, compute_s: float) -> list:
        """A block's compute between its sequence-parallel all-gather and reduce-scatter."""
        c = tp_collective()
        if par.overlap_tp_comm:
            return [("overlap", ("tp all-gather + reduce-scatter", 2 * c), (name, compute_s))]
        return [("comm", "tp all-gather", c), ("compute", name, compute_s), ("comm", "tp reduce-scatter", c)]

    def layer_passes(i: int) -> tuple[list, list, list]:
        f = with_tp("attention", a_f)
        b = with_tp("attention dX", a_b + recompute_b)
        w = [("compute", "attention dW", a_w)]
        if m.is_moe_layer(i):
            hide = t.overlap_shared_experts
            f_moe = [("overlap", ("dispatch", dispatch), ("shared experts", s_f if hide else 0.0)),
                     ("compute", "shared experts", 0.0 if hide else s_f),
                     ("compute", "routed experts", r_f), ("comm", "combine", combine)]
            b_moe = [("overlap", ("combine grad", dispatch), ("shared experts dX", s_half if hide else 0.0)),
                     ("compute", "shared experts dX", 0.0 if hide else s_half),
                     ("compute", "routed experts dX", r_half), ("comm", "dispatch grad", combine)]
            tp_in, tp_out = ("comm", "tp all-gather", tp_collective()), ("comm", "tp reduce-scatter", tp_collective())
            f += [tp_in, *f_moe, tp_out]
            b = [tp_in, *b_moe, tp_out] + b
            w += [("compute", "experts dW", r_half + s_half)]
        else:
            f += with_tp("ffn", d_f)
            b = with_tp("ffn dX", d_half) + b
            w += [("compute", "ffn dW", d_half)]
        if par.recompute == "full":  # re-run the layer's forward compute before its backward
            b.insert(0, ("compute", "recompute", sum(seg[2] for seg in f if seg[0] == "compute")
                         + sum(seg[2][1] for seg in f if seg[0] == "overlap")))
        return f, b, w

    head_f = gemm_timer.time("gemm", {"m": tokens, "n": m.vocab_size // tp, "k": h})
    out = []
    stages = stage_layers(m.num_hidden_layers, par.pp)
    for s, layers in enumerate(stages):
        F, B, W = [], [], []
        for i in layers:
            f, b, w = layer_passes(i)
            F += f
            B = b + B  # backward runs the layers in reverse
            W += w
        if s == len(stages) - 1:
            F.append(("compute", "lm head", head_f))
            B.insert(0, ("compute", "lm head dX", head_f))
            W.append(("compute", "lm head dW", head_f))
        # pipeline neighbour: NVLink when the next stage shares the node
        nxt = min(s + 1, par.pp - 1)
        link = links["nvlink"] if stage_node(par, cl, s) == stage_node(par, cl, nxt) else links["nic"]
        p2p = p2p_time(act_bytes / tp, link) if par.pp > 1 else 0.0
        # data-parallel sync of this stage's weights (ZeRO >= 1: reduce-scatter grads, all-gather params)
        dense = sum(layer_params(m, i).dense for i in layers) / tp
        experts = sum(layer_params(m, i).routed_experts for i in layers) / ep
        if s == 0:
            dense += embedding_params(m) / tp
        if s == len(stages) - 1:
            dense += head_params(m) / tp
        dp_link = links["nic"] if g["dp"].spans_nodes(gpn) else links["nvlink"]
        edp_link = links["nic"] if g["edp"].spans_nodes(gpn) else links["nvlink"]
        sync = (reduce_scatter_time(2 * dense, par.dp, dp_link) + all_gather_time(2 * dense, par.dp, dp_link)
                + reduce_scatter_time(2 * experts, g["edp"].size, edp_link)
                + all_gather_time(2 * experts, g["edp"].size, edp_link))
        shard = dense / (par.dp if par.zero_stage >= 1 else 1) + experts / (g["edp"].size if par.zero_stage >= 1 else 1)
        optim = OPTIMIZER_BYTES_PER_PARAM * shard / (cl.gpu.hbm_bw_bytes_per_s.value
                                                     * gemm_timer.roofline.efficiency["gemm"].memory)
        out.append(StageCost(fold(F), fold(B), fold(W), p2p, sync, optim, len(layers)))
    return out
