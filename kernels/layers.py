"""Building blocks shared by the attention, MoE and model files."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class RMSNorm(nn.Module):
    def __init__(self, dim: int, eps: float = 1e-6):
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        xf = x.float()
        return (xf * torch.rsqrt(xf.pow(2).mean(-1, keepdim=True) + self.eps)).to(x.dtype) * self.weight


class SwiGLU(nn.Module):
    """down(silu(gate(x)) * up(x)); HF names gate_proj, up_proj, down_proj."""

    def __init__(self, dim: int, inter: int):
        super().__init__()
        self.gate_proj = nn.Linear(dim, inter, bias=False)
        self.up_proj = nn.Linear(dim, inter, bias=False)
        self.down_proj = nn.Linear(inter, dim, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.down_proj(F.silu(self.gate_proj(x)) * self.up_proj(x))


def causal_mask(q_len: int, start_pos: int, device=None) -> torch.Tensor | None:
    """Additive mask (q_len, start_pos + q_len): query i (at position start_pos + i) sees keys <= its position."""
    if q_len == 1:
        return None
    k_len = start_pos + q_len
    allowed = torch.arange(k_len, device=device)[None, :] <= (start_pos + torch.arange(q_len, device=device))[:, None]
    return torch.zeros(q_len, k_len, device=device).masked_fill(~allowed, float("-inf"))
