"""Time of one serving iteration of an instance: chunked prefill tokens plus one decode token for each
running request, through every layer. Prefill attention is projection-bound, so it runs at the weights'
precision (FP8 when they are); decode attention is cache-bound and runs in BF16 (FlashMLA). Attention data parallelism splits the requests across `dp` ranks
(each holds its own requests' KV cache); TP splits heads; EP spreads the routed experts. All ranks are
symmetric, so one rank's time is the instance's. Memoised on a coarse grid: the simulator's hot path
is a dictionary lookup.
"""

from __future__ import annotations

from costmodel.comm import all_reduce_time, links_of, remote_ranks_per_token
from costmodel.opcounts import attention_shape
from costmodel.specs import InferenceSpec, ModelSpec
from costmodel.timing import Device, Timer

CTX_BUCKET = 32  # mean decode context is rounded to this many tokens for the memo


class StepModel:
    def __init__(self, m: ModelSpec, inf: InferenceSpec, gemm_timer: Timer, attn_timer: Timer, *,
                 expert_load_skew: float = 1.0, kv_bytes: float | None = None):
        self.m, self.inf, self.timer, self.attn_timer = m, inf, gemm_timer, attn_timer
        self.kv_bytes = kv_bytes  # bytes per cached element when they differ from the compute dtype
        self.par = inf.parallelism
        self.links = links_of(inf.cluster.gpu)
        self.skew = expert_load_skew
        self.n_moe = m.n_moe_layers
        self.n_dense = m.num_hidden_layers - self.n_moe
        self._memo: dict[tuple, float] = {}  # (prefill tokens per rank, decode batch, ctx bucket) -> s
        self._prefill_memo: dict[tuple[int, int], float] = {}  # (chunk tokens, ctx buckets) -> s per layer

    def _attn_shape(self, b: int, q: int, ctx: int, mode: str) -> tuple[str, dict]:
        """Decode uses MLA's absorbed path, prefill the naive one (vLLM's split)."""
        return attention_shape(self.m, self.par.tp, b, q, ctx, mode, self.kv_bytes)

    def time(self, chunks: list[tuple[int, int]], decode_batch: int, decode_ctx_sum: int) -> float:
        """Seconds for one iteration: prefill `chunks` of (tokens, context at the chunk's end) and one
        decode token for each of `decode_batch` requests holding `decode_ctx_sum` cached tokens."""
        mean_ctx = decode_ctx_sum / decode_batch if decode_batch else 0
        p_tokens = sum(t for t, _ in chunks)
        key = (-(-p_tokens // self.par.dp), decode_batch, round(mean_ctx / CTX_BUCKET))
        t = self._memo.get(key)
        if t is None:
            t = self._compute(key[0], decode_batch, max(1, key[2] * CTX_BUCKET))
            self._memo[key] = t
        if chunks:  # prefill attention (with its projections) per chunk, as engines run it; spread over DP ranks
            per_layer = sum(self._prefill_attention(tok, -(-c // CTX_BUCKET)) for tok, c in chunks)
            t += per_layer * self.m.num_hidden_layers / self.par.dp
        return t

    def _prefill_attention(self, tokens: int, ctx_buckets: int) -> float:
        """One layer's attention for a chunk of `tokens` ending at ctx_buckets * CTX_BUCKET (memoised)."""
        key = (tokens, ctx_buckets)
        t = self._prefill_memo.get(key)
        if t is None:
            t = self._prefill_memo[key] = self.timer.time(
                *self._attn_shape(1, tokens, ctx_buckets * CTX_BUCKET, "naive"), "fwd")
        return t

    def _compute(self, p_tokens: int, d_batch: int, d_ctx: int) -> float:
        """Everything but the prefill attention, for one attention rank with p_tokens prefill tokens."""
        m, par, timer = self.m, self.par, self.timer
        b_rank = -(-d_batch // par.dp)  # requests spread evenly over the attention-DP ranks
        attn = self.attn_timer.time(*self._attn_shape(b_rank, 1, d_ctx, "absorbed"), "fwd") if b_rank else 0.0
        tokens_rank = b_rank + p_tokens  # the busiest rank
        h = m.hidden_size
        tp_ar = 2 * all_reduce_time(tokens_rank * h * 2, par.tp, self.links["nvlink"]) if par.tp > 1 else 0.0
        dense_ffn = timer.time("ffn", {"tokens": tokens_rank, "hidden": h, "inter": (m.intermediate_size or 0) // par.tp},
                               "fwd") if self.n_dense else 0.0
        moe = 0.0
        if self.n_moe:
            all_tokens = tokens_rank * par.dp  # every attention-DP rank's tokens meet in the experts
            per_ep = max(1, round(all_tokens / par.ep * self.skew))
            # routed experts of this EP rank plus the shared experts, as one MoE layer call
            moe = timer.time("moe", {"tokens": per_ep, "hidden": h, "experts": m.n_routed_experts // par.ep,
                                     "top_k": m.num_experts_per_tok, "inter": m.moe_intermediate_size,
                                     "shared_inter": m.shared_ffn_width // par.tp}, "fwd")
            if par.ep > 1:
                remote = remote_ranks_per_token(m, par.ep)
                byte = self.inf.weight_bits / 8 if self.inf.weight_bits <= 8 else 2  # FP8 dispatch with FP8 weights
                moe += tokens_rank * remote * h * (byte + 2) / self.links["nvlink"].effective_bw
        head = timer.time("gemm", {"m": max(1, b_rank + (1 if p_tokens else 0)), "n": m.vocab_size // par.tp, "k": h})
        per_layer_dense = attn + dense_ffn + tp_ar
        per_layer_moe = attn + moe + tp_ar
        return self.n_dense * per_layer_dense + self.n_moe * per_layer_moe + head


def step_model_for(m: ModelSpec, inf: InferenceSpec) -> StepModel:
    """Iteration times of an instance from the GPU file's sourced efficiencies: GEMMs at the weights'
    precision (FP8 when weight_bits <= 8 and the GPU has it), decode attention in BF16 (FlashMLA)."""
    stack = inf.stack_efficiency.value if inf.stack_efficiency else 1.0
    gpu = inf.cluster.gpu
    precision = "fp8" if inf.weight_bits <= 8 else "bf16"
    return StepModel(m, inf, Timer(Device.from_gpu(gpu, precision, stack)), Timer(Device.from_gpu(gpu, "bf16", stack)),
                     expert_load_skew=inf.expert_load_skew, kv_bytes=inf.kv_bits / 8)
