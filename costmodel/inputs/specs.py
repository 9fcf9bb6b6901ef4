"""Validated specs: one pydantic model per concept, unknown keys rejected, loaded from scenarios/*.yaml.

Model keys follow HuggingFace `config.json` names so `planner import-hf` output is a valid model file.
Checks that need two specs at once (EP vs experts, layout vs cluster, memory) live in `feasibility.py`.
"""

from __future__ import annotations

import math
from statistics import NormalDist
from typing import Annotated, Literal

from pydantic import AliasChoices, BaseModel, ConfigDict, Field, Strict, field_validator, model_validator

from costmodel.inputs.budget import MAX_REQUESTS, MAX_VARIANTS
from costmodel.inputs.errors import FieldProblem

# Counts are whole numbers, never booleans (`num_hidden_layers: true` is refused, not read as 1); every
# number is finite (`allow_inf_nan` below): .inf and .nan are refused with the field's path.
PosInt = Annotated[int, Field(gt=0), Strict()]
NonNegInt = Annotated[int, Field(ge=0), Strict()]
PosFloat = Annotated[float, Field(gt=0)]
NonNegFloat = Annotated[float, Field(ge=0)]


MAX_TOKENS = 10_000_000  # a length beyond any model's context: larger ones are typos (and overflow int64 sums)
TokenCount = Annotated[int, Field(gt=0, le=MAX_TOKENS), Strict()]


class Spec(BaseModel):
    # strict: a boolean is never a number, and a quoted "1e12" is not one either (YAML reads 1e12 as one)
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False, strict=True)


class Sourced(Spec):
    """A constant and where it comes from: a key of docs/sources.md, "measured: ..." or "ASSUMPTION: ..."."""

    value: PosFloat
    source: str = Field(min_length=1)


# --------------------------------------------------------------------------------------------- model


class YarnScaling(Spec):
    """YaRN context extension (V2P §3.1.4); only its mscale affects the softmax scale."""

    type: Literal["yarn"] = "yarn"
    factor: PosFloat
    original_max_position_embeddings: PosInt
    beta_fast: PosFloat = 32
    beta_slow: PosFloat = 1
    mscale: PosFloat = 1.0
    mscale_all_dim: float = 0.0


class QuantizationConfig(Spec):
    """Checkpoint quantisation as in HF config.json (DeepSeek-V3 ships FP8 e4m3 weights)."""

    quant_method: Literal["fp8"]
    fmt: Literal["e4m3", "e5m2"] = "e4m3"
    activation_scheme: Literal["dynamic", "static"] = "dynamic"
    weight_block_size: tuple[PosInt, PosInt] | None = Field(None, strict=False)  # a YAML list is a tuple


class ModelSpec(Spec):
    """A decoder-only transformer: attention mha|gqa|mqa|mla, FFN dense|moe (HF config.json key names)."""

    name: str = Field(min_length=1)
    source: str = Field("", description="provenance of the numbers")
    attention: Literal["mha", "gqa", "mqa", "mla"]
    ffn: Literal["dense", "moe"]
    vocab_size: PosInt
    hidden_size: PosInt
    num_hidden_layers: PosInt
    num_attention_heads: PosInt
    num_key_value_heads: PosInt | None = Field(None, description="gqa: KV heads; mha: = heads; mqa: 1")
    head_dim: PosInt | None = Field(None, description="mha/gqa/mqa; default hidden_size / heads")
    attention_bias: bool = False
    # MLA (V2P §2.1): d'_c, d_c, d_h, d_h^R, v head dim
    q_lora_rank: PosInt | None = Field(None, description="d'_c; null = queries not compressed")
    kv_lora_rank: PosInt | None = None
    qk_nope_head_dim: PosInt | None = None
    qk_rope_head_dim: PosInt | None = None
    v_head_dim: PosInt | None = None
    # FFN
    intermediate_size: PosInt | None = Field(None, description="width of the dense FFN layers")
    hidden_act: Literal["silu"] = "silu"
    # DeepSeekMoE (V2P §2.2)
    n_routed_experts: PosInt | None = None
    n_shared_experts: NonNegInt = 0
    num_experts_per_tok: PosInt | None = None
    moe_intermediate_size: PosInt | None = None
    shared_expert_intermediate_size: PosInt | None = Field(
        None, description="total width of the shared FFN when it is one wide expert (Qwen-MoE)"
    )
    first_k_dense_replace: NonNegInt = 0
    moe_layer_freq: PosInt = 1
    n_group: PosInt = 1
    topk_group: PosInt = 1
    topk_method: Literal["greedy", "group_limited_greedy", "noaux_tc"] = "greedy"
    scoring_func: Literal["softmax", "sigmoid"] = "softmax"
    norm_topk_prob: bool = False
    routed_scaling_factor: PosFloat = 1.0
    aux_loss_alpha: float = Field(0.0, ge=0)
    seq_aux: bool = True
    num_nextn_predict_layers: NonNegInt = Field(0, description="MTP modules (V3); not in params_total")
    # embeddings, positions, norms, precision
    tie_word_embeddings: bool = False
    max_position_embeddings: PosInt = 4096
    rope_theta: PosFloat = 10000.0
    rope_scaling: YarnScaling | None = None
    rms_norm_eps: PosFloat = 1e-6
    torch_dtype: Literal["bfloat16", "float16", "float32"] = "bfloat16"
    quantization_config: QuantizationConfig | None = None

    @model_validator(mode="after")
    def _consistent(self) -> ModelSpec:
        for field, problem, fix in _model_problems(self):
            raise FieldProblem(field, problem, fix)
        return self

    # Derived dims used by every formula; kept here so no caller re-derives them.
    @property
    def kv_heads(self) -> int:
        return {"mha": self.num_attention_heads, "mqa": 1}.get(
            self.attention, self.num_key_value_heads or self.num_attention_heads
        )

    @property
    def attn_head_dim(self) -> int:
        """Per-head dim of q/k/v for mha/gqa/mqa."""
        return self.head_dim or self.hidden_size // self.num_attention_heads

    @property
    def qk_head_dim(self) -> int:
        if self.attention == "mla":
            return self.qk_nope_head_dim + self.qk_rope_head_dim
        return self.attn_head_dim

    @property
    def value_head_dim(self) -> int:
        return self.v_head_dim if self.attention == "mla" else self.attn_head_dim

    def is_moe_layer(self, layer: int) -> bool:
        """HF DeepSeek rule: MoE from first_k_dense_replace on, every moe_layer_freq-th layer."""
        return (
            self.ffn == "moe"
            and layer >= self.first_k_dense_replace
            and layer % self.moe_layer_freq == 0
        )

    @property
    def n_moe_layers(self) -> int:
        return sum(self.is_moe_layer(i) for i in range(self.num_hidden_layers))

    @property
    def shared_ffn_width(self) -> int:
        if self.shared_expert_intermediate_size is not None:
            return self.shared_expert_intermediate_size
        return self.n_shared_experts * (self.moe_intermediate_size or 0)

    @property
    def checkpoint_weight_bits(self) -> int:
        if self.quantization_config is not None:
            return 8
        return {"bfloat16": 16, "float16": 16, "float32": 32}[self.torch_dtype]


