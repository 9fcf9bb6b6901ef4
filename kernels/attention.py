"""MHA / GQA / MQA baselines (V2P Table 1) with a pre-allocated KV cache, on scaled_dot_product_attention.

One class covers all three: n_kv = n_h is MHA, 1 < n_kv < n_h is GQA, n_kv = 1 is MQA. Names follow the
Llama checkpoints (q_proj, k_proj, v_proj, o_proj) and their half-rotation RoPE layout.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from kernels.config import ModelArgs
from kernels.layers import causal_mask
from kernels.rope import apply_rope, precompute_rope


@dataclass
class KVCache:
    k: torch.Tensor  # (B, S, n_kv, d)
    v: torch.Tensor  # (B, S, n_kv, d)

    @classmethod
    def allocate(cls, args: ModelArgs, batch: int, max_len: int, dtype=torch.float32, device=None) -> KVCache:
        shape = (batch, max_len, args.kv_heads, args.attn_head_dim)
        return cls(torch.zeros(shape, dtype=dtype, device=device), torch.zeros(shape, dtype=dtype, device=device))

    def elements_per_token(self) -> int:
        return self.k[0, 0].numel() + self.v[0, 0].numel()


class Attention(nn.Module):
    def __init__(self, args: ModelArgs, bias: bool = False):
        super().__init__()
        self.n_heads, self.n_kv, self.head_dim = args.num_attention_heads, args.kv_heads, args.attn_head_dim
        assert self.n_heads % self.n_kv == 0, "KV heads must divide attention heads"
        dim = args.hidden_size
        self.q_proj = nn.Linear(dim, self.n_heads * self.head_dim, bias=bias)
        self.k_proj = nn.Linear(dim, self.n_kv * self.head_dim, bias=bias)
        self.v_proj = nn.Linear(dim, self.n_kv * self.head_dim, bias=bias)
        self.o_proj = nn.Linear(self.n_heads * self.head_dim, dim, bias=False)
        self.register_buffer("rope", precompute_rope(self.head_dim, args.max_seq_len, args.rope_theta, None),
                             persistent=False)  # (2, max_len, d/2): cos, sin

    def forward(self, x: torch.Tensor, start_pos: int = 0, cache: KVCache | None = None) -> torch.Tensor:
        B, S, _ = x.shape
        end = start_pos + S
        freqs = self.rope[:, start_pos:end]
        q = apply_rope(self.q_proj(x).view(B, S, self.n_heads, self.head_dim), freqs, interleaved=False)
        k = apply_rope(self.k_proj(x).view(B, S, self.n_kv, self.head_dim), freqs, interleaved=False)
        v = self.v_proj(x).view(B, S, self.n_kv, self.head_dim)
        if cache is not None:
            cache.k[:B, start_pos:end], cache.v[:B, start_pos:end] = k, v
            k, v = cache.k[:B, :end], cache.v[:B, :end]
        else:
            assert start_pos == 0, "incremental decoding needs a cache"
        q, k, v = (t.transpose(1, 2) for t in (q, k, v))  # (b, heads, tokens, d)
        if start_pos == 0 and S > 1:
            o = F.scaled_dot_product_attention(q, k, v, is_causal=True, enable_gqa=self.n_kv != self.n_heads)
        else:
            mask = causal_mask(S, start_pos, x.device)
            o = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, enable_gqa=self.n_kv != self.n_heads)
        return self.o_proj(o.transpose(1, 2).flatten(2))
