"""The kernels an engine launches for one layer-level operator, and the counts of each kernel.

The layer-level operators (opcounts.py: gemm, ffn, moe, mla, attn) are what `planner profile` times
whole. A serving engine runs them as separate kernels, and NVIDIA's kernel database (kernel_db.py)
measures those kernels one by one, so a layer is timed as the sum of its kernels:

  mla, absorbed (decode)   norm, fused q_a+kv_a GEMM, q_b GEMM, q and kv norms, rotary embedding, W_UK
                           batched GEMM, FlashMLA decode, W_UV batched GEMM, o GEMM (V2P §2.1.2; FMLA)
  mla, naive (prefill)     the same projections and norms, kv_b GEMM, causal MLA prefill, o GEMM
  moe                      router GEMM (BF16), routed experts of the busiest EP rank, shared-expert FFN
  ffn                      norm, gate+up GEMM, SwiGLU, down GEMM
  gemm                     itself

Kernel operators and their shape keys (every one also has `dtype`, the database's name of its precision):
  moe_experts     tokens, hidden, inter, top_k, experts, ep, tp, kernel   one EP rank's routed experts when
                                                                   `tokens` enter the EP group, balanced;
                                                                   kernel: fused | deepep_masked | deepep_contiguous
  mla_context     b, isl, heads, kv_dtype      causal MLA prefill of b sequences of isl tokens, heads per GPU
  mla_generation  b, ctx, heads, kv_dtype      one decode token of b sequences over ctx cached tokens
  mla_bmm         tokens, heads, stage         absorbed MLA's per-head matmul: pre (W_UK) or post (W_UV)
  all_reduce      elements, gpus               one all-reduce of `elements` BF16 values over gpus
  deepep_ll       tokens, hidden, top_k, experts, nodes, phase        DeepEP low-latency dispatch|combine
  deepep_normal   tokens, hidden, top_k, experts, nodes, phase, sms   DeepEP normal dispatch|combine
  elementwise     tokens, width                RMSNorm, activation or rotary embedding (never measured: the
                                               roofline, at least the profile's fastest measured kernel)
`tokens` of the DeepEP kernels are per rank.
"""

from __future__ import annotations

from dataclasses import dataclass

from costmodel.counts.flops import attention_core_flops, causal_pairs
from costmodel.counts.routing import distinct_experts

# The database's MLA tables time DeepSeek-V3's attention widths (AIC's DeepSeek model builds them from
# these: q_lora 1536 + kv_lora 512 + rope 64 = the fused 2112-wide down projection, 192 = nope + rope
# per head, 128 = v per head); a model with other widths has its MLA timed by the roofline.
DB_MLA = {"q_lora": 1536, "kv_lora": 512, "nope": 128, "rope": 64, "v": 128}
KERNEL_SIZE_KEYS = {"elementwise": ("tokens",), "moe_experts": ("tokens",), "mla_context": ("isl",), "mla_generation": ("ctx",),
                    "mla_bmm": ("tokens",), "all_reduce": ("elements",), "deepep_ll": ("tokens",),
                    "deepep_normal": ("tokens",)}
# The expert kernels behind each all-to-all: DeepEP's low-latency kernels feed DeepGEMM's masked grouped GEMM,
# its normal kernels the contiguous one (DEP, DGEMM); without EP the engine's fused MoE kernel runs. A
# profile without the DeepEP-fed kernels times the experts with the fused one (FALLBACK_KERNEL).
EXPERT_KERNEL = {"low_latency": "deepep_masked", "normal": "deepep_contiguous", None: "fused"}
FALLBACK_KERNEL = {"deepep_masked": "fused", "deepep_contiguous": "fused"}
# A per-tensor FP8 kernel a profile lacks is timed by its block-scaled one: the same FLOPs and weight bytes;
# block scaling adds a scale read per 128x128 block, so it is the slower of the two (an upper bound).
FALLBACK_DTYPE = {"fp8": "fp8_block"}
_BYTES = {"fp8": 1, "fp8_block": 1, "float8": 1, "bfloat16": 2, "float16": 2, "half": 2}


def dtype_bytes(name: str, default: int) -> int:
    """Bytes per element of a database dtype name; `default` for a name this table does not know."""
    return _BYTES.get(name, default)


