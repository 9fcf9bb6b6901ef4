"""Per-GPU memory of a training layout and of a serving instance.

Training accounting follows the ZeRO paper (Rajbhandari et al. 2020, §3.1): mixed precision keeps
2 B of BF16 weights and 2 B of BF16 gradients per parameter, plus K = 12 B of optimizer state (FP32
master weights, Adam m and v). ZeRO-1 shards the optimizer state over the data-parallel group, ZeRO-2 also
the gradients, ZeRO-3 also the weights. Non-expert weights are replicated over all `dp` ranks; routed
experts over `dp / ep` ranks (EP is carved out of DP), so their ZeRO groups differ.

Activations are the tensors saved for backward, in BF16, with FlashAttention (no s² score matrix) and
sequence parallelism under TP (everything divides by tp). Recompute levels:
  none      — save everything listed in `activation_elements_per_token`;
  selective — recompute RMSNorm outputs, MLA up-projections and the SwiGLU product, as DeepSeek-V3 does
              (V3P §3.2.3 "Recomputation of RMSNorm and MLA Up-Projection");
  full      — save only each layer's input, and re-materialise one layer at a time in backward.
"""

from __future__ import annotations

import itertools
from dataclasses import asdict, dataclass, replace

from costmodel.counts.kvcache import kv_bytes_per_token
from costmodel.counts.params import all_layer_params, embedding_params, head_params, layer_params, mtp_params
from costmodel.counts.schedules import in_flight, interleaved_warmup
from costmodel.inputs.specs import MIB, InferenceSpec, ModelSpec, TrainingSpec, sglang_large_gpu, stored_bits

BYTES_ACT = 2  # BF16 logits (per-parameter and cached-activation bytes: TrainingSpec.memory)


def stage_layers(num_layers: int, pp: int) -> list[range]:
    """Consecutive layers per pipeline stage; when pp does not divide, the first stages take one more."""
    base, extra = divmod(num_layers, pp)
    out, start = [], 0
    for s in range(pp):
        n = base + (s < extra)
        out.append(range(start, start + n))
        start += n
    return out


def virtual_stage_layers(num_layers: int, pp: int, chunks: int, split: list[int] | None = None) -> list[range]:
    """Consecutive layers per virtual stage (pp x chunks of them; chunk c of rank r is virtual stage
    c * pp + r): `split`'s counts where the scenario gives them (feasibility.py checks they add up), else
    as stage_layers splits them."""
    if split is None:
        return stage_layers(num_layers, pp * chunks)
    return [range(end - n, end) for n, end in zip(split, itertools.accumulate(split), strict=True)]


def rank_layers(num_layers: int, pp: int, chunks: int, rank: int, split: list[int] | None = None) -> list[int]:
    """The layers pipeline rank `rank` holds: its model chunks' (one range without interleaving)."""
    virtual = virtual_stage_layers(num_layers, pp, chunks, split)
    return [i for g in range(rank, pp * chunks, pp) for i in virtual[g]]


def activation_elements_per_token(m: ModelSpec, layer: int, recompute: str) -> float:
    """BF16 elements saved for backward per token in one layer (see module docstring)."""
    h, nh = m.hidden_size, m.num_attention_heads
    if recompute == "full":
        return h
    keep_norm_out = recompute == "none"
    # attention block
    attn = h + (h if keep_norm_out else 0)
    if m.attention == "mla":
        q_lat = m.q_lora_rank or 0
        attn += q_lat + m.kv_lora_rank + m.qk_rope_head_dim  # latents (recompute needs them)
        if keep_norm_out:
            attn += q_lat + m.kv_lora_rank  # normed latents
        if recompute == "none":
            attn += nh * m.qk_head_dim * 2 + nh * m.v_head_dim  # q, k, v after up-projection
        attn += nh * m.v_head_dim + 2 * nh  # attention output (o_proj input) and FP32 log-sum-exp
    else:
        hd, nkv = m.attn_head_dim, m.kv_heads
        attn += nh * hd + 2 * nkv * hd + nh * hd + 2 * nh  # q, k, v, output, LSE
    # FFN block: norm input, norm output; SwiGLU keeps gate and up outputs (+ product when not recomputed)
    ffn = h + (h if keep_norm_out else 0)
    per_width = 3 if recompute == "none" else 2
    if m.is_moe_layer(layer):
        k = m.num_experts_per_tok
        ffn += 2 * m.n_routed_experts  # router probabilities, FP32
        ffn += k * (h + per_width * m.moe_intermediate_size + h)  # dispatched input, expert internals, output
        ffn += per_width * m.shared_ffn_width
    else:
        ffn += per_width * m.intermediate_size
    return attn + ffn


