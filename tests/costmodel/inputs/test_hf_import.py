"""`planner import-hf`: DeepSeek configs round-trip; other families' published sizes come out."""

import json

import pytest
import yaml
from click.testing import CliRunner

from costmodel.counts.params import params_active, params_total
from costmodel.inputs.specs import ModelSpec
from planner.cli import cli

LLAMA2_7B = {"model_type": "llama", "hidden_size": 4096, "intermediate_size": 11008, "num_hidden_layers": 32,
             "num_attention_heads": 32, "num_key_value_heads": 32, "vocab_size": 32000, "rms_norm_eps": 1e-5,
             "max_position_embeddings": 4096, "tie_word_embeddings": False, "bos_token_id": 1}
MIXTRAL_8X7B = {"model_type": "mixtral", "hidden_size": 4096, "intermediate_size": 14336, "num_hidden_layers": 32,
                "num_attention_heads": 32, "num_key_value_heads": 8, "vocab_size": 32000, "num_local_experts": 8,
                "num_experts_per_tok": 2, "rope_theta": 1e6, "max_position_embeddings": 32768,
                "sliding_window": None, "router_aux_loss_coef": 0.02}
QWEN15_MOE = {"model_type": "qwen2_moe", "hidden_size": 2048, "intermediate_size": 5632, "num_hidden_layers": 24,
              "num_attention_heads": 16, "num_key_value_heads": 16, "vocab_size": 151936, "num_experts": 60,
              "num_experts_per_tok": 4, "moe_intermediate_size": 1408, "shared_expert_intermediate_size": 5632,
              "decoder_sparse_step": 1, "norm_topk_prob": False, "mlp_only_layers": [], "tie_word_embeddings": False}


def run_import(tmp_path, cfg, name="m"):
    path = tmp_path / "config.json"
    path.write_text(json.dumps(cfg))
    result = CliRunner().invoke(cli, ["import-hf", str(path), "--name", name])
    return result


def imported(tmp_path, cfg):
    result = run_import(tmp_path, cfg)
    assert result.exit_code == 0, result.output
    return ModelSpec.model_validate(yaml.safe_load(result.output))


def test_llama2_7b_exact(tmp_path):
    m = imported(tmp_path, LLAMA2_7B)
    assert m.attention == "mha" and params_total(m) == 6_738_415_616  # Llama-2-7B's published count


def test_mixtral_published_sizes(tmp_path):
    m = imported(tmp_path, MIXTRAL_8X7B)
    assert m.attention == "gqa" and m.ffn == "moe" and m.n_routed_experts == 8
    assert params_total(m) == pytest.approx(46.7e9, rel=0.005)  # "46.7B total, 12.9B active" (Mistral AI)
    assert params_active(m, include_input_embedding=True) == pytest.approx(12.9e9, rel=0.005)


def test_qwen_moe_published_sizes(tmp_path):
    m = imported(tmp_path, QWEN15_MOE)
    assert m.shared_ffn_width == 5632 and m.attention_bias
    assert params_total(m) == pytest.approx(14.3e9, rel=0.005)  # Qwen1.5-MoE-A2.7B: 14.3B / 2.7B
    assert params_active(m, include_input_embedding=True) == pytest.approx(2.7e9, rel=0.005)


def test_deepseek_round_trip(tmp_path, models):
    """The bundled model files hold config.json keys: written back as a config.json (the key its family's
    HF config names its model_type by), imported, they give the same parameter counts."""
    from tests.conftest import SCENARIOS

    for name, model_type in (("deepseek-v2", "deepseek_v2"), ("deepseek-v3", "deepseek_v3"), ("deepseek-llm-67b", "llama")):
        spec = yaml.safe_load((SCENARIOS / "models" / f"{name}.yaml").read_text())
        cfg = {"model_type": model_type, **{k: v for k, v in spec.items() if k not in ("name", "source", "attention", "ffn")}}
        m = imported(tmp_path, cfg)
        assert params_total(m) == params_total(models[name]) and m.attention == models[name].attention