def kernel_counts(op: str, s: dict, e: int) -> tuple[float, float]:
    """(FLOPs, bytes) of one kernel call; `e` bytes per element unless its dtype says otherwise."""
    e = dtype_bytes(s.get("dtype", ""), e)
    d = DB_MLA
    if op == "moe_experts":
        per_rank = s["tokens"] * s["top_k"] / s["ep"]  # balanced: each rank gets 1/ep of the selections
        local = s["experts"] / s["ep"]
        touched = distinct_experts(local, s["tokens"] / s["ep"], s["top_k"], s["experts"])  # only these are read
        width = 3 * s["hidden"] * s["inter"] / s["tp"]
        return 2 * per_rank * width, (touched * width + per_rank * 2 * s["hidden"]) * e
    if op == "mla_context":
        pairs = s["b"] * causal_pairs(s["isl"], s["isl"])
        qk, v = d["nope"] + d["rope"], d["v"]
        return attention_core_flops(s["heads"], qk, v, pairs), s["b"] * s["isl"] * s["heads"] * (2 * qk + 2 * v) * e
    if op == "mla_generation":
        qk, v = d["kv_lora"] + d["rope"], d["kv_lora"]
        cache = s["b"] * s["ctx"] * qk * dtype_bytes(s.get("kv_dtype", ""), e)
        return attention_core_flops(s["heads"], qk, v, s["b"] * s["ctx"]), cache + s["b"] * s["heads"] * (qk + v) * e
    if op == "mla_bmm":
        weights = s["heads"] * d["nope"] * d["kv_lora"]
        return 2 * s["tokens"] * weights, (weights + s["tokens"] * s["heads"] * (d["nope"] + d["kv_lora"])) * e
    if op == "all_reduce":
        return 0.0, 2 * (s["gpus"] - 1) / s["gpus"] * s["elements"] * 2  # ring bus bytes, BF16
    if op == "elementwise":  # read and write each element once
        return 4 * s["tokens"] * s["width"], 2 * s["tokens"] * s["width"] * e
    if op in ("deepep_ll", "deepep_normal"):
        return 0.0, s["tokens"] * s["top_k"] * s["hidden"] * e
    raise ValueError(f"unknown operator {op!r}")