def in_flight_microbatches(schedule: str, pp: int, micro_batches: int, chunks: int = 1, overlap: bool = False) -> float:
    """Micro-batches whose activations stage 0 holds at its peak, in units of the whole stage's layers.
    Interleaved (chunks > 1): its warm-up forwards plus the one before the first backward, each of one
    chunk (MCORE), = pp (1 + (pp - 1) / (pp chunks)) when m > pp (SAR §4.2.3's factor over 1F1B); combined
    1F1B (`overlap`) holds one chunk more."""
    if schedule == "gpipe":
        return micro_batches
    if schedule == "dualpipe":
        return min(pp + 1, micro_batches)  # V3P Table 2: PP + 1
    if chunks > 1 or overlap:
        warm = interleaved_warmup(0, pp, micro_batches, chunks, overlap)
        return min(warm + 1, micro_batches * chunks) / chunks
    return min(in_flight(0, pp), micro_batches)  # 1F1B and zero-bubble (ZB-H1 keeps 1F1B's memory)


@dataclass(frozen=True)
class TrainingMemory:
    weights_bytes: float
    grads_bytes: float
    optimizer_bytes: float
    activations_bytes: float
    total_bytes: float
    capacity_bytes: float
    fits: bool
    stage: int  # the pipeline stage that needs the most
    per_stage_bytes: tuple[float, ...] = ()  # every stage's total, first to last

    def as_dict(self) -> dict:
        return asdict(self)


def stage_params(m: ModelSpec, t: TrainingSpec, layers, first: bool, last: bool) -> tuple[float, float]:
    """(dense, routed-expert) parameters one rank of a (virtual) stage holds: its layers split by TP and EP,
    the embedding on the first stage, the head and the MTP modules that share it on the last (V3P §2.2)."""
    par = t.parallelism
    dense = sum(layer_params(m, i).dense for i in layers) / par.tp
    experts = sum(layer_params(m, i).routed_experts for i in layers) / (par.ep * par.etp)  # each expert's width over etp
    dense += embedding_params(m) / par.tp if first else 0
    if last:
        dense += (head_params(m) + mtp_params(m).dense) / par.tp
        experts += mtp_params(m).routed_experts / (par.ep * par.etp)
    return dense, experts


def training_memory(m: ModelSpec, t: TrainingSpec) -> TrainingMemory:
    """Peak memory per GPU over pipeline stages (the heaviest stage decides whether the layout fits)."""
    par = t.parallelism
    # a context-parallel rank holds 1/cp of each sequence's tokens and their activations
    tokens_per_mb = t.seq_len * t.global_batch_seqs / (par.dp * par.micro_batches * par.cp)
    in_flight = in_flight_microbatches(par.schedule, par.pp, par.micro_batches, par.virtual_stages,
                                       par.overlap_moe_a2a)
    copies = 2 if par.schedule == "dualpipe" else 1  # DualPipe keeps two parameter copies (V3P Table 2)
    dense_dp, expert_dp = par.weight_data_parallel, par.expert_data_parallel
    stages = [rank_layers(m.num_hidden_layers, par.pp, par.virtual_stages, r, par.layer_split) for r in range(par.pp)]
    best: TrainingMemory | None = None
    totals: list[float] = []
    for s, layers in enumerate(stages):
        dense, experts = (x * copies for x in stage_params(m, t, layers, s == 0, s == par.pp - 1))
        shard_w = (dense_dp, expert_dp) if par.zero_stage >= 3 else (1, 1)
        shard_g = (dense_dp, expert_dp) if par.zero_stage >= 2 else (1, 1)
        shard_o = (dense_dp, expert_dp) if par.zero_stage >= 1 else (1, 1)
        b = t.memory
        weights = b.weight_bytes * (dense / shard_w[0] + experts / shard_w[1])
        grads = b.grad_bytes * (dense / shard_g[0] + experts / shard_g[1])
        optim = b.optimizer_bytes * (dense / shard_o[0] + experts / shard_o[1])
        per_token = sum(activation_elements_per_token(m, i, par.recompute) for i in layers)
        acts = b.activation_bytes * tokens_per_mb * per_token * in_flight / par.tp
        if par.recompute == "full" and len(layers):
            acts += b.activation_bytes * tokens_per_mb * activation_elements_per_token(m, layers[-1], "none") / par.tp
        if s == len(stages) - 1:
            acts += BYTES_ACT * tokens_per_mb * m.vocab_size / par.tp  # BF16 logits of the micro-batch in flight
        total = weights + grads + optim + acts
        totals.append(total)
        cap = t.cluster.gpu.hbm_bytes.value
        cand = TrainingMemory(weights, grads, optim, acts, total, cap, total <= cap, s)
        if best is None or cand.total_bytes > best.total_bytes:
            best = cand
    return replace(best, per_stage_bytes=tuple(totals))


@dataclass(frozen=True)
class ServingMemory:
    weights_bytes: float
    kv_budget_bytes: float
    kv_capacity_tokens: float
    capacity_bytes: float
    fits: bool

    def as_dict(self) -> dict:
        return asdict(self)


