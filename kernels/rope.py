"""Rotary position embeddings with YaRN (V2P §3.1.4), as real cos/sin tables (gpt-fast keeps them real,
so module buffers survive `.to(dtype)` and `.to(device)` with the module).

DeepSeek checkpoints rotate interleaved pairs (x0, x1), (x2, x3), ... (DeepSeek-V3 `inference/model.py`
`apply_rotary_emb`); Llama-family checkpoints rotate halves (x_i, x_{i+d/2}). Both are supported.
"""

from __future__ import annotations

import functools
import math

import torch


def yarn_mscale(factor: float, mscale: float) -> float:
    """Attention-entropy factor √t = 0.1·mscale·ln(s) + 1 (V2P §3.1.4: 0.0707 ln s + 1 for V2)."""
    return 1.0 if factor <= 1 else 0.1 * mscale * math.log(factor) + 1.0


def softmax_scale(qk_head_dim: int, rope_scaling: dict | None) -> float:
    """1/√d_qk, times mscale² under YaRN (V2P §3.1.4, YaRN: V2 mscale 1.2608)."""
    scale = qk_head_dim**-0.5
    if rope_scaling and rope_scaling.get("type", rope_scaling.get("rope_type")) == "yarn":
        m = yarn_mscale(rope_scaling["factor"], rope_scaling.get("mscale_all_dim", 0.0))
        scale *= m * m
    return scale


def inv_frequencies(dim: int, theta: float, rope_scaling: dict | None) -> torch.Tensor:
    """Per-pair rotation frequencies; YaRN blends interpolated and original ones by wavelength."""
    freqs = 1.0 / theta ** (torch.arange(0, dim, 2, dtype=torch.float64) / dim)
    if not rope_scaling or rope_scaling.get("type", rope_scaling.get("rope_type")) != "yarn":
        return freqs
    factor = rope_scaling["factor"]
    orig = rope_scaling["original_max_position_embeddings"]

    def correction_dim(rotations: float) -> float:
        return dim * math.log(orig / (rotations * 2 * math.pi)) / (2 * math.log(theta))

    low = max(math.floor(correction_dim(rope_scaling.get("beta_fast", 32))), 0)
    high = min(math.ceil(correction_dim(rope_scaling.get("beta_slow", 1))), dim - 1)
    if low == high:
        high += 0.001
    ramp = ((torch.arange(dim // 2, dtype=torch.float64) - low) / (high - low)).clamp(0, 1)
    keep = 1 - ramp  # 1: high-frequency pairs keep their frequency; 0: low-frequency pairs are interpolated
    return freqs / factor * (1 - keep) + freqs * keep


def precompute_rope(dim: int, max_len: int, theta: float, rope_scaling: dict | None) -> torch.Tensor:
    """cos and sin of every rotation angle, stacked: (2, max_len, dim/2) float32, one shared table per
    distinct setting (layers reuse it)."""
    key = tuple(sorted(rope_scaling.items())) if rope_scaling else None
    return _rope_table(dim, max_len, theta, key)


@functools.lru_cache(maxsize=32)
def _rope_table(dim: int, max_len: int, theta: float, scaling_items: tuple | None) -> torch.Tensor:
    """The YaRN mscale ratio multiplies the rotations (1 when both mscales agree, as in V2)."""
    rope_scaling = dict(scaling_items) if scaling_items else None
    angles = torch.outer(torch.arange(max_len, dtype=torch.float64), inv_frequencies(dim, theta, rope_scaling))
    mag = 1.0
    if rope_scaling and rope_scaling.get("type", rope_scaling.get("rope_type")) == "yarn":
        f = rope_scaling["factor"]
        mag = yarn_mscale(f, rope_scaling.get("mscale", 1.0)) / yarn_mscale(f, rope_scaling.get("mscale_all_dim", 0.0))
    return torch.stack([mag * angles.cos(), mag * angles.sin()]).float()


def apply_rope(x: torch.Tensor, rope: torch.Tensor, interleaved: bool = True) -> torch.Tensor:
    """Rotate the last dim of x (B, T, heads, d) by rope (2, T, d/2), or per row by (2, B, T, 1, d/2).
    Pairs are (x0, x1), (x2, x3), ... when interleaved (DeepSeek), else (x_i, x_{i+d/2}) (Llama)."""
    cos, sin = rope[0].float(), rope[1].float()
    if cos.dim() == 2:  # (T, d/2) -> (1, T, 1, d/2)
        cos, sin = cos[None, :, None, :], sin[None, :, None, :]
    xf = x.float()
    a, b = (xf[..., 0::2], xf[..., 1::2]) if interleaved else xf.chunk(2, dim=-1)  # (B, T, h, d/2) each
    ra, rb = a * cos - b * sin, a * sin + b * cos
    out = torch.stack([ra, rb], dim=-1).flatten(-2) if interleaved else torch.cat([ra, rb], dim=-1)
    return out.to(x.dtype)
