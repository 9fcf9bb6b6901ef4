"""Multi-head Latent Attention (V2P §2.1, App. C) with a naive and a weight-absorbed path on the same weights.

Parameter names follow the DeepSeek-V2 checkpoints: q_a_proj, q_a_layernorm, q_b_proj (or q_proj when
q_lora_rank is null), kv_a_proj_with_mqa, kv_a_layernorm, kv_b_proj, o_proj.

naive    — decompress per-head keys and values from the latent and cache them: n_h·(d_qk + d_v) per token;
           attention is then plain MHA (scaled_dot_product_attention on a head-major cache).
absorbed — cache only the normed latent c_KV (d_c) and the shared RoPE key k_R (d_h^R); fold W_UK into the
           query and W_UV into the output (V2P §2.1.2), as DeepSeek-V3 inference/model.py does.

Axes in einsum strings: b batch, s query tokens, t key tokens, h heads, d head dim, c latent, r rope dim.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from kernels.config import ModelArgs
from kernels.layers import RMSNorm, causal_mask
from kernels.rope import apply_rope, precompute_rope, softmax_scale


@dataclass
class MLACache:
    """Pre-allocated cache with a fixed layout; `mode` decides what is stored per token."""

    mode: str
    k: torch.Tensor | None = None  # naive: (B, H, S, d_qk), head-major as MHA kernels want it
    v: torch.Tensor | None = None  # naive: (B, H, S, d_v)
    kv: torch.Tensor | None = None  # absorbed: (B, S, d_c) normed latent
    pe: torch.Tensor | None = None  # absorbed: (B, S, d_r) rotated shared key

    @classmethod
    def allocate(cls, args: ModelArgs, batch: int, max_len: int, mode: str, dtype=torch.float32, device=None):
        h = args.num_attention_heads
        if mode == "naive":
            qk = args.qk_nope_head_dim + args.qk_rope_head_dim
            return cls(mode, k=torch.zeros(batch, h, max_len, qk, dtype=dtype, device=device),
                       v=torch.zeros(batch, h, max_len, args.v_head_dim, dtype=dtype, device=device))
        return cls(mode, kv=torch.zeros(batch, max_len, args.kv_lora_rank, dtype=dtype, device=device),
                   pe=torch.zeros(batch, max_len, args.qk_rope_head_dim, dtype=dtype, device=device))

    def elements_per_token(self) -> int:
        """Cached elements per token for this layer."""
        tensors = (self.k, self.v) if self.mode == "naive" else (self.kv, self.pe)
        batch, max_len = tensors[1].shape[0], tensors[1].shape[-2]
        return sum(t.numel() for t in tensors) // (batch * max_len)


class MLA(nn.Module):
    def __init__(self, args: ModelArgs, mode: str = "absorbed"):
        super().__init__()
        assert mode in ("naive", "absorbed")
        self.mode = mode
        self.n_heads = args.num_attention_heads
        self.q_lora_rank, self.kv_lora_rank = args.q_lora_rank, args.kv_lora_rank
        self.nope, self.rope, self.v_dim = args.qk_nope_head_dim, args.qk_rope_head_dim, args.v_head_dim
        qk = self.nope + self.rope
        dim, h = args.hidden_size, self.n_heads
        if self.q_lora_rank:
            self.q_a_proj = nn.Linear(dim, self.q_lora_rank, bias=False)
            self.q_a_layernorm = RMSNorm(self.q_lora_rank, args.rms_norm_eps)
            self.q_b_proj = nn.Linear(self.q_lora_rank, h * qk, bias=False)
        else:
            self.q_proj = nn.Linear(dim, h * qk, bias=False)
        self.kv_a_proj_with_mqa = nn.Linear(dim, self.kv_lora_rank + self.rope, bias=False)
        self.kv_a_layernorm = RMSNorm(self.kv_lora_rank, args.rms_norm_eps)
        self.kv_b_proj = nn.Linear(self.kv_lora_rank, h * (self.nope + self.v_dim), bias=False)
        self.o_proj = nn.Linear(h * self.v_dim, dim, bias=False)
        self.scale = softmax_scale(qk, args.rope_scaling)
        self.register_buffer("rope_table", precompute_rope(self.rope, args.max_seq_len, args.rope_theta,
                                                           args.rope_scaling), persistent=False)  # (2, max_len, r/2)

    def _project(self, x: torch.Tensor, freqs: torch.Tensor):
        """Queries (nope, rotated rope), normed latent and rotated shared key for x (b, s, dim)."""
        B, S, _ = x.shape
        q = self.q_b_proj(self.q_a_layernorm(self.q_a_proj(x))) if self.q_lora_rank else self.q_proj(x)
        q = q.view(B, S, self.n_heads, self.nope + self.rope)  # (b, s, h, d_qk)
        q_nope, q_pe = q.split([self.nope, self.rope], dim=-1)
        q_pe = apply_rope(q_pe, freqs)
        kv, k_pe = self.kv_a_proj_with_mqa(x).split([self.kv_lora_rank, self.rope], dim=-1)
        k_pe = apply_rope(k_pe.unsqueeze(2), freqs).squeeze(2)  # (b, s, r): one RoPE key shared by all heads
        return q_nope, q_pe, self.kv_a_layernorm(kv), k_pe  # latent (b, s, c)

    def forward(self, x: torch.Tensor, start_pos: int = 0, cache: MLACache | None = None) -> torch.Tensor:
        B, S, _ = x.shape
        q_nope, q_pe, kv, k_pe = self._project(x, self.rope_table[:, start_pos:start_pos + S])
        assert cache is not None or start_pos == 0, "incremental decoding needs a cache"
        mask = causal_mask(S, start_pos, x.device)
        if self.mode == "naive":
            return self._naive(q_nope, q_pe, kv, k_pe, start_pos, cache, mask)
        return self._absorbed(q_nope, q_pe, kv, k_pe, start_pos, cache, mask)

    def _naive(self, q_nope, q_pe, kv, k_pe, start_pos, cache, mask):
        B, S, H, _ = q_nope.shape
        k_nope, v = self.kv_b_proj(kv).view(B, S, H, self.nope + self.v_dim).split([self.nope, self.v_dim], dim=-1)
        k = torch.cat([k_nope, k_pe.unsqueeze(2).expand(-1, -1, H, -1)], dim=-1)  # (b, s, h, d_qk)
        q = torch.cat([q_nope, q_pe], dim=-1)
        q, k, v = (t.transpose(1, 2) for t in (q, k, v))  # (b, h, s, d)
        if cache is not None:
            end = start_pos + S
            cache.k[:B, :, start_pos:end], cache.v[:B, :, start_pos:end] = k, v
            k, v = cache.k[:B, :, :end], cache.v[:B, :, :end]
        if start_pos == 0 and S > 1:
            o = F.scaled_dot_product_attention(q, k, v, is_causal=True, scale=self.scale)
        else:
            o = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, scale=self.scale)
        return self.o_proj(o.transpose(1, 2).flatten(2))  # (b, s, h*d_v)

    def _absorbed(self, q_nope, q_pe, kv, k_pe, start_pos, cache, mask):
        B, S = q_nope.shape[:2]
        if cache is not None:
            end = start_pos + S
            cache.kv[:B, start_pos:end], cache.pe[:B, start_pos:end] = kv, k_pe
            kv, k_pe = cache.kv[:B, :end], cache.pe[:B, :end]
        return self._attend_latent(q_nope, q_pe, kv, k_pe, None if mask is None else mask[None, :, None, :])

    def _attend_latent(self, q_nope, q_pe, kv, k_pe, mask):
        """Absorbed attention over the latent cache (V2P §2.1.2): W_UK folded into the query, W_UV applied
        after the weighted sum. q_nope (b, s, h, d), q_pe (b, s, h, r), kv (b, t, c), k_pe (b, t, r);
        mask broadcasts to (b, s, h, t) or is None."""
        w = self.kv_b_proj.weight.view(self.n_heads, self.nope + self.v_dim, self.kv_lora_rank)
        w_uk, w_uv = w[:, : self.nope], w[:, self.nope :]  # (h, d, c)
        q_lat = torch.einsum("bshd,hdc->bshc", q_nope, w_uk)
        scores = (torch.einsum("bshc,btc->bsht", q_lat, kv) + torch.einsum("bshr,btr->bsht", q_pe, k_pe)) * self.scale
        if mask is not None:
            scores = scores + mask
        probs = scores.float().softmax(dim=-1).type_as(scores)
        o = torch.einsum("bshc,hdc->bshd", torch.einsum("bsht,btc->bshc", probs, kv), w_uv)
        return self.o_proj(o.flatten(2))  # (b, s, dim)

    def prefill_slot(self, x: torch.Tensor, slot: int, cache: MLACache) -> torch.Tensor:
        """Serving prefill of one request (1, s, dim): attention the compute-friendly naive way (vLLM's
        forward_mha), while the absorbed cache's row `slot` receives the latent and the RoPE key."""
        S = x.shape[1]
        q_nope, q_pe, kv, k_pe = self._project(x, self.rope_table[:, :S])
        cache.kv[slot, :S], cache.pe[slot, :S] = kv[0], k_pe[0]
        return self._naive(q_nope, q_pe, kv, k_pe, 0, None, None)

    def decode_rows(self, x: torch.Tensor, positions: torch.Tensor, cache: MLACache) -> torch.Tensor:
        """One decode token for cache rows 0..B-1, row b at its own position (x: (B, 1, dim))."""
        B = x.shape[0]
        rope = self.rope_table[:, positions].view(2, B, 1, 1, -1)  # each row at its own position
        q_nope, q_pe, kv, k_pe = self._project(x, rope)
        rows = torch.arange(B, device=x.device)
        cache.kv[rows, positions], cache.pe[rows, positions] = kv[:, 0], k_pe[:, 0]
        end = int(positions.max()) + 1
        mask = torch.zeros(B, end, device=x.device).masked_fill(
            torch.arange(end, device=x.device)[None, :] > positions[:, None], float("-inf"))  # (B, t)
        return self._attend_latent(q_nope, q_pe, cache.kv[:B, :end], cache.pe[:B, :end], mask[:, None, None, :])