# SGL: vLLM's default gpu_memory_utilization = 0.9 (EngineArgs): 10% left for activations,
# CUDA graphs and fragmentation.
SERVING_MEMORY_FRACTION = 0.9


TRTLLM_FREE_FRACTION = 0.9  # SGL: TensorRT-LLM KvCacheConfig.free_gpu_memory_fraction default: 90% of what is free


def kv_budget_bytes(cap_bytes: float, weights_bytes: float, inf: InferenceSpec) -> float:
    """Bytes per GPU the engine gives the KV cache (negative: the weights do not fit its rule).
    vLLM (and no engine named) reserves a fraction of all HBM for weights, activations and cache;
    TensorRT-LLM takes a fraction of what the weights leave free; SGLang keeps its static pool (weights
    and cache) under all HBM less a reserve it computes from the launch settings (sglang_reserved_bytes)."""
    engine = inf.engine.name if inf.engine else None
    if engine == "trtllm":
        return TRTLLM_FREE_FRACTION * (cap_bytes - weights_bytes) if cap_bytes > weights_bytes else cap_bytes - weights_bytes
    if engine == "sglang":
        return cap_bytes - sglang_reserved_bytes(cap_bytes, inf) - weights_bytes
    return cap_bytes * SERVING_MEMORY_FRACTION - weights_bytes


def sglang_reserved_bytes(cap_bytes: float, inf: InferenceSpec) -> float:
    """SGLang's default mem_fraction_static (SGL: server_args.py, _handle_gpu_memory_settings) leaves this
    much of HBM outside its static pool, in MiB: 512 of metadata, 1.5 per token of the chunked-prefill
    budget (at least 2,048) for its activations, 2 per CUDA-graph batch slot, 1,024 per 8 GPUs of its
    tp_size x pp_size (SGLang's tp_size is every GPU of the instance, DP-attention ranks included), and with
    DP attention 3 more per graph slot and DP rank (4.5 beyond 300 slots); at least 10 GiB on a GPU of more
    than 60 GiB. Graph slots: SGLang's cuda_graph_max_bs (sglang_graph_slots)."""
    par, graph_bs = inf.parallelism, sglang_graph_slots(inf)
    chunked_prefill_size = inf.batch_tokens * par.dp  # the launcher's, before it divides it among DP ranks
    tp_size = par.tp * par.dp
    reserved = 512 + max(chunked_prefill_size, 2048) * 1.5 + graph_bs * 2 + tp_size * par.pp / 8 * 1024
    if par.dp > 1:
        reserved += graph_bs * par.dp * (4.5 if graph_bs > 300 else 3)
    if cap_bytes > 60 * 1024 * MIB:
        reserved = max(reserved, 10 * 1024)
    return reserved * MIB


def sglang_graph_slots(inf: InferenceSpec) -> int:
    """CUDA-graph batch slots per rank the reserve is sized for: SGLang's default cuda_graph_max_bs (SGL:
    server_args.py, _handle_gpu_memory_settings: 256 below 4 GPUs of tp_size and 512 from 4 on a GPU of 60
    to 160 GiB, 512 above), or the rank's max_running where that is smaller. ASSUMPTION: a launch that caps
    running requests sets --cuda-graph-max-bs to the same cap; SGLang left at its default reserves for 512
    slots whatever the cap (33 GiB per GPU at DP8, 147 GiB at DP64: such launches must set it)."""
    gpus = inf.parallelism.tp * inf.parallelism.dp
    default = 256 if gpus < 4 and not sglang_large_gpu(inf.cluster.gpu) else 512
    return min(inf.max_running, default)


def serving_memory(m: ModelSpec, inf: InferenceSpec) -> ServingMemory:
    """Weights per GPU at `weight_bits` and the KV-cache tokens the rest of HBM holds, per GPU."""
    par = inf.parallelism
    layers = all_layer_params(m)
    dense = (sum(lp.dense for lp in layers) + embedding_params(m) + head_params(m)) / (par.tp * par.pp)
    replicas = 1 + inf.redundant_experts / m.n_routed_experts if m.ffn == "moe" else 1  # EPLB replicas' weights
    experts = sum(lp.routed_experts for lp in layers) * replicas / (par.expert_group * par.pp)
    weights = (dense * stored_bits(inf.weight_bits) + experts * stored_bits(inf.expert_bits)) / 8
    cap = inf.cluster.gpu.hbm_bytes.value
    budget = kv_budget_bytes(cap, weights, inf)
    # MLA's latent cache is shared by all heads, so TP replicates it; other caches split by KV head.
    kv_shards = 1 if m.attention == "mla" else min(par.tp, m.kv_heads)
    per_token = kv_bytes_per_token(m, inf.kv_bits) / (kv_shards * par.pp)
    return ServingMemory(weights, max(budget, 0.0), max(budget, 0.0) / per_token, cap, budget > 0)
