"""Time of one serving iteration of an instance: chunked prefill tokens plus one decode token for each
running request, through every layer. Prefill attention is projection-bound, so it runs at the weights'
precision (FP8 when they are); decode attention is cache-bound and runs in BF16 (FMLA). Attention data parallelism splits the requests across `dp` ranks
(each holds its own requests' KV cache); TP splits heads; EP spreads the routed experts. All ranks are
symmetric, so one rank's time is the instance's. Memoised on a coarse grid: the simulator's hot path
is a dictionary lookup.
"""

from __future__ import annotations

import heapq
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from costmodel.counts.comm import all_reduce_time, links_of, spanning_all_reduce_time
from costmodel.counts.deepep import (
    COMM_SM_FRACTION,
    DEEPEP_SMS,
    FP8_BYTES_PER_ELEMENT,
    LL_HEADER_BYTES,
    low_latency_fixed_s,
    low_latency_time,
    normal_dispatch_combine_s,
)
from costmodel.counts.eplb import placement
from costmodel.counts.kernels import KernelPlan
from costmodel.counts.kvcache import kv_bytes_per_element
from costmodel.counts.opcounts import attention_shape
from costmodel.counts.routing import (
    Fanout,
    assignment_bucket,
    busiest_rank_factor,
    contiguous_slots,
    selection_shares,
    token_fanout,
)
from costmodel.inputs import kernel_db
from costmodel.inputs.specs import InferenceSpec, ModelSpec, stored_bits
from costmodel.timing.kernel_timer import COVERAGE_FAMILIES, ROOFLINE, KernelTimer
from costmodel.timing.operators import Device, MeasuredBackend, Timer

CTX_BUCKET = 32  # mean decode context is rounded to this many tokens for the memo
FEW_CONTEXTS = 16  # decode_times walks this many or fewer contexts in a loop (numpy's unique costs more)


def expert_slots(m: ModelSpec, inf: InferenceSpec) -> tuple[tuple[int, ...], ...]:
    """Which experts each EP rank holds: contiguous without redundant experts, else EPLB's placement."""
    ep, gpn = inf.parallelism.ep, min(inf.cluster.gpus_per_node, inf.parallelism.ep)
    if not inf.redundant_experts:
        return contiguous_slots(m.n_routed_experts, ep)
    return placement(selection_shares(m, inf.routing), inf.redundant_experts, ep, inf.eplb, m.n_group, gpn)


def cached(memo: dict, key: tuple, compute: Callable[[], float]) -> float:
    """memo[key], computed once: the step model's terms are pure functions of small integer keys."""
    t = memo.get(key)
    if t is None:
        t = memo[key] = compute()
    return t


