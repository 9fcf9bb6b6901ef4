"""HuggingFace `config.json` → our model YAML. DeepSeek keys map one to one; Llama, Mistral, Mixtral,
Qwen2/Qwen3 (dense and MoE) keys are renamed. Keys that do not affect cost are dropped and listed."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from costmodel.inputs.errors import PlannerError
from costmodel.inputs.loader import validate
from costmodel.inputs.specs import ModelSpec, QuantizationConfig, YarnScaling

SUPPORTED = ("deepseek", "deepseek_v2", "deepseek_v3", "kimi_k2", "llama", "mistral", "mixtral", "qwen2", "qwen2_moe",
             "qwen3", "qwen3_moe")


def _attention_kind(cfg: dict) -> str:
    if cfg.get("kv_lora_rank"):
        return "mla"
    heads = cfg["num_attention_heads"]
    kv = cfg.get("num_key_value_heads") or heads
    return "mha" if kv == heads else "mqa" if kv == 1 else "gqa"


# Keys a vendor's config must carry for the renaming below (the vendor's own names).
VENDOR_REQUIRED = {"mixtral": ("num_local_experts", "intermediate_size", "num_experts_per_tok"),
                   "qwen2_moe": ("num_experts", "moe_intermediate_size", "num_experts_per_tok"),
                   "qwen3_moe": ("num_experts", "moe_intermediate_size", "num_experts_per_tok")}


def _renamed(cfg: dict, model_type: str) -> dict:
    """Vendor keys under our (DeepSeek/HF) names."""
    for key in VENDOR_REQUIRED.get(model_type, ()):
        if cfg.get(key) is None:
            raise PlannerError(f"a {model_type} config needs {key!r}, and this one has none", field=key,
                               fix=f"pass the model's complete config.json (a {model_type} config names {key})")
    out = dict(cfg)
    if model_type == "mixtral":
        out["n_routed_experts"] = out.pop("num_local_experts")
        out["moe_intermediate_size"] = out.pop("intermediate_size")
        out["norm_topk_prob"] = True  # Mixtral renormalises the top-2 softmax weights
    if model_type in ("qwen2_moe", "qwen3_moe"):
        out["n_routed_experts"] = out.pop("num_experts")
        out["moe_layer_freq"] = out.pop("decoder_sparse_step", 1)
        if out.pop("mlp_only_layers", None):
            raise PlannerError(
                "mlp_only_layers (dense layers at arbitrary positions) is not supported",
                field="mlp_only_layers",
                fix="use a config whose dense layers come first (first_k_dense_replace)",
            )
        if not out.get("shared_expert_intermediate_size"):
            out.pop("shared_expert_intermediate_size", None)
    if model_type in ("qwen2", "qwen2_moe"):
        out["attention_bias"] = True  # Qwen2 q/k/v projections carry biases
    return out


SPARSE_INDEXER_KEYS = ("index_topk", "index_n_heads", "index_head_dim")  # DeepSeek-V3.2's sparse attention
LINEAR_ATTENTION_KEYS = ("linear_num_key_heads", "linear_num_value_heads", "linear_key_head_dim",
                         "linear_conv_kernel_dim", "full_attention_interval", "linear_attn_config")


def unmodelled_attention(cfg: dict) -> tuple[str, list[str]] | None:
    """(feature, keys) of an attention feature the cost model does not model and that changes attention's
    cost (so dropping its keys would give wrong numbers), or None."""
    present = [k for k in SPARSE_INDEXER_KEYS if cfg.get(k) is not None]
    if present:
        return "sparse attention (a top-k token indexer, as in DeepSeek-V3.2)", present
    present = [k for k in LINEAR_ATTENTION_KEYS if cfg.get(k) is not None]
    layer_types = cfg.get("layer_types") if isinstance(cfg.get("layer_types"), list) else []
    if present or "linear_attention" in layer_types:
        return "linear-attention layers (a hybrid of linear and full attention)", present or ["layer_types"]
    if "sliding_attention" in layer_types:
        return "sliding-window attention layers", ["layer_types"]
    window = cfg.get("sliding_window")
    if isinstance(window, int) and not isinstance(window, bool) and cfg.get("use_sliding_window", True) is not False:
        return "sliding-window attention", ["sliding_window"] + (["use_sliding_window"] if "use_sliding_window" in cfg else [])
    return None


def language_model(cfg: dict[str, Any]) -> tuple[dict[str, Any], list[str]]:
    """A multimodal wrapper's language model (its `text_config`, e.g. Kimi-K2.5's DeepSeek-V3-shaped
    kimi_k2), with the wrapper's quantization_config when the inner one has none; and the wrapper's keys
    dropped (the vision tower: text-only serving never runs it). Any other config as it is."""
    inner = cfg.get("text_config")
    if not isinstance(inner, dict) or "hidden_size" in cfg:
        return cfg, []
    out = dict(inner)
    if "quantization_config" in cfg and "quantization_config" not in out:
        out["quantization_config"] = cfg["quantization_config"]
    return out, sorted(k for k in cfg if k not in ("text_config", "quantization_config"))


def import_hf(cfg: dict[str, Any], name: str, source: str = "") -> tuple[dict, list[str]]:
    """Return (model YAML mapping, keys dropped) for a HuggingFace config dict read from `source`."""
    cfg, wrapper = language_model(cfg)
    feature = unmodelled_attention(cfg)
    if feature is not None:
        what, keys = feature
        raise PlannerError(f"the model uses {what}, which this cost model does not model: its attention cost "
                           "would come out wrong", field=", ".join(keys),
                           fix="import a model with full attention; these keys cannot be dropped without changing cost")
    model_type = cfg.get("model_type")
    if model_type not in SUPPORTED:
        raise PlannerError(
            f"model_type {model_type!r} is not supported",
            field="model_type",
            fix=f"supported: {', '.join(SUPPORTED)}; or write the model YAML by hand (see scenarios/models/)",
        )
    for key in ("hidden_size", "num_hidden_layers", "num_attention_heads", "vocab_size"):
        if key not in cfg:
            raise PlannerError(f"the config has no {key!r}", field=key, fix="pass a complete config.json")
    cfg = _renamed(cfg, model_type)
    out: dict[str, Any] = {"name": name, "source": source, "attention": _attention_kind(cfg),
                           "ffn": "moe" if cfg.get("n_routed_experts") else "dense"}
    dropped: list[str] = list(wrapper)
    fields = set(ModelSpec.model_fields) - {"name", "source", "attention", "ffn"}
    for key, value in cfg.items():
        if key == "rope_scaling" and isinstance(value, dict):
            if value.get("type", value.get("rope_type")) == "yarn":
                keep = {k: v for k, v in value.items() if k in YarnScaling.model_fields}
                out[key] = {**keep, "type": "yarn"}
            else:
                dropped.append(key)
        elif key == "quantization_config" and isinstance(value, dict):
            if value.get("quant_method") == "fp8":
                out[key] = {k: v for k, v in value.items() if k in QuantizationConfig.model_fields}
            else:
                dropped.append(key)
        elif key in fields and value is not None:
            out[key] = value
        elif key not in fields:
            dropped.append(key)
    if out["attention"] == "mla":
        out.pop("num_key_value_heads", None)  # nominal only: MLA caches one latent
    elif out["attention"] in ("mha", "mqa"):
        out.pop("num_key_value_heads", None)
    if out["ffn"] == "dense":
        for key in ("n_shared_experts", "first_k_dense_replace", "moe_layer_freq", "n_group", "topk_group",
                    "topk_method", "scoring_func", "norm_topk_prob", "routed_scaling_factor", "aux_loss_alpha",
                    "seq_aux"):
            if key in out:
                out.pop(key)
                dropped.append(key)
    validate(ModelSpec, out, Path(source or "config.json"), None)  # fail here, not when the file is used
    return out, sorted(set(dropped))


def to_yaml(model: dict, dropped: list[str], origin: str) -> str:
    """Model YAML text with a header saying where it came from and what was left out."""
    head = [f"# Imported by `planner import-hf` from {origin}."]
    if dropped:
        head.append("# Keys dropped (no effect on cost): " + ", ".join(dropped))
    return "\n".join(head) + "\n" + yaml.safe_dump(model, sort_keys=False, width=110)
