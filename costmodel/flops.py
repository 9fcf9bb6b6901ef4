"""FLOPs per token. Convention (FACTS.md §2.2 [DERIVED], reproduces V2 155.3 and 67B 418.6 GFLOP/token at
seq 4096): forward = 2 · params_active (input embedding excluded) + causal attention, where attention of
one query over `context` keys costs 2 · n_h · (d_qk + d_v) · context per layer; training = 3 × forward
with the causal average context seq_len / 2. Recompute is extra work, not counted here (MFU convention)."""

from __future__ import annotations

from costmodel.params import params_active
from costmodel.specs import ModelSpec


def attention_flops_per_token(m: ModelSpec, context: float) -> float:
    """Score (QKᵀ) and weighting (PV) FLOPs of one query token attending `context` keys, all layers."""
    per_layer = 2 * m.num_attention_heads * (m.qk_head_dim + m.value_head_dim) * context
    return per_layer * m.num_hidden_layers


def forward_flops_per_token(m: ModelSpec, context: float) -> float:
    """Forward FLOPs of one token whose attention sees `context` keys."""
    return 2 * params_active(m) + attention_flops_per_token(m, context)


def train_flops_per_token(m: ModelSpec, seq_len: int) -> float:
    """Forward + backward (3×) per trained token at causal sequence length `seq_len`."""
    return 3 * forward_flops_per_token(m, seq_len / 2)
