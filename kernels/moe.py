"""DeepSeekMoE (V2P §2.2, V3P §2.1.2): shared experts plus fine-grained routed SwiGLU experts.

Gate (scoring and top-k, incl. group-/device-limited routing and V3's bias) is separate from dispatch
(tokens sorted by expert, one batched matmul over all experts) and from the balance losses.
Routed experts are stored stacked, (E, I, H), so dispatch is three grouped GEMMs; `stack_hf_experts`
converts a checkpoint's per-expert `experts.{i}.gate_proj.weight` keys.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from kernels.config import ModelArgs
from kernels.layers import SwiGLU


@dataclass
class Routing:
    weights: torch.Tensor  # (T, K) gate values g_{i,t}, after normalisation and scaling
    indices: torch.Tensor  # (T, K) selected experts
    scores: torch.Tensor  # (T, E) affinities s_{i,t} (softmax or sigmoid), before any bias


class Gate(nn.Module):
    def __init__(self, args: ModelArgs):
        super().__init__()
        self.top_k, self.n_group, self.topk_group = args.num_experts_per_tok, args.n_group, args.topk_group
        self.method, self.score_func = args.topk_method, args.scoring_func
        self.norm_topk_prob, self.scale = args.norm_topk_prob, args.routed_scaling_factor
        self.weight = nn.Parameter(torch.empty(args.n_routed_experts, args.hidden_size))
        nn.init.kaiming_uniform_(self.weight, a=5**0.5)
        if self.method == "noaux_tc":  # V3 aux-loss-free bias, used for selection only
            self.register_buffer("e_score_correction_bias", torch.zeros(args.n_routed_experts))

    def forward(self, x: torch.Tensor) -> Routing:
        logits = F.linear(x.float(), self.weight.float())  # (T, E)
        scores = logits.softmax(-1) if self.score_func == "softmax" else logits.sigmoid()
        choice = scores + self.e_score_correction_bias if self.method == "noaux_tc" else scores
        if self.method in ("group_limited_greedy", "noaux_tc") and self.n_group > 1:
            grouped = choice.view(x.shape[0], self.n_group, -1)  # (T, G, E/G)
            if self.method == "group_limited_greedy":
                group_score = grouped.amax(-1)  # V2: best expert of each device group
            else:
                group_score = grouped.topk(2, dim=-1).values.sum(-1)  # V3: sum of the top-2 per node
            top_groups = group_score.topk(self.topk_group, dim=-1).indices
            keep = torch.zeros_like(group_score, dtype=torch.bool).scatter_(1, top_groups, True)
            choice = grouped.masked_fill(~keep.unsqueeze(-1), float("-inf")).flatten(1)
        indices = choice.topk(self.top_k, dim=-1).indices
        weights = scores.gather(1, indices)
        if self.norm_topk_prob and self.top_k > 1:
            weights = weights / (weights.sum(-1, keepdim=True) + 1e-20)
        return Routing((weights * self.scale).type_as(x), indices, scores)


class Experts(nn.Module):
    """E routed SwiGLU experts as stacked weights (HF per-expert names, one leading expert axis)."""

    def __init__(self, n: int, dim: int, inter: int):
        super().__init__()
        self.gate_proj = nn.Parameter(torch.empty(n, inter, dim))
        self.up_proj = nn.Parameter(torch.empty(n, inter, dim))
        self.down_proj = nn.Parameter(torch.empty(n, dim, inter))
        for w in (self.gate_proj, self.up_proj, self.down_proj):
            nn.init.normal_(w, std=w.shape[-1] ** -0.5)

    def one(self, e: int, x: torch.Tensor) -> torch.Tensor:
        """Expert e on tokens x (N, H); used by the reference loop."""
        return F.silu(x @ self.gate_proj[e].T) * (x @ self.up_proj[e].T) @ self.down_proj[e].T


def dispatch_combine(x: torch.Tensor, weights: torch.Tensor, indices: torch.Tensor, experts: Experts) -> torch.Tensor:
    """Σ_k g_k · expert_k(x): assignments sorted by expert, three grouped GEMMs (one call each over all
    experts, no padding), then a weighted scatter-add back to the tokens."""
    T, K = indices.shape
    E = experts.gate_proj.shape[0]
    flat = indices.reshape(-1)
    order = flat.argsort(stable=True)  # assignments grouped by expert
    offs = torch.bincount(flat, minlength=E).cumsum(0).to(torch.int32)  # end row of each expert's group
    token = order // K
    xs = x[token]  # (T*K, H), expert-major
    h = F.silu(F.grouped_mm(xs, experts.gate_proj.transpose(1, 2), offs=offs))
    h = h * F.grouped_mm(xs, experts.up_proj.transpose(1, 2), offs=offs)  # (T*K, I)
    out = F.grouped_mm(h, experts.down_proj.transpose(1, 2), offs=offs)  # (T*K, H)
    contrib = out * weights.reshape(-1)[order].unsqueeze(-1)
    return x.new_zeros(T, x.shape[-1]).index_add_(0, token, contrib.to(x.dtype))


def dispatch_combine_loop(x: torch.Tensor, weights: torch.Tensor, indices: torch.Tensor, experts: Experts) -> torch.Tensor:
    """The same sum with a Python loop over experts (reference, and the baseline of benchmarks/kernels.py)."""
    y = torch.zeros_like(x)
    for e in range(experts.gate_proj.shape[0]):
        tok, k = torch.where(indices == e)
        if tok.numel():
            y.index_add_(0, tok, experts.one(e, x[tok]) * weights[tok, k].unsqueeze(-1))
    return y


def device_capacity_keep(scores: torch.Tensor, indices: torch.Tensor, n_devices: int, capacity_factor: float,
                         protected: torch.Tensor | None = None) -> torch.Tensor:
    """Device-level token dropping (V2P §2.2.4): each device takes at most capacity_factor × its average
    load (T·K/D assignments); beyond that, its lowest-affinity assignments are dropped first. Assignments
    of `protected` tokens (T,) are never dropped. Returns keep (T, K) bool."""
    T, K = indices.shape
    E = scores.shape[1]
    device = (indices // (E // n_devices)).reshape(-1)
    affinity = scores.gather(1, indices).reshape(-1).double()
    prot = (protected.repeat_interleave(K) if protected is not None else torch.zeros_like(device, dtype=torch.bool))
    # sort by device, protected first, then by affinity, highest first
    key = device.double() * 4 + (~prot).double() * 2 + (1 - affinity)
    order = key.argsort()
    counts = torch.bincount(device, minlength=n_devices)
    rank = torch.empty_like(order)
    rank[order] = torch.arange(T * K, device=indices.device) - (counts.cumsum(0) - counts)[device[order]]
    capacity = int(capacity_factor * T * K / n_devices + 0.5)
    return ((rank < capacity) | prot).view(T, K)


def balance_losses(scores: torch.Tensor, indices: torch.Tensor, n_devices: int, topk_devices: int,
                   alphas: tuple[float, float, float]) -> dict[str, torch.Tensor]:
    """Expert-, device- and communication-balance losses (V2P eq. 23-31), per sequence then averaged.

    scores (B, S, E): affinities s_{i,t}; indices (B, S, K); devices own equal consecutive expert ranges."""
    B, S, E = scores.shape
    K = indices.shape[-1]
    D, per = n_devices, E // n_devices
    chosen = torch.zeros_like(scores).scatter_(-1, indices, 1.0)  # 1(token t selects expert i)
    f = chosen.sum(1) * E / (K * S)  # (B, E)  eq. 24
    P = scores.mean(1)  # (B, E)  eq. 25
    f_dev = f.view(B, D, per).mean(-1)  # eq. 27
    P_dev = P.view(B, D, per).sum(-1)  # eq. 28 (also P''_i, eq. 31)
    sent = chosen.view(B, S, D, per).amax(-1)  # 1(token t is sent to device i)
    f_comm = sent.sum(1) * D / (topk_devices * S)  # eq. 30
    a1, a2, a3 = alphas
    return {
        "expert": a1 * (f * P).sum(-1).mean(),
        "device": a2 * (f_dev * P_dev).sum(-1).mean(),
        "communication": a3 * (f_comm * P_dev).sum(-1).mean(),
    }


def update_bias(bias: torch.Tensor, tokens_per_expert: torch.Tensor, gamma: float) -> torch.Tensor:
    """V3 aux-loss-free balancing (V3P §2.1.2): b_i -= γ if overloaded, += γ if underloaded."""
    load = tokens_per_expert.float()
    return bias + gamma * torch.sign(load.mean() - load)


@dataclass
class RoutingStats:
    tokens_per_expert: torch.Tensor  # (E,)
    tokens_per_device: torch.Tensor  # (D,) assignments landing on each device
    devices_per_token: torch.Tensor  # (T,) distinct devices a token is sent to


def routing_stats(indices: torch.Tensor, n_experts: int, n_devices: int, keep: torch.Tensor | None = None) -> RoutingStats:
    flat = indices if keep is None else torch.where(keep, indices, -1)
    valid = flat.reshape(-1)[flat.reshape(-1) >= 0]
    per_expert = torch.bincount(valid, minlength=n_experts)
    device = torch.where(flat >= 0, flat // (n_experts // n_devices), n_devices)
    onehot = torch.zeros(indices.shape[0], n_devices + 1, device=indices.device).scatter_(1, device, 1.0)
    return RoutingStats(per_expert, per_expert.view(n_devices, -1).sum(-1), onehot[:, :n_devices].sum(-1).long())


class MoE(nn.Module):
    def __init__(self, args: ModelArgs, capacity_factor: float | None = None, n_devices: int | None = None):
        super().__init__()
        self.n_experts = args.n_routed_experts
        self.n_devices = n_devices or args.n_group
        self.capacity_factor = capacity_factor
        self.gate = Gate(args)
        self.experts = Experts(args.n_routed_experts, args.hidden_size, args.moe_intermediate_size)
        self.shared_experts = SwiGLU(args.hidden_size, args.shared_width) if args.shared_width else None
        self.last_routing: Routing | None = None
        self.last_keep: torch.Tensor | None = None

    def forward(self, x: torch.Tensor, protected: torch.Tensor | None = None) -> torch.Tensor:
        shape = x.shape
        x = x.reshape(-1, shape[-1])  # (T, H)
        route = self.gate(x)
        weights, keep = route.weights, None
        if self.training and self.capacity_factor is not None:
            keep = device_capacity_keep(route.scores, route.indices, self.n_devices, self.capacity_factor, protected)
            weights = weights * keep
        self.last_routing, self.last_keep = route, keep
        y = dispatch_combine(x, weights, route.indices, self.experts)
        if self.shared_experts is not None:
            y = y + self.shared_experts(x)
        return y.view(shape)

    def stats(self) -> RoutingStats:
        return routing_stats(self.last_routing.indices, self.n_experts, self.n_devices, self.last_keep)


def stack_hf_experts(state_dict: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Checkpoint keys `...experts.{i}.{gate,up,down}_proj.weight` → stacked `...experts.{name}` tensors."""
    out, groups = {}, {}
    pattern = re.compile(r"^(.*experts)\.(\d+)\.(gate_proj|up_proj|down_proj)\.weight$")
    for key, value in state_dict.items():
        m = pattern.match(key)
        if m and not key.startswith("shared_experts") and ".shared_experts." not in key:
            groups.setdefault((m.group(1), m.group(3)), {})[int(m.group(2))] = value
        else:
            out[key] = value
    for (prefix, name), by_index in groups.items():
        out[f"{prefix}.{name}"] = torch.stack([by_index[i] for i in sorted(by_index)])
    return out