@dataclass(frozen=True)
class KernelPlan:
    """What an engine runs for one instance: the database precisions of its kernels and the widths that
    the layer shapes do not carry (expert parallelism, the model's expert count)."""

    gemm_dtype: str  # the weights' GEMMs, e.g. fp8_block (DeepGEMM, block-scaled FP8) or bfloat16
    moe_dtype: str
    attn_dtype: str  # MLA's core: bfloat16 on every engine the database measures
    kv_dtype: str  # the KV cache: bfloat16 or fp8
    bmm_dtype: str
    ep: int
    n_experts: int  # the model's routed experts (without EPLB's replicas)

    def gemm(self, m: int, n: int, k: int, dtype: str | None = None) -> tuple[str, dict]:
        return "gemm", {"m": max(1, int(m)), "n": int(n), "k": int(k), "dtype": dtype or self.gemm_dtype}

    def layer(self, op: str, s: dict) -> list[tuple[str, dict]]:
        """The kernels of one call of a layer-level operator."""
        if op == "gemm":
            return [self.gemm(s["m"], s["n"], s["k"])]
        if op == "ffn":  # its RMSNorm, gate+up, SwiGLU, down (V3I model.py: MLP; the block's ffn_norm)
            return [elementwise(s["tokens"], s["hidden"]), self.gemm(s["tokens"], 2 * s["inter"], s["hidden"]),
                    elementwise(s["tokens"], s["inter"]), self.gemm(s["tokens"], s["hidden"], s["inter"])]
        if op == "moe":
            return self._moe(s)
        if op == "mla":
            return self._mla(s)
        return [(op, s)]  # attn (MHA/GQA): one kernel the database does not split

    def passes(self, op: str, s: dict, pass_: str) -> list[tuple[str, dict, str]]:
        """(kernel, shape, pass) of one call in pass `fwd`, `bwd` or `fwd_bwd`. A training backward reads
        its GEMMs from the same forward GEMM measurements: for Y[m,n] = X[m,k] W[k,n], the input gradient
        dX = dY W^T is a GEMM of (m, k, n) and the weight gradient dW = X^T dY one of (k, n, m). Every other
        kernel's backward is one `bwd` call of its own (the database measures none: the roofline, 2x its
        forward's counts)."""
        out = []
        for kop, ks in self.layer(op, s):
            if pass_ in ("fwd", "fwd_bwd"):
                out.append((kop, ks, "fwd"))
            if pass_ in ("bwd", "fwd_bwd"):
                out += _backward(kop, ks)
        return out

    def _moe(self, s: dict) -> list[tuple[str, dict]]:
        """Routed experts at the busiest rank: its `tokens` token-equivalents of selections are what a
        balanced group of tokens x ep tokens gives each rank, so the kernel runs at that group size."""
        hidden = s["hidden"]
        # the router runs on the attention rank's own tokens; the busiest EP rank's count stands in for them
        out = [self.gemm(s["tokens"], self.n_experts, hidden, "bfloat16"),
               ("moe_experts", {"tokens": s["tokens"] * self.ep, "hidden": hidden, "inter": s["inter"],
                                "top_k": s["top_k"], "experts": self.n_experts, "ep": self.ep, "tp": s.get("tp", 1),
                                "kernel": EXPERT_KERNEL[s.get("a2a")], "dtype": self.moe_dtype})]
        if s.get("shared_inter"):
            out += self.layer("ffn", {"tokens": s["tokens"], "hidden": hidden, "inter": s["shared_inter"]})
        return out

    def _mla(self, s: dict) -> list[tuple[str, dict]]:
        b, q, ctx, h = s["b"], s["q"], s["ctx"], s["heads"]
        tokens, qk = b * q, s["nope"] + s["rope"]
        down = [self.gemm(tokens, s["q_lora"] + s["kv_lora"] + s["rope"], s["hidden"]),
                self.gemm(tokens, h * qk, s["q_lora"])] if s["q_lora"] else \
            [self.gemm(tokens, h * qk + s["kv_lora"] + s["rope"], s["hidden"])]
        out_proj = self.gemm(tokens, s["hidden"], h * s["v"])
        # V3I model.py: the block's attn_norm, MLA's q and kv RMSNorms, rotary embedding of q_pe and k_pe
        down = [elementwise(tokens, s["hidden"]), *down, elementwise(tokens, s["q_lora"] or 1),
                elementwise(tokens, s["kv_lora"]), elementwise(tokens, (h + 1) * s["rope"])]
        if s["mode"] == "absorbed":
            # MTP's q tokens per sequence are timed as q sequences of one token each (same cache reads per query)
            core = [("mla_bmm", {"tokens": tokens, "heads": h, "stage": "pre", "dtype": self.bmm_dtype}),
                    ("mla_generation", {"b": tokens, "ctx": ctx, "heads": h, "dtype": self.attn_dtype,
                                        "kv_dtype": self.kv_dtype}),
                    ("mla_bmm", {"tokens": tokens, "heads": h, "stage": "post", "dtype": self.bmm_dtype})]
            return down + core + [out_proj]
        kv_b = self.gemm(tokens, h * (s["nope"] + s["v"]), s["kv_lora"])
        return down + [kv_b, ("mla_context", {"b": b, "isl": equal_work_isl(q, ctx), "heads": h,
                                              "dtype": self.attn_dtype, "kv_dtype": self.kv_dtype}), out_proj]


def _backward(kop: str, ks: dict) -> list[tuple[str, dict, str]]:
    if kop != "gemm":
        return [(kop, ks, "bwd")]
    m, n, k = ks["m"], ks["n"], ks["k"]
    return [("gemm", {**ks, "n": k, "k": n}, "fwd"), ("gemm", {**ks, "m": k, "k": m}, "fwd")]


def elementwise(tokens: int, width: int) -> tuple[str, dict]:
    """A memory-bound elementwise kernel (RMSNorm, activation, rotary embedding) over tokens x width BF16."""
    return "elementwise", {"tokens": max(1, int(tokens)), "width": int(width), "dtype": "bfloat16"}


def equal_work_isl(q: int, ctx: int) -> int:
    """The prompt length whose causal prefill has as many query-key pairs as `q` new tokens at the end of
    `ctx` (the database's prefill rows start from an empty cache; a chunk after a prefix is timed at the
    same attention work)."""
    pairs = causal_pairs(q, ctx)
    return max(1, round(((8 * pairs + 1) ** 0.5 - 1) / 2))