def test_unsupported_model_type_exits_2(tmp_path):
    result = run_import(tmp_path, {**LLAMA2_7B, "model_type": "mamba"})
    assert result.exit_code == 2 and "model_type 'mamba' is not supported" in result.output


def test_invalid_values_exit_2(tmp_path):
    result = run_import(tmp_path, {**LLAMA2_7B, "num_key_value_heads": 5})
    assert result.exit_code == 2 and "num_key_value_heads" in result.output


def test_not_json_exits_2(tmp_path):
    path = tmp_path / "config.json"
    path.write_text("{not json")
    result = CliRunner().invoke(cli, ["import-hf", str(path)])
    assert result.exit_code == 2 and "cannot read JSON" in result.output


V3 = yaml.safe_load((__import__("tests.conftest", fromlist=["SCENARIOS"]).SCENARIOS / "models" / "deepseek-v3.yaml").read_text())
V3_CONFIG = {"model_type": "deepseek_v3", **{k: v for k, v in V3.items() if k not in ("name", "source", "attention", "ffn")}}


@pytest.mark.parametrize("extra, keys, feature", [
    ({"index_topk": 2048, "index_n_heads": 64, "index_head_dim": 128}, "index_topk, index_n_heads, index_head_dim",
     "sparse attention"),
    ({"layer_types": ["linear_attention", "full_attention"]}, "layer_types", "linear-attention"),
    ({"linear_conv_kernel_dim": 4, "full_attention_interval": 4}, "linear_conv_kernel_dim, full_attention_interval",
     "linear-attention"),
    ({"layer_types": ["sliding_attention", "full_attention"]}, "layer_types", "sliding-window attention layers"),
    ({"sliding_window": 4096}, "sliding_window", "sliding-window attention"),
    ({"sliding_window": 4096, "use_sliding_window": True}, "sliding_window, use_sliding_window", "sliding-window"),
])
def test_attention_features_not_modelled_are_refused_naming_the_keys(tmp_path, extra, keys, feature):
    """Keys that change attention's cost are never dropped as 'no effect on cost' (DeepSeek-V3.2's indexer)."""
    result = run_import(tmp_path, {**V3_CONFIG, **extra})
    assert result.exit_code == 2 and f"field `{keys}`" in result.output and feature in result.output, result.output
    assert len(result.output.splitlines()) == 1


def test_a_disabled_or_absent_sliding_window_imports(tmp_path):
    """Qwen configs state a window with use_sliding_window: false; Mixtral's is null: full attention both."""
    assert imported(tmp_path, {**V3_CONFIG, "sliding_window": 4096, "use_sliding_window": False}).hidden_size == 7168
    assert imported(tmp_path, MIXTRAL_8X7B).n_routed_experts == 8


def shipped_config(name: str) -> dict:
    from costmodel.inputs import kernel_db
    return json.loads((kernel_db.systems_dir().parent / "model_configs" / name).read_text())


def test_a_multimodal_wrapper_imports_its_language_model(tmp_path):
    """Kimi-K2.5 wraps a DeepSeek-V3-shaped kimi_k2 in text_config; the vision tower is listed as dropped."""
    result = run_import(tmp_path, shipped_config("moonshotai--Kimi-K2.5_config.json"))
    assert result.exit_code == 0, result.output
    m = ModelSpec.model_validate(yaml.safe_load(result.output))
    assert (m.attention, m.n_routed_experts, m.num_experts_per_tok, m.kv_lora_rank) == ("mla", 384, 8, 512)
    assert "vision_config" in result.output and result.output.count(" architectures,") == 1


def test_a_linear_attention_hybrid_is_refused_before_its_model_type(tmp_path):
    """Qwen3.5's model_type is new, but the refusal names what is missing: linear attention."""
    result = run_import(tmp_path, shipped_config("Qwen--Qwen3.5-397B-A17B_config.json"))
    assert result.exit_code == 2 and "linear-attention" in result.output, result.output