def _model_problems(m: ModelSpec) -> list[tuple[str, str, str]]:
    """Everything that makes a model spec inconsistent, as (field, problem, fix)."""
    out: list[tuple[str, str, str]] = []
    mla_fields = ("kv_lora_rank", "qk_nope_head_dim", "qk_rope_head_dim", "v_head_dim")
    if m.attention == "mla":
        for f in mla_fields:
            if getattr(m, f) is None:
                out.append((f, "is required for attention: mla", f"set {f} (DeepSeek-V2's values are in scenarios/models/deepseek-v2.yaml)"))
    else:
        for f in (*mla_fields, "q_lora_rank"):
            if getattr(m, f) is not None:
                out.append((f, f"only applies to attention: mla, not {m.attention}", f"remove {f} or set attention: mla"))
        if m.head_dim is None and m.hidden_size % m.num_attention_heads:
            out.append((
                "num_attention_heads",
                f"{m.num_attention_heads} heads do not divide hidden_size {m.hidden_size}",
                "use a head count that divides hidden_size, or set head_dim explicitly",
            ))
        kv = m.num_key_value_heads
        if m.attention == "mha" and kv not in (None, m.num_attention_heads):
            out.append(("num_key_value_heads", f"mha needs num_key_value_heads = num_attention_heads, got {kv}", "remove it or use attention: gqa"))
        if m.attention == "mqa" and kv not in (None, 1):
            out.append(("num_key_value_heads", f"mqa has exactly one KV head, got {kv}", "remove it or use attention: gqa"))
        if m.attention == "gqa":
            if kv is None:
                out.append(("num_key_value_heads", "is required for attention: gqa", "set the number of KV groups"))
            elif m.num_attention_heads % kv:
                out.append((
                    "num_key_value_heads",
                    f"{kv} KV heads do not divide {m.num_attention_heads} attention heads",
                    "use a KV head count that divides num_attention_heads",
                ))
    needs_dense = m.ffn == "dense" or m.first_k_dense_replace > 0 or m.moe_layer_freq > 1
    if needs_dense and m.intermediate_size is None:
        out.append(("intermediate_size", "is required for dense FFN layers", "set the dense FFN width"))
    if m.ffn == "moe":
        for f in ("n_routed_experts", "num_experts_per_tok", "moe_intermediate_size"):
            if getattr(m, f) is None:
                out.append((f, "is required for ffn: moe", f"set {f}"))
        if out:
            return out
        if m.num_experts_per_tok > m.n_routed_experts:
            out.append(("num_experts_per_tok", f"top-{m.num_experts_per_tok} exceeds {m.n_routed_experts} routed experts", "lower num_experts_per_tok"))
        if m.n_routed_experts % m.n_group:
            out.append(("n_group", f"{m.n_group} groups do not divide {m.n_routed_experts} routed experts", "use a group count that divides n_routed_experts"))
        if m.topk_group > m.n_group:
            out.append(("topk_group", f"topk_group {m.topk_group} exceeds n_group {m.n_group}", "set topk_group <= n_group"))
        if m.first_k_dense_replace >= m.num_hidden_layers:
            out.append(("first_k_dense_replace", "leaves no MoE layer", "set it below num_hidden_layers or use ffn: dense"))
    else:
        for f in ("n_routed_experts", "num_experts_per_tok", "moe_intermediate_size"):
            if getattr(m, f) is not None:
                out.append((f, "only applies to ffn: moe", f"remove {f} or set ffn: moe"))
    return out


