"""FLOPs and memory bytes of one operator call, from its shape. The roofline and the measured
interpolator both use these; the shapes are the ones `planner profile` writes (kernels/profiler.py).

Operators and their shape keys:
  gemm  m, n, k                                   (m x k) @ (k x n)
  ffn   tokens, hidden, inter                     one SwiGLU FFN
  moe   tokens, hidden, experts, top_k, inter, shared_inter    gate + routed experts + shared FFN
        [tp]                                      expert tensor parallelism: 1/tp of each expert's width
  mla   b, q, ctx, hidden, heads, q_lora, kv_lora, nope, rope, v, mode    one MLA layer, naive|absorbed
  attn  b, q, ctx, hidden, heads, kv_heads, head_dim                      one MHA/GQA/MQA layer
`q` new query tokens per sequence attend causally over `ctx` tokens (q = ctx: prefill; q = 1: decode).
Pass `fwd_bwd` costs 3x the forward FLOPs (backward = 2x forward) and, to first order, 3x its bytes;
pass `bwd` the backward alone, 2x.
"""

from __future__ import annotations

from costmodel.counts.flops import attention_core_flops, causal_pairs
from costmodel.counts.kernels import KERNEL_SIZE_KEYS, kernel_counts
from costmodel.counts.routing import distinct_experts
from costmodel.inputs.specs import ModelSpec

# The sizes that vary along one interpolation curve; every other shape key is fixed on a curve.
SIZE_KEYS = {"gemm": ("m",), "ffn": ("tokens",), "moe": ("tokens",), "mla": ("q", "ctx"), "attn": ("q", "ctx"),
             **KERNEL_SIZE_KEYS}
# Widths between which a shape missing from a profile is interpolated, log-log, from the measured curves on
# either side (e.g. a GEMM of n = 2112 from the curves at n = 2048 and 2560 of the database's grid).
BETWEEN_KEYS = {"gemm": ("n", "k"), "mla": ("b",), "attn": ("b",), "mla_context": ("b",), "mla_generation": ("b",)}


