"""KV-cache size per token, for the four attention types of V2P Table 1."""

from __future__ import annotations

from costmodel.inputs.specs import ModelSpec


def kv_elements_per_token_layer(m: ModelSpec) -> int:
    """Cached elements per token in one layer (V2P Table 1): MHA 2·n_h·d_h, GQA 2·n_g·d_h, MQA 2·d_h,
    MLA d_c + d_h^R (the absorbed cache: normed latent plus the shared RoPE key)."""
    if m.attention == "mla":
        return m.kv_lora_rank + m.qk_rope_head_dim
    return 2 * m.kv_heads * m.attn_head_dim


def kv_elements_per_token(m: ModelSpec) -> int:
    """All layers; 'regardless of the storage precision' (V2P §2.1.4)."""
    return kv_elements_per_token_layer(m) * m.num_hidden_layers


def kv_bytes_per_token(m: ModelSpec, kv_bits: float) -> float:
    """Bytes per token at `kv_bits` per element (fractional: V2 serves ~6 bits on average, V2P §3.2.3)."""
    return kv_elements_per_token(m) * kv_bits / 8


def equivalent_gqa_groups(m: ModelSpec) -> float:
    """KV cache expressed as GQA groups of the model's head dim (V2P Table 1 caption: MLA = 2.25 groups)."""
    d_h = m.qk_nope_head_dim if m.attention == "mla" else m.attn_head_dim
    return kv_elements_per_token_layer(m) / (2 * d_h)
