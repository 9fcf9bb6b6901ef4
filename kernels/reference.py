"""Slow, independent references for the tests: written the way HuggingFace's DeepseekV2Attention and a
per-token MoE loop are, sharing no code with mla.py / moe.py (not even RoPE or RMSNorm).

RoPE here follows HF DeepSeek-V2: the interleaved checkpoint layout is de-interleaved, then rotated by
halves with cos/sin tables (the fast path uses complex multiplication on interleaved pairs instead).
"""

from __future__ import annotations

import math

import torch


def _rms(x: torch.Tensor, w: torch.Tensor, eps: float) -> torch.Tensor:
    return w * (x / torch.sqrt((x * x).mean(-1, keepdim=True) + eps))


def _yarn_inv_freq(dim: int, base: float, rs: dict | None) -> tuple[torch.Tensor, float]:
    """HF DeepseekV2YarnRotaryEmbedding: (inv_freq, cos/sin magnitude)."""
    pos_freqs = base ** (torch.arange(0, dim, 2).double() / dim)
    extrapolation = 1.0 / pos_freqs
    if not rs:
        return extrapolation, 1.0
    s = rs["factor"]
    interpolation = 1.0 / (s * pos_freqs)
    orig = rs["original_max_position_embeddings"]

    def find_dim(n_rot):
        return (dim * math.log(orig / (n_rot * 2 * math.pi))) / (2 * math.log(base))

    low = max(math.floor(find_dim(rs["beta_fast"])), 0)
    high = min(math.ceil(find_dim(rs["beta_slow"])), dim - 1)
    ramp = torch.clamp((torch.arange(dim // 2).double() - low) / ((high - low) or 0.001), 0, 1)
    mask = 1.0 - ramp
    inv = interpolation * (1 - mask) + extrapolation * mask

    def get_mscale(scale, m):
        return 1.0 if scale <= 1 else 0.1 * m * math.log(scale) + 1.0

    mag = get_mscale(s, rs.get("mscale", 1)) / get_mscale(s, rs.get("mscale_all_dim", 0))
    return inv, mag


def _rotate_half(x: torch.Tensor) -> torch.Tensor:
    half = x.shape[-1] // 2
    return torch.cat((-x[..., half:], x[..., :half]), dim=-1)


def _rope_hf(x: torch.Tensor, pos: torch.Tensor, inv: torch.Tensor, mag: float) -> torch.Tensor:
    """x (b, h, s, d) in the checkpoint's interleaved layout."""
    b, h, s, d = x.shape
    x = x.view(b, h, s, d // 2, 2).transpose(4, 3).reshape(b, h, s, d)
    freqs = torch.outer(pos.double(), inv)
    emb = torch.cat((freqs, freqs), dim=-1)
    cos, sin = (emb.cos() * mag).float(), (emb.sin() * mag).float()
    return x * cos + _rotate_half(x) * sin


def reference_mla(sd: dict[str, torch.Tensor], cfg: dict, x: torch.Tensor) -> torch.Tensor:
    """DeepSeek-V2 attention over the full sequence x (b, s, dim), causal, from a state dict."""
    b, s, _ = x.shape
    H, nope, rope, vd = cfg["num_attention_heads"], cfg["qk_nope_head_dim"], cfg["qk_rope_head_dim"], cfg["v_head_dim"]
    dc, eps = cfg["kv_lora_rank"], cfg.get("rms_norm_eps", 1e-6)
    if cfg.get("q_lora_rank"):
        q = _rms(x @ sd["q_a_proj.weight"].T, sd["q_a_layernorm.weight"], eps) @ sd["q_b_proj.weight"].T
    else:
        q = x @ sd["q_proj.weight"].T
    q = q.view(b, s, H, nope + rope).transpose(1, 2)  # (b, h, s, d)
    q_nope, q_pe = q[..., :nope], q[..., nope:]
    ckv = x @ sd["kv_a_proj_with_mqa.weight"].T
    compressed, k_pe = ckv[..., :dc], ckv[..., dc:].view(b, s, 1, rope).transpose(1, 2)
    kv = (_rms(compressed, sd["kv_a_layernorm.weight"], eps) @ sd["kv_b_proj.weight"].T)
    kv = kv.view(b, s, H, nope + vd).transpose(1, 2)
    k_nope, v = kv[..., :nope], kv[..., nope:]
    rs = cfg.get("rope_scaling")
    inv, mag = _yarn_inv_freq(rope, cfg.get("rope_theta", 10000.0), rs)
    pos = torch.arange(s)
    q_pe, k_pe = _rope_hf(q_pe, pos, inv, mag), _rope_hf(k_pe, pos, inv, mag)
    scale = (nope + rope) ** -0.5
    if rs:
        m = 0.1 * rs.get("mscale_all_dim", 0) * math.log(rs["factor"]) + 1.0 if rs["factor"] > 1 else 1.0
        scale = scale * m * m
    out = torch.empty(b, H, s, vd)
    for head in range(H):  # one head at a time, explicit causal softmax
        qh = torch.cat([q_nope[:, head], q_pe[:, head]], -1)  # (b, s, d)
        kh = torch.cat([k_nope[:, head], k_pe[:, 0]], -1)
        att = (qh @ kh.transpose(1, 2)) * scale
        att = att.masked_fill(torch.triu(torch.ones(s, s, dtype=torch.bool), 1), float("-inf"))
        out[:, head] = torch.softmax(att, -1) @ v[:, head]
    return out.transpose(1, 2).reshape(b, s, H * vd) @ sd["o_proj.weight"].T


def reference_route(logits_row: torch.Tensor, cfg: dict, bias: torch.Tensor | None = None) -> list[tuple[int, float]]:
    """One token's routing with Python sorting: [(expert, gate value), ...]."""
    scores = logits_row.softmax(-1) if cfg.get("scoring_func", "softmax") == "softmax" else logits_row.sigmoid()
    choice = (scores + bias) if bias is not None else scores
    E, G = scores.numel(), cfg.get("n_group", 1)
    allowed = list(range(E))
    method = cfg.get("topk_method", "greedy")
    if method != "greedy" and G > 1:
        per = E // G
        if method == "group_limited_greedy":
            gscore = [max(choice[g * per:(g + 1) * per].tolist()) for g in range(G)]
        else:
            gscore = [sum(sorted(choice[g * per:(g + 1) * per].tolist(), reverse=True)[:2]) for g in range(G)]
        groups = sorted(range(G), key=lambda g: -gscore[g])[: cfg["topk_group"]]
        allowed = [e for e in range(E) if e // per in groups]
    top = sorted(allowed, key=lambda e: -choice[e].item())[: cfg["num_experts_per_tok"]]
    w = [scores[e].item() for e in top]
    if cfg.get("norm_topk_prob") and len(top) > 1:
        total = sum(w)
        w = [v / total for v in w]
    return [(e, v * cfg.get("routed_scaling_factor", 1.0)) for e, v in zip(top, w, strict=True)]


def reference_moe(sd: dict[str, torch.Tensor], cfg: dict, x: torch.Tensor) -> torch.Tensor:
    """Routed + shared experts, one token and one expert at a time. sd holds stacked expert weights."""
    out = torch.zeros_like(x)
    bias = sd.get("gate.e_score_correction_bias")
    for t in range(x.shape[0]):
        xt = x[t]
        for e, g in reference_route(sd["gate.weight"] @ xt, cfg, bias):
            hidden = torch.nn.functional.silu(sd["experts.gate_proj"][e] @ xt) * (sd["experts.up_proj"][e] @ xt)
            out[t] += g * (sd["experts.down_proj"][e] @ hidden)
        if "shared_experts.gate_proj.weight" in sd:
            hidden = torch.nn.functional.silu(sd["shared_experts.gate_proj.weight"] @ xt) * (sd["shared_experts.up_proj.weight"] @ xt)
            out[t] += sd["shared_experts.down_proj.weight"] @ hidden
    return out