def attention_shape(m: ModelSpec, tp: int, b: int, q: int, ctx: int, mode: str = "naive",
                    kv_bytes: float | None = None) -> tuple[str, dict]:
    """(op, shape) of one attention layer call on a TP rank: `b` sequences of `q` new tokens over `ctx`.
    MLA's `mode` is naive (prefill, training) or absorbed (decode); `kv_bytes` per cached element when the
    cache is stored in fewer bytes than the compute dtype."""
    extra = {"kv_bytes": kv_bytes} if kv_bytes is not None else {}
    heads = m.num_attention_heads // tp
    if m.attention == "mla":
        return "mla", {"hidden": m.hidden_size, "heads": heads, "q_lora": m.q_lora_rank or 0, "kv_lora": m.kv_lora_rank,
                       "nope": m.qk_nope_head_dim, "rope": m.qk_rope_head_dim, "v": m.v_head_dim, "b": b, "q": q,
                       "ctx": ctx, "mode": mode, **extra}
    return "attn", {"hidden": m.hidden_size, "heads": heads, "kv_heads": max(1, m.kv_heads // tp),
                    "head_dim": m.attn_head_dim, "b": b, "q": q, "ctx": ctx, **extra}


def _mla_weights(s: dict) -> float:
    qk = s["nope"] + s["rope"]
    q = s["hidden"] * s["q_lora"] + s["q_lora"] * s["heads"] * qk if s["q_lora"] else s["hidden"] * s["heads"] * qk
    return q + s["hidden"] * (s["kv_lora"] + s["rope"]) + s["kv_lora"] * s["heads"] * (s["nope"] + s["v"]) \
        + s["heads"] * s["v"] * s["hidden"]


def attention_flop_split(op: str, s: dict) -> tuple[float, float]:
    """(projection FLOPs, score-and-weighting FLOPs) of one mla/attn forward call. Projections are the
    weight GEMMs (their backward has a weight-gradient half); the core has no weights."""
    b, q, ctx, h = s["b"], s["q"], s["ctx"], s["heads"]
    pairs = b * causal_pairs(q, ctx)
    if op == "attn":
        d = s["head_dim"]
        proj = 2 * b * q * s["hidden"] * d * (2 * h + 2 * s["kv_heads"])
        return proj, attention_core_flops(h, d, d, pairs)
    kv_b = s["kv_lora"] * h * (s["nope"] + s["v"])
    proj = 2 * b * q * (_mla_weights(s) - kv_b)  # q, kv_a and o projections
    if s["mode"] == "naive":  # decompress the new tokens' keys and values
        return proj + 2 * b * q * kv_b, attention_core_flops(h, s["nope"] + s["rope"], s["v"], pairs)
    # absorbed: W_UK folded into the query and W_UV applied to the latent output, per query token
    return proj + 2 * b * q * kv_b, attention_core_flops(h, s["kv_lora"] + s["rope"], s["kv_lora"], pairs)


def _mla(s: dict, e: int) -> tuple[float, float]:
    b, q, ctx, h = s["b"], s["q"], s["ctx"], s["heads"]
    qk = s["nope"] + s["rope"]
    proj, core = attention_flop_split("mla", s)
    per_token = h * (qk + s["v"]) if s["mode"] == "naive" else s["kv_lora"] + s["rope"]
    acts = b * q * (2 * s["hidden"] + h * (qk + s["v"]))
    cache_bytes = b * ctx * per_token * s.get("kv_bytes", e)  # a quantised cache (e.g. 6 bits) reads less
    return proj + core, (_mla_weights(s) + acts) * e + cache_bytes


def _attn(s: dict, e: int) -> tuple[float, float]:
    b, q, ctx, d = s["b"], s["q"], s["ctx"], s["head_dim"]
    weights = s["hidden"] * d * (2 * s["heads"] + 2 * s["kv_heads"])
    flops = sum(attention_flop_split("attn", s))
    cache = 2 * b * ctx * s["kv_heads"] * d
    acts = b * q * (2 * s["hidden"] + 2 * s["heads"] * d)
    return flops, (weights + acts) * e + cache * s.get("kv_bytes", e)


def _moe(s: dict, e: int) -> tuple[float, float]:
    t, h, E, k = s["tokens"], s["hidden"], s["experts"], s["top_k"]
    i = s["inter"] / s.get("tp", 1)  # expert tensor parallelism: this GPU's slice of each expert's width
    shared = s.get("shared_inter", 0)
    flops = 2 * t * h * E + 6 * t * k * h * i + 6 * t * h * shared
    touched = distinct_experts(E, t, k, s.get("total_experts", E))  # this rank's experts that get a token
    weights = touched * 3 * h * i + 3 * h * shared + E * h
    acts = t * (2 * h + k * (2 * h + 3 * i) + 3 * shared)
    return flops, (weights + acts) * e


# Forward, backward alone (input and weight gradients: twice the forward) and the two together.
PASS_SCALE = {"fwd": 1, "bwd": 2, "fwd_bwd": 3}


def op_counts(op: str, shape: dict, pass_: str = "fwd", dtype_bytes: int = 2) -> tuple[float, float]:
    """(FLOPs, bytes moved to and from memory) of one call."""
    e = dtype_bytes
    if op == "gemm":
        m, n, k = shape["m"], shape["n"], shape["k"]
        flops, nbytes = 2 * m * n * k, (m * k + k * n + m * n) * e
    elif op == "ffn":
        t, h, i = shape["tokens"], shape["hidden"], shape["inter"]
        flops, nbytes = 6 * t * h * i, (3 * h * i + t * (2 * h + 3 * i)) * e
    elif op == "moe":
        flops, nbytes = _moe(shape, e)
    elif op == "mla":
        flops, nbytes = _mla(shape, e)
    elif op == "attn":
        flops, nbytes = _attn(shape, e)
    else:
        flops, nbytes = kernel_counts(op, shape, e)
    scale = PASS_SCALE[pass_]
    return flops * scale, nbytes * scale


def structure_key(op: str, shape: dict) -> tuple:
    """What must match for two points to lie on one interpolation curve: every dim but the sizes,
    and decode (one query token) apart from prefill."""
    fixed = tuple(sorted((k, v) for k, v in shape.items() if k not in SIZE_KEYS[op]))
    if op in ("mla", "attn"):
        fixed += (("decode", shape["q"] == 1),)
    return fixed