@dataclass(frozen=True)
class MoELayer:
    """One MoE layer of an instance: its routing, placement and links, timed per attention rank."""

    m: ModelSpec
    inf: InferenceSpec
    timer: Timer  # the routed experts' (their own precision under moe_weight_bits) and DeepEP's
    shared_timer: Timer  # the shared experts', at the weights' precision
    shares: tuple[float, ...]  # (E,) each expert's share of the selections
    slots: tuple[tuple[int, ...], ...]  # slots[rank]: the experts (and replicas) an EP rank holds
    fan: Fanout
    links: dict
    ll_fixed_s: float
    # comm_s by (tokens_rank, decode_only) and compute_s by (tokens_rank, busiest rank's tokens,
    # decode_only): iterations repeat few token counts (a fifth of the paper scenario's are new), and
    # building the timers' shape keys is the layer's dearest Python
    _comm_memo: dict = field(default_factory=dict, compare=False, repr=False)
    _compute_memo: dict = field(default_factory=dict, compare=False, repr=False)

    @classmethod
    def of(cls, m: ModelSpec, inf: InferenceSpec, timer: Timer, shared_timer: Timer | None = None) -> MoELayer:
        links, slots = links_of(inf.cluster.gpu), expert_slots(m, inf)
        return cls(m, inf, timer, shared_timer or timer, selection_shares(m, inf.routing), slots,
                   token_fanout(m, inf.routing, slots, inf.cluster.gpus_per_node), links,
                   low_latency_fixed_s(links["nvlink"], links["nic"]))

    def busiest_tokens(self, group_tokens: float) -> int:
        """Tokens (k selections each) at the busiest EP rank when `group_tokens` enter the EP group."""
        par, k = self.inf.parallelism, self.m.num_experts_per_tok
        assignments = group_tokens * k
        factor = busiest_rank_factor(self.shares, self.slots, assignment_bucket(assignments), self.inf.routing.seed)
        return max(1, round(assignments / par.ep * factor / k))

    def compute_s(self, tokens_rank: int, group_tokens: float, decode_only: bool = False) -> float:
        """Routed experts at the busiest EP rank (of `group_tokens` entering the EP group), and the shared
        experts on the attention rank's own `tokens_rank`. Under EP the experts take their tokens from
        DeepEP's kernels (`a2a`: which ones, so a kernel profile can time the expert kernels they feed)."""
        busiest = self.busiest_tokens(group_tokens)
        return cached(self._compute_memo, (tokens_rank, busiest, decode_only),
                      lambda: self._compute_s(tokens_rank, busiest, decode_only))

    def _compute_s(self, tokens_rank: int, busiest: int, decode_only: bool) -> float:
        m, tp = self.m, self.inf.parallelism.tp
        a2a = {"a2a": self.kernels(decode_only)} if self.all_to_all else {}
        routed = self.timer.time("moe", {"tokens": busiest, "hidden": m.hidden_size,
                                         "experts": len(self.slots[0]), "top_k": m.num_experts_per_tok,
                                         "inter": m.moe_intermediate_size, "shared_inter": 0,
                                         **self.expert_tp_key(), **self.total_experts_key(), **a2a}, "fwd")
        width = m.shared_ffn_width // tp
        shared = self.shared_timer.time("ffn", {"tokens": tokens_rank, "hidden": m.hidden_size, "inter": width}) if width else 0.0
        return routed + shared

    def expert_tp_key(self) -> dict:
        """Expert tensor parallelism: each GPU holds 1/etp of every local expert's width."""
        etp = self.inf.parallelism.etp
        return {"tp": etp} if etp > 1 else {}

    @property
    def all_to_all(self) -> bool:
        """Whether tokens cross between EP ranks. With the expert group inside the attention TP group
        (ep x etp divides tp) every rank already holds the group's tokens after attention's all-reduce:
        each computes its own experts' share (or its slice of every expert's width, under expert TP) and the
        layer's TP all-reduce sums the partial outputs, so no dispatch or combine runs (SGLang's, vLLM's
        and TensorRT-LLM's TP and EP MoE without DeepEP under TP attention)."""
        par = self.inf.parallelism
        return par.ep > 1 and par.tp % par.expert_group != 0

    def kernels(self, decode_only: bool) -> str:
        """DeepEP's kernels an iteration uses: low-latency for decode-only ones where chosen, else normal."""
        return "low_latency" if decode_only and self.inf.all_to_all == "low_latency" else "normal"

    def total_experts_key(self) -> dict:
        """The model's routed experts, where a rank holds only some (sets how many of its own are hit)."""
        n = sum(len(s) for s in self.slots)
        return {} if n == len(self.slots[0]) else {"total_experts": n}

    def comm_s(self, tokens_rank: int, decode_only: bool) -> float:
        """Dispatch (FP8 with FP8 weights, else BF16) and BF16 combine of one GPU's tokens: DeepEP's
        measured kernels where the timer's profile has them, else the link model (deepep.py)."""
        return cached(self._comm_memo, (tokens_rank, decode_only), lambda: self._comm_s(tokens_rank, decode_only))

    def _comm_s(self, tokens_rank: int, decode_only: bool) -> float:
        par, h = self.inf.parallelism, self.m.hidden_size
        if not self.all_to_all:
            return 0.0
        tokens, gpn = tokens_rank / par.tp, min(self.inf.cluster.gpus_per_node, par.ep)
        fp8 = self.inf.weight_bits <= 8
        nv, nic = self.links["nvlink"], self.links["nic"]
        low_latency = self.kernels(decode_only) == "low_latency"
        if low_latency:
            k = self.m.num_experts_per_tok
            dispatch = h * FP8_BYTES_PER_ELEMENT + LL_HEADER_BYTES if fp8 else 2 * h
            model = [low_latency_time(tokens, k, b, par.ep, gpn, nv, nic, self.ll_fixed_s) for b in (dispatch, 2 * h)]
        else:
            model = normal_dispatch_combine_s(tokens, h, FP8_BYTES_PER_ELEMENT if fp8 else 2, self.fan, gpn, self.links)
        op, shape = self.deepep_kernel(tokens, low_latency)
        return sum(self.timer.collective(op, {**shape, "phase": phase}, s, self.deepep_measurable(gpn))
                   for phase, s in zip(("dispatch", "combine"), model, strict=True))

    def deepep_measurable(self, gpus_in_node: int) -> bool:
        """Whether the database's DeepEP rows describe this group: they were measured on its nodes of
        `num_gpus_per_node` (AICSYS: an HGX node's 8, a GB200/GB300 tray's 4), so an EP group wider than
        that inside one NVLink domain (EP48 in an NVL72 rack) takes the link model."""
        db = self.inf.cluster.gpu.kernel_database
        return db is None or gpus_in_node <= kernel_db.node_gpus(db.gpu)

    def deepep_kernel(self, tokens: float, low_latency: bool) -> tuple[str, dict]:
        """The DeepEP kernel (counts/kernels.py) that moves `tokens` per rank over this EP group."""
        m, par = self.m, self.inf.parallelism
        nodes = -(-par.ep // self.inf.cluster.gpus_per_node)
        shape = {"tokens": max(1, round(tokens)), "hidden": m.hidden_size, "top_k": m.num_experts_per_tok,
                 "experts": m.n_routed_experts, "nodes": nodes, "dtype": "deepep"}
        return ("deepep_ll", shape) if low_latency else ("deepep_normal", {**shape, "sms": DEEPEP_SMS})

    def sm_slowdown(self, decode_only: bool) -> float:
        """Compute runs on the SMs the normal kernels leave free while they overlap it."""
        low_latency = decode_only and self.inf.all_to_all == "low_latency"
        return 1.0 if low_latency or not self.all_to_all else 1 / (1 - COMM_SM_FRACTION)


class StepModel:
    def __init__(self, m: ModelSpec, inf: InferenceSpec, gemm_timer: Timer, attn_timer: Timer, *,
                 kv_bytes: float | None = None, expert_timer: Timer | None = None):
        self.m, self.inf, self.timer, self.attn_timer = m, inf, gemm_timer, attn_timer
        self.kv_bytes = kv_bytes  # bytes per cached element when they differ from the compute dtype
        self.par = inf.parallelism
        self.links = links_of(inf.cluster.gpu)
        # the routed experts at their own precision where it differs (moe_weight_bits), on the roofline path
        self.moe = MoELayer.of(m, inf, expert_timer or gemm_timer, gemm_timer) if m.ffn == "moe" else None
        self.decode_q = 1 + (inf.mtp.tokens if inf.mtp else 0)  # tokens each decode verifies (MTP drafts + 1)
        self.n_moe = m.n_moe_layers
        self.n_dense = m.num_hidden_layers - self.n_moe
        self._memo: dict[tuple, float] = {}  # (prefill tokens per rank, decode batch, ctx bucket) -> s
        self._prefill_memo: dict[tuple[int, int], float] = {}  # (chunk tokens, ctx buckets) -> s per layer
        self._parts: dict[tuple, float] = {}  # _compute's terms by what each depends on (_part)

    def _attn_shape(self, b: int, q: int, ctx: int, mode: str) -> tuple[str, dict]:
        """Decode uses MLA's absorbed path, prefill the naive one (vLLM's split)."""
        return attention_shape(self.m, self.par.tp, b, q, ctx, mode, self.kv_bytes)

    def time(self, chunks: list[tuple[int, int]], decode_batch: int, decode_ctx_sum: int) -> float:
        """Seconds for one iteration: prefill `chunks` of (tokens, context at the chunk's end) and one
        decode step for each of `decode_batch` requests holding `decode_ctx_sum` cached tokens. A
        request's chunk runs on the attention-DP rank that holds it: the busiest rank sets the pace."""
        mean_ctx = decode_ctx_sum / decode_batch if decode_batch else 0
        mine = busiest_rank_chunks(chunks, self.par.dp)
        key = (sum(t for t, _ in mine), sum(t for t, _ in chunks), decode_batch, round(mean_ctx / CTX_BUCKET))
        t = self._memo.get(key)
        if t is None:
            t = self._compute(key[0], key[1], decode_batch, max(1, key[3] * CTX_BUCKET))
            self._memo[key] = t
        if mine:  # prefill attention (with its projections) per chunk, as engines run it
            t += sum(self._prefill_attention(tok, -(-c // CTX_BUCKET)) for tok, c in mine) * self.m.num_hidden_layers
        return t

    def decode_times(self, decode_batch: int, ctx_sums: np.ndarray) -> np.ndarray:
        """time([], decode_batch, c) for each c of `ctx_sums` (decode-only iterations), bit for bit: the
        contexts share few memo buckets, so each bucket is timed once, by the same call (a few contexts
        walk their buckets in order: their own loop is cheaper than numpy's)."""
        if len(ctx_sums) <= FEW_CONTEXTS:
            out, last = [], None
            for c in ctx_sums.tolist():
                bucket = round(c / decode_batch / CTX_BUCKET)  # time()'s own key
                if bucket != last:
                    t, last = self.time([], decode_batch, c), bucket
                out.append(t)
            return np.array(out)
        buckets = np.rint(ctx_sums / decode_batch / CTX_BUCKET)  # round-half-even, as time()'s round()
        values, first, index = np.unique(buckets, return_index=True, return_inverse=True)
        per_bucket = np.array([self.time([], decode_batch, int(ctx_sums[i])) for i in first])
        return per_bucket[index.reshape(-1)]

    def _prefill_attention(self, tokens: int, ctx_buckets: int) -> float:
        """One layer's attention for a chunk of `tokens` ending at ctx_buckets * CTX_BUCKET (memoised)."""
        return cached(self._prefill_memo, (tokens, ctx_buckets), lambda: self.timer.time(
            *self._attn_shape(1, tokens, ctx_buckets * CTX_BUCKET, "naive"), "fwd"))

    def group_tokens(self, tokens: float) -> float:
        """Of `tokens` over all attention ranks, those entering one expert group (ep x etp of the tp x dp
        GPUs)."""
        par = self.par
        return tokens * par.expert_group / (par.tp * par.dp)

    def _compute(self, p_tokens: int, p_total: int, d_batch: int, d_ctx: int) -> float:
        """Everything but the prefill attention, for the busiest attention rank (p_tokens prefill tokens
        of the iteration's p_total)."""
        m, par, timer, part = self.m, self.par, self.timer, self._part
        b_rank = -(-d_batch // par.dp)  # requests spread evenly over the attention-DP ranks
        attn = part(("attn", b_rank, d_ctx), lambda: self.attn_timer.time(
            *self._attn_shape(b_rank, self.decode_q, d_ctx, "absorbed"), "fwd")) if b_rank else 0.0
        tokens_rank = b_rank * self.decode_q + p_tokens  # the busiest rank
        h = m.hidden_size
        tp_ar = part(("tp_ar", tokens_rank), lambda: self.layer_all_reduces_s(tokens_rank))
        dense_ffn = part(("ffn", tokens_rank), lambda: timer.time(
            "ffn", {"tokens": tokens_rank, "hidden": h, "inter": (m.intermediate_size or 0) // par.tp},
            "fwd")) if self.n_dense else 0.0
        rows = max(1, b_rank * self.decode_q + (1 if p_tokens else 0))
        head = part(("head", rows), lambda: timer.time("gemm", {"m": rows, "n": m.vocab_size // par.tp, "k": h}))
        group = self.group_tokens(p_total + d_batch * self.decode_q)
        moe_layer = self._moe_layer(attn + tp_ar, tokens_rank, group, p_total == 0) if self.n_moe else 0.0
        drafts = self.decode_q - 1  # MTP: each draft is one sequential pass of the MTP module (V3P §2.2)
        mtp = drafts * self._mtp_module_s(b_rank, d_batch, d_ctx) if drafts and b_rank else 0.0
        return self.n_dense * (attn + dense_ffn + tp_ar) + self.n_moe * moe_layer + head + mtp

    def _part(self, key: tuple, compute: Callable[[], float]) -> float:
        """A term of _compute by the few numbers it depends on: the iteration's own memo key (prefill and
        decode together) is mostly new in a mixed run, while each term's repeats."""
        return cached(self._parts, key, compute)

    def tp_all_reduce_s(self, tokens: int) -> float:
        """One all-reduce of `tokens` BF16 hidden states over the TP group: measured, or the link model, over
        NVLink, or, when the group spans NVLink domains (no table measures that), NCCL's own latency and
        then whole nodes' NVLink and NICs (spanning_all_reduce_time). That latency is NCCL's smallest, its
        LL protocol's: a floor for a prefill's MB-sized all-reduces, where NCCL runs protocols of longer
        latency (TP16 over 2 nodes: 48.5 us LL128, 92.4 us Simple)."""
        h, tp, gpn = self.m.hidden_size, self.par.tp, self.inf.cluster.gpus_per_node
        nbytes = tokens * h * 2
        modelled = spanning_all_reduce_time(nbytes, tp, self.links, gpn) if tp > gpn else \
            all_reduce_time(nbytes, tp, self.links["nvlink"])
        return self.timer.collective("all_reduce", {"elements": tokens * h, "gpus": tp, "dtype": "bfloat16"},
                                     modelled)

    def layer_all_reduces_s(self, tokens: int) -> float:
        """A layer's two TP all-reduces of `tokens` hidden states (after attention, after the FFN); none
        without TP. The main model's layers and the MTP module's pay the same."""
        return 2 * self.tp_all_reduce_s(tokens) if self.par.tp > 1 else 0.0

    def _mtp_module_s(self, b_rank: int, d_batch: int, d_ctx: int) -> float:
        """One MTP module pass for b_rank requests: one MoE layer (or dense FFN layer), with the TP group's
        two all-reduces as in the main model's layers, and the shared head."""
        m, par = self.m, self.par
        attn = self.attn_timer.time(*self._attn_shape(b_rank, 1, d_ctx, "absorbed"), "fwd")
        attn += self.layer_all_reduces_s(b_rank)
        head = self.timer.time("gemm", {"m": b_rank, "n": m.vocab_size // par.tp, "k": m.hidden_size})
        if self.moe is None:
            ffn = self.timer.time("ffn", {"tokens": b_rank, "hidden": m.hidden_size,
                                          "inter": (m.intermediate_size or 0) // par.tp})
            return attn + ffn + head
        return self._moe_layer(attn, b_rank, self.group_tokens(d_batch), decode_only=True) + head

    def _moe_layer(self, attn_s: float, tokens_rank: int, group_tokens: float, decode_only: bool) -> float:
        """One MoE layer: attention, experts and the all-to-all back to back, or with two-batch overlap
        (two micro-batches; OII day 6) the all-to-all of one hidden under the other's compute, which
        then runs on the SMs the communication leaves."""
        moe = self.moe
        if not self.inf.two_batch_overlap:
            return attn_s + moe.compute_s(tokens_rank, group_tokens, decode_only) + moe.comm_s(tokens_rank, decode_only)
        half = max(1, -(-tokens_rank // 2))  # each micro-batch reads the expert weights and calls the kernels
        compute = attn_s + 2 * moe.compute_s(half, group_tokens / 2, decode_only)
        return max(compute * moe.sm_slowdown(decode_only), 2 * moe.comm_s(half, decode_only))


def decode_breakdown(sm: StepModel, d_batch: int, ctx: int) -> dict:
    """One decode iteration of `d_batch` requests at context `ctx`, per MoE layer and in total, and the
    busiest EP rank's load over the mean with and without the variant's expert placement."""
    m, par = sm.m, sm.par
    b_rank = max(1, -(-d_batch // par.dp))
    attn = sm.attn_timer.time(*sm._attn_shape(b_rank, sm.decode_q, ctx, "absorbed"), "fwd")
    out = {"requests": d_batch, "context_tokens": ctx, "attention_s": attn, "iteration_s": sm.time([], d_batch, d_batch * ctx)}
    if sm.moe is None:
        return out
    own, group = b_rank * sm.decode_q, sm.group_tokens(d_batch * sm.decode_q)
    assignments = assignment_bucket(group * m.num_experts_per_tok)
    even = m.n_routed_experts % par.ep == 0  # otherwise there is no layout without replicas to compare with
    return out | {"moe_compute_s": sm.moe.compute_s(own, group, decode_only=True), "all_to_all_s": sm.moe.comm_s(own, decode_only=True),
                  "moe_layer_s": sm._moe_layer(attn, own, group, decode_only=True),
                  "two_batch_overlap": sm.inf.two_batch_overlap, "all_to_all_kernels": sm.inf.all_to_all,
                  "busiest_rank_load_no_replication": busiest_rank_factor(
                      sm.moe.shares, contiguous_slots(m.n_routed_experts, par.ep), assignments) if even else None,
                  "busiest_rank_load_placed": busiest_rank_factor(sm.moe.shares, sm.moe.slots, assignments)}


def busiest_rank_chunks(chunks: list[tuple[int, int]], ranks: int) -> list[tuple[int, int]]:
    """The chunks of the attention rank with the most prefill tokens when each chunk goes to the least
    loaded rank, largest first (each request lives on one rank)."""
    if len(chunks) <= 1 or ranks <= 1:
        return list(chunks)
    if len(chunks) <= ranks:
        return [max(chunks)]
    heap = [(0, r, []) for r in range(ranks)]
    for chunk in sorted(chunks, reverse=True):
        load, r, mine = heapq.heappop(heap)
        heapq.heappush(heap, (load + chunk[0], r, mine + [chunk]))
    return max(heap)[2]


def step_model_for(m: ModelSpec, inf: InferenceSpec, scale: dict[str, float] | None = None,
                   measured: MeasuredBackend | None = None, only: str | None = None) -> StepModel:
    """Iteration times of an instance. Without `measured`, from the GPU file's sourced efficiencies: GEMMs
    at the weights' precision (FP8 when weight_bits <= 8 and the GPU has it), decode attention in BF16
    (FMLA). With a kernel profile's `measured` backend, each layer is the sum of its kernels, measured
    where the profile covers them (kernel_timer.py; `only`: one family's share, for timing_coverage).
    `scale`: one drawn timing error per operator, for uncertainty bands."""
    stack = inf.stack_efficiency.value if inf.stack_efficiency else 1.0
    gpu = inf.cluster.gpu
    precision = weight_precision(inf.weight_bits)
    if measured is not None:
        devices = {p: Device.from_gpu(gpu, p, stack) for p in ("bf16", "fp8", "fp4")}
        timer = KernelTimer(devices, measured, kernel_plan(m, inf), scale, only)
        return StepModel(m, inf, timer, timer, kv_bytes=kv_bytes_per_element(m, inf.kv_bits))
    experts = weight_precision(inf.expert_bits)
    expert_timer = Timer(Device.from_gpu(gpu, experts, stack, stored_bytes(inf.expert_bits)),
                         scale=scale) if inf.expert_bits != inf.weight_bits else None
    attention = "fp8" if inf.attention_bits == 8 else "bf16"
    return StepModel(m, inf, Timer(Device.from_gpu(gpu, precision, stack, stored_bytes(inf.weight_bits)), scale=scale),
                     Timer(Device.from_gpu(gpu, attention, stack), scale=scale), kv_bytes=kv_bytes_per_element(m, inf.kv_bits),
                     expert_timer=expert_timer)


def stored_bytes(weight_bits: int) -> float | None:
    """Bytes a weight moves when it is 8-bit or narrower (NVFP4's 4.5 bits whatever the math), else None:
    the math's own width (BF16)."""
    return stored_bits(weight_bits) / 8 if weight_bits <= 8 else None


def weight_precision(weight_bits: int) -> str:
    """The GEMMs' precision for weights of `weight_bits`: NVFP4 at 4 or fewer, FP8 at 8 or fewer, else BF16
    (Device.from_gpu falls back where the GPU lacks the tensor cores)."""
    return "fp4" if weight_bits <= 4 else "fp8" if weight_bits <= 8 else "bf16"


def db_dtype(precision: str, fp8_scaling: str) -> str:
    """The kernel database's name of a GEMM precision (fp8: by its scaling, per block or per tensor)."""
    if precision == "fp8":
        return {"block": "fp8_block", "tensor": "fp8"}[fp8_scaling]
    return {"fp4": "nvfp4", "bf16": "bfloat16"}[precision]


def kernel_plan(m: ModelSpec, inf: InferenceSpec) -> KernelPlan:
    """The database precisions an engine runs this instance's kernels at: NVFP4 GEMMs and experts for
    4-bit weights, FP8 for 8-bit ones (block-scaled, DeepGEMM's (DGEMM), or per-tensor, as the instance
    says), else BF16; the KV cache in FP8 at 8 bits or fewer; MLA's core and its absorbed matmuls in BF16,
    or in FP8 at attention_bits 8 (the database measures the matmuls so; the core's FP8 takes the roofline)."""
    precision = weight_precision(inf.weight_bits)
    par = inf.parallelism
    gemm = db_dtype(precision, inf.fp8_gemm_scaling)
    moe = db_dtype(weight_precision(inf.expert_bits), inf.fp8_moe_scaling)
    attention = "fp8" if inf.attention_bits == 8 else "bfloat16"
    return KernelPlan(gemm_dtype=gemm, moe_dtype=moe,
                      attn_dtype=attention, kv_dtype="fp8" if inf.kv_bits <= 8 else "bfloat16", bmm_dtype=attention,
                      ep=par.ep, n_experts=m.n_routed_experts or 1)


def timing_coverage(m: ModelSpec, inf: InferenceSpec, measured: MeasuredBackend, decode_batch: int, ctx: int,
                    chunk_tokens: int) -> dict:
    """Which share of two iterations' time came from measurements, per kernel family: a decode iteration
    of `decode_batch` requests at context `ctx`, and a prefill iteration of one `chunk_tokens` chunk.
    Each family's share is the iteration with only that family's measured seconds counted, over the sum
    of all families' (roofline: every second no measurement covered, collectives' link model included;
    under two-batch overlap the hidden all-to-all is apportioned like the rest)."""
    iterations = {"decode": ([], decode_batch, decode_batch * ctx), "prefill": ([(chunk_tokens, chunk_tokens)], 0, 0)}
    whole = step_model_for(m, inf, measured=measured)
    family = {fam: step_model_for(m, inf, measured=measured, only=fam) for fam in COVERAGE_FAMILIES}
    out = {}
    for name, args in iterations.items():
        seconds = {fam: sm.time(*args) for fam, sm in family.items()}
        total = sum(seconds.values())
        shares = {fam: s / total for fam, s in seconds.items() if s > 0} if total else {}
        out[name] = {"measured_share": 1 - shares.get(ROOFLINE, 0.0), "per_family": shares,
                     "iteration_s": whole.time(*args)}
    return out | {"decode_batch": decode_batch, "context_tokens": ctx, "prefill_chunk_tokens": chunk_tokens}