# ------------------------------------------------------------------------------------------ hardware


class PeakFlops(Spec):
    bf16: Sourced
    fp8: Sourced | None = None
    fp4: Sourced | None = Field(None, description="NVFP4 tensor cores (Blackwell); none: 4-bit weights are "
                                                  "dequantised to the FP8 (else BF16) math")


NVFP4_BITS_PER_WEIGHT = 4 + 8 / 16  # NVFP4: an FP4 value, and one FP8 scale per block of 16 (NVFP4 in docs/sources.md)


def stored_bits(weight_bits: int) -> float:
    """Bits a weight occupies in memory: 4-bit weights are NVFP4 (4.5 with their block scales); FP8's
    per-block scales (one FP32 per 128 x 128) and wider formats are taken as their width."""
    return NVFP4_BITS_PER_WEIGHT if weight_bits == 4 else float(weight_bits)


class KernelDatabaseGPU(Spec):
    """Which GPU of the measured kernel database (kernel_db.py) times this one's kernels, and why."""

    gpu: str = Field(min_length=1, description="a GPU folder of aiconfigurator-core, e.g. h200_sxm")
    source: str = Field(min_length=1)


class GPUSpec(Spec):
    """One accelerator. Bandwidths are per GPU, per direction; FLOP/s are dense (not 2:4 sparse)."""

    name: str = Field(min_length=1)
    description: str = ""
    peak_flops_per_s: PeakFlops
    hbm_bytes: Sourced
    hbm_bw_bytes_per_s: Sourced
    nvlink_bw_bytes_per_s: Sourced
    nic_bw_bytes_per_s: Sourced
    price_usd_per_hour: Sourced
    kernel_database: KernelDatabaseGPU | None = Field(
        None, description="the kernel database's GPU whose measurements time this GPU's kernels (none: roofline)")
    nvlink_domain_gpus: PosInt = Field(8, le=576, description="the largest NVLink domain this GPU comes in: 8 for "
                                                              "an HGX node, 72 for an NVL72 rack")
    gpus_per_host: PosInt | None = Field(None, description="GPUs one host (one OS, one engine process group) "
                                         "holds when that is fewer than a node: an NVL72 compute tray's 4")

    def compute_precision(self, wanted: str) -> str:
        """The tensor-core precision used for `wanted` (bf16 | fp8 | fp4): the lowest the file gives a peak
        for, not below `wanted` (4-bit weights on a GPU without FP4 tensor cores run FP8, else BF16, math)."""
        peaks = self.peak_flops_per_s
        if wanted == "fp4" and peaks.fp4 is not None:
            return "fp4"
        return "fp8" if wanted in ("fp8", "fp4") and peaks.fp8 is not None else "bf16"

    def peak_flops(self, wanted: str) -> float:
        """Dense peak FLOP/s at the precision `compute_precision(wanted)` picks."""
        return getattr(self.peak_flops_per_s, self.compute_precision(wanted)).value


class ClusterSpec(Spec):
    name: str = ""
    gpu: GPUSpec
    gpus_per_node: PosInt = Field(8, description="GPUs in one NVLink domain: an HGX node (8), an NVL72 rack (72)")
    nodes: PosInt = 1

    @model_validator(mode="after")
    def _domain(self) -> ClusterSpec:
        if self.gpus_per_node > self.gpu.nvlink_domain_gpus:
            raise FieldProblem("gpus_per_node", f"{self.gpus_per_node} GPUs in one NVLink domain, but {self.gpu.name} "
                               f"comes in domains of at most {self.gpu.nvlink_domain_gpus}",
                               f"use gpus_per_node <= {self.gpu.nvlink_domain_gpus} and more nodes")
        return self

    @property
    def num_gpus(self) -> int:
        return self.gpus_per_node * self.nodes


# ------------------------------------------------------------------------------------ layout and runs


