"""Model hyper-parameters for the PyTorch layers, built from a HuggingFace-style config dict.

kernels/ depends only on torch, so it reads the same key names as `scenarios/models/*.yaml` (which follow
HF config.json) without importing costmodel.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field


@dataclass
class ModelArgs:
    vocab_size: int = 1024
    hidden_size: int = 256
    num_hidden_layers: int = 2
    num_attention_heads: int = 4
    attention: str = "mla"  # mha | gqa | mqa | mla
    num_key_value_heads: int | None = None
    head_dim: int | None = None
    # MLA (V2P §2.1)
    q_lora_rank: int | None = None
    kv_lora_rank: int = 64
    qk_nope_head_dim: int = 32
    qk_rope_head_dim: int = 16
    v_head_dim: int = 32
    # FFN
    ffn: str = "moe"  # dense | moe
    intermediate_size: int = 512
    n_routed_experts: int = 8
    n_shared_experts: int = 1
    num_experts_per_tok: int = 2
    moe_intermediate_size: int = 64
    shared_expert_intermediate_size: int | None = None
    first_k_dense_replace: int = 1
    moe_layer_freq: int = 1
    n_group: int = 1
    topk_group: int = 1
    topk_method: str = "greedy"  # greedy | group_limited_greedy | noaux_tc
    scoring_func: str = "softmax"  # softmax | sigmoid
    norm_topk_prob: bool = False
    routed_scaling_factor: float = 1.0
    # positions and norms
    max_position_embeddings: int = 4096
    max_seq_len: int = 16384  # longest sequence these layers will see: sizes the RoPE table (V3I: 4096 * 4)
    rope_theta: float = 10000.0
    rope_scaling: dict | None = field(default=None)
    rms_norm_eps: float = 1e-6
    tie_word_embeddings: bool = False

    @classmethod
    def from_hf(cls, cfg: dict, **overrides) -> ModelArgs:
        """Take the keys this package knows from a HF config dict (or a scenarios/models YAML mapping)."""
        known = {f.name for f in dataclasses.fields(cls)}
        args = {k: v for k, v in cfg.items() if k in known and v is not None}
        if "attention" not in cfg:
            heads = cfg.get("num_attention_heads", cls.num_attention_heads)
            kv = cfg.get("num_key_value_heads") or heads
            args["attention"] = "mla" if cfg.get("kv_lora_rank") else "mha" if kv == heads else "mqa" if kv == 1 else "gqa"
        if "ffn" not in cfg:
            args["ffn"] = "moe" if cfg.get("n_routed_experts") else "dense"
        if cfg.get("q_lora_rank") in (0, None):
            args["q_lora_rank"] = None  # V3I config_16B writes 0 for "no query compression"
        args.update(overrides)
        return cls(**args)

    @property
    def kv_heads(self) -> int:
        if self.attention == "mha":
            return self.num_attention_heads
        if self.attention == "mqa":
            return 1
        return self.num_key_value_heads or self.num_attention_heads

    @property
    def attn_head_dim(self) -> int:
        return self.head_dim or self.hidden_size // self.num_attention_heads

    @property
    def shared_width(self) -> int:
        if self.shared_expert_intermediate_size:
            return self.shared_expert_intermediate_size
        return self.n_shared_experts * self.moe_intermediate_size

    def is_moe_layer(self, layer: int) -> bool:
        return self.ffn == "moe" and layer >= self.first_k_dense_replace and layer % self.moe_layer_freq == 0
