"""V2P Table 1 and the published parameter counts, reproduced from the configs."""

import pytest

from costmodel.counts.flops import attention_flops_per_token, train_flops_per_token
from costmodel.counts.kvcache import equivalent_gqa_groups, kv_bytes_per_token, kv_elements_per_token
from costmodel.counts.params import attention_params, layer_params, params_active, params_total


@pytest.mark.parametrize("name, elements", [
    ("deepseek-v2", 34_560),        # (512 + 64) * 60
    ("deepseek-v2-lite", 15_552),   # (512 + 64) * 27
    ("deepseek-v3", 35_136),        # (512 + 64) * 61
    ("deepseek-llm-67b", 194_560),  # 2 * 8 * 128 * 95 (GQA)
    ("deepseek-llm-7b", 245_760),   # 2 * 32 * 128 * 30 (MHA)
])
def test_kv_elements_per_token_table1(models, name, elements):
    assert kv_elements_per_token(models[name]) == elements


def test_mla_equals_gqa_with_2_25_groups(models):
    # V2P Table 1 caption: d_c = 4 d_h, d_h^R = d_h / 2 -> GQA with 2.25 groups
    assert equivalent_gqa_groups(models["deepseek-v2"]) == 2.25
    assert equivalent_gqa_groups(models["deepseek-llm-67b"]) == 8
    assert equivalent_gqa_groups(models["deepseek-llm-7b"]) == 32


def test_mqa_and_mha_kv_formulas(models):
    seven_b = models["deepseek-llm-7b"]
    mqa = seven_b.model_copy(update={"attention": "mqa", "num_key_value_heads": None})
    assert kv_elements_per_token(mqa) == 2 * 128 * 30
    assert kv_elements_per_token(seven_b) == 2 * 32 * 128 * 30


def test_kv_bytes_reproduce_figure_1(models):
    # V2P Fig. 1(b): 25.90 vs 389.10 KB/token; V2 at 6 bits, 67B at BF16 -> 93.34% less (V2P in docs/sources.md)
    v2 = kv_bytes_per_token(models["deepseek-v2"], 6)
    b67 = kv_bytes_per_token(models["deepseek-llm-67b"], 16)
    assert v2 == 25_920 and b67 == 389_120
    assert round((1 - v2 / b67) * 100, 1) == 93.3


def test_v2_layer_params_by_hand(models):
    m = models["deepseek-v2"]
    # q_a 5120*1536 + norm 1536 + q_b 1536*128*192 + kv_a 5120*576 + norm 512 + kv_b 512*128*256 + o 128*128*5120
    assert attention_params(m) == 149_227_520
    moe = layer_params(m, 1)
    assert moe.routed_experts == 160 * 3 * 5120 * 1536
    assert moe.dense == 149_227_520 + 2 * 5120 + 2 * 3 * 5120 * 1536 + 160 * 5120
    assert layer_params(m, 0).routed_experts == 0  # first_k_dense_replace = 1


@pytest.mark.parametrize("name, total, active", [
    # docs/sources.md convention; active excludes the input embedding (includes head, norms, router)
    ("deepseek-v2", 235.74e9, 20.85e9),
    ("deepseek-v2-lite", 15.71e9, 2.45e9),
    ("deepseek-v3", 671.03e9, 36.63e9),
    ("deepseek-llm-67b", 67.43e9, None),
    ("deepseek-llm-7b", 6.91e9, None),
])
def test_params_within_half_percent(models, name, total, active):
    m = models[name]
    assert params_total(m) == pytest.approx(total, rel=0.005)
    if active is not None:
        assert params_active(m) == pytest.approx(active, rel=0.005)


def test_v2_params_exact():
    # computed by hand from the config in scenarios/models (see costmodel/counts/params.py for the convention)
    from costmodel.inputs.loader import load_spec
    from tests.conftest import SCENARIOS

    m = load_spec("model", SCENARIOS / "models" / "deepseek-v2.yaml")
    assert params_total(m) == 235_741_434_880
    assert params_active(m) == 20_851_512_320
    assert params_active(m, include_input_embedding=True) == 20_851_512_320 + 102_400 * 5120


@pytest.mark.parametrize("name, gflop", [("deepseek-v2", 155.3), ("deepseek-llm-67b", 418.6)])
def test_train_flops_per_token_facts(models, name, gflop):
    # V2P FLOPs derivation (docs/sources.md): 6 N_active + causal attention at seq 4096
    assert round(train_flops_per_token(models[name], 4096) / 1e9, 1) == gflop


def test_attention_flops_by_hand(models):
    m = models["deepseek-v2"]
    assert attention_flops_per_token(m, 2048) == 2 * 128 * (192 + 128) * 2048 * 60