class Parallelism(Spec):
    """How the GPUs are split: world = tp * cp * pp * dp; EP is carved out of the DP ranks (ep divides dp) in
    training, out of the attention ranks (ep x etp divides tp x dp) in serving."""

    tp: PosInt = 1
    pp: PosInt = 1
    ep: PosInt = 1
    etp: PosInt = Field(1, validation_alias=AliasChoices("etp", "moe_tp"),
                        description="expert tensor parallelism (also `moe_tp`, the engines' name): each routed "
                                    "expert's FFN width split over etp GPUs, the experts over ep groups of them "
                                    "(serving; training: with moe_folding)")
    dp: PosInt = 1
    cp: PosInt = Field(1, le=64, description="training: context parallelism, each sequence split over cp GPUs "
                       "(ring attention; Megatron's order puts cp just outside tp)")
    zero_stage: Literal[0, 1, 2, 3] = 1
    schedule: Literal["gpipe", "1f1b", "zero-bubble", "dualpipe"] = "1f1b"
    virtual_stages: PosInt = Field(1, le=64, description="model chunks per pipeline rank (Megatron's interleaved "
                                   "1F1B, --num-virtual-stages-per-pipeline-rank); more than 1 needs schedule 1f1b")
    micro_batches: PosInt = 1
    layer_split: list[NonNegInt] | None = Field(None, max_length=1024, description="layers of each virtual stage in "
                                                "order (pp x virtual_stages counts; Megatron-Core's pipeline layout): "
                                                "the first also holds the embedding, the last the head and MTP")
    overlap_moe_a2a: bool = Field(False, description="Megatron-Core's combined 1F1B (--overlap-moe-expert-parallel-comm): "
                                  "in 1F1B's steady phase one micro-batch's forward and another's backward run as one "
                                  "pair, each one's EP all-to-all under the other's compute")
    moe_folding: bool = Field(False, description="training: EP over the tp x dp GPUs of a stage (Megatron-Core's MoE "
                              "parallel folding, expert TP 1), not carved out of DP alone; needs tp just inside dp "
                              "in placement")
    recompute: Literal["none", "selective", "full"] = "none"
    placement: tuple[Literal["tp", "pp", "dp"], Literal["tp", "pp", "dp"], Literal["tp", "pp", "dp"]] = Field(
        ("tp", "dp", "pp"), strict=False, description="rank order, innermost first: which groups share a node (EP = inner DP)")
    overlap_grad_sync: bool = Field(True, description="ZeRO gradient reduce-scatter / all-gather overlapped")
    overlap_tp_comm: bool = Field(False, description="sequence-parallel all-gather/reduce-scatter overlapped "
                                                     "with the GEMM they feed (chunked, as DeepSeek LLM's HAI-LLM does)")

    @model_validator(mode="after")
    def _placement(self) -> Parallelism:
        if sorted(self.placement) != ["dp", "pp", "tp"]:
            raise FieldProblem("placement", f"{list(self.placement)} must name tp, pp and dp once each",
                               "write e.g. [tp, dp, pp] (innermost first)")
        return self

    @property
    def world_size(self) -> int:
        return self.tp * self.cp * self.pp * self.dp

    @property
    def weight_data_parallel(self) -> int:
        """GPUs of a stage holding the same dense weights: the data-parallel ranks and, within each, the
        context-parallel ones (Megatron-Core shards the optimizer over DP x CP)."""
        return self.dp * self.cp

    @property
    def stage_gpus(self) -> int:
        """GPUs of one pipeline stage (tp x cp x dp): the grid a folded expert layout spreads over."""
        return self.tp * self.cp * self.dp

    @property
    def dp_just_outside_tp(self) -> bool:
        """Whether `placement` puts dp right outside tp (Megatron's tp-cp-dp order), as folding and cp need."""
        order = list(self.placement)
        return order.index("dp") == order.index("tp") + 1

    @property
    def expert_data_parallel(self) -> int:
        """Replicas of one routed expert in a training stage: whole experts on every GPU (expert TP 1), so
        the tp x cp x dp GPUs of a stage over ep, folded or carved out of DP (the layout differs, not the
        count: a TP rank's experts see its own tokens and need their gradients reduced with its peers')."""
        return max(1, self.stage_gpus // (self.ep * self.etp))

    @property
    def expert_group(self) -> int:
        """GPUs one layer's routed experts are spread over: ep groups of etp GPUs each."""
        return self.ep * self.etp


class LengthDist(Spec):
    """Token-length distribution of prompts or outputs."""

    dist: Literal["fixed", "uniform", "lognormal"] = "fixed"
    value: TokenCount | None = Field(None, description="fixed")
    low: TokenCount | None = Field(None, description="uniform, inclusive")
    high: TokenCount | None = Field(None, description="uniform, inclusive")
    median: Annotated[float, Field(gt=0, le=MAX_TOKENS)] | None = Field(None, description="lognormal")
    sigma: Annotated[float, Field(gt=0, le=5)] | None = Field(
        None, description="lognormal, of ln(length); at most 5 (a 150x spread either way)")
    max: TokenCount | None = Field(None, description="lognormal: truncate here")

    @model_validator(mode="after")
    def _params(self) -> LengthDist:
        need = {"fixed": ("value",), "uniform": ("low", "high"), "lognormal": ("median", "sigma")}[self.dist]
        for f in need:
            if getattr(self, f) is None:
                raise FieldProblem(f, f"is required for dist: {self.dist}", f"set {f}")
        if self.dist == "uniform" and self.low > self.high:
            raise FieldProblem("low", f"low {self.low} exceeds high {self.high}", "swap them")
        if self.dist == "lognormal" and self.max is not None and self.median > self.max:
            raise FieldProblem("median", f"median {self.median:g} is above max {self.max} (most draws would be the max)",
                               "lower the median or raise max")
        return self

    @property
    def mean(self) -> float:
        """The mean of what is sampled; a lognormal is clipped at `max`: E[min(X, M)]."""
        if self.dist == "fixed":
            return float(self.value)
        if self.dist == "uniform":
            return (self.low + self.high) / 2
        mu, s = math.log(self.median), self.sigma
        full = math.exp(mu + s * s / 2)
        if self.max is None:
            return full
        z = (math.log(self.max) - mu) / s
        below = full * _normal_cdf(z - s)  # E[X; X <= M]
        return below + self.max * (1 - _normal_cdf(z))

    def percentile(self, q: float) -> float:
        """The q-th percentile (0-100) of what is sampled (a lognormal clipped at `max`)."""
        if self.dist == "fixed":
            return float(self.value)
        if self.dist == "uniform":
            return self.low + (self.high - self.low) * q / 100
        x = self.median * math.exp(self.sigma * NormalDist().inv_cdf(min(max(q / 100, 1e-9), 1 - 1e-9)))
        return min(x, self.max) if self.max is not None else x


def _normal_cdf(x: float) -> float:
    return 0.5 * (1 + math.erf(x / math.sqrt(2)))


class WorkloadSpec(Spec):
    """Who sends what, when: lengths, and arrivals (Poisson at a rate, a closed loop of users, all at
    once, or a CSV trace with columns arrival_s, prompt_tokens, output_tokens)."""

    name: str = ""
    description: str = ""
    prompt_tokens: LengthDist
    output_tokens: LengthDist
    arrival: Literal["poisson", "closed", "burst", "trace"] = "poisson"
    rate_per_s: PosFloat | None = Field(None, description="poisson: mean requests per second")
    users: PosInt | None = Field(None, description="closed: concurrent users, each sends again on completion")
    think_time_s: float = Field(0.0, ge=0, description="closed: pause between a reply and the next request")
    ramp_s: Annotated[float, Field(ge=0, le=1e6)] | Literal["one_request"] = Field(
        0.0, description="closed: the users start one after another, evenly over this many seconds (out of step, "
        "as in a long benchmark's steady state; 0: all at once); one_request: over one request's latency at "
        "full load, as the simulator times it")
    requests: Annotated[int, Field(gt=0, le=MAX_REQUESTS), Strict()] = Field(
        1000, description="how many requests to simulate (at most 200,000: the work budget, costmodel/inputs/budget.py)")
    saturation_requests: Annotated[int, Field(gt=0, le=MAX_REQUESTS), Strict()] | None = Field(
        None, description="requests queued at once for the two maximum-throughput runs; by default enough to "
        "fill the KV cache three times (at least `requests`, at most 200,000); fewer may not saturate")
    trace_csv: str | None = Field(None, description="trace: CSV path, relative to the workload file")
    prefix_cache_hit_rate: float = Field(0.0, ge=0, lt=1, description="share of each prompt's tokens already in "
                                         "a prefix cache when it is admitted: prefill computes only the rest")
    seed: NonNegInt = 0

    @model_validator(mode="after")
    def _arrival(self) -> WorkloadSpec:
        need = {"poisson": "rate_per_s", "closed": "users", "trace": "trace_csv"}.get(self.arrival)
        if need and getattr(self, need) is None:
            raise FieldProblem(need, f"is required for arrival: {self.arrival}", f"set {need}")
        if self.ramp_s != 0 and self.arrival != "closed":
            raise FieldProblem("ramp_s", f"ramps a closed loop's users, but arrival is {self.arrival}",
                               "remove ramp_s, or use arrival: closed")
        return self


class RoutingSpec(Spec):
    """How tokens spread over the routed experts (routing.py): the share of the top-k selections each
    expert receives. Balanced routing (V3's aux-loss-free balancing) is close to `uniform`; `zipf` and
    `measured` describe skewed traffic."""

    distribution: Literal["uniform", "zipf", "measured"] = "uniform"
    zipf_s: float = Field(1.0, ge=0, le=4, description="zipf: share ∝ 1 / rank^s (s = 0 is uniform)")
    expert_loads: list[Annotated[float, Field(ge=0)]] | None = Field(
        None, description="measured: relative load of each routed expert, in expert order")
    seed: int = Field(0, ge=0, description="zipf: which experts are popular; Monte Carlo draws")

    @model_validator(mode="after")
    def _loads(self) -> RoutingSpec:
        if self.distribution == "measured" and not self.expert_loads:
            raise FieldProblem("expert_loads", "is required for distribution: measured",
                               "list one relative load per routed expert (or use load_csv in the scenario)")
        if self.expert_loads is not None and not any(x > 0 for x in self.expert_loads):
            raise FieldProblem("expert_loads", "has no positive load", "give each expert its measured load")
        return self


class MTPSpec(Spec):
    """Multi-token prediction used for speculative decoding (V3P §2.2): each decode step verifies
    `tokens` drafted tokens after the current one; draft j is kept only if drafts 1..j all are."""

    tokens: PosInt = Field(1, le=8, description="drafted tokens per decode step (V3 has one MTP module)")
    acceptance: Annotated[float, Field(gt=0, le=1)] | list[Annotated[float, Field(gt=0, le=1)]] = Field(
        description="probability a draft is accepted: one value for every position, or one per position")

    @model_validator(mode="after")
    def _positions(self) -> MTPSpec:
        if isinstance(self.acceptance, list) and len(self.acceptance) != self.tokens:
            raise FieldProblem("acceptance", f"has {len(self.acceptance)} values for {self.tokens} drafted tokens",
                               "give one probability per drafted token, or a single value")
        return self

    def position_acceptance(self) -> list[float]:
        a = self.acceptance
        return list(a) if isinstance(a, list) else [a] * self.tokens

    @property
    def expected_tokens_per_step(self) -> float:
        """1 + Σ_j Π_{i≤j} a_i: the verified token plus the accepted prefix of the drafts."""
        out, run = 1.0, 1.0
        for a in self.position_acceptance():
            run *= a
            out += run
        return out


class TrainingMemorySpec(Spec):
    """Bytes per parameter and per cached activation element. Defaults are the ZeRO paper's mixed
    precision (§3.1: BF16 weights and gradients, FP32 master weights and Adam moments: 2 + 2 + 12);
    DeepSeek-V3 keeps FP32 gradients for accumulation, BF16 moments and FP8-cached activations (V3P §3.3)."""

    weight_bytes: Annotated[float, Field(gt=0, le=4)] = 2
    grad_bytes: Annotated[float, Field(gt=0, le=4)] = 2
    master_weight_bytes: Annotated[float, Field(ge=0, le=4)] = Field(4, description="0: no separate master copy")
    optimizer_moment_bytes: Annotated[float, Field(gt=0, le=4)] = Field(4, description="each of Adam's m and v")
    activation_bytes: Annotated[float, Field(gt=0, le=4)] = Field(2, description="cached activations (FP8: 1)")
    ema_on_gpu: bool = Field(False, description="an FP32 EMA of the weights in GPU memory (V3 keeps it in CPU)")

    @property
    def optimizer_bytes(self) -> float:
        return self.master_weight_bytes + 2 * self.optimizer_moment_bytes + (4 if self.ema_on_gpu else 0)


class BatchRampSpec(Spec):
    """The global batch grows linearly with the tokens seen, from `start_seqs` to the run's batch, over
    the first `tokens` tokens (V3P §4.2: 3,072 -> 15,360 sequences over 469B tokens)."""

    start_seqs: PosInt
    tokens: PosFloat


# LL3 §3.3.4: 419 unexpected interruptions in a 54-day snapshot of Llama 3 405B's pre-training on 16,384
# H100, so one GPU interrupts the job every 16,384 x 54 x 24 / 419 = 50,677 GPU-hours
LLAMA3_GPU_MTBF_HOURS = 16_384 * 54 * 24 / 419
LLAMA3_STORAGE_BYTES_PER_S = 2e12  # LL3 §3.3.1: Tectonic sustains 2 TB/s (7 TB/s peak) for checkpoints


class ReliabilitySpec(Spec):
    """What failures and checkpoints cost a whole run (counts/reliability.py). Unset values follow from
    sourced rates: the interruption rate and checkpoint storage bandwidth of Llama 3's run, the checkpoint
    interval that minimises the expected loss (Young/Daly)."""

    gpu_mtbf_hours: PosFloat = Field(LLAMA3_GPU_MTBF_HOURS, description="GPU-hours between job interruptions a GPU causes "
                                     "(LL3: 50,677 = 16,384 H100 x 54 days / 419 unexpected interruptions)")
    storage_bytes_per_s: PosFloat = Field(LLAMA3_STORAGE_BYTES_PER_S, description="checkpoint write and read bandwidth "
                                          "of the whole job (LL3: 2 TB/s sustained)")
    checkpoint_write_s: PosFloat | None = Field(None, description="default: weights and optimizer state over "
                                                "storage_bytes_per_s")
    checkpoint_interval_s: PosFloat | None = Field(None, description="default: Young/Daly, sqrt(2 x write x job MTBF)")
    restart_s: NonNegFloat = Field(600, description="relaunching the job after an interruption, before the "
                                   "checkpoint is read back (ASSUMPTION: 10 minutes; LL3 gives no figure)")


class EngineSpec(Spec):
    """The serving engine whose measured kernels time the instance (the kernel database, kernel_db.py)."""

    name: Literal["sglang", "vllm", "trtllm"]
    version: str = Field("current", min_length=1, description="a version the database holds; current = its own")


class TrainingSpec(Spec):
    cluster: ClusterSpec
    parallelism: Parallelism = Parallelism()
    tokens: PosFloat = Field(1e12, description="tokens of the whole run")
    seq_len: PosInt = 4096
    global_batch_seqs: PosInt = 1
    precision: Literal["bf16", "fp8"] = "bf16"
    dispatch_bits: Literal[8, 16] = Field(16, description="MoE dispatch payload (V3: FP8); combine is BF16")
    capacity_factor: PosFloat | None = Field(None, description="device-level token dropping (V2P §2.2.4)")
    routing: RoutingSpec = RoutingSpec()
    memory: TrainingMemorySpec = TrainingMemorySpec()
    batch_ramp: BatchRampSpec | None = Field(None, description="a smaller batch early in the run, counted in its cost")
    overlap_shared_experts: bool = Field(True, description="shared-expert compute hides the dispatch (V2P §3.1.3)")
    reliability: ReliabilitySpec | None = Field(None, description="failures, checkpoints and restarts in the whole-run "
                                                "cost (goodput); none: a run that never fails")
    stack_efficiency: Sourced | None = Field(
        None, description="measured fraction of the kernel benchmarks' speed the training software reaches; "
                          "default: calibration.TRAINING_STACK_EFFICIENCY, derived from DeepSeek's V3 profile")
    all_to_all_efficiency: Sourced | None = Field(
        None, description="measured fraction of DeepEP's benchmarked all-to-all rate the training stack reaches; "
                          "default: calibration.TRAINING_A2A_EFFICIENCY, derived from DeepSeek's V3 profile")
    kernel_database: EngineSpec | None = Field(
        None, description="time the GEMMs (forward, input and weight gradients) with NVIDIA's kernel database "
                          "as measured under this engine's GEMM libraries; the rest keeps the roofline")
    notes: str = ""

    @property
    def micro_batch_seqs(self) -> int:
        """Sequences in one micro-batch of one data-parallel replica."""
        return self.global_batch_seqs // (self.parallelism.dp * self.parallelism.micro_batches)


class PrefillPool(Spec):
    """Prefill/decode disaggregation: prompts run on a separate instance of the same GPU type and their
    KV cache crosses the NIC to the decode instance (the variant's own cluster and layout)."""

    gpus_per_node: PosInt = 8
    nodes: PosInt = 1
    parallelism: Parallelism = Parallelism(zero_stage=0)
    redundant_experts: NonNegInt = Field(0, description="extra expert replicas over the prefill EP group")
    eplb: Literal["hierarchical", "global"] = "hierarchical"
    two_batch_overlap: bool = Field(False, description="two micro-batches: one's all-to-all under the other's compute")
    instances: PosInt = Field(1, le=64, description="prefill instances of this layout in one serving unit")
    decode_instances: PosInt = Field(1, le=64, description="decode instances (the variant's own cluster and layout) "
                                                           "they hand their requests to, round robin")
    max_batch_tokens: PosInt | None = Field(None, description="the prefill instance's tokens per iteration per "
                                            "attention rank; default: the decode instance's setting")
    max_running: PosInt | None = Field(None, description="requests in flight per prefill attention rank; default: "
                                       "the decode instance's")


def exactly_one(spec: Spec, first: str, second: str) -> None:
    """Raise unless exactly one of two alternative fields of `spec` is set."""
    if (getattr(spec, first) is None) == (getattr(spec, second) is None):
        raise FieldProblem(first, f"give exactly one of {first} and {second}",
                           f"set {first} (or {second}) and remove the other")


class FleetSpec(Spec):
    """Traffic a fleet of serving units must carry; lengths come from the variant's workload."""

    requests_per_s: PosFloat | None = Field(None, le=1e6, description="mean request rate of the whole service")
    tokens_per_day: PosFloat | None = Field(None, le=1e15, description="or: input + output tokens per day")
    prefix_cache_hit_rate: float = Field(0.0, ge=0, lt=1, description="share of prompt tokens found in the KV cache store")

    @field_validator("requests_per_s", "tokens_per_day", mode="before")
    @classmethod
    def _number(cls, v):
        if isinstance(v, bool):  # YAML's true would otherwise count as 1 request/s
            raise ValueError("must be a number, not true/false")
        return v

    @model_validator(mode="after")
    def _traffic(self) -> FleetSpec:
        exactly_one(self, "requests_per_s", "tokens_per_day")
        return self

    def request_rate(self, mean_prompt: float, mean_output: float) -> float:
        """Requests per second: as given, or tokens a day over the mean request's tokens."""
        return self.requests_per_s or self.tokens_per_day / 86400 / (mean_prompt + mean_output)


DEFAULT_BATCH_TOKENS = 8192  # TensorRT-LLM's max_num_tokens (TRTA in docs/sources.md); the planner's without an engine
MIB = 2**20


def sglang_large_gpu(gpu: GPUSpec) -> bool:
    """SGLang's top memory tier (SGLS: server_args.py sizes its chunk and CUDA graphs by it): 160 GiB of HBM
    or more (B200, B300, GB200), against H100 and H200 below."""
    return gpu.hbm_bytes.value >= 160 * 1024 * MIB


def engine_batch_tokens(engine: str | None, gpu: GPUSpec, dp: int) -> int:
    """An engine's default token budget per attention rank and iteration, as its launcher sets it (SGLS, VLLMA,
    TRTA in docs/sources.md): SGLang's chunked_prefill_size is 8,192 on a GPU under 160 GiB of HBM (H100,
    H200) and 16,384 above (B200, B300, GB200), divided among its DP-attention ranks; vLLM's API server
    takes 8,192 on a GPU of at least 70 GiB that is not an A100, else 2,048, per engine core (DP rank);
    TensorRT-LLM's max_num_tokens is 8,192 per rank."""
    hbm_mib = gpu.hbm_bytes.value / MIB
    if engine == "sglang":
        return max(1, (16384 if sglang_large_gpu(gpu) else 8192) // dp)
    if engine == "vllm":
        return 8192 if hbm_mib >= 70 * 1024 and "a100" not in gpu.name.lower() else 2048
    return DEFAULT_BATCH_TOKENS


ENGINE_WEIGHT_BITS = (4, 8, 16)  # NVFP4, FP8, BF16: the kernel database's weight precisions


class InferenceSpec(Spec):
    cluster: ClusterSpec
    parallelism: Parallelism = Parallelism(zero_stage=0)
    weight_bits: PosInt = Field(16, le=32)
    moe_weight_bits: PosInt | None = Field(None, le=32, description="the routed experts' weights when they differ "
                                           "from weight_bits (e.g. 4: NVFP4 experts beside FP8 attention)")
    fp8_gemm_scaling: Literal["block", "tensor"] = Field(
        "block", description="8-bit weights' GEMM scales: per 128x128 block (DeepGEMM's) or one per tensor")
    fp8_moe_scaling: Literal["block", "tensor"] = Field("block", description="the same, for the routed experts")
    kv_bits: PosFloat = Field(16, ge=1, le=32, description="average bits per cached element; fractional allowed")
    attention_bits: Literal[16, 8] = Field(16, description="attention's math: 16 (BF16) or 8 (FP8: MLA's absorbed "
                                                           "matmuls and attention core in FP8)")
    workload: WorkloadSpec | None = None
    max_batch_tokens: PosInt | None = Field(
        None, description="tokens per iteration per attention rank (chunked prefill); default: the engine's "
                          "(engine_batch_tokens), 8,192 without one")
    chunked_prefill: bool = Field(True, description="split prompts across iterations; else admit whole prompts")
    mixed_batches: bool | None = Field(
        None, description="prefill chunks share an iteration with the running decodes; false: a prefill batch runs "
                          "alone, first (SGLang without --enable-mixed-chunk). Default: the engine's (SGLS in "
                          "docs/sources.md): false for sglang; true for vllm, trtllm and no engine")
    max_running: PosInt = Field(4096, description="requests in flight per attention rank")
    block_tokens: PosInt = Field(64, description="paged KV block size (FlashMLA uses 64: FMLA in docs/sources.md)")
    routing: RoutingSpec = RoutingSpec()
    redundant_experts: NonNegInt = Field(0, description="extra expert replicas over the EP group (EPLB)")
    eplb: Literal["hierarchical", "global"] = Field(
        "hierarchical", description="replica placement: per node (prefill, smaller EP) or global (decode)")
    all_to_all: Literal["normal", "low_latency"] = Field(
        "normal", description="DeepEP kernels of decode-only iterations: normal (NVLink + RDMA, SMs) or "
                              "low-latency (pure RDMA, no SMs); prefill always uses the normal kernels")
    two_batch_overlap: bool = Field(False, description="two micro-batches: one's all-to-all under the other's compute")
    mtp: MTPSpec | None = Field(None, description="speculative decoding with the model's MTP module")
    stack_efficiency: Sourced | None = Field(None, description="measured fraction of kernel speed reached end to end")
    engine: EngineSpec | None = Field(None, description="time kernels from the engine's measurements on this GPU")
    profile: str | None = Field(None, min_length=1, description="a profile CSV (planner profile or import-profile) "
                                                                 "timing the kernels; relative to the scenario file")
    prefill_pool: PrefillPool | None = Field(None, description="disaggregated prefill instance; none = shared")
    fleet: FleetSpec | None = Field(None, description="size a fleet of these units for this traffic")
    notes: str = ""

    @model_validator(mode="after")
    def _engine_precisions(self) -> InferenceSpec:
        """An engine runs weights in NVFP4, FP8 or BF16, the precisions the kernel database measures: another
        width would be timed as the nearest measured one without saying so."""
        if self.engine is None:
            return self
        for name in ("weight_bits", "moe_weight_bits"):
            bits = getattr(self, name)
            if bits is not None and bits not in ENGINE_WEIGHT_BITS:
                raise FieldProblem(name, f"{bits}-bit weights are not a precision {self.engine.name} runs",
                                   "use 4 (NVFP4), 8 (FP8) or 16 (BF16), or drop engine: to explore other widths "
                                   "on the roofline")
        return self

    @property
    def batch_tokens(self) -> int:
        """Tokens an iteration carries per attention rank: max_batch_tokens, else the engine's default."""
        if self.max_batch_tokens is not None:
            return self.max_batch_tokens
        return engine_batch_tokens(self.engine.name if self.engine else None, self.cluster.gpu, self.parallelism.dp)

    @property
    def mixes_batches(self) -> bool:
        """Whether prefill chunks share iterations with decodes: mixed_batches, else the engine's default
        (SGLang's scheduler runs a new prefill batch alone, before the decodes: enable_mixed_chunk is off)."""
        if self.mixed_batches is not None:
            return self.mixed_batches
        return self.engine is None or self.engine.name != "sglang"

    @property
    def expert_bits(self) -> int:
        """The routed experts' weight bits: moe_weight_bits, else weight_bits."""
        return self.moe_weight_bits or self.weight_bits

    def prefill_instance(self) -> InferenceSpec:
        """The disaggregated prefill pool as an instance of its own: same GPU, its own nodes and layout."""
        pp = self.prefill_pool
        cluster = self.cluster.model_copy(update={"gpus_per_node": pp.gpus_per_node, "nodes": pp.nodes})
        own = {k: v for k in ("max_batch_tokens", "max_running") if (v := getattr(pp, k)) is not None}
        return self.model_copy(update={"cluster": cluster, "parallelism": pp.parallelism, "prefill_pool": None,
                                       "redundant_experts": pp.redundant_experts, "eplb": pp.eplb,
                                       "two_batch_overlap": pp.two_batch_overlap, "all_to_all": "normal",
                                       "mtp": None, **own})


class Variant(Spec):
    name: str = Field(min_length=1)
    model: ModelSpec
    training: TrainingSpec | None = None
    inference: InferenceSpec | None = None
    notes: str = ""


class Scenario(Spec):
    """A named set of variants to compare against a baseline variant."""

    name: str = Field(min_length=1)
    description: str = ""
    baseline: str | None = Field(None, description="variant the ratios are taken against; default: the first")
    variants: list[Variant] = Field(min_length=1, max_length=MAX_VARIANTS)

    @model_validator(mode="after")
    def _names(self) -> Scenario:
        seen: set[str] = set()
        for i, v in enumerate(self.variants):
            if v.name in seen:
                raise FieldProblem(f"variants.{i}.name", f"duplicate variant name {v.name!r}", "give each variant its own name")
            seen.add(v.name)
        if self.baseline is not None and self.baseline not in seen:
            raise FieldProblem("baseline", f"no variant named {self.baseline!r}", f"use one of: {', '.join(seen)}")
        return self

    @property
    def baseline_variant(self) -> Variant:
        return next((v for v in self.variants if v.name == self.baseline), self.variants[0])
