"""FLOPs per token. Convention (V2P in docs/sources.md: the FLOPs derivation, reproduces V2 155.3 and 67B 418.6 GFLOP/token at
seq 4096): forward = 2 · params_active (input embedding excluded) + causal attention, where attention of
one query over `context` keys costs 2 · n_h · (d_qk + d_v) · context per layer; training = 3 × forward
with the causal average context seq_len / 2. Recompute is extra work, not counted here (MFU convention)."""

from __future__ import annotations

from costmodel.counts.params import head_params, mtp_params, params_active
from costmodel.inputs.specs import ModelSpec


def attention_core_flops(heads: int, d_qk: int, d_v: int, query_key_pairs: float) -> float:
    """Score (QKᵀ) and weighting (PV) FLOPs of `query_key_pairs` query-key pairs in one layer."""
    return 2 * heads * (d_qk + d_v) * query_key_pairs


def causal_pairs(queries: int, context: int) -> float:
    """Query-key pairs when the last `queries` of `context` tokens attend causally (prefill, chunk, decode)."""
    return queries * (context - queries) + queries * (queries + 1) / 2


def attention_flops_per_token(m: ModelSpec, context: float) -> float:
    """Score and weighting FLOPs of one query token attending `context` keys, all layers."""
    return attention_core_flops(m.num_attention_heads, m.qk_head_dim, m.value_head_dim, context) * m.num_hidden_layers


def forward_flops_per_token(m: ModelSpec, context: float) -> float:
    """Forward FLOPs of one token whose attention sees `context` keys."""
    return 2 * params_active(m) + attention_flops_per_token(m, context)


def mtp_forward_flops_per_token(m: ModelSpec, context: float) -> float:
    """The MTP modules' forward per token (V3P §2.2): each one block, its d x 2d projection and the shared
    output head again."""
    depth = m.num_nextn_predict_layers
    if not depth:
        return 0.0
    p = mtp_params(m)
    per_module_attention = attention_flops_per_token(m, context) / m.num_hidden_layers
    return 2 * (p.dense + p.routed_active) + depth * (2 * head_params(m) + per_module_attention)


def train_flops_per_token(m: ModelSpec, seq_len: int) -> float:
    """Forward + backward (3×) per trained token at causal sequence length `seq_len`, MTP modules included."""
    return 3 * (forward_flops_per_token(m, seq_len / 2) + mtp_forward_flops_per_token(m, seq_len / 2))
