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


FLASHMLA_FP8_SCALE_BLOCK = 128  # FlashMLA's FP8 cache: one FP32 scale per 128 latent values (FMLA)


def flashmla_fp8_bytes_per_layer(m: ModelSpec) -> int:
    """FlashMLA's FP8 MLA cache, per token and layer: the latent in FP8, an FP32 scale per 128 of its
    values, the RoPE key in BF16 (FMLA: 512 + 16 + 128 = 656 B for V3's widths, not 576)."""
    return m.kv_lora_rank + 4 * -(-m.kv_lora_rank // FLASHMLA_FP8_SCALE_BLOCK) + 2 * m.qk_rope_head_dim


def kv_bytes_per_token(m: ModelSpec, kv_bits: float) -> float:
    """Bytes per token at `kv_bits` per element (fractional: V2 serves ~6 bits on average, V2P §3.2.3);
    an MLA cache at 8 bits is FlashMLA's FP8 layout."""
    if m.attention == "mla" and kv_bits == 8:
        return flashmla_fp8_bytes_per_layer(m) * m.num_hidden_layers
    return kv_elements_per_token(m) * kv_bits / 8


def kv_bytes_per_element(m: ModelSpec, kv_bits: float) -> float:
    """Bytes a cached element moves on average (the FP8 MLA layout's scales and BF16 RoPE included)."""
    return kv_bytes_per_token(m, kv_bits) / kv_elements_per_token(m)


def equivalent_gqa_groups(m: ModelSpec) -> float:
    """KV cache expressed as GQA groups of the model's head dim (V2P Table 1 caption: MLA = 2.25 groups)."""
    d_h = m.qk_nope_head_dim if m.attention == "mla" else m.attn_head_dim
    return kv_elements_per_token_layer(m) / (2 * d_h)
